package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/bridge/fcmtest"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/servertest"
)

// inProcess is a daemon and one MQTT-connected agent in this process.
type inProcess struct {
	d       *daemon.Daemon
	url     string
	agent   *agent.Agent
	reports chan int64 // policy versions the agent reported
	stop    func()
}

// startInProcess starts the daemon and one agent. With fake set, the agent
// is a phone: no MQTT, its doorbell comes only through the fake FCM server.
func startInProcess(tb testing.TB, fake *fcmtest.Server) *inProcess {
	tb.Helper()
	connected := make(chan string, 16)
	cfg := daemon.DaemonConfig{
		AdminToken: "bench-admin", EnrollToken: "bench-enroll",
		// Measure the loop, not the per-device rate limit.
		DevicePerMinute: -1,
		OnPresence: func(id string, up bool) {
			if up {
				connected <- id
			}
		},
	}
	if fake != nil {
		cfg.FCM = &bridge.FCMConfig{ProjectID: "bench", Endpoint: fake.URL}
	}
	d := servertest.Start(tb, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err error
	p := &inProcess{d: d, url: "http://" + d.HTTPAddr(), reports: make(chan int64, 16)}
	p.agent, err = agent.New(agent.Config{
		ServerURL: p.url, EnrollToken: "bench-enroll", Interval: time.Hour,
		Enforcer: &agent.MemoryEnforcer{}, IDStore: agent.NewFileIDStore(tb.TempDir()),
		DisableMQTT: fake != nil,
		OnSync: func(r agent.SyncResult) {
			if r.Err == nil && !r.Skipped {
				p.reports <- r.PolicyVersion
			}
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if fake != nil {
		fake.OnMessage(func(m fcmtest.Message) { p.agent.OnPush(m.Data) })
		if err := p.agent.SetPushToken("bench-token"); err != nil {
			tb.Fatal(err)
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); p.agent.Run(ctx) }()
	// The first report comes from the sync at start; then wait until the
	// broker sees the agent connected, so the doorbell can reach it.
	select {
	case <-p.reports:
	case <-time.After(30 * time.Second):
		tb.Fatal("agent did not report")
	}
	if fake == nil {
		select {
		case <-connected:
		case <-time.After(30 * time.Second):
			tb.Fatal("agent did not connect over MQTT")
		}
	}
	p.stop = func() { cancel(); wg.Wait() }
	tb.Cleanup(p.stop)
	return p
}

func (p *inProcess) do(tb testing.TB, method, path, body string) *http.Response {
	req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer bench-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// BenchmarkEditToCompliant measures, for one MQTT-connected agent, the time
// from an operator's PUT to the server answering COMPLIANT for the new
// version: edit, fsync, doorbell, GET policy, enforce, report, status.
func BenchmarkEditToCompliant(b *testing.B) { benchEditToCompliant(b, nil) }

// BenchmarkEditToCompliantFCM is the same for a phone: the doorbell goes
// through the real firebase SDK to a local fake FCM server.
func BenchmarkEditToCompliantFCM(b *testing.B) { benchEditToCompliant(b, fcmtest.NewServer(b)) }

func benchEditToCompliant(b *testing.B, fake *fcmtest.Server) {
	p := startInProcess(b, fake)
	id := p.agent.DeviceID()
	// Drain the reports of syncs triggered by the MQTT connect.
	for len(p.reports) > 0 {
		<-p.reports
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp := p.do(b, "PUT", "/devices/"+id+"/policy", fmt.Sprintf(`{"cameraDisabled":%v}`, i%2 == 0))
		var pol proto.DevicePolicy
		decodeJSON(b, resp, &pol)
		for v := <-p.reports; v < pol.Version; v = <-p.reports {
		}
		var st proto.DeviceStatus
		decodeJSON(b, p.do(b, "GET", "/devices/"+id+"/status", ""), &st)
		if st.State != proto.StateCompliant || st.AppliedVersion != pol.Version {
			b.Fatalf("after the agent reported: %+v", st)
		}
	}
}

func decodeJSON(tb testing.TB, resp *http.Response, v any) {
	tb.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("%s %s: status %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatal(err)
	}
}
