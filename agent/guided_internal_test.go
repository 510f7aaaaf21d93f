package agent

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

func TestGuidedTrackerPlan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "guided.json")
	g := &guidedTracker{path: path}
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	deadlines := map[string]time.Duration{"packages": 2 * time.Hour, "firewallEnabled": time.Hour}

	p, err := g.plan(t0, deadlines, map[string]bool{"packages": true})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Due) != 0 || len(p.Pending) != 1 || !p.Pending[0].RemediateBy.Equal(t0.Add(2*time.Hour)) || len(p.Notify) != 1 {
		t.Fatalf("first failure: %+v", p)
	}
	if err := g.notifiedAt(p.Notify); err != nil {
		t.Fatal(err)
	}

	// A restart keeps the start: the deadline does not move, and the user
	// is not told twice.
	g = &guidedTracker{path: path}
	p, _ = g.plan(t0.Add(90*time.Minute), deadlines, map[string]bool{"packages": true, "firewallEnabled": true})
	if len(p.Pending) != 2 || !p.Pending[1].RemediateBy.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("after restart: %+v", p)
	}
	if len(p.Notify) != 1 || p.Notify[0].Setting != "firewallEnabled" || !p.Notify[0].RemediateBy.Equal(t0.Add(150*time.Minute)) {
		t.Fatalf("notify after restart: %+v", p.Notify)
	}

	// At the deadline: due, not pending.
	p, _ = g.plan(t0.Add(2*time.Hour), deadlines, map[string]bool{"packages": true, "firewallEnabled": true})
	if len(p.Due) != 1 || p.Due[0] != "packages" || len(p.Pending) != 1 {
		t.Fatalf("at the deadline: %+v", p)
	}

	// Fixed by the user: forgotten, so a new failure starts a new deadline.
	g.plan(t0.Add(3*time.Hour), deadlines, map[string]bool{"firewallEnabled": true})
	p, _ = g.plan(t0.Add(4*time.Hour), deadlines, map[string]bool{"packages": true, "firewallEnabled": true})
	if len(p.Pending) != 1 || p.Pending[0].Setting != "packages" || !p.Pending[0].RemediateBy.Equal(t0.Add(6*time.Hour)) {
		t.Fatalf("after a fix and a new failure: %+v", p)
	}
}

func TestNoticeText(t *testing.T) {
	title, body := Notice{Pending: []PendingSetting{{"firewallEnabled", time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)}}}.Text()
	if title == "" || body != "firewallEnabled: fix it by 2026-12-01 17:00 UTC, or it will be changed for you then." {
		t.Errorf("Text = %q, %q", title, body)
	}
}

// recordingNotifier records the notices the agent gives the user.
type recordingNotifier struct {
	mu      sync.Mutex
	notices []Notice
}

func (r *recordingNotifier) Notify(_ context.Context, n Notice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, n)
	return nil
}

