package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// testMarkSeen: sightings are stored, never moved back, unknown ids are
// skipped, and a report's sync interval is kept.
func testMarkSeen(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("s1"))
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if err := s.MarkSeen(ctx, map[string]time.Time{"s1": t0, "ghost": t0}); err != nil {
		t.Fatalf("MarkSeen: %v", err)
	}
	if d, _ := s.Device(ctx, "s1"); !d.LastSeenAt.Equal(t0) {
		t.Fatalf("LastSeenAt = %v, want %v", d.LastSeenAt, t0)
	}
	if err := s.MarkSeen(ctx, map[string]time.Time{"s1": t0.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Device(ctx, "s1"); !d.LastSeenAt.Equal(t0) {
		t.Fatalf("LastSeenAt moved back to %v", d.LastSeenAt)
	}
	r := store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1, SyncIntervalSeconds: 60}, ReceivedAt: t0}
	c, err := s.SaveReport(ctx, "s1", r)
	if err != nil || c.Device.SyncIntervalSeconds != 60 {
		t.Fatalf("SaveReport: interval %d, err %v; want 60", c.Device.SyncIntervalSeconds, err)
	}
	if d, _ := s.Device(ctx, "s1"); d.SyncIntervalSeconds != 60 || !d.LastSeenAt.Equal(t0) {
		t.Fatalf("stored interval %d seen %v", d.SyncIntervalSeconds, d.LastSeenAt)
	}
}
