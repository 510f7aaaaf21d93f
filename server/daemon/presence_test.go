package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// sse is one server-sent event.
type sse struct{ name, data string }

// stream is a client of GET /events.
type stream struct {
	t      *testing.T
	resp   *http.Response
	events chan sse
}

func openStream(t *testing.T, url, token string) *stream {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /events: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &stream{t: t, resp: resp, events: make(chan sse, 100)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					s.events <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

// next returns the next event; the timeout is a failure guard.
func (s *stream) next() sse {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatal("no event within 10s")
	}
	return sse{}
}

// device returns the next event, which must be a device event.
func (s *stream) device() proto.DeviceEvent {
	s.t.Helper()
	ev := s.next()
	if ev.name != proto.EventDevice {
		s.t.Fatalf("got event %q %s, want a device event", ev.name, ev.data)
	}
	var d proto.DeviceEvent
	if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
		s.t.Fatalf("device event %s: %v", ev.data, err)
	}
	return d
}

// ended waits for the stream to end.
func (s *stream) ended() {
	s.t.Helper()
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-time.After(10 * time.Second):
			s.t.Fatal("the event stream did not end within 10s")
		}
	}
}

// TestDaemonStreamsPresence runs a whole daemon: a device's MQTT session
// opening and closing reaches the stream, the daemon's own OnPresence still
// runs, and Run stops cleanly with a stream open.
func TestDaemonStreamsPresence(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	presence := make(chan bool, 10)
	d, err := NewDaemon(ctx, DaemonConfig{
		DataDir: filepath.Join(t.TempDir(), "data"), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
		AdminToken: adminToken, EnrollToken: enrollToken, Out: io.Discard,
		OnPresence: func(_ string, connected bool) { presence <- connected },
	})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	url := "http://" + d.HTTPAddr()
	_ = url
	testkit.Eventually(t, 20*time.Second, "the daemon to be healthy", func() bool {
		st, _, _ := send(t, "GET", url+"/healthz", "", "", nil)
		return st == 200
	})

	s := openStream(t, url, adminToken)
	if ev := s.next(); ev.name != proto.EventReady {
		t.Fatalf("first event %q", ev.name)
	}
	var e proto.EnrollResponse
	send(t, "POST", url+"/enroll", enrollToken, `{"model":"m","osVersion":"1","agentVersion":"0.1.0"}`, &e)
	if ev := s.device(); ev.Cause != proto.CauseEnroll || ev.Connected {
		t.Fatalf("after enroll: %+v", ev)
	}

	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + d.MQTTAddr()).
		SetClientID(e.DeviceID).SetUsername(e.DeviceID).SetPassword(e.DeviceSecret).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device cannot connect: %v", tok.Error())
	}
	if ev := s.device(); ev.DeviceID != e.DeviceID || ev.Cause != proto.CauseConnect || !ev.Connected {
		t.Fatalf("after connect: %+v", ev)
	}
	c.Disconnect(0)
	if ev := s.device(); ev.Cause != proto.CauseDisconnect || ev.Connected {
		t.Fatalf("after disconnect: %+v", ev)
	}
	for _, want := range []bool{true, false} {
		select {
		case got := <-presence:
			if got != want {
				t.Fatalf("DaemonConfig.OnPresence got %v, want %v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("DaemonConfig.OnPresence was not called")
		}
	}

	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run with an open stream: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of cancel with a stream open")
	}
	s.ended()
}
