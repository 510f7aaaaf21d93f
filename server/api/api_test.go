package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
)

const (
	adminToken  = "admin-secret-token"
	enrollToken = "enroll-secret-token"
)

type fakeBell struct {
	mu    sync.Mutex
	rings []bridge.Ring
	calls int // Ring calls, to see batching
}

var _ bridge.Bell = (*fakeBell)(nil)

func (f *fakeBell) Ring(r ...bridge.Ring) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.rings = append(f.rings, r...)
}
func (f *fakeBell) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *fakeBell) all() []bridge.Ring {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bridge.Ring(nil), f.rings...)
}

type fakePresence struct{ connected map[string]bool }

func (f fakePresence) Connected(id string) bool { return f.connected[id] }

type harness struct {
	t     *testing.T
	url   string
	api   *API
	bell  *fakeBell
	clock *testkit.Clock
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, nil) }

// newHarnessWith is newHarness with mod applied to the API's Config.
func newHarnessWith(t *testing.T, mod func(*Config)) *harness {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, bell: &fakeBell{}, clock: testkit.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))}
	cfg := Config{
		AdminToken:  adminToken,
		EnrollToken: enrollToken,
		MQTTPort:    "1883",
		Bell:        h.bell,
		Presence:    fakePresence{},
		Now:         h.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	h.api, err = New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.url = "http://" + ln.Addr().String()
	served := make(chan struct{})
	go func() { defer close(served); h.api.App().Listener(ln) }()
	t.Cleanup(func() { h.api.App().Shutdown(); <-served })
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func (r response) errCode(t *testing.T) string {
	t.Helper()
	var e proto.ErrorBody
	r.decode(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body without code or message: %s", r.body)
	}
	return e.Error.Code
}

func (h *harness) do(method, path, token, body string, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Host = "example.com"
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func (h *harness) enroll() proto.EnrollResponse {
	h.t.Helper()
	r := h.do("POST", "/enroll", enrollToken, `{"model":"Pixel 8","osVersion":"14","agentVersion":"0.1.0"}`)
	if r.status != 201 {
		h.t.Fatalf("enroll: %d %s", r.status, r.body)
	}
	var e proto.EnrollResponse
	r.decode(h.t, &e)
	return e
}

func (h *harness) status(id string) proto.DeviceStatus {
	h.t.Helper()
	r := h.do("GET", "/devices/"+id+"/status", adminToken, "")
	if r.status != 200 {
		h.t.Fatalf("status: %d %s", r.status, r.body)
	}
	var s proto.DeviceStatus
	r.decode(h.t, &s)
	return s
}

func (h *harness) deviceCount() int {
	h.t.Helper()
	r := h.do("GET", "/devices", adminToken, "")
	var l proto.DeviceList
	r.decode(h.t, &l)
	return len(l.Devices)
}

func TestEnroll(t *testing.T) {
	h := newHarness(t)
	e := h.enroll()
	if len(e.DeviceID) != 32 || len(e.DeviceSecret) < 32 {
		t.Fatalf("weak id or secret: %q %d bytes", e.DeviceID, len(e.DeviceSecret))
	}
	if !reflect.DeepEqual(e.Policy, proto.DevicePolicy{Version: 1}) {
		t.Fatalf("first policy = %+v, want version 1", e.Policy)
	}
	if e.MQTT.Topic != "devices/"+e.DeviceID+"/policy_changed" || e.MQTT.URL != "tcp://example.com:1883" {
		t.Fatalf("mqtt = %+v", e.MQTT)
	}
	s := h.status(e.DeviceID)
	if s.State != proto.StateUnknown || s.Model != "Pixel 8" || s.OSVersion != "14" || s.AgentVersion != "0.1.0" || !s.EnrolledAt.Equal(h.clock.Now()) || s.LastReportAt != nil {
		t.Fatalf("status after enroll = %+v", s)
	}
	if e2 := h.enroll(); e2.DeviceID == e.DeviceID || e2.DeviceSecret == e.DeviceSecret {
		t.Fatal("two enrollments share an id or secret")
	}

	tests := []struct {
		name, token, body string
		status            int
		code              string
	}{
		{"missing token", "", `{}`, 401, "unauthorized"},
		{"wrong token", "nope", `{}`, 401, "unauthorized"},
		{"admin token is not an enrollment token", adminToken, `{}`, 401, "unauthorized"},
		{"malformed JSON", enrollToken, `{"model":`, 400, "invalid_body"},
		{"wrong type", enrollToken, `{"model": 7}`, 400, "invalid_body"},
		{"empty body", enrollToken, ``, 400, "invalid_body"},
		{"trailing garbage", enrollToken, `{} {}`, 400, "invalid_body"},
		{"overlong field", enrollToken, `{"model":"` + strings.Repeat("x", 300) + `"}`, 400, "invalid_body"},
		{"oversized body", enrollToken, `{"model":"` + strings.Repeat("x", proto.MaxBodyBytes) + `"}`, 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.deviceCount()
			r := h.do("POST", "/enroll", tt.token, tt.body)
			if r.status != tt.status || r.errCode(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
			if after := h.deviceCount(); after != before {
				t.Fatalf("refused enrollment created a device: %d -> %d", before, after)
			}
		})
	}
}

func TestPolicyAndReportLoop(t *testing.T) {
	h := newHarness(t)
	a, b := h.enroll(), h.enroll()
	pa := "/devices/" + a.DeviceID

	r := h.do("GET", pa+"/policy", a.DeviceSecret, "")
	if r.status != 200 || r.header.Get("ETag") != `"1"` {
		t.Fatalf("get policy: %d %v %s", r.status, r.header, r.body)
	}
	if r := h.do("GET", pa+"/policy", a.DeviceSecret, "", "If-None-Match", `"1"`); r.status != 304 {
		t.Fatalf("conditional get of current version: %d, want 304", r.status)
	}
	if r := h.do("GET", pa+"/policy", adminToken, ""); r.status != 200 {
		t.Fatalf("operator get policy: %d", r.status)
	}

	if r := h.do("POST", pa+"/report", a.DeviceSecret, `{"appliedPolicyVersion":1,"cameraDisabled":false,"compliant":true}`); r.status != 204 {
		t.Fatalf("report: %d %s", r.status, r.body)
	}
	if s := h.status(a.DeviceID); s.State != proto.StateCompliant || s.AppliedVersion != 1 || s.LastReportAt == nil {
		t.Fatalf("after report: %+v", s)
	}

	r = h.do("PUT", pa+"/policy", adminToken, `{"cameraDisabled":true}`)
	var p proto.DevicePolicy
	r.decode(t, &p)
	if r.status != 200 || p.Version != 2 || !p.CameraDisabled {
		t.Fatalf("edit: %d %s", r.status, r.body)
	}
	if got := h.bell.all(); len(got) != 1 || got[0] != (bridge.Ring{DeviceID: a.DeviceID, Version: 2}) {
		t.Fatalf("rings after edit = %+v", got)
	}
	if s := h.status(a.DeviceID); s.State != proto.StateStale || s.DesiredVersion != 2 {
		t.Fatalf("after edit: %+v", s)
	}
	if r := h.do("GET", pa+"/policy", a.DeviceSecret, "", "If-None-Match", `"1"`); r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("conditional get of an old version: %d %v", r.status, r.header)
	}

	// An edit that changes nothing bumps nothing and rings nothing.
	r = h.do("PUT", pa+"/policy", adminToken, `{"cameraDisabled":true}`)
	r.decode(t, &p)
	if r.status != 200 || p.Version != 2 || len(h.bell.all()) != 1 {
		t.Fatalf("no-op edit: %d %s rings=%d", r.status, r.body, len(h.bell.all()))
	}

	// The device's own opinion is not trusted: content decides.
	h.do("POST", pa+"/report", a.DeviceSecret, `{"appliedPolicyVersion":2,"cameraDisabled":false,"compliant":true}`)
	if s := h.status(a.DeviceID); s.State != proto.StateNonCompliant {
		t.Fatalf("wrong content reported compliant: %+v", s)
	}
	h.do("POST", pa+"/report", a.DeviceSecret, `{"appliedPolicyVersion":2,"cameraDisabled":true,"compliant":false}`)
	if s := h.status(a.DeviceID); s.State != proto.StateCompliant || s.AppliedVersion != 2 {
		t.Fatalf("matching content: %+v", s)
	}
	if s := h.status(b.DeviceID); s.State != proto.StateUnknown || s.DesiredVersion != 1 {
		t.Fatalf("untouched device b: %+v", s)
	}

	// Registering an FCM token shows in the status and travels with rings.
	if r := h.do("POST", pa+"/token", a.DeviceSecret, `{"fcmToken":"tok-a"}`); r.status != 204 {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	if s := h.status(a.DeviceID); !s.FCMRegistered {
		t.Fatal("fcmRegistered false after registration")
	}
	h.do("PUT", pa+"/policy", adminToken, `{"cameraDisabled":false}`)
	if got := h.bell.all(); got[len(got)-1] != (bridge.Ring{DeviceID: a.DeviceID, Version: 3, FCMToken: "tok-a"}) {
		t.Fatalf("last ring = %+v", got[len(got)-1])
	}
}

// TestRefusals: every bad request gets the right status and a coded error
// body, and changes nothing.
func TestRefusals(t *testing.T) {
	h := newHarness(t)
	a, b := h.enroll(), h.enroll()
	pa := "/devices/" + a.DeviceID
	h.do("POST", pa+"/report", a.DeviceSecret, `{"appliedPolicyVersion":1}`)
	before := h.status(a.DeviceID)

	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"policy without credentials", "GET", pa + "/policy", "", "", 401, "unauthorized"},
		{"policy with a wrong secret", "GET", pa + "/policy", "wrong", "", 401, "unauthorized"},
		{"policy with another device's secret", "GET", pa + "/policy", b.DeviceSecret, "", 403, "forbidden"},
		{"policy of an unknown device", "GET", "/devices/0000/policy", a.DeviceSecret, "", 404, "device_not_found"},
		{"report with another device's secret", "POST", pa + "/report", b.DeviceSecret, `{"appliedPolicyVersion":1,"cameraDisabled":true}`, 403, "forbidden"},
		{"report by an operator", "POST", pa + "/report", adminToken, `{"appliedPolicyVersion":1,"cameraDisabled":true}`, 403, "forbidden"},
		{"report of a future version", "POST", pa + "/report", a.DeviceSecret, `{"appliedPolicyVersion":5,"cameraDisabled":true}`, 409, "version_ahead"},
		{"report of a negative version", "POST", pa + "/report", a.DeviceSecret, `{"appliedPolicyVersion":-1}`, 400, "invalid_body"},
		{"report with a wrong type", "POST", pa + "/report", a.DeviceSecret, `{"appliedPolicyVersion":"1"}`, 400, "invalid_body"},
		{"report malformed", "POST", pa + "/report", a.DeviceSecret, `{"appliedPolicyVersion":1`, 400, "invalid_body"},
		{"report oversized", "POST", pa + "/report", a.DeviceSecret, `{"x":"` + strings.Repeat("x", proto.MaxBodyBytes) + `"}`, 413, "body_too_large"},
		{"edit by a device", "PUT", pa + "/policy", a.DeviceSecret, `{"cameraDisabled":true}`, 403, "forbidden"},
		{"edit without credentials", "PUT", pa + "/policy", "", `{"cameraDisabled":true}`, 401, "unauthorized"},
		{"edit with a version", "PUT", pa + "/policy", adminToken, `{"version":9,"cameraDisabled":true}`, 400, "invalid_body"},
		{"edit with an unknown setting", "PUT", pa + "/policy", adminToken, `{"cameraDisable":true}`, 400, "invalid_body"},
		{"edit with a wrong type", "PUT", pa + "/policy", adminToken, `{"cameraDisabled":"yes"}`, 400, "invalid_body"},
		{"edit without the setting", "PUT", pa + "/policy", adminToken, `{}`, 400, "invalid_body"},
		{"edit of an unknown device", "PUT", "/devices/0000/policy", adminToken, `{"cameraDisabled":true}`, 404, "device_not_found"},
		{"token with another device's secret", "POST", pa + "/token", b.DeviceSecret, `{"fcmToken":"t"}`, 403, "forbidden"},
		{"empty token", "POST", pa + "/token", a.DeviceSecret, `{"fcmToken":""}`, 400, "invalid_body"},
		{"status by a device", "GET", pa + "/status", a.DeviceSecret, "", 403, "forbidden"},
		{"status of an unknown device", "GET", "/devices/0000/status", adminToken, "", 404, "device_not_found"},
		{"list without credentials", "GET", "/devices", "", "", 401, "unauthorized"},
		{"list with a bad state", "GET", "/devices?state=GREEN", adminToken, "", 400, "invalid_query"},
		{"list with a bad limit", "GET", "/devices?limit=0", adminToken, "", 400, "invalid_query"},
		{"unknown route", "GET", "/nothing", adminToken, "", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tt.token, tt.body)
			if r.status != tt.status || r.errCode(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
			after := h.status(a.DeviceID)
			if after.DesiredVersion != before.DesiredVersion || after.AppliedVersion != before.AppliedVersion ||
				after.State != before.State || after.FCMRegistered != before.FCMRegistered {
				t.Fatalf("refused request changed the device: %+v -> %+v", before, after)
			}
			if len(h.bell.all()) != 0 {
				t.Fatal("a refused request rang a bell")
			}
		})
	}
}

