package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// testDevicesInState checks listing by derived state: only devices in the
// state, in id order, paged, and following each change of state.
func testDevicesInState(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	for i := range 12 {
		id := fmt.Sprintf("s%02d", i)
		mustCreate(t, s, NewDevice(id))
		switch i % 3 {
		case 1:
			if _, err := s.SaveReport(ctx, id, report(1, false, at)); err != nil {
				t.Fatal(err)
			}
		case 2:
			if _, err := s.SaveReport(ctx, id, report(1, true, at)); err != nil { // camera disabled, not desired
				t.Fatal(err)
			}
		}
	}
	list := func(st proto.ComplianceState, after string, limit int) ([]string, bool) {
		t.Helper()
		devs, more, err := s.DevicesInState(ctx, st, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		return ids(devs), more
	}
	got, more := list(proto.StateCompliant, "", 3)
	if fmt.Sprint(got) != "[s01 s04 s07]" || !more {
		t.Errorf("compliant page 1 = %v more=%v, want [s01 s04 s07] more", got, more)
	}
	got, more = list(proto.StateCompliant, "s07", 3)
	if fmt.Sprint(got) != "[s10]" || more {
		t.Errorf("compliant page 2 = %v more=%v, want [s10]", got, more)
	}
	got, _ = list(proto.StateNonCompliant, "", 10)
	if fmt.Sprint(got) != "[s02 s05 s08 s11]" {
		t.Errorf("non-compliant = %v", got)
	}
	// An edit makes the reported devices stale; a report moves one back.
	if _, _, err := s.UpdateOverride(ctx, "s01", setCamera(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveReport(ctx, "s02", report(1, false, at.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	got, _ = list(proto.StateStale, "", 10)
	if fmt.Sprint(got) != "[s01]" {
		t.Errorf("stale = %v, want [s01]", got)
	}
	got, _ = list(proto.StateCompliant, "", 10)
	if fmt.Sprint(got) != "[s02 s04 s07 s10]" {
		t.Errorf("compliant after changes = %v, want [s02 s04 s07 s10]", got)
	}
	if err := s.DeleteDevice(ctx, "s00"); err != nil {
		t.Fatal(err)
	}
	got, _ = list(proto.StateUnknown, "", 10)
	if fmt.Sprint(got) != "[s03 s06 s09]" {
		t.Errorf("unknown after a delete = %v, want [s03 s06 s09]", got)
	}
}
