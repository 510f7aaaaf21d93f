package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// waitTimeout bounds every wait in these tests: a safety net against a hung
// test, never a stand-in for synchronisation.
const waitTimeout = 10 * time.Second

// recv returns the next value from ch or fails the test.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// fakeServer implements the device side of the REST contract, minimally,
// and records the calls it got.
type fakeServer struct {
	t           *testing.T
	srv         *httptest.Server
	mux         *http.ServeMux
	enrollToken string
	mqttURL     string

	mu sync.Mutex
	// before, when set, runs at the start of every call, without mu held
	// (tests block or revoke devices here). Set it with setBefore.
	before  func(route, deviceID string)
	devices map[string]*fakeDevice
	nextID  int
	calls   []fakeCall
	fail    map[string]int // route -> status to answer once
	// refuse, when set, is the 409 code the next refuseN reports get.
	refuse  string
	refuseN int
}

type fakeDevice struct {
	secret  string
	enroll  proto.EnrollRequest
	policy  proto.DevicePolicy
	reports []proto.ComplianceReport // without reportedAt, nonce, agentSha256
	raw     []proto.ComplianceReport // as received
	tokens  []string
	cmds    []proto.Command // queued commands, oldest first
	results []fakeResult    // results received, in order
	// inventory holds the section hashes the server keeps; uploads every
	// inventory upload as received (gunzipped).
	inventory map[string]string
	uploads   []proto.InventoryUpload
	// wantInventory makes policy answers ask for the whole inventory
	// until one arrives.
	wantInventory bool
}

type fakeResult struct {
	CommandID string
	Result    proto.CommandResult
	Status    int
}

type fakeCall struct {
	Route       string // enroll, token, policy, report
	DeviceID    string
	IfNoneMatch string
	Status      int
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	s := &fakeServer{t: t, enrollToken: "enroll-secret-token", devices: map[string]*fakeDevice{}, fail: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /enroll", s.handleEnroll)
	mux.HandleFunc("POST /devices/{id}/token", s.device("token", s.handleToken))
	mux.HandleFunc("GET /devices/{id}/policy", s.device("policy", s.handlePolicy))
	mux.HandleFunc("POST /devices/{id}/report", s.device("report", s.handleReport))
	mux.HandleFunc("PUT /devices/{id}/inventory", s.device("inventory", s.handleInventory))
	s.mux = mux
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeServer) URL() string { return s.srv.URL }

func (s *fakeServer) setBefore(f func(route, deviceID string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = f
}

func (s *fakeServer) runBefore(route, id string) {
	s.mu.Lock()
	f := s.before
	s.mu.Unlock()
	if f != nil {
		f(route, id)
	}
}

// routes lists the routes called, in order.
func (s *fakeServer) routes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		out = append(out, c.Route)
	}
	return out
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(proto.ErrorBody{Error: proto.ErrorDetail{Code: code, Message: msg}})
}

func (s *fakeServer) record(c fakeCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// injected returns the status to fail route with once, or 0.
func (s *fakeServer) injected(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.fail[route]
	delete(s.fail, route)
	return st
}

func (s *fakeServer) handleEnroll(w http.ResponseWriter, r *http.Request) {
	s.runBefore("enroll", "")
	if st := s.injected("enroll"); st != 0 {
		s.record(fakeCall{Route: "enroll", Status: st})
		writeError(w, st, "injected", "injected failure")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.enrollToken {
		s.record(fakeCall{Route: "enroll", Status: 401})
		writeError(w, 401, "unauthorized", "bad enrollment token")
		return
	}
	var req proto.EnrollRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, proto.MaxBodyBytes)).Decode(&req); err != nil {
		writeError(w, 400, "bad_request", err.Error())
		return
	}
	s.mu.Lock()
	s.nextID++
	id := fmt.Sprintf("dev-%d", s.nextID)
	d := &fakeDevice{secret: "device-secret-" + strconv.Itoa(s.nextID), enroll: req, policy: proto.DevicePolicy{Version: 1}}
	s.devices[id] = d
	s.calls = append(s.calls, fakeCall{Route: "enroll", DeviceID: id, Status: 201})
	resp := proto.EnrollResponse{DeviceID: id, DeviceSecret: d.secret, Policy: d.policy,
		MQTT: proto.MQTTInfo{URL: s.mqttURL, Topic: proto.PolicyChangedTopic(id)}}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(201)
	json.NewEncoder(w).Encode(resp)
}

