package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

func TestNewValidates(t *testing.T) {
	valid := func() Config {
		return Config{ServerURL: "http://127.0.0.1:8080", Enforcer: &MemoryEnforcer{}, IDStore: NewFileIDStore(t.TempDir())}
	}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{name: "valid", mod: func(*Config) {}},
		{name: "no server URL", mod: func(c *Config) { c.ServerURL = "" }, wantErr: "ServerURL is required"},
		{name: "server URL without scheme", mod: func(c *Config) { c.ServerURL = "127.0.0.1:8080" }, wantErr: "server URL"},
		{name: "server URL with other scheme", mod: func(c *Config) { c.ServerURL = "ftp://x" }, wantErr: "server URL"},
		{name: "no enforcer", mod: func(c *Config) { c.Enforcer = nil }, wantErr: "Enforcer is required"},
		{name: "no store", mod: func(c *Config) { c.IDStore = nil }, wantErr: "IDStore is required"},
		{name: "negative interval", mod: func(c *Config) { c.Interval = -time.Second }, wantErr: "negative"},
		{name: "bad MQTT URL", mod: func(c *Config) { c.MQTTURL = "localhost" }, wantErr: "MQTTURL"},
		{name: "MQTT URL override", mod: func(c *Config) { c.MQTTURL = "tcp://127.0.0.1:1883" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mod(&cfg)
			a, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if a.cfg.Interval != DefaultInterval {
					t.Errorf("Interval = %v, want default %v", a.cfg.Interval, DefaultInterval)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestEnrollThenReport(t *testing.T) {
	srv := newFakeServer(t)
	dir := filepath.Join(t.TempDir(), "state")
	h := newHarness(t, srv, dir, nil)

	if got := h.agent.DeviceID(); got != "" {
		t.Fatalf("DeviceID before enrolling = %q, want empty", got)
	}
	r := h.sync(t)
	if r.Err != nil {
		t.Fatalf("sync: %v", r.Err)
	}
	if r.DeviceID == "" || r.PolicyVersion != 1 || r.Skipped || !r.Compliant {
		t.Fatalf("result = %+v, want an enrolled device reporting version 1 compliant", r)
	}
	if got := h.agent.DeviceID(); got != r.DeviceID {
		t.Errorf("DeviceID = %q, want %q", got, r.DeviceID)
	}
	if got, want := strings.Join(srv.routes(), ","), "enroll,policy,report"; got != want {
		t.Errorf("calls = %s, want %s", got, want)
	}
	srv.mu.Lock()
	enroll := srv.devices[r.DeviceID].enroll
	srv.mu.Unlock()
	if want := (proto.EnrollRequest{Model: "Pixel 8", OSVersion: "14", AgentVersion: "0.1.0", SyncIntervalSeconds: 3600}); enroll != want {
		t.Errorf("enroll request = %+v, want %+v", enroll, want)
	}
	reports := srv.reports(r.DeviceID)
	want := proto.ComplianceReport{AppliedPolicyVersion: 1, Compliant: true, SyncIntervalSeconds: 3600}
	if len(reports) != 1 || !reflect.DeepEqual(reports[0], want) {
		t.Errorf("reports = %+v, want [%+v]", reports, want)
	}

	// The identity is persisted, private, and written atomically (no temp
	// file left behind).
	fi, err := os.Stat(filepath.Join(dir, "identity.json"))
	if err != nil {
		t.Fatalf("identity file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file mode = %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, want 0700", di.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only identity.json", len(entries))
	}
	id, ok, err := h.store.Load()
	if err != nil || !ok {
		t.Fatalf("Load = %v, %v", ok, err)
	}
	if id.DeviceID != r.DeviceID || id.DeviceSecret != srv.secret(r.DeviceID) || id.Topic != proto.PolicyChangedTopic(r.DeviceID) {
		t.Errorf("stored identity = %+v", id)
	}
}

func TestIdentityReusedOnRestart(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	first := newHarness(t, srv, dir, nil)
	r1 := first.sync(t)
	if r1.Err != nil {
		t.Fatal(r1.Err)
	}

	// A restarted agent has no enrollment token: it must not need one.
	second := newHarness(t, srv, dir, func(c *Config) { c.EnrollToken = "" })
	if got := second.agent.DeviceID(); got != r1.DeviceID {
		t.Errorf("DeviceID after restart = %q, want %q", got, r1.DeviceID)
	}
	r2 := second.sync(t)
	if r2.Err != nil {
		t.Fatal(r2.Err)
	}
	if r2.DeviceID != r1.DeviceID {
		t.Errorf("device after restart = %q, want %q", r2.DeviceID, r1.DeviceID)
	}
	if n := srv.count("enroll"); n != 1 {
		t.Errorf("enrolled %d times, want 1", n)
	}
	// A fresh process has no cached policy: it fetches and reports once.
	if n := len(srv.reports(r1.DeviceID)); n != 2 {
		t.Errorf("reports = %d, want 2", n)
	}
}

func TestNotEnrolledWithoutToken(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.EnrollToken = "" })
	r := h.sync(t)
	if !errors.Is(r.Err, ErrNoEnrollToken) {
		t.Fatalf("sync error = %v, want ErrNoEnrollToken", r.Err)
	}
	if n := len(srv.calls); n != 0 {
		t.Errorf("server got %d calls, want none", n)
	}
}

func TestReenrollOn404(t *testing.T) {
	tests := []struct {
		name        string
		revokeAt    string // the call during which the server forgets the device
		enrollToken bool
	}{
		{name: "policy 404 re-enrolls", revokeAt: "policy", enrollToken: true},
		{name: "report 404 re-enrolls", revokeAt: "report", enrollToken: true},
		{name: "policy 404 without token keeps identity", revokeAt: "policy", enrollToken: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t)
			dir := t.TempDir()
			h := newHarness(t, srv, dir, nil)
			r := h.sync(t)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			old := r.DeviceID

			srv.setBefore(func(route, id string) {
				if route == tt.revokeAt && id == old {
					srv.revoke(old)
				}
			})
			// Restart (a fresh agent fetches and reports in full), with or
			// without an enrollment token.
			h = newHarness(t, srv, dir, func(c *Config) {
				if !tt.enrollToken {
					c.EnrollToken = ""
				}
			})
			r = h.sync(t)

			if !tt.enrollToken {
				if !errors.Is(r.Err, ErrNoEnrollToken) || !IsNotFound(r.Err) {
					t.Fatalf("sync error = %v, want ErrNoEnrollToken wrapping a 404", r.Err)
				}
				if id, ok, _ := h.store.Load(); !ok || id.DeviceID != old {
					t.Errorf("identity = %+v, %v; want the old one kept", id, ok)
				}
				return
			}
			if r.Err != nil {
				t.Fatalf("sync: %v", r.Err)
			}
			if r.DeviceID == old || r.DeviceID == "" {
				t.Fatalf("device after re-enroll = %q, want a new id", r.DeviceID)
			}
			if n := srv.count("enroll"); n != 2 {
				t.Errorf("enrolled %d times, want 2", n)
			}
			if id, _, _ := h.store.Load(); id.DeviceID != r.DeviceID {
				t.Errorf("stored identity %q, want %q", id.DeviceID, r.DeviceID)
			}
			want := proto.ComplianceReport{AppliedPolicyVersion: 1, Compliant: true, SyncIntervalSeconds: 3600}
			if got := srv.reports(r.DeviceID); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Errorf("new device reports = %+v, want [%+v]", got, want)
			}
		})
	}
}

