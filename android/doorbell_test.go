package doorbell

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/servertest"
)

// fakeEnforcer stands in for the app's DevicePolicyManager enforcer: the
// device's settings as JSON values by name.
type fakeEnforcer struct {
	mu        sync.Mutex
	vals      map[string]string
	supported map[string]bool // nil: cameraDisabled only
	sets      int
	refuse    error // returned by Apply when non-nil
	panicMsg  string
}

var _ Enforcer = (*fakeEnforcer)(nil)

func (f *fakeEnforcer) Supports(setting string) bool {
	if f.supported == nil {
		return setting == proto.SettingCameraDisabled
	}
	return f.supported[setting]
}

func (f *fakeEnforcer) Apply(setting, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets++
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	if f.refuse != nil {
		return f.refuse
	}
	if f.vals == nil {
		f.vals = map[string]string{}
	}
	f.vals[setting] = value
	return nil
}

func (f *fakeEnforcer) Read(setting string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.vals[setting]; ok {
		return v, nil
	}
	if setting == proto.SettingCameraDisabled {
		return "false", nil
	}
	return "", nil
}

func (f *fakeEnforcer) state() (disabled bool, sets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vals[proto.SettingCameraDisabled] == "true", f.sets
}

// fakeStore stands in for SharedPreferences.
type fakeStore struct {
	mu     sync.Mutex
	m      map[string]string
	GetErr error
	PutErr error
	Panic  bool
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore { return &fakeStore{m: map[string]string{}} }

func (s *fakeStore) Get(key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Panic {
		panic("store exploded")
	}
	return s.m[key], s.GetErr
}

func (s *fakeStore) Put(key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.PutErr != nil {
		return s.PutErr
	}
	s.m[key] = value
	return nil
}

func (s *fakeStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *fakeStore) get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

// fakeLogger collects log lines and forwards them to t.Log.
type fakeLogger struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

var _ Logger = (*fakeLogger)(nil)

func (l *fakeLogger) Log(level, msg string) {
	l.mu.Lock()
	l.lines = append(l.lines, level+" "+msg)
	l.mu.Unlock()
	l.t.Log(level, msg)
}

func (l *fakeLogger) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// testServer is a real Doorbell daemon on loopback ports.
type testServer struct {
	t   *testing.T
	url string
}

const (
	adminToken  = "test-admin-token"
	enrollToken = "test-enroll-token"
)

func startServer(t *testing.T) *testServer {
	t.Helper()
	// The listeners are bound when Start returns: no need to wait.
	d := servertest.Start(t, daemon.DaemonConfig{AdminToken: adminToken, EnrollToken: enrollToken})
	s := &testServer{t: t, url: "http://" + d.HTTPAddr()}
	return s
}

func (s *testServer) call(method, path, body string, out any) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		s.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func (s *testServer) setCamera(id string, disabled bool) int64 {
	s.t.Helper()
	var p proto.DevicePolicy
	body := `{"cameraDisabled": false}`
	if disabled {
		body = `{"cameraDisabled": true}`
	}
	s.call("PUT", "/devices/"+id+"/policy", body, &p)
	return p.Version
}

func (s *testServer) status(id string) proto.DeviceStatus {
	s.t.Helper()
	var st proto.DeviceStatus
	s.call("GET", "/devices/"+id+"/status", "", &st)
	return st
}

func (s *testServer) deviceCount() int {
	s.t.Helper()
	var l proto.DeviceList
	s.call("GET", "/devices", "", &l)
	return len(l.Devices)
}

func newTestAgent(t *testing.T, s *testServer, e Enforcer, st Store, mod func(*Config)) (*Agent, *fakeLogger) {
	t.Helper()
	cfg := NewConfig()
	cfg.ServerURL, cfg.EnrollToken, cfg.DisableMQTT, cfg.Debug = s.url, enrollToken, true, true
	cfg.Model, cfg.AgentVersion = "test-phone", "test"
	if mod != nil {
		mod(cfg)
	}
	log := &fakeLogger{t: t}
	a, err := NewAgent(cfg, e, st, log)
	if err != nil {
		t.Fatalf("NewAgent: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return a, log
}

func TestNewAgentValidates(t *testing.T) {
	ok := &Config{ServerURL: "http://127.0.0.1:1"}
	tests := []struct {
		name     string
		cfg      *Config
		enforcer Enforcer
		store    Store
		want     string
	}{
		{"no config", nil, &fakeEnforcer{}, newFakeStore(), "config is required"},
		{"no enforcer", ok, nil, newFakeStore(), "enforcer is required"},
		{"no store", ok, &fakeEnforcer{}, nil, "store is required"},
		{"no server URL", &Config{}, &fakeEnforcer{}, newFakeStore(), "ServerURL is required"},
		{"bad server URL", &Config{ServerURL: "ftp://x"}, &fakeEnforcer{}, newFakeStore(), "want http(s)://host"},
		{"negative interval", &Config{ServerURL: "http://x", IntervalSeconds: -1}, &fakeEnforcer{}, newFakeStore(), "negative"},
		{"bad MQTT URL", &Config{ServerURL: "http://x", MQTTURL: "nope"}, &fakeEnforcer{}, newFakeStore(), "MQTTURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAgent(tt.cfg, tt.enforcer, tt.store, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewAgent = %v, %v; want an error containing %q", a, err, tt.want)
			}
		})
	}
}

