package agent

import (
	"path/filepath"
	"testing"
	"time"
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
