package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestFailingSinceColumn: the non_compliant_since column that answers
// DevicesFailingBefore is filled by a fleet loaded from bbolt, and by
// migration 0006 from the records of a database made before it.
func TestFailingSinceColumn(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	failing := storetest.NewDevice("failing")
	failing.Policy.Settings.CameraDisabled = true
	failing.Report = &store.Report{ReceivedAt: t0, ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1}}
	failing.NonCompliantSince, failing.FailingSince = t0, map[string]time.Time{"cameraDisabled": t0}
	url := migrated(t)
	s := open(t, url)
	if err := s.Load(ctx, store.Dump{Devices: []store.Device{failing, storetest.NewDevice("fine")}}); err != nil {
		t.Fatal(err)
	}
	list := func(s interface {
		DevicesFailingBefore(context.Context, time.Time, string, int) ([]store.Device, bool, error)
	}) []string {
		t.Helper()
		devs, _, err := s.DevicesFailingBefore(ctx, t0.Add(time.Second), "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range devs {
			ids = append(ids, d.ID)
		}
		return ids
	}
	if got := list(s); len(got) != 1 || got[0] != "failing" {
		t.Fatalf("after a load: %v, want [failing]", got)
	}
	s.Close()

	// Back to the schema before 0006, with the times only in the records.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"ALTER TABLE devices DROP COLUMN non_compliant_since",
		"DELETE FROM schema_migrations WHERE version = '0006_failing_since'",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			conn.Close(ctx)
			t.Fatalf("%s: %v", sql, err)
		}
	}
	conn.Close(ctx)
	s = open(t, url)
	if got := list(s); len(got) != 1 || got[0] != "failing" {
		t.Fatalf("after migration 0006 on old records: %v, want [failing]", got)
	}
}