// TestPhoneConverges is the phone's life: enroll on the first sync, register
// the FCM token, and converge after an edit rings the FCM doorbell.
func TestPhoneConverges(t *testing.T) {
	s := startServer(t)
	e, st := &fakeEnforcer{}, newFakeStore()
	a, _ := newTestAgent(t, s, e, st, nil)

	if id := a.DeviceID(); id != "" {
		t.Fatalf("DeviceID before enrolling = %q, want empty", id)
	}
	if err := a.Sync(); err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	id := a.DeviceID()
	if id == "" {
		t.Fatal("DeviceID is empty after enrolling")
	}
	var stored struct{ DeviceID, DeviceSecret string }
	if err := json.Unmarshal([]byte(st.get(IdentityKey)), &stored); err != nil || stored.DeviceID != id || stored.DeviceSecret == "" {
		t.Fatalf("stored identity %q (%v): want JSON with deviceId %s and a secret", st.get(IdentityKey), err, id)
	}
	if got := s.status(id).State; got != proto.StateCompliant {
		t.Fatalf("state after first sync = %s, want COMPLIANT", got)
	}

	if err := a.OnNewToken("fcm-token-1"); err != nil {
		t.Fatalf("OnNewToken: %v", err)
	}
	if !s.status(id).FCMRegistered {
		t.Fatal("fcmRegistered is false after OnNewToken")
	}

	v := s.setCamera(id, true)
	msg, _ := json.Marshal(map[string]string{"type": "policy_changed", "version": jsonInt(v)})
	if err := a.OnPushMessage(string(msg)); err != nil {
		t.Fatalf("OnPushMessage: %v", err)
	}
	if disabled, _ := e.state(); !disabled {
		t.Fatal("camera not disabled after the doorbell")
	}
	st2 := s.status(id)
	if st2.State != proto.StateCompliant || st2.AppliedVersion != v {
		t.Fatalf("status = %s applied %d, want COMPLIANT applied %d", st2.State, st2.AppliedVersion, v)
	}

	// A restarted app reads its identity back from the store: no second
	// enrollment.
	b, _ := newTestAgent(t, s, e, st, func(c *Config) { c.EnrollToken = "" })
	if got := b.DeviceID(); got != id {
		t.Fatalf("DeviceID after restart = %q, want %q", got, id)
	}
	if err := b.Sync(); err != nil {
		t.Fatalf("Sync after restart: %v", err)
	}
	if n := s.deviceCount(); n != 1 {
		t.Fatalf("%d devices enrolled, want 1", n)
	}
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestWrongEnrollTokenIsAnError(t *testing.T) {
	s := startServer(t)
	st := newFakeStore()
	a, _ := newTestAgent(t, s, &fakeEnforcer{}, st, func(c *Config) { c.EnrollToken = "wrong" })
	err := a.Sync()
	if err == nil || !strings.Contains(err.Error(), "enrolling device") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Sync = %v, want a 401 enrolling error", err)
	}
	if v := st.get(IdentityKey); v != "" {
		t.Fatalf("identity stored after a failed enrollment: %q", v)
	}
}