func TestListDevices(t *testing.T) {
	h := newHarness(t)
	var ids []string
	for i := 0; i < 7; i++ {
		e := h.enroll()
		ids = append(ids, e.DeviceID)
		if i%2 == 0 { // even ones report: COMPLIANT
			h.do("POST", "/devices/"+e.DeviceID+"/report", e.DeviceSecret, `{"appliedPolicyVersion":1}`)
		}
	}
	seen := map[string]bool{}
	after := ""
	for page := 0; page < 10; page++ {
		r := h.do("GET", "/devices?limit=3&after="+after, adminToken, "")
		var l proto.DeviceList
		r.decode(t, &l)
		if len(l.Devices) > 3 {
			t.Fatalf("page of %d devices with limit 3", len(l.Devices))
		}
		for _, d := range l.Devices {
			if seen[d.DeviceID] {
				t.Fatalf("device %s on two pages", d.DeviceID)
			}
			seen[d.DeviceID] = true
		}
		if l.NextAfter == "" {
			break
		}
		after = l.NextAfter
	}
	if len(seen) != 7 {
		t.Fatalf("paging saw %d devices, want 7", len(seen))
	}
	for state, want := range map[proto.ComplianceState]int{proto.StateCompliant: 4, proto.StateUnknown: 3, proto.StateStale: 0} {
		r := h.do("GET", "/devices?state="+string(state), adminToken, "")
		var l proto.DeviceList
		r.decode(t, &l)
		if len(l.Devices) != want || l.NextAfter != "" {
			t.Fatalf("state %s: %d devices (next %q), want %d", state, len(l.Devices), l.NextAfter, want)
		}
		for _, d := range l.Devices {
			if d.State != state {
				t.Fatalf("filter %s returned %s", state, d.State)
			}
		}
	}
	_ = fmt.Sprint(ids)
}

