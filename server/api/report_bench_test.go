package api

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
)

// BenchmarkReport measures the report path in process: the fiber handler
// chain, auth, evaluation and the commit to a real bbolt file (without
// fsync, so the number is the server's own work, not the disk's).
func BenchmarkReport(b *testing.B) {
	b.Run("quiet", func(b *testing.B) { benchmarkReport(b, false) })
	// With a live stream open (a console watching), every report is
	// also published to it.
	b.Run("live", func(b *testing.B) { benchmarkReport(b, true) })
}

func benchmarkReport(b *testing.B, live bool) {
	st, err := bolt.Open(filepath.Join(b.TempDir(), "doorbell.db"), bolt.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	a, err := New(st, Config{AdminToken: adminToken, EnrollToken: enrollToken, MQTTPort: "1883"})
	if err != nil {
		b.Fatal(err)
	}
	if live {
		sub := a.events.subscribe("test")
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-sub.events:
				case <-done:
					return
				}
			}
		}()
	}
	h := a.App().Handler()
	call := func(method, path, token, body string) *fasthttp.RequestCtx {
		var c fasthttp.RequestCtx
		c.Request.Header.SetMethod(method)
		c.Request.SetRequestURI(path)
		c.Request.Header.SetHost("example.com")
		c.Request.Header.SetContentType("application/json")
		c.Request.Header.Set("Authorization", "Bearer "+token)
		c.Request.SetBodyString(body)
		h(&c)
		return &c
	}
	c := call("POST", "/enroll", enrollToken, `{"model":"bench","osVersion":"1","agentVersion":"0.1.0"}`)
	var e proto.EnrollResponse
	if err := json.Unmarshal(c.Response.Body(), &e); err != nil {
		b.Fatalf("enroll: %s", c.Response.Body())
	}
	path := "/devices/" + e.DeviceID + "/report"
	body := `{"appliedPolicyVersion":1,"cameraDisabled":false,"compliant":true}`
	b.ReportAllocs()
	tx0 := st.DBStats().TxStats
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if c := call("POST", path, e.DeviceSecret, body); c.Response.StatusCode() != 204 {
			b.Fatalf("report: %d %s", c.Response.StatusCode(), c.Response.Body())
		}
		n++
	}
	b.StopTimer()
	// What a report writes to the file: bbolt's dirty pages (page-B/op,
	// written at the commit; plus one 4 KiB meta page per commit) and the
	// write calls that carry them.
	tx1 := st.DBStats().TxStats
	b.ReportMetric(float64(tx1.GetPageAlloc()-tx0.GetPageAlloc())/float64(n), "page-B/op")
	b.ReportMetric(float64(tx1.GetWrite()-tx0.GetWrite())/float64(n), "writes/op")
}