// TestRefusingEnforcer: an enforcer error is reported (NON_COMPLIANT) and
// logged, and is not a sync error.
func TestRefusingEnforcer(t *testing.T) {
	s := startServer(t)
	e := &fakeEnforcer{}
	a, log := newTestAgent(t, s, e, newFakeStore(), nil)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	id := a.DeviceID()
	e.mu.Lock()
	e.refuse = errors.New("user restrictions forbid it")
	e.mu.Unlock()
	s.setCamera(id, true)
	if err := a.OnPushMessage(`{"type":"policy_changed"}`); err != nil {
		t.Fatalf("OnPushMessage: %v", err)
	}
	if got := s.status(id).State; got != proto.StateNonCompliant {
		t.Fatalf("state = %s, want NON_COMPLIANT", got)
	}
	if !log.contains("user restrictions forbid it") {
		t.Fatal("the enforcer's error was not logged")
	}
}

func TestPanicsBecomeErrors(t *testing.T) {
	s := startServer(t)

	t.Run("store", func(t *testing.T) {
		st := newFakeStore()
		st.Panic = true
		a, _ := newTestAgent(t, s, &fakeEnforcer{}, st, nil)
		if err := a.Sync(); err == nil || !strings.Contains(err.Error(), "panic") {
			t.Fatalf("Sync = %v, want an error naming the panic", err)
		}
		if id := a.DeviceID(); id != "" {
			t.Fatalf("DeviceID = %q, want empty", id)
		}
	})
	t.Run("enforcer", func(t *testing.T) {
		e := &fakeEnforcer{panicMsg: "enforcer exploded"}
		a, log := newTestAgent(t, s, e, newFakeStore(), nil)
		if err := a.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if got := s.status(a.DeviceID()).State; got != proto.StateCompliant {
			// The policy is the default (camera enabled) and the device's
			// camera is enabled: refused, but matching.
			t.Fatalf("state = %s, want COMPLIANT", got)
		}
		if !log.contains("enforcer exploded") {
			t.Fatal("the enforcer's panic was not logged")
		}
	})
	t.Run("logger", func(t *testing.T) {
		cfg := &Config{ServerURL: s.url, EnrollToken: enrollToken, DisableMQTT: true}
		a, err := NewAgent(cfg, &fakeEnforcer{}, newFakeStore(), panicLogger{})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Sync(); err != nil {
			t.Fatalf("Sync with a panicking logger: %v", err)
		}
	})
}

type panicLogger struct{}

func (panicLogger) Log(level, msg string) { panic("logger exploded") }

