package escalate_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/escalate"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestEscalationFiresOnce drives a real bbolt store with an injected
// clock: a member failing past notifyAfter gets one webhook, past
// commandAfter one lock, however often the rules are evaluated; a new
// stretch of non-compliance escalates again; a compliant member never.
func TestEscalationFiresOnce(t *testing.T) {
	ctx := context.Background()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"bad", "good"} {
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
	}
	g := store.Group{ID: "g1", Name: "laptops", Layer: store.Layer{Values: proto.SettingValues{"cameraDisabled": json.RawMessage("true")}},
		Members: []string{"bad", "good"}, Escalation: &proto.Escalation{NotifyAfter: "1h", CommandAfter: "24h", Command: "lock"}}
	if _, err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	report := func(id string, camera bool, at time.Time) {
		t.Helper()
		d, err := s.Device(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveReport(ctx, id, store.Report{ReceivedAt: at, ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: d.Policy.Version, Settings: proto.Settings{CameraDisabled: camera}}}); err != nil {
			t.Fatal(err)
		}
	}
	report("bad", false, t0)
	report("good", true, t0)

	now := t0
	var hooks []proto.EscalationEvent
	var locks []string
	e := escalate.New(escalate.Config{Store: s, Now: func() time.Time { return now },
		Notify:  func(_ context.Context, ev proto.EscalationEvent) error { hooks = append(hooks, ev); return nil },
		Command: func(_ context.Context, id, cmd string) error { locks = append(locks, id+":"+cmd); return nil },
	})
	eval := func(at time.Duration) []proto.EscalationEvent {
		t.Helper()
		now = t0.Add(at)
		fired, err := e.Evaluate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return fired
	}
	if f := eval(59 * time.Minute); len(f) != 0 {
		t.Fatalf("fired before notifyAfter: %+v", f)
	}
	if f := eval(time.Hour); len(f) != 1 || f[0].Step != "notify" || f[0].DeviceID != "bad" || !f[0].NonCompliantSince.Equal(t0) {
		t.Fatalf("at notifyAfter: %+v", f)
	}
	for _, at := range []time.Duration{2 * time.Hour, 10 * time.Hour} {
		if f := eval(at); len(f) != 0 {
			t.Fatalf("fired again at %v: %+v", at, f)
		}
	}
	if f := eval(24 * time.Hour); len(f) != 1 || f[0].Step != "command" || f[0].Command != "lock" {
		t.Fatalf("at commandAfter: %+v", f)
	}
	eval(48 * time.Hour)
	if len(hooks) != 1 || len(locks) != 1 || locks[0] != "bad:lock" {
		t.Fatalf("hooks %+v, locks %v", hooks, locks)
	}
	// Fixed, then failing again: a new stretch escalates again.
	report("bad", true, t0.Add(49*time.Hour))
	report("bad", false, t0.Add(50*time.Hour))
	if f := eval(51 * time.Hour); len(f) != 1 || !f[0].NonCompliantSince.Equal(t0.Add(50*time.Hour)) {
		t.Fatalf("new stretch: %+v", f)
	}
	// Each firing is in the audit log.
	entries, _, _ := s.AuditEntries(ctx, "", 100)
	n := 0
	for _, en := range entries {
		if en.Actor == "server" && (en.Action == "escalation.notify" || en.Action == "escalation.command") && en.Target == "bad" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d escalation audit entries, want 3", n)
	}
}

// TestEscalationWithoutCommandQueue leaves command steps unfired (and
// unmarked) when the server has no command queue.
func TestEscalationWithoutCommandQueue(t *testing.T) {
	ctx := context.Background()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.CreateDevice(ctx, storetest.NewDevice("bad"))
	s.CreateGroup(ctx, store.Group{ID: "g1", Name: "x", Layer: store.Layer{Values: proto.SettingValues{"cameraDisabled": json.RawMessage("true")}},
		Members: []string{"bad"}, Escalation: &proto.Escalation{CommandAfter: "1h", Command: "lock"}})
	d, _ := s.Device(ctx, "bad")
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	s.SaveReport(ctx, "bad", store.Report{ReceivedAt: t0, ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: d.Policy.Version}})
	e := escalate.New(escalate.Config{Store: s, Now: func() time.Time { return t0.Add(2 * time.Hour) }})
	if f, err := e.Evaluate(ctx); err != nil || len(f) != 0 {
		t.Fatalf("without a queue: %+v, %v", f, err)
	}
	if first, _ := s.MarkEscalated(ctx, "bad", "g1:command", t0); !first {
		t.Error("the command step was marked although it could not fire")
	}
}
