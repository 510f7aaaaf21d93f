package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// testFailingSince checks that a backend keeps NonCompliantSince and
// FailingSince through reports and edits (policy.TrackFailing).
func testFailingSince(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("d1"))
	d, _, err := s.UpdateOverride(ctx, "d1", func(store.Layer) store.Layer { return store.Layer{Values: values("cameraDisabled", "true")} })
	if err != nil {
		t.Fatal(err)
	}
	report := func(camera bool) store.Device {
		t.Helper()
		r := store.Report{ReceivedAt: time.Now(), ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: d.Device.Policy.Version, Settings: proto.Settings{CameraDisabled: camera}}}
		if _, err := s.SaveReport(ctx, "d1", r); err != nil {
			t.Fatal(err)
		}
		return mustDevice(t, s, "d1")
	}
	got := report(false)
	since := got.NonCompliantSince
	if since.IsZero() || !got.FailingSince["cameraDisabled"].Equal(since) || len(got.FailingSince) != 1 {
		t.Fatalf("after a failing report: %v %v", got.NonCompliantSince, got.FailingSince)
	}
	// Still failing: the start is kept.
	if got = report(false); !got.NonCompliantSince.Equal(since) {
		t.Fatalf("second failing report moved the start: %v -> %v", since, got.NonCompliantSince)
	}
	if got = report(true); !got.NonCompliantSince.IsZero() || len(got.FailingSince) != 0 {
		t.Fatalf("after a compliant report: %v %v", got.NonCompliantSince, got.FailingSince)
	}
}