// TestGuidedSettingWalksToEnforced drives a guided setting with an
// injected clock: before its deadline the agent leaves the device alone,
// tells the user once and reports PENDING_USER with remediateBy; at the
// deadline it enforces and the device is compliant.
func TestGuidedSettingWalksToEnforced(t *testing.T) {
	srv := newFakeServer(t)
	notes := &recordingNotifier{}
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.Notifier = notes
		c.GuidedStatePath = filepath.Join(t.TempDir(), "guided.json")
	})
	r := h.sync(t)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	h.dev.Set(proto.Settings{PasswordMinLength: ptr(4)})
	start := h.clock.Now()
	policy := proto.DevicePolicy{
		Settings: proto.Settings{CameraDisabled: false, PasswordMinLength: ptr(12)},
		Guided:   map[string]string{"passwordMinLength": "72h"},
	}
	srv.setDevicePolicy(r.DeviceID, policy)

	check := func(when string, wantPending bool) proto.ComplianceReport {
		t.Helper()
		if r := h.sync(t); r.Err != nil {
			t.Fatalf("%s: %v", when, r.Err)
		}
		reps := srv.reports(r.DeviceID)
		rep := reps[len(reps)-1]
		got, _ := h.dev.Observe(t.Context())
		if wantPending {
			if *got.PasswordMinLength != 4 {
				t.Fatalf("%s: the agent changed a guided setting before its deadline: %d", when, *got.PasswordMinLength)
			}
			by, ok := rep.Pending["passwordMinLength"]
			if !ok || !by.Equal(start.Add(72*time.Hour).UTC()) || rep.Compliant {
				t.Fatalf("%s: report %+v, want pending until %v", when, rep, start.Add(72*time.Hour))
			}
			p := policy
			p.Version = rep.AppliedPolicyVersion
			f := proto.Diff(p, rep)
			if len(f) != 1 || f[0].Reason != proto.ReasonPendingUser || f[0].RemediateBy == nil || !f[0].RemediateBy.Equal(by) {
				t.Fatalf("%s: server-side verdict %+v", when, f)
			}
		} else {
			if *got.PasswordMinLength != 12 || len(rep.Pending) != 0 || !rep.Compliant {
				t.Fatalf("%s: device %d, report %+v", when, *got.PasswordMinLength, rep)
			}
		}
		return rep
	}
	check("right after the policy", true)
	h.clock.Advance(71 * time.Hour)
	check("an hour before the deadline", true)
	notes.mu.Lock()
	n := len(notes.notices)
	var first Notice
	if n > 0 {
		first = notes.notices[0]
	}
	notes.mu.Unlock()
	if n != 1 || len(first.Pending) != 1 || first.Pending[0].Setting != "passwordMinLength" || !first.Pending[0].RemediateBy.Equal(start.Add(72*time.Hour)) {
		t.Fatalf("notices %+v, want one naming passwordMinLength and its deadline", notes.notices)
	}
	h.clock.Advance(time.Hour)
	check("at the deadline", false)
}

// TestGuidedDeadlineTimer: a running agent wakes at a guided setting's
// deadline on its own (the periodic sync is an hour away and nothing
// rings) and enforces then; once nothing is pending it goes back to its
// periodic interval. The clock is injected: the test moves it to the
// deadline exactly.
func TestGuidedDeadlineTimer(t *testing.T) {
	srv := newFakeServer(t)
	notes := &recordingNotifier{}
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.Notifier = notes
		c.GuidedStatePath = filepath.Join(t.TempDir(), "guided.json")
	})
	r := h.sync(t) // enrolls
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	h.dev.Set(proto.Settings{PasswordMinLength: ptr(4)})
	srv.setDevicePolicy(r.DeviceID, proto.DevicePolicy{
		Settings: proto.Settings{PasswordMinLength: ptr(12)},
		Guided:   map[string]string{"passwordMinLength": "30m"},
	})
	start := h.clock.Now()
	h.runAgent(t)

	r = recv(t, h.results, "the sync at start")
	if r.Err != nil || r.Compliant {
		t.Fatalf("sync at start: %+v, want a report of a pending setting", r)
	}
	reps := srv.reports(r.DeviceID)
	if by := reps[len(reps)-1].Pending["passwordMinLength"]; !by.Equal(start.Add(30 * time.Minute)) {
		t.Fatalf("reported pending until %v, want %v", by, start.Add(30*time.Minute))
	}
	// The scheduler's next wake is the deadline, not the hourly sync.
	if d := h.clock.waitTimer(t, 0, 2*time.Hour); d != 30*time.Minute {
		t.Fatalf("next wake in %v, want the deadline in 30m", d)
	}
	if got, _ := h.dev.Observe(t.Context()); *got.PasswordMinLength != 4 {
		t.Fatalf("enforced before the deadline: %d", *got.PasswordMinLength)
	}
	h.clock.Advance(30 * time.Minute)
	r = recv(t, h.results, "the sync at the deadline")
	if r.Err != nil || !r.Compliant {
		t.Fatalf("sync at the deadline: %+v, want compliant", r)
	}
	if got, _ := h.dev.Observe(t.Context()); *got.PasswordMinLength != 12 {
		t.Fatalf("at the deadline the device has %d, want 12 enforced", *got.PasswordMinLength)
	}
	reps = srv.reports(r.DeviceID)
	if last := reps[len(reps)-1]; len(last.Pending) != 0 || !last.Compliant {
		t.Fatalf("report at the deadline %+v", last)
	}
	// Nothing pending: back to the hourly sync (±10%).
	h.clock.waitTimer(t, 54*time.Minute, 66*time.Minute)
	notes.mu.Lock()
	defer notes.mu.Unlock()
	if len(notes.notices) != 1 {
		t.Fatalf("%d notices, want the user told once", len(notes.notices))
	}
}