// TestPolicyTellsOpenCommands: every policy answer (200 and 304) says
// whether the device has commands to fetch (capability 9), so an agent
// asks for them only when some are open.
func TestPolicyTellsOpenCommands(t *testing.T) {
	h := newHarness(t)
	a := h.enroll()
	pa := "/devices/" + a.DeviceID
	want := func(what, state string) {
		t.Helper()
		for _, etag := range []string{"", `"1"`} {
			r := h.do("GET", pa+"/policy", a.DeviceSecret, "", "If-None-Match", etag)
			if r.status != 200 && r.status != 304 || r.header.Get(proto.CommandsHeader) != state {
				t.Fatalf("%s: GET policy (If-None-Match %q) = %d, %s %q; want %q", what, etag, r.status, proto.CommandsHeader, r.header.Get(proto.CommandsHeader), state)
			}
		}
	}
	want("no command", proto.CommandsNone)
	r := h.do("POST", pa+"/commands", adminToken, `{"type":"lock"}`)
	var c proto.Command
	r.decode(t, &c)
	if r.status != 202 {
		t.Fatalf("queue a lock: %d %s", r.status, r.body)
	}
	want("a queued lock", proto.CommandsPending)
	if r := h.do("GET", pa+"/commands", a.DeviceSecret, ""); r.status != 200 {
		t.Fatalf("fetch commands: %d %s", r.status, r.body)
	}
	want("a delivered lock", proto.CommandsPending)
	if r := h.do("POST", pa+"/commands/"+c.CommandID+"/result", a.DeviceSecret, `{"state":"ACKNOWLEDGED"}`); r.status != 200 {
		t.Fatalf("result: %d %s", r.status, r.body)
	}
	want("an acknowledged lock", proto.CommandsNone)
}
