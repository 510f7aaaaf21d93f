package api

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
)

// benchPolicy is the policy of the benchmarks' device: a few settings, as
// a managed device has, so decoding and evaluating its record cost what
// they cost in a fleet.
const benchPolicy = `{"cameraDisabled":true,"screenCaptureDisabled":true,"passwordMinLength":8,"lockTaskPackages":["com.example.kiosk","com.example.scanner"],"autoUpdatesEnabled":true}`

// benchReport is a compliant report of benchPolicy at version 2 with the
// reportedAt and nonce every current agent sends (capability 2).
func benchReport(i int, at time.Time) string {
	return fmt.Sprintf(`{"appliedPolicyVersion":2,"cameraDisabled":true,"screenCaptureDisabled":true,"passwordMinLength":8,"lockTaskPackages":["com.example.kiosk","com.example.scanner"],"autoUpdatesEnabled":true,"compliant":true,"reportedAt":%q,"nonce":"bench-nonce-%012d","syncIntervalSeconds":900}`,
		at.UTC().Format(time.RFC3339Nano), i)
}

// benchAPI is an API over a real bbolt file (without fsync, so the
// numbers are the server's own work, not the disk's) with one enrolled
// device whose policy is benchPolicy (version 2).
type benchAPI struct {
	a      *API
	st     *bolt.Store
	h      fasthttp.RequestHandler
	id     string
	secret string
}

func newBenchAPI(b *testing.B) *benchAPI {
	st, err := bolt.Open(filepath.Join(b.TempDir(), "doorbell.db"), bolt.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	a, err := New(st, Config{AdminToken: adminToken, EnrollToken: enrollToken, MQTTPort: "1883"})
	if err != nil {
		b.Fatal(err)
	}
	ba := &benchAPI{a: a, st: st, h: a.App().Handler()}
	c := ba.call("POST", "/enroll", enrollToken, `{"model":"bench","osVersion":"1","agentVersion":"0.1.0"}`, "")
	var e proto.EnrollResponse
	if err := json.Unmarshal(c.Response.Body(), &e); err != nil {
		b.Fatalf("enroll: %s", c.Response.Body())
	}
	ba.id, ba.secret = e.DeviceID, e.DeviceSecret
	if c := ba.call("PUT", "/devices/"+e.DeviceID+"/policy", adminToken, benchPolicy, ""); c.Response.StatusCode() != 200 {
		b.Fatalf("policy: %d %s", c.Response.StatusCode(), c.Response.Body())
	}
	return ba
}

func (ba *benchAPI) call(method, path, token, body, ifNoneMatch string) *fasthttp.RequestCtx {
	var c fasthttp.RequestCtx
	c.Request.Header.SetMethod(method)
	c.Request.SetRequestURI(path)
	c.Request.Header.SetHost("example.com")
	c.Request.Header.SetContentType("application/json")
	c.Request.Header.Set("Authorization", "Bearer "+token)
	if ifNoneMatch != "" {
		c.Request.Header.Set("If-None-Match", ifNoneMatch)
	}
	if body != "" {
		c.Request.SetBodyString(body)
	}
	ba.h(&c)
	return &c
}

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
	ba := newBenchAPI(b)
	if live {
		sub := ba.a.events.subscribe("test")
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
	path := "/devices/" + ba.id + "/report"
	// Bodies are made before the timer starts: the agent's JSON is not the
	// server's cost. Each carries a new nonce and a later reportedAt.
	bodies := make([]string, 0, 1<<16)
	t0 := time.Now()
	body := func(i int) string {
		for len(bodies) <= i%cap(bodies) && len(bodies) < cap(bodies) {
			bodies = append(bodies, benchReport(len(bodies), t0.Add(time.Duration(len(bodies))*time.Microsecond)))
		}
		return bodies[i%cap(bodies)]
	}
	body(cap(bodies) - 1)
	b.ReportAllocs()
	tx0 := ba.st.DBStats().TxStats
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if n == cap(bodies) {
			// Out of prepared bodies: make a new round, later in time.
			b.StopTimer()
			t0 = t0.Add(time.Duration(cap(bodies)) * time.Microsecond)
			for i := range bodies {
				bodies[i] = benchReport(n+i, t0.Add(time.Duration(i)*time.Microsecond))
			}
			b.StartTimer()
		}
		if c := ba.call("POST", path, ba.secret, body(n), ""); c.Response.StatusCode() != 204 {
			b.Fatalf("report %d: %d %s", n, c.Response.StatusCode(), c.Response.Body())
		}
		n++
	}
	b.StopTimer()
	// What a report writes to the file: bbolt's dirty pages (page-B/op,
	// written at the commit; plus one 4 KiB meta page per commit) and the
	// write calls that carry them.
	tx1 := ba.st.DBStats().TxStats
	b.ReportMetric(float64(tx1.GetPageAlloc()-tx0.GetPageAlloc())/float64(n), "page-B/op")
	b.ReportMetric(float64(tx1.GetWrite()-tx0.GetWrite())/float64(n), "writes/op")
}

// BenchmarkPolicyETag measures an agent's sync after a doorbell when its
// policy did not change: GET /devices/{id}/policy with the current ETag,
// answered 304 (the other half of edit-all's requests is a GET that gets
// the new policy: "changed").
func BenchmarkPolicyETag(b *testing.B) {
	ba := newBenchAPI(b)
	path := "/devices/" + ba.id + "/policy"
	b.Run("not-modified", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c := ba.call("GET", path, ba.secret, "", `"2"`); c.Response.StatusCode() != 304 {
				b.Fatalf("policy: %d %s", c.Response.StatusCode(), c.Response.Body())
			}
		}
	})
	b.Run("changed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c := ba.call("GET", path, ba.secret, "", `"1"`); c.Response.StatusCode() != 200 {
				b.Fatalf("policy: %d %s", c.Response.StatusCode(), c.Response.Body())
			}
		}
	})
}