func TestStoreErrors(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name  string
		store func() *fakeStore
		want  string
	}{
		{"get fails", func() *fakeStore { st := newFakeStore(); st.GetErr = errors.New("no prefs"); return st }, "reading identity: no prefs"},
		{"garbage stored", func() *fakeStore { st := newFakeStore(); st.m[IdentityKey] = "{"; return st }, "reading identity"},
		{"no secret stored", func() *fakeStore { st := newFakeStore(); st.m[IdentityKey] = `{"deviceId":"d"}`; return st }, "no device id or secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newTestAgent(t, s, &fakeEnforcer{}, tt.store(), nil)
			if err := a.Sync(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sync = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestStorePutFails: an identity the app's Store cannot save is kept in
// memory (the device is not enrolled again on the next sync) and saved by
// the first sync after the Store works again.
func TestStorePutFails(t *testing.T) {
	s := startServer(t)
	st := newFakeStore()
	st.PutErr = errors.New("disk full")
	a, _ := newTestAgent(t, s, &fakeEnforcer{}, st, nil)
	if err := a.Sync(); err != nil {
		t.Fatalf("Sync with a failing Put = %v, want the sync to succeed on the identity kept in memory", err)
	}
	id := a.DeviceID()
	if id == "" {
		t.Fatal("no device id after enrolling")
	}
	st.mu.Lock()
	st.PutErr = nil
	st.mu.Unlock()
	if err := a.Sync(); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	if a.DeviceID() != id {
		t.Fatalf("device id changed from %s to %s: enrolled again", id, a.DeviceID())
	}
	st.mu.Lock()
	saved := st.m[IdentityKey]
	st.mu.Unlock()
	if !strings.Contains(saved, id) {
		t.Fatalf("the identity was not saved once Put worked: %q", saved)
	}
}

func TestOnPushMessageInput(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name    string
		data    string
		wantErr string
		syncs   bool
	}{
		{"not JSON", "policy_changed", "not a JSON object of strings", false},
		{"number version", `{"type":"policy_changed","version":3}`, "not a JSON object of strings", false},
		{"other type", `{"type":"hello"}`, "", false},
		{"doorbell", `{"type":"policy_changed","version":"1"}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &fakeEnforcer{}
			a, _ := newTestAgent(t, s, e, newFakeStore(), nil)
			err := a.OnPushMessage(tt.data)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("OnPushMessage = %v, want error %q", err, tt.wantErr)
			}
			if synced := a.DeviceID() != ""; synced != tt.syncs {
				t.Fatalf("synced = %v, want %v", synced, tt.syncs)
			}
		})
	}
}

func TestOnNewTokenRejectsEmpty(t *testing.T) {
	a, _ := newTestAgent(t, &testServer{url: "http://127.0.0.1:1"}, &fakeEnforcer{}, newFakeStore(), nil)
	if err := a.OnNewToken(""); err == nil {
		t.Fatal("OnNewToken(\"\") = nil, want an error")
	}
}

// TestKioskDoorbell runs the kiosk's loop: MQTT doorbells against the real
// broker, a ring handled while the loop runs, and Start/Stop idempotent.
func TestKioskDoorbell(t *testing.T) {
	s := startServer(t)
	e := &fakeEnforcer{}
	a, _ := newTestAgent(t, s, e, newFakeStore(), func(c *Config) { c.DisableMQTT = false })
	if err := a.StartDoorbell(); err != nil {
		t.Fatal(err)
	}
	if err := a.StartDoorbell(); err != nil {
		t.Fatalf("second StartDoorbell: %v", err)
	}
	testkit.Eventually(t, 30*time.Second, "the kiosk enrolls and connects", func() bool {
		id := a.DeviceID()
		return id != "" && s.status(id).Connected && s.status(id).State == proto.StateCompliant
	})
	id := a.DeviceID()
	v := s.setCamera(id, true)
	testkit.Eventually(t, 30*time.Second, "the kiosk converges through the MQTT doorbell", func() bool {
		disabled, _ := e.state()
		st := s.status(id)
		return disabled && st.State == proto.StateCompliant && st.AppliedVersion == v
	})
	// A push message while the loop runs only rings it.
	if err := a.OnPushMessage(`{"type":"policy_changed","version":"1"}`); err != nil {
		t.Fatalf("OnPushMessage while running: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the kiosk disconnects", func() bool { return !s.status(id).Connected })
	if err := a.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// It can start again.
	if err := a.StartDoorbell(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the kiosk reconnects", func() bool { return s.status(id).Connected })
}
