package api

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/servertest/ssetest"
)

func TestEventHubNeverBlocks(t *testing.T) {
	var h eventHub
	if h.active() {
		t.Fatal("an empty hub is active")
	}
	slow, fast := h.subscribe("test"), h.subscribe("test")
	if !h.active() {
		t.Fatal("a hub with subscribers is not active")
	}
	// fast keeps reading; slow reads nothing. Publishing more than the
	// buffer must neither block nor take events from fast.
	got := 0
	for i := 0; i < eventBuffer+10; i++ {
		h.publish(proto.DeviceEvent{DeviceID: "d", DesiredVersion: int64(i)})
		<-fast.events
		got++
	}
	if got != eventBuffer+10 {
		t.Fatalf("fast subscriber got %d events", got)
	}
	select {
	case <-fast.lost:
		t.Fatal("a subscriber that kept up was told to resync")
	default:
	}
	if n := len(slow.events); n != eventBuffer {
		t.Fatalf("slow subscriber holds %d events, want the buffer full (%d)", n, eventBuffer)
	}
	select {
	case <-slow.lost:
	default:
		t.Fatal("the slow subscriber was not told that it lost events")
	}
	h.unsubscribe(slow)
	h.unsubscribe(fast)
	if h.active() {
		t.Fatal("hub still active after everyone left")
	}
}

// TestEventStreamResync: a stream that fell behind is told to resync, and
// what was queued before is dropped rather than sent after it.
func TestEventStreamResync(t *testing.T) {
	h := newHarness(t)
	var hub eventHub
	sub := hub.subscribe("test")
	for i := 0; i < eventBuffer+1; i++ {
		hub.publish(proto.DeviceEvent{DeviceID: "d", DesiredVersion: int64(i)})
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		h.api.writeEvents(bufio.NewWriter(pw), nil, sub, done)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var names []string
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			names = append(names, name)
			if name == proto.EventResync {
				break
			}
		}
	}
	if names[0] != proto.EventReady || names[len(names)-1] != proto.EventResync {
		t.Fatalf("events %v: want ready first and a resync", names)
	}
	if len(names) > eventBuffer+2 {
		t.Fatalf("%d events before the resync", len(names))
	}
	if n := len(sub.events); n != 0 {
		t.Fatalf("%d stale events still queued after the resync", n)
	}
	// A new event after the resync is delivered.
	hub.publish(proto.DeviceEvent{DeviceID: "after"})
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") && sc.Text() != "data: {}" {
			if !strings.Contains(sc.Text(), `"deviceId":"after"`) {
				t.Fatalf("after the resync got %s", sc.Text())
			}
			break
		}
	}
	close(done)
	go io.Copy(io.Discard, pr)
	<-returned
}

// TestEventStream: every change reaches an open stream as the device's
// whole state, after "ready", in order, and a no-op edit sends nothing.
func TestEventStream(t *testing.T) {
	h := newHarness(t)
	s := ssetest.Open(t, h.url, adminToken)
	if ev := s.Next(); ev.Name != proto.EventReady {
		t.Fatalf("first event %q, want ready", ev.Name)
	}

	e := h.enroll()
	d := s.Device()
	if d.DeviceID != e.DeviceID || d.Cause != proto.CauseEnroll || d.State != proto.StateUnknown || d.DesiredVersion != 1 || d.LastReportAt != nil {
		t.Fatalf("after enroll: %+v", d)
	}
	path := "/devices/" + e.DeviceID
	h.do("POST", path+"/report", e.DeviceSecret, `{"appliedPolicyVersion":1,"cameraDisabled":false}`)
	d = s.Device()
	if d.Cause != proto.CauseReport || d.State != proto.StateCompliant || d.AppliedVersion != 1 || d.LastReportAt == nil || !d.LastReportAt.Equal(h.now) {
		t.Fatalf("after report: %+v", d)
	}
	h.do("PUT", path+"/policy", adminToken, `{"cameraDisabled":true}`)
	d = s.Device()
	if d.Cause != proto.CauseEdit || d.State != proto.StateStale || d.DesiredVersion != 2 || d.AppliedVersion != 1 {
		t.Fatalf("after edit: %+v", d)
	}
	// A no-op edit sends nothing: the next event is the report's.
	h.do("PUT", path+"/policy", adminToken, `{"cameraDisabled":true}`)
	h.do("POST", path+"/report", e.DeviceSecret, `{"appliedPolicyVersion":2,"cameraDisabled":true}`)
	d = s.Device()
	if d.Cause != proto.CauseReport || d.State != proto.StateCompliant || d.AppliedVersion != 2 {
		t.Fatalf("after the second report: %+v", d)
	}
	// A refused report sends nothing either.
	if r := h.do("POST", path+"/report", e.DeviceSecret, `{"appliedPolicyVersion":9}`); r.status != 409 {
		t.Fatalf("report ahead: %d", r.status)
	}
	h.do("PUT", path+"/policy", adminToken, `{"cameraDisabled":false}`)
	if d = s.Device(); d.Cause != proto.CauseEdit || d.DesiredVersion != 3 {
		t.Fatalf("after the third edit: %+v", d)
	}
}