// device wraps a device endpoint: injected failures, 404 for an unknown
// device, 401 for a wrong secret.
func (s *fakeServer) device(route string, h func(w http.ResponseWriter, r *http.Request, id string, d *fakeDevice) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		s.runBefore(route, id)
		call := fakeCall{Route: route, DeviceID: id, IfNoneMatch: r.Header.Get("If-None-Match")}
		if st := s.injected(route); st != 0 {
			call.Status = st
			s.record(call)
			if st == connReset {
				resetConnection(w)
				return
			}
			writeError(w, st, "injected", "injected failure")
			return
		}
		s.mu.Lock()
		d, ok := s.devices[id]
		s.mu.Unlock()
		switch {
		case !ok:
			call.Status = 404
			writeError(w, 404, "not_found", "unknown device")
		case r.Header.Get("Authorization") != "Bearer "+d.secret:
			call.Status = 401
			writeError(w, 401, "unauthorized", "bad device secret")
		default:
			call.Status = h(w, r, id, d)
		}
		s.record(call)
	}
}

func (s *fakeServer) handleToken(w http.ResponseWriter, r *http.Request, id string, d *fakeDevice) int {
	var reg proto.TokenRegistration
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil || reg.FCMToken == "" {
		writeError(w, 400, "bad_request", "fcmToken required")
		return 400
	}
	s.mu.Lock()
	d.tokens = append(d.tokens, reg.FCMToken)
	s.mu.Unlock()
	w.WriteHeader(204)
	return 204
}

func (s *fakeServer) handlePolicy(w http.ResponseWriter, r *http.Request, id string, d *fakeDevice) int {
	s.mu.Lock()
	p := d.policy
	if d.wantInventory {
		w.Header().Set(proto.InventoryRequestHeader, "full")
	}
	s.mu.Unlock()
	tag := `"` + strconv.FormatInt(p.Version, 10) + `"`
	w.Header().Set("ETag", tag)
	if r.Header.Get("If-None-Match") == tag {
		w.WriteHeader(304)
		return 304
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(p)
	return 200
}

func (s *fakeServer) handleReport(w http.ResponseWriter, r *http.Request, id string, d *fakeDevice) int {
	var rep proto.ComplianceReport
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		writeError(w, 400, "bad_request", err.Error())
		return 400
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rep.AppliedPolicyVersion > d.policy.Version {
		writeError(w, 409, "version_conflict", "version from the future")
		return 409
	}
	if s.refuseN > 0 {
		s.refuseN--
		writeError(w, 409, s.refuse, "refused by the test")
		return 409
	}
	for _, old := range d.raw {
		if rep.Nonce != "" && old.Nonce == rep.Nonce {
			writeError(w, 409, "replayed_nonce", "nonce seen")
			return 409
		}
	}
	d.raw = append(d.raw, rep)
	rep.ReportedAt, rep.Nonce, rep.AgentSHA256 = time.Time{}, "", ""
	d.reports = append(d.reports, rep)
	w.WriteHeader(204)
	return 204
}

// setPolicy edits a device's desired settings, bumping its version.
func (s *fakeServer) setPolicy(id string, st proto.Settings) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[id]
	d.policy.Version++
	d.policy.Settings = st
	return d.policy.Version
}

// revoke deletes a device: from now on it gets 404.
func (s *fakeServer) revoke(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.devices, id)
}

// connReset, given to failOnce as the status, makes the server reset the
// connection instead of answering, as a server over its connection cap
// does to a client still writing its request.
const connReset = -1

// resetConnection closes the request's connection with a TCP reset.
func resetConnection(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic("hijacking the connection: " + err.Error())
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST
	}
	_ = c.Close()
}

func (s *fakeServer) failOnce(route string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[route] = status
}

func (s *fakeServer) count(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Route == route {
			n++
		}
	}
	return n
}

func (s *fakeServer) callsOf(route string) []fakeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fakeCall
	for _, c := range s.calls {
		if c.Route == route {
			out = append(out, c)
		}
	}
	return out
}

func (s *fakeServer) reports(id string) []proto.ComplianceReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[id]; ok {
		return append([]proto.ComplianceReport(nil), d.reports...)
	}
	return nil
}

// rawReports returns the device's reports as received.
func (s *fakeServer) rawReports(id string) []proto.ComplianceReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[id]; ok {
		return append([]proto.ComplianceReport(nil), d.raw...)
	}
	return nil
}

