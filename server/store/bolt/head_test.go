package bolt_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestOpenMigratesReportsOutOfRecords: a database written before devices
// had heads (each last report inside its device's record) opens with every
// report, state and count as it was, authenticates by head, and takes new
// reports.
func TestOpenMigratesReportsOutOfRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorbell.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	failing := storetest.NewDevice("old-failing")
	failing.Policy = proto.DevicePolicy{Version: 2, Settings: proto.Settings{CameraDisabled: true}}
	failing.Report = &store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 2, ReportedAt: at, Nonce: "n-0000000001"},
		ReceivedAt: at, SeenNonces: []string{"n-0000000001"}}
	failing.NonCompliantSince = at
	failing.FailingSince = map[string]time.Time{proto.SettingCameraDisabled: at}
	failing.LastSeenAt = at // in the record, before LastSeenAt had its own key
	fresh := storetest.NewDevice("old-fresh")
	fresh.ClientCert = true
	err = db.Update(func(tx *bbolt.Tx) error {
		devs, err := tx.CreateBucket([]byte("devices"))
		if err != nil {
			return err
		}
		secrets, err := tx.CreateBucket([]byte("secrets"))
		if err != nil {
			return err
		}
		for _, d := range []store.Device{failing, fresh} {
			v, _ := json.Marshal(d)
			if err := devs.Put([]byte(d.ID), v); err != nil {
				return err
			}
			if err := secrets.Put(d.SecretHash, []byte(d.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	got, err := s.Device(ctx, "old-failing")
	if err != nil || got.Report == nil || got.Report.Nonce != "n-0000000001" || !got.NonCompliantSince.Equal(at) {
		t.Fatalf("migrated device = %+v, %v; want its report and NonCompliantSince kept", got, err)
	}
	// LastSeenAt: the record's until MarkSeen writes a later time.
	for _, seen := range []struct{ mark, want time.Time }{{at, at}, {at.Add(-time.Hour), at}, {at.Add(time.Hour), at.Add(time.Hour)}} {
		if err := s.MarkSeen(ctx, map[string]time.Time{"old-failing": seen.mark}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Device(ctx, "old-failing"); err != nil || !got.LastSeenAt.Equal(seen.want) {
			t.Fatalf("after MarkSeen(%v): LastSeenAt %v, %v; want %v", seen.mark, got.LastSeenAt, err, seen.want)
		}
	}
	if a, err := s.DeviceAuth(ctx, "old-fresh"); err != nil || !a.ClientCert || a.PolicyVersion != 1 || string(a.SecretHash) != string(fresh.SecretHash) {
		t.Fatalf("DeviceAuth(old-fresh) = %+v, %v", a, err)
	}
	sum, err := s.Summary(ctx)
	if err != nil || sum.Counts[proto.StateNonCompliant] != 1 || sum.Counts[proto.StateUnknown] != 1 {
		t.Fatalf("summary = %+v, %v; want one NON_COMPLIANT, one UNKNOWN", sum, err)
	}
	// The replay check sees the migrated report's nonce.
	replay := store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 2, Settings: proto.Settings{CameraDisabled: true},
		ReportedAt: at, Nonce: "n-0000000001"}, ReceivedAt: at}
	if _, err := s.SaveReport(ctx, "old-failing", replay); err == nil {
		t.Fatal("a replayed nonce of the migrated report was accepted")
	}
	replay.Nonce, replay.ReportedAt = "n-0000000002", at.Add(time.Minute)
	c, err := s.SaveReport(ctx, "old-failing", replay)
	if err != nil || c.State != proto.StateCompliant || len(c.Transitions) != 1 || c.Transitions[0].From != proto.StateNonCompliant {
		t.Fatalf("report after migration = %+v, %v; want NON_COMPLIANT -> COMPLIANT", c, err)
	}
	sum, _ = s.Summary(ctx)
	if sum.Counts[proto.StateNonCompliant] != 0 || sum.Counts[proto.StateCompliant] != 1 || len(sum.DriftingSettings) != 0 {
		t.Fatalf("summary after the report = %+v", sum)
	}
}

// TestReportEvaluatedAgainstTheRecordItWrites: a report is evaluated
// before its write transaction; when an edit commits in between, the
// write sees the record changed and evaluates again, so the report of the
// old version leaves the device STALE, not COMPLIANT with a policy it
// never applied.
func TestReportEvaluatedAgainstTheRecordItWrites(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.CreateDevice(ctx, storetest.NewDevice("r1")); err != nil {
		t.Fatal(err)
	}
	edited := false
	bolt.SetBeforeReportWrite(s, func() {
		if edited {
			return
		}
		edited = true
		if _, _, err := s.UpdateOverride(ctx, "r1", func(store.Layer) store.Layer {
			return store.Layer{Values: proto.SettingValues{proto.SettingCameraDisabled: json.RawMessage("true")}}
		}); err != nil {
			t.Error(err)
		}
	})
	at := time.Now()
	c, err := s.SaveReport(ctx, "r1", store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1}, ReceivedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if !edited || c.State != proto.StateStale || c.Device.Policy.Version != 2 {
		t.Fatalf("report racing an edit: state %s, version %d (edited %v); want STALE at version 2", c.State, c.Device.Policy.Version, edited)
	}
	d, err := s.Device(ctx, "r1")
	if err != nil || d.Policy.Version != 2 || !d.Policy.CameraDisabled || d.Report == nil {
		t.Fatalf("device after the race = %+v, %v; want the edit and the report both kept", d, err)
	}
	sum, _ := s.Summary(ctx)
	if sum.Counts[proto.StateStale] != 1 || sum.Counts[proto.StateCompliant] != 0 {
		t.Fatalf("summary = %+v; want one STALE", sum.Counts)
	}
}
