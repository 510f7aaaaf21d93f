// Package ssetest is a test client of the live event stream, GET /events
// (server-sent events): one reader for every package's tests. It imports
// nothing of the server, so the API's own tests can use it.
package ssetest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Wait is how long Next, Device, WaitDevice and Ended wait before they fail
// the test: a guard against a hang, not a synchronisation.
const Wait = 10 * time.Second

// Event is one server-sent event: its name and its data line.
type Event struct{ Name, Data string }

// Stream is an open GET /events.
type Stream struct {
	t      testing.TB
	events chan Event
}

// Open opens GET baseURL/events with token and fails the test unless the
// server answers 200 with an event stream. The stream is closed when the
// test ends.
func Open(t testing.TB, baseURL, token string) *Stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", baseURL+"/events", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /events: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &Stream{t: t, events: make(chan Event, 100)}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	go func() {
		defer close(done)
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var ev Event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" {
					select {
					case s.events <- ev:
					case <-ctx.Done():
						return
					}
				}
				ev = Event{}
			case strings.HasPrefix(line, "event: "):
				ev.Name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.Data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

// OpenReady is Open that also takes the stream's first event, which must
// be "ready": the subscription is in place when it returns.
func OpenReady(t testing.TB, baseURL, token string) *Stream {
	t.Helper()
	s := Open(t, baseURL, token)
	if ev := s.Next(); ev.Name != proto.EventReady {
		t.Fatalf("first event %q %s, want %q", ev.Name, ev.Data, proto.EventReady)
	}
	return s
}

// Next returns the next event.
func (s *Stream) Next() Event {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(Wait):
		s.t.Fatalf("no event within %v", Wait)
	}
	return Event{}
}

// Device returns the next event, which must be a device event.
func (s *Stream) Device() proto.DeviceEvent {
	s.t.Helper()
	ev := s.Next()
	if ev.Name != proto.EventDevice {
		s.t.Fatalf("got event %q %s, want a device event", ev.Name, ev.Data)
	}
	var d proto.DeviceEvent
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
		s.t.Fatalf("device event %s: %v", ev.Data, err)
	}
	return d
}

// WaitDevice skips events until a device event that match accepts, and
// returns it; what says what is awaited, for the failure.
func (s *Stream) WaitDevice(what string, match func(proto.DeviceEvent) bool) proto.DeviceEvent {
	s.t.Helper()
	deadline := time.After(Wait)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("the event stream ended waiting for %s", what)
			}
			var d proto.DeviceEvent
			if ev.Name == proto.EventDevice && json.Unmarshal([]byte(ev.Data), &d) == nil && match(d) {
				return d
			}
		case <-deadline:
			s.t.Fatalf("no event within %v: %s", Wait, what)
			return proto.DeviceEvent{}
		}
	}
}

// Ended waits for the server to end the stream.
func (s *Stream) Ended() {
	s.t.Helper()
	deadline := time.After(Wait)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-deadline:
			s.t.Fatalf("the event stream did not end within %v", Wait)
		}
	}
}
