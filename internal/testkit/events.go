package testkit

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// eventWait bounds each wait for an event; it only fires when a test is
// broken.
const eventWait = 10 * time.Second

// SSE is one server-sent event.
type SSE struct{ Name, Data string }

// EventStream is a test client of GET /events, the live state stream.
type EventStream struct {
	tb     testing.TB
	events chan SSE
}

// OpenEventStream opens GET base+"/events" with token and fails tb unless
// the server answers 200 text/event-stream. The stream closes at cleanup.
func OpenEventStream(tb testing.TB, base, token string) *EventStream {
	tb.Helper()
	req, err := http.NewRequest("GET", base+"/events", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET /events: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &EventStream{tb: tb, events: make(chan SSE, 100)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev SSE
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" {
					s.events <- ev
				}
				ev = SSE{}
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

// Next returns the next event, failing the test if none comes.
func (s *EventStream) Next() SSE {
	s.tb.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.tb.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(eventWait):
		s.tb.Fatalf("no event within %v", eventWait)
	}
	return SSE{}
}

// Device returns the next event, which must be a device event.
func (s *EventStream) Device() proto.DeviceEvent {
	s.tb.Helper()
	ev := s.Next()
	if ev.Name != proto.EventDevice {
		s.tb.Fatalf("got event %q %s, want a device event", ev.Name, ev.Data)
	}
	var d proto.DeviceEvent
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
		s.tb.Fatalf("device event %s: %v", ev.Data, err)
	}
	return d
}

// Ended waits for the server to end the stream.
func (s *EventStream) Ended() {
	s.tb.Helper()
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-time.After(eventWait):
			s.tb.Fatalf("the event stream did not end within %v", eventWait)
		}
	}
}