func TestLockedDeviceReportsUnchangedState(t *testing.T) {
	srv := newFakeServer(t)
	path := filepath.Join(t.TempDir(), "device.json")
	orig := []byte(`{"cameraDisabled": false, "locked": true}`)
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Enforcer = NewFileEnforcer(path) })
	r := h.sync(t)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	v := srv.setPolicy(r.DeviceID, proto.Settings{CameraDisabled: true})

	err := h.agent.Sync(t.Context())
	r = recv(t, h.results, "OnSync")
	if err != nil {
		t.Fatalf("Sync with a locked device = %v, want nil (a refusal is reported, not retried)", err)
	}
	if !errors.Is(r.EnforceErr, ErrLocked) {
		t.Errorf("EnforceErr = %v, want ErrLocked", r.EnforceErr)
	}
	if r.Compliant {
		t.Errorf("Compliant = true, want false")
	}
	reports := srv.reports(r.DeviceID)
	// The refusal names the setting it failed, so the server can say
	// ENFORCEMENT_FAILED instead of a bare mismatch.
	want := proto.ComplianceReport{AppliedPolicyVersion: v, Settings: proto.Settings{CameraDisabled: false}, Compliant: false,
		Failed: map[string]string{"cameraDisabled": r.EnforceErr.Error()}, SyncIntervalSeconds: 3600}
	if got := reports[len(reports)-1]; !reflect.DeepEqual(got, want) {
		t.Errorf("last report = %+v, want %+v", got, want)
	}
	if b, _ := os.ReadFile(path); string(b) != string(orig) {
		t.Errorf("locked device file changed to %s", b)
	}
	if got := proto.Evaluate(proto.DevicePolicy{Version: v, Settings: proto.Settings{CameraDisabled: true}}, &want); got != proto.StateNonCompliant {
		t.Errorf("server would evaluate %s, want NON_COMPLIANT", got)
	}

	// Fixed by hand and unlocked: the policy is unchanged (304), but the
	// device no longer looks as last reported, so it is reported again.
	if err := os.WriteFile(path, []byte(`{"cameraDisabled": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = h.sync(t)
	if r.Err != nil || r.Skipped || !r.Compliant {
		t.Fatalf("sync after the hand fix = %+v, want a compliant report", r)
	}
	reports = srv.reports(r.DeviceID)
	if last := reports[len(reports)-1]; !last.Compliant || !last.CameraDisabled || last.Failed != nil {
		t.Errorf("report after the hand fix = %+v, want compliant with cameraDisabled", last)
	}
	// Nothing changed since: the next sync costs only the 304.
	n := len(reports)
	if r = h.sync(t); r.Err != nil || !r.Skipped || len(srv.reports(r.DeviceID)) != n {
		t.Errorf("sync with nothing changed = %+v and %d reports, want skipped and %d", r, len(srv.reports(r.DeviceID)), n)
	}
}

func TestNotModified(t *testing.T) {
	tests := []struct {
		name        string
		between     func(h *testHarness, id string)
		wantSkipped bool
		wantReports int
		wantVersion int64
	}{
		{
			name:        "unchanged policy and device skip enforce and report",
			between:     func(*testHarness, string) {},
			wantSkipped: true, wantReports: 1, wantVersion: 1,
		},
		{
			name:        "drifted device is enforced and reported again",
			between:     func(h *testHarness, _ string) { h.dev.Set(proto.Settings{CameraDisabled: true}) },
			wantSkipped: false, wantReports: 2, wantVersion: 1,
		},
		{
			name:        "failed report is retried",
			between:     func(h *testHarness, _ string) {},
			wantSkipped: false, wantReports: 1, wantVersion: 1,
		},
		{
			name: "changed policy is fetched and applied",
			between: func(h *testHarness, id string) {
				h.srv.setPolicy(id, proto.Settings{CameraDisabled: true})
			},
			wantSkipped: false, wantReports: 2, wantVersion: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t)
			h := newHarness(t, srv, t.TempDir(), nil)
			failReport := strings.HasPrefix(tt.name, "failed report")
			if failReport {
				srv.failOnce("report", http.StatusInternalServerError)
			}
			r := h.sync(t)
			if (r.Err != nil) != failReport {
				t.Fatalf("first sync: %v", r.Err)
			}
			enforces := h.enf.enforces.Load()
			tt.between(h, r.DeviceID)

			r = h.sync(t)
			if r.Err != nil {
				t.Fatalf("second sync: %v", r.Err)
			}
			policies := srv.callsOf("policy")
			if got := policies[1].IfNoneMatch; got != `"1"` {
				t.Errorf("second GET policy If-None-Match = %q, want %q", got, `"1"`)
			}
			if r.Skipped != tt.wantSkipped || r.PolicyVersion != tt.wantVersion {
				t.Errorf("result = %+v, want skipped=%v version=%d", r, tt.wantSkipped, tt.wantVersion)
			}
			if got := len(srv.reports(r.DeviceID)); got != tt.wantReports {
				t.Errorf("reports = %d, want %d", got, tt.wantReports)
			}
			enforced := h.enf.enforces.Load() - enforces
			if tt.wantSkipped && enforced != 0 {
				t.Errorf("skipped sync enforced %d times", enforced)
			}
			if !tt.wantSkipped && enforced != 1 {
				t.Errorf("sync enforced %d times, want 1", enforced)
			}
			if got, _ := h.dev.Observe(t.Context()); tt.wantVersion == 2 && !got.CameraDisabled {
				t.Errorf("device = %+v, want the new policy applied", got)
			}
		})
	}
}

func TestPushToken(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	h := newHarness(t, srv, dir, nil)

	// Before enrollment the token is only remembered.
	if err := h.agent.SetPushToken("fcm-token-A"); err != nil {
		t.Fatalf("SetPushToken before enrolling: %v", err)
	}
	if n := srv.count("token"); n != 0 {
		t.Fatalf("token calls before enrolling = %d, want 0", n)
	}
	r := h.sync(t)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	id := r.DeviceID

	steps := []struct {
		name       string
		do         func(t *testing.T)
		wantTokens []string
	}{
		{name: "registered by the enrolling sync", do: func(*testing.T) {}, wantTokens: []string{"fcm-token-A"}},
		{name: "not re-registered on sync", do: func(t *testing.T) { h.sync(t) }, wantTokens: []string{"fcm-token-A"}},
		{name: "same token not re-registered", do: func(t *testing.T) {
			if err := h.agent.SetPushToken("fcm-token-A"); err != nil {
				t.Fatal(err)
			}
		}, wantTokens: []string{"fcm-token-A"}},
		{name: "changed token registered at once", do: func(t *testing.T) {
			if err := h.agent.SetPushToken("fcm-token-B"); err != nil {
				t.Fatal(err)
			}
		}, wantTokens: []string{"fcm-token-A", "fcm-token-B"}},
		{name: "restart with the same token does not re-register", do: func(t *testing.T) {
			h = newHarness(t, srv, dir, nil)
			if err := h.agent.SetPushToken("fcm-token-B"); err != nil {
				t.Fatal(err)
			}
			h.sync(t)
		}, wantTokens: []string{"fcm-token-A", "fcm-token-B"}},
		{name: "failed registration is retried by the next sync", do: func(t *testing.T) {
			srv.failOnce("token", http.StatusServiceUnavailable)
			if err := h.agent.SetPushToken("fcm-token-C"); err == nil {
				t.Fatal("SetPushToken with a failing server = nil, want an error")
			}
			if r := h.sync(t); r.Err != nil {
				t.Fatalf("sync: %v", r.Err)
			}
		}, wantTokens: []string{"fcm-token-A", "fcm-token-B", "fcm-token-C"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			got := srv.tokens(id)
			if strings.Join(got, ",") != strings.Join(st.wantTokens, ",") {
				t.Errorf("registered tokens = %v, want %v", got, st.wantTokens)
			}
		})
	}
	if stored, _, _ := h.store.Load(); stored.FCMToken != "fcm-token-C" {
		t.Errorf("stored FCMToken = %q, want fcm-token-C", stored.FCMToken)
	}
}

func TestReenrollRegistersTokenAgain(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	h := newHarness(t, srv, dir, nil)
	if err := h.agent.SetPushToken("fcm-token-A"); err != nil {
		t.Fatal(err)
	}
	old := h.sync(t).DeviceID
	// A restarted agent that was not told its token yet still re-registers
	// the stored one under the new id.
	h = newHarness(t, srv, dir, nil)
	srv.revoke(old)
	r := h.sync(t)
	if r.Err != nil || r.DeviceID == old {
		t.Fatalf("sync = %+v, want a re-enrolled device", r)
	}
	if got := srv.tokens(r.DeviceID); len(got) != 1 || got[0] != "fcm-token-A" {
		t.Errorf("new device tokens = %v, want [fcm-token-A]", got)
	}
}

func TestCoalescing(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	entered := make(chan struct{})
	gate := make(chan struct{})
	var once sync.Once
	srv.setBefore(func(route, _ string) {
		if route == "policy" {
			once.Do(func() {
				close(entered)
				<-gate
			})
		}
	})
	stop := h.runAgent(t)
	recv(t, entered, "the first sync to reach GET policy")

	// Many triggers and concurrent Syncs while the first sync is running.
	for range 50 {
		h.agent.Trigger()
	}
	syncErrs := make(chan error, 3)
	for range 3 {
		go func() { syncErrs <- h.agent.Sync(t.Context()) }()
	}
	close(gate)
	for range 3 {
		if err := recv(t, syncErrs, "a direct Sync"); err != nil {
			t.Errorf("Sync: %v", err)
		}
	}
	// 1 at start + 1 for all the triggers + 3 direct Syncs, one at a time.
	for range 5 {
		if r := recv(t, h.results, "OnSync"); r.Err != nil {
			t.Errorf("sync: %v", r.Err)
		}
	}
	stop()
	if n := srv.count("policy"); n != 5 {
		t.Errorf("policy fetches = %d, want 5 (the triggers must coalesce into one sync)", n)
	}
	if h.enf.overlapped.Load() {
		t.Error("two syncs ran at the same time")
	}
	select {
	case r := <-h.results:
		t.Errorf("unexpected extra sync: %+v", r)
	default:
	}
}

func TestTriggersCoalesceIntoOneMoreSync(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	entered := make(chan struct{})
	gate := make(chan struct{})
	var once sync.Once
	srv.setBefore(func(route, _ string) {
		if route == "policy" {
			once.Do(func() {
				close(entered)
				<-gate
			})
		}
	})
	stop := h.runAgent(t)
	recv(t, entered, "the first sync to reach GET policy")
	for range 100 {
		h.agent.Trigger()
	}
	close(gate)
	recv(t, h.results, "the first sync")
	recv(t, h.results, "the coalesced sync")
	// The scheduler arms the periodic timer after each sync; once it did so
	// after the second, no trigger is pending.
	h.clock.waitTimer(t, 54*time.Minute, 66*time.Minute)
	h.clock.waitTimer(t, 54*time.Minute, 66*time.Minute)
	stop()
	if n := srv.count("policy"); n != 2 {
		t.Errorf("syncs = %d, want exactly 2", n)
	}
}

func TestSchedulerBackoff(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Interval = 10 * time.Minute })
	srv.failOnce("enroll", http.StatusServiceUnavailable)
	h.runAgent(t)

	steps := []struct {
		name      string
		fail      int // the status the server fails this step's sync with (connReset: a reset)
		wantDelay time.Duration
		jitter    time.Duration // wantDelay ± jitter
	}{
		{name: "a busy server (503) is asked again after 2s", wantDelay: 2 * time.Second, jitter: time.Second},
		{name: "second failure (500) waits 60s", fail: 500, wantDelay: 60 * time.Second, jitter: 6 * time.Second},
		{name: "third failure waits 120s", fail: 500, wantDelay: 120 * time.Second, jitter: 12 * time.Second},
		{name: "success waits the interval", wantDelay: 10 * time.Minute, jitter: time.Minute},
		{name: "a failure after success starts over at 30s", fail: 500, wantDelay: 30 * time.Second, jitter: 3 * time.Second},
		{name: "rate limited (429): 4s, the second failure from the busy base", fail: 429, wantDelay: 4 * time.Second, jitter: 2 * time.Second},
		{name: "a reset connection is busy too: 8s", fail: connReset, wantDelay: 8 * time.Second, jitter: 4 * time.Second},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if i > 0 {
				if st.fail != 0 {
					srv.failOnce("policy", st.fail)
				}
				h.clock.Advance(steps[i-1].wantDelay + steps[i-1].jitter)
			}
			r := recv(t, h.results, "OnSync")
			if failed := r.Err != nil; failed != (st.fail != 0 || i == 0) {
				t.Fatalf("sync error = %v", r.Err)
			}
			d := h.clock.waitTimer(t, 0, time.Hour)
			if lo, hi := st.wantDelay-st.jitter, st.wantDelay+st.jitter; d < lo || d > hi {
				t.Errorf("next sync in %v, want %v ±%v", d, st.wantDelay, st.jitter)
			}
		})
	}
}

func TestOnPush(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
		want bool // a sync is triggered
	}{
		{name: "lower version", data: map[string]string{"type": "policy_changed", "version": "1"}, want: false},
		{name: "equal version", data: map[string]string{"type": "policy_changed", "version": "2"}, want: false},
		{name: "higher version", data: map[string]string{"type": "policy_changed", "version": "3"}, want: true},
		{name: "no version", data: map[string]string{"type": "policy_changed"}, want: true},
		{name: "unreadable version", data: map[string]string{"type": "policy_changed", "version": "x"}, want: true},
		{name: "other type", data: map[string]string{"type": "something_else", "version": "9"}, want: false},
		{name: "no type", data: map[string]string{"version": "9"}, want: false},
	}
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	id := h.sync(t).DeviceID
	srv.setPolicy(id, proto.Settings{CameraDisabled: true})
	if r := h.sync(t); r.PolicyVersion != 2 || r.Err != nil {
		t.Fatalf("sync = %+v, want version 2 reported", r)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drainTrigger(h.agent)
			h.agent.OnPush(tt.data)
			if got := triggered(h.agent); got != tt.want {
				t.Errorf("triggered = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOnPushRunsSync(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	h.runAgent(t)
	r := recv(t, h.results, "the sync at start")
	h.clock.waitTimer(t, 54*time.Minute, 66*time.Minute) // idle
	v := srv.setPolicy(r.DeviceID, proto.Settings{CameraDisabled: true})
	h.agent.OnPush(map[string]string{"type": "policy_changed", "version": "2"})
	r = recv(t, h.results, "the pushed sync")
	if r.Err != nil || r.PolicyVersion != v || !r.Compliant {
		t.Fatalf("sync = %+v, want version %d applied", r, v)
	}
	if got, _ := h.dev.Observe(t.Context()); !got.CameraDisabled {
		t.Errorf("device = %+v, want camera disabled", got)
	}
}

func TestHandleDoorbell(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    bool
	}{
		{name: "lower version", payload: `{"type":"policy_changed","version":1}`, want: false},
		{name: "equal version", payload: `{"type":"policy_changed","version":2}`, want: false},
		{name: "higher version", payload: `{"type":"policy_changed","version":3}`, want: true},
		{name: "no version", payload: `{"type":"policy_changed"}`, want: true},
		{name: "unreadable payload", payload: `not json`, want: true},
		{name: "other type", payload: `{"type":"other","version":9}`, want: false},
	}
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	id := h.sync(t).DeviceID
	srv.setPolicy(id, proto.Settings{CameraDisabled: true})
	h.sync(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			drainTrigger(h.agent)
			h.agent.handleDoorbell([]byte(tt.payload))
			if got := triggered(h.agent); got != tt.want {
				t.Errorf("triggered = %v, want %v", got, tt.want)
			}
		})
	}
}

func drainTrigger(a *Agent) {
	select {
	case <-a.trigger:
	default:
	}
}

func triggered(a *Agent) bool { return len(a.trigger) == 1 }

func TestRunStopsCleanly(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	stop := h.runAgent(t)
	recv(t, h.results, "the sync at start")
	h.clock.waitTimer(t, 54*time.Minute, 66*time.Minute)
	stop()
	assertNoAgentGoroutines(t)

	// Run can be started again, and stops even while a sync is blocked.
	block := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv.setBefore(func(route, _ string) {
		if route == "policy" {
			entered <- struct{}{}
			<-block
		}
	})
	t.Cleanup(func() { close(block) })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.agent.Run(ctx) }()
	recv(t, entered, "a sync to block")
	cancel()
	if err := recv(t, done, "Run to return"); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	assertNoAgentGoroutines(t)
}

func TestRunTwiceAtOnce(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), nil)
	h.runAgent(t)
	recv(t, h.results, "the sync at start")
	if err := h.agent.Run(t.Context()); err == nil {
		t.Error("second concurrent Run = nil, want an error")
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	h := newHarness(t, srv, dir, nil)
	if err := h.agent.SetPushToken("fcm-token-very-private"); err != nil {
		t.Fatal(err)
	}
	old := h.sync(t).DeviceID
	srv.revoke(old)
	r := h.sync(t) // re-enrolls, logs identities
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	srv.failOnce("policy", 500)
	h.sync(t)
	logs := h.logs.String()
	if !strings.Contains(logs, "enrolled") {
		t.Fatalf("expected enrollment logs, got:\n%s", logs)
	}
	for _, secret := range []string{srv.enrollToken, "device-secret-1", "device-secret-2", "fcm-token-very-private"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q:\n%s", secret, logs)
		}
	}
}

func TestIdentityLogValueRedacts(t *testing.T) {
	id := Identity{DeviceID: "d1", DeviceSecret: "s3cret", FCMToken: "tok3n", MQTTURL: "tcp://x:1883"}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("test", "identity", id, "direct", id)
	if s := buf.String(); strings.Contains(s, "s3cret") || strings.Contains(s, "tok3n") || !strings.Contains(s, "d1") {
		t.Errorf("LogValue = %s", s)
	}
}
