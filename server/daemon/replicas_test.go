package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/servertest/ssetest"
	"github.com/doorbell-mdm/doorbell/server/store/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// replica is one daemon of several on one database, stoppable mid-test.
type replica struct {
	d    *Daemon
	stop func()
}

func startReplica(t *testing.T, url string) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := NewDaemon(ctx, DaemonConfig{Store: url, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Out: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	r := &replica{d: d}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("replica: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// balancer is a TCP load balancer for the test: each connection goes to the
// first backend that accepts it.
func balancer(t *testing.T, backends ...string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for _, b := range backends {
					up, err := net.DialTimeout("tcp", b, time.Second)
					if err != nil {
						continue
					}
					defer up.Close()
					go io.Copy(up, c)
					io.Copy(c, up)
					return
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func status(t *testing.T, r *replica, id string) proto.DeviceStatus {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+r.d.HTTPAddr()+"/devices/"+id+"/status", nil)
	req.Header.Set("Authorization", "Bearer "+r.d.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st proto.DeviceStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /devices/%s/status: %d %v", id, resp.StatusCode, err)
	}
	return st
}

func edit(t *testing.T, r *replica, id, body string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", "http://"+r.d.HTTPAddr()+"/devices/"+id+"/policy", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.d.AdminToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("edit of %s: %d", id, resp.StatusCode)
	}
}

type testAgent struct {
	mu  sync.Mutex
	ids agent.IDStore
	v   int64 // last applied version
}

func (a *testAgent) applied() int64 { a.mu.Lock(); defer a.mu.Unlock(); return a.v }

func (a *testAgent) id(t *testing.T) string {
	id, ok, err := a.ids.Load()
	if err != nil || !ok {
		return ""
	}
	return id.DeviceID
}

func runAgent(t *testing.T, server, mqttURLs, enroll string) *testAgent {
	ta := &testAgent{ids: agent.NewFileIDStore(t.TempDir())}
	a, err := agent.New(agent.Config{
		ServerURL: "http://" + server, EnrollToken: enroll, MQTTURL: mqttURLs,
		Enforcer: &agent.MemoryEnforcer{}, IDStore: ta.ids,
		// An hour: within the test only a doorbell makes it sync.
		Interval: time.Hour,
		OnSync: func(r agent.SyncResult) {
			if r.Err == nil {
				ta.mu.Lock()
				ta.v = max(ta.v, r.PolicyVersion)
				ta.mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ta
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestTwoReplicas runs two daemons on one PostgreSQL database with an
// agent on each. An edit made on A converges the device held by B (the
// ring crosses over the bus) and the reverse; presence is shared; when B
// stops, its agent moves to A (through the balancer for HTTP and its
// second broker URL for MQTT) and converges there; nothing acknowledged is
// lost.
func TestTwoReplicas(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := startReplica(t, url)
	b := startReplica(t, url)
	if a.d.AdminToken() != b.d.AdminToken() || a.d.EnrollToken() != b.d.EnrollToken() {
		t.Fatal("the replicas use different generated tokens")
	}
	onA := runAgent(t, a.d.HTTPAddr(), "tcp://"+a.d.MQTTAddr(), a.d.EnrollToken())
	lb := balancer(t, b.d.HTTPAddr(), a.d.HTTPAddr())
	onB := runAgent(t, lb, "tcp://"+b.d.MQTTAddr()+",tcp://"+a.d.MQTTAddr(), a.d.EnrollToken())
	until(t, "both agents to enroll", func() bool { return onA.id(t) != "" && onB.id(t) != "" })
	idA, idB := onA.id(t), onB.id(t)
	until(t, "A to see B's device connected", func() bool { return status(t, a, idB).Connected })
	until(t, "B to see A's device connected", func() bool { return status(t, b, idA).Connected })

	// An edit on A reaches the device connected to B, and the reverse.
	edit(t, a, idB, `{"cameraDisabled":true}`)
	until(t, "B's device to apply A's edit", func() bool { return onB.applied() == 2 })
	edit(t, b, idA, `{"cameraDisabled":true}`)
	until(t, "A's device to apply B's edit", func() bool { return onA.applied() == 2 })

	// The live stream on A shows what B commits, once B knows A streams.
	events := ssetest.OpenReady(t, "http://"+a.d.HTTPAddr(), a.d.AdminToken())
	until(t, "B to learn that A streams", b.d.node.StreamsElsewhere)
	edit(t, b, idB, `{"cameraDisabled":false}`)
	events.WaitDevice("A's stream to show B's edit", func(ev proto.DeviceEvent) bool {
		return ev.DeviceID == idB && ev.Cause == proto.CauseEdit && ev.DesiredVersion == 3
	})
	until(t, "B's device to apply B's edit", func() bool { return onB.applied() == 3 })

	// Deleting A's device through B closes its session on A: the agent
	// learns at once (its sync interval is an hour), and enrolls again.
	del(t, b, idA)
	until(t, "A's device to be cut off and enroll again", func() bool { id := onA.id(t); return id != "" && id != idA })

	// B goes away: its agent reconnects to A and converges on A's edits.
	b.stop()
	until(t, "B's device to show connected through A", func() bool { return status(t, a, idB).Connected })
	edit(t, a, idB, `{"cameraDisabled":true}`)
	until(t, "B's device to apply an edit made after B stopped", func() bool { return onB.applied() == 4 })

	// Everything acknowledged is there, on the replica left.
	for _, c := range []struct {
		id      string
		version int64
	}{{onA.id(t), 1}, {idB, 4}} {
		until(t, "the last report of "+c.id, func() bool {
			st := status(t, a, c.id)
			return st.DesiredVersion == c.version && st.AppliedVersion == c.version && st.State == proto.StateCompliant
		})
	}
}

func del(t *testing.T, r *replica, id string) {
	t.Helper()
	req, _ := http.NewRequest("DELETE", "http://"+r.d.HTTPAddr()+"/devices/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+r.d.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 && resp.StatusCode != 200 {
		t.Fatalf("delete of %s: %d", id, resp.StatusCode)
	}
}

// liveEventsCtx opens GET /events on r with token and returns its device
// events, once the stream said it is ready; it closes when ctx is done.
func liveEventsCtx(t *testing.T, ctx context.Context, r *replica, token string) <-chan proto.DeviceEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+r.d.HTTPAddr()+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out := make(chan proto.DeviceEvent, 100)
	ready := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
				if event == proto.EventReady {
					close(ready)
				}
			case strings.HasPrefix(line, "data: ") && event == proto.EventDevice:
				var ev proto.DeviceEvent
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev) == nil {
					select {
					case out <- ev:
					default:
					}
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the live stream never said ready")
	}
	return out
}
