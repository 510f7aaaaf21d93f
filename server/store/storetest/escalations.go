package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// testEscalations checks that a step fires once per start of
// non-compliance, and is audited when it does.
func testEscalations(t *testing.T, s store.Store) {
	ctx := store.WithAudit(context.Background(), proto.AuditEntry{Actor: "server", Action: "escalation.notify", Target: "d1"})
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for i, c := range []struct {
		step  string
		since time.Time
		want  bool
	}{
		{"g1:notify", t0, true},
		{"g1:notify", t0, false},
		{"g1:command", t0, true},
		{"g2:notify", t0, true},
		{"g1:notify", t0.Add(time.Hour), true}, // a new stretch of non-compliance
		{"g1:notify", t0.Add(time.Hour), false},
	} {
		got, err := s.MarkEscalated(ctx, "d1", c.step, c.since)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("step %d: MarkEscalated(%s, %v) = %v, want %v", i, c.step, c.since, got, c.want)
		}
	}
	entries, _, err := s.AuditEntries(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Action == "escalation.notify" {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d escalation audit entries, want 4 (one per firing)", n)
	}
}
