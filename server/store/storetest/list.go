package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
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

// testDevicesFailingBefore checks listing by how long devices have been
// failing: only devices NON_COMPLIANT since strictly before the time, in
// id order, paged; a policy edit (STALE) keeps a device listed with its
// start; a fix drops it.
func testDevicesFailingBefore(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	// f00 compliant, f01 failing from t0, f02 from t0+1h, f03 never
	// reported, f04 from t0+2h, f05 failed at t0 and was fixed at t0+3h.
	steps := []struct {
		id     string
		camera bool
		at     time.Duration
	}{
		{"f00", false, 0}, {"f01", true, 0}, {"f02", true, time.Hour}, {"f04", true, 2 * time.Hour},
		{"f05", true, 0}, {"f05", false, 3 * time.Hour}, {"f01", true, 4 * time.Hour},
	}
	for _, id := range []string{"f00", "f01", "f02", "f03", "f04", "f05"} {
		mustCreate(t, s, NewDevice(id))
	}
	for _, st := range steps {
		if _, err := s.SaveReport(ctx, st.id, report(1, st.camera, t0.Add(st.at))); err != nil {
			t.Fatal(err)
		}
	}
	list := func(before time.Time, after string, limit int) ([]string, bool) {
		t.Helper()
		devs, more, err := s.DevicesFailingBefore(ctx, before, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			if !policy.FailingBefore(d, before) {
				t.Errorf("%s listed as failing before %v but failing since %v", d.ID, before, d.NonCompliantSince)
			}
		}
		return ids(devs), more
	}
	cases := []struct {
		name   string
		before time.Duration
		after  string
		limit  int
		want   string
		more   bool
	}{
		{"nothing fails before the first failure", 0, "", 10, "[]", false},
		{"strictly before: a device failing from exactly then is not listed", time.Hour, "", 10, "[f01]", false},
		{"a later repeat failing report keeps the start", 90 * time.Minute, "", 10, "[f01 f02]", false},
		{"a fixed device is not listed", 5 * time.Hour, "", 10, "[f01 f02 f04]", false},
		{"page 1", 5 * time.Hour, "", 2, "[f01 f02]", true},
		{"page 2", 5 * time.Hour, "f02", 2, "[f04]", false},
	}
	for _, c := range cases {
		got, more := list(t0.Add(c.before), c.after, c.limit)
		if fmt.Sprint(got) != c.want || more != c.more {
			t.Errorf("%s: %v more=%v, want %s more=%v", c.name, got, more, c.want, c.more)
		}
	}
	// A policy edit makes f01 STALE: still failing since t0, still listed.
	if _, _, err := s.UpdateOverride(ctx, "f01", setCamera(true)); err != nil {
		t.Fatal(err)
	}
	if got, _ := list(t0.Add(time.Minute), "", 10); fmt.Sprint(got) != "[f01]" {
		t.Errorf("after an edit: %v, want [f01]", got)
	}
	// Compliant with the new policy: no longer listed.
	if _, err := s.SaveReport(ctx, "f01", report(2, true, t0.Add(5*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if got, _ := list(t0.Add(6*time.Hour), "", 10); fmt.Sprint(got) != "[f02 f04]" {
		t.Errorf("after f01 complied: %v, want [f02 f04]", got)
	}
	if err := s.DeleteDevice(ctx, "f02"); err != nil {
		t.Fatal(err)
	}
	if got, _ := list(t0.Add(6*time.Hour), "", 10); fmt.Sprint(got) != "[f04]" {
		t.Errorf("after deleting f02: %v, want [f04]", got)
	}
}