func TestEventStreamAuth(t *testing.T) {
	h := newHarness(t)
	e := h.enroll()
	tests := []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", 401, "unauthorized"},
		{"wrong token", "nope", 401, "unauthorized"},
		{"enrollment token", enrollToken, 401, "unauthorized"},
		{"a device's secret", e.DeviceSecret, 403, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("GET", "/events", tt.token, "")
			if r.status != tt.status || r.errCode(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
		})
	}
	// The token is only accepted in the header, never in the URL.
	if r := h.do("GET", "/events?token="+adminToken, "", ""); r.status != 401 {
		t.Fatalf("token in the query: %d, want 401", r.status)
	}
}

// TestEventStreamEndsOnShutdown: an open stream does not hold the server up.
func TestEventStreamEndsOnShutdown(t *testing.T) {
	h := newHarness(t)
	s := ssetest.Open(t, h.url, adminToken)
	if ev := s.Next(); ev.Name != proto.EventReady {
		t.Fatalf("first event %q", ev.Name)
	}
	if err := h.api.App().ShutdownWithTimeout(10 * time.Second); err != nil {
		t.Fatalf("shutdown with an open stream: %v", err)
	}
	s.Ended()
	if h.api.events.active() {
		t.Fatal("the stream's subscription outlived it")
	}
}

func TestLastReport(t *testing.T) {
	h := newHarness(t)
	a, b := h.enroll(), h.enroll()
	path := "/devices/" + a.DeviceID + "/report"
	tests := []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"no token", path, "", 401, "unauthorized"},
		{"the device itself", path, a.DeviceSecret, 403, "forbidden"},
		{"another device", path, b.DeviceSecret, 403, "forbidden"},
		{"unknown device", "/devices/nope/report", adminToken, 404, "device_not_found"},
		{"never reported", path, adminToken, 404, "no_report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("GET", tt.path, tt.token, "")
			if r.status != tt.status || r.errCode(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
		})
	}
	h.do("POST", path, a.DeviceSecret, `{"appliedPolicyVersion":1,"cameraDisabled":true,"screenCaptureDisabled":false,"compliant":true}`)
	r := h.do("GET", path, adminToken, "")
	if r.status != 200 {
		t.Fatalf("after a report: %d %s", r.status, r.body)
	}
	var got LastReport
	r.decode(t, &got)
	if got.AppliedPolicyVersion != 1 || !got.CameraDisabled || got.ScreenCaptureDisabled == nil || *got.ScreenCaptureDisabled ||
		!got.Compliant || !got.ReceivedAt.Equal(h.now) {
		t.Fatalf("last report = %s", r.body)
	}
	var raw map[string]any
	r.decode(t, &raw)
	for _, k := range []string{"appliedPolicyVersion", "cameraDisabled", "screenCaptureDisabled", "compliant", "receivedAt"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("last report lacks %q: %s", k, r.body)
		}
	}
}