// refuseReports makes the next n reports get a 409 with code.
func (s *fakeServer) refuseReports(code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse, s.refuseN = code, n
}

func (s *fakeServer) tokens(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.devices[id]; ok {
		return append([]string(nil), d.tokens...)
	}
	return nil
}

func (s *fakeServer) secret(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices[id].secret
}

// fakeClock is the shared fake clock (testkit.Clock) seen as the agent's
// Clock; it moves only when a test advances it.
type fakeClock struct{ *testkit.Clock }

var _ Clock = fakeClock{}

func newFakeClock() fakeClock {
	return fakeClock{testkit.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))}
}

func (c fakeClock) NewTimer(d time.Duration) Timer { return c.Clock.NewTimer(d) }

// waitTimer returns the duration of the next timer the agent creates within
// [lo, hi], skipping others (the scheduler and the MQTT loop share the clock).
func (c fakeClock) waitTimer(t *testing.T, lo, hi time.Duration) time.Duration {
	t.Helper()
	return c.WaitTimer(t, waitTimeout, lo, hi)
}

// countingEnforcer wraps an Enforcer, counts calls and detects overlapping
// calls (two syncs at once).
type countingEnforcer struct {
	Enforcer
	enforces, observes atomic.Int32
	inflight           atomic.Int32
	overlapped         atomic.Bool
}

func (c *countingEnforcer) enter() func() {
	if c.inflight.Add(1) > 1 {
		c.overlapped.Store(true)
	}
	return func() { c.inflight.Add(-1) }
}

func (c *countingEnforcer) Enforce(ctx context.Context, s proto.Settings) error {
	defer c.enter()()
	c.enforces.Add(1)
	return c.Enforcer.Enforce(ctx, s)
}

func (c *countingEnforcer) Observe(ctx context.Context) (proto.Settings, error) {
	defer c.enter()()
	c.observes.Add(1)
	return c.Enforcer.Observe(ctx)
}

// testHarness is an agent wired to a fake server, a memory device, a file
// identity store in a temp dir and a fake clock.
type testHarness struct {
	srv     *fakeServer
	agent   *Agent
	dev     *MemoryEnforcer
	enf     *countingEnforcer
	store   *FileIDStore
	clock   fakeClock
	results chan SyncResult
	logs    *testkit.LockedBuffer
}

func newHarness(t *testing.T, srv *fakeServer, dir string, mod func(*Config)) *testHarness {
	t.Helper()
	h := &testHarness{
		srv:     srv,
		dev:     &MemoryEnforcer{},
		store:   NewFileIDStore(dir),
		clock:   newFakeClock(),
		results: make(chan SyncResult, 100),
		logs:    &testkit.LockedBuffer{},
	}
	h.enf = &countingEnforcer{Enforcer: h.dev}
	cfg := Config{
		ServerURL:    srv.URL(),
		EnrollToken:  srv.enrollToken,
		Enforcer:     h.enf,
		IDStore:      h.store,
		Interval:     time.Hour,
		DisableMQTT:  true,
		Model:        "Pixel 8",
		OSVersion:    "14",
		AgentVersion: "0.1.0",
		Logger:       slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnSync:       func(r SyncResult) { h.results <- r },
		Clock:        h.clock,
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.agent = a
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent logs:\n%s", h.logs.String())
		}
	})
	return h
}

// sync runs one Sync and returns its result.
func (h *testHarness) sync(t *testing.T) SyncResult {
	t.Helper()
	err := h.agent.Sync(t.Context())
	r := recv(t, h.results, "OnSync")
	if (err == nil) != (r.Err == nil) {
		t.Fatalf("Sync returned %v but OnSync saw %v", err, r.Err)
	}
	return r
}

// runAgent runs the agent until the test ends, then checks Run returned.
func (h *testHarness) runAgent(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.agent.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := recv(t, done, "Run to return"); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// assertNoAgentGoroutines fails if any goroutine of the agent or of paho is
// still alive.
func assertNoAgentGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "(*fakeBroker)") {
			continue // the test's broker, which uses paho's packets
		}
		if strings.Contains(g, "doorbell/agent.(*Agent)") || strings.Contains(g, "eclipse/paho.mqtt.golang.") {
			t.Errorf("goroutine left running:\n%s", g)
		}
	}
}
