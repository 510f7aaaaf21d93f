package policy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// TestApply: what every backend does to a device it writes, step by step
// through an enrollment, a first report, an edit, a failing report, a report that changes
// nothing, and a fixing report.
func TestApply(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	d := store.Device{ID: "d", Policy: proto.DevicePolicy{Version: 1}}
	w := Apply(nil, &d, proto.CauseEnroll, t0)
	if d.Rev != 1 || w.Change.Device.Rev != 1 || !d.PolicyChangedAt.IsZero() {
		t.Fatalf("enroll: rev %d, policyChangedAt %v", d.Rev, d.PolicyChangedAt)
	}
	if len(w.Change.Transitions) != 1 || w.Change.Transitions[0].Cause != proto.CauseEnroll || !w.Counted(true) {
		t.Fatalf("enroll: %+v", w)
	}

	steps := []struct {
		name       string
		change     func(*store.Device)
		cause      proto.EventCause
		wantState  proto.ComplianceState
		transition bool
		counted    bool
		bumped     bool
	}{
		{"first report", func(d *store.Device) {
			d.Report = &store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1, Compliant: true}}
		}, proto.CauseReport, proto.StateCompliant, true, true, false},
		{"edit", func(d *store.Device) {
			d.Override = store.Layer{Values: proto.SettingValues{proto.SettingCameraDisabled: json.RawMessage("true")}}
			Recompute(d, nil)
		}, proto.CauseEdit, proto.StateStale, true, true, true},
		{"failing report", func(d *store.Device) {
			d.Report = &store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 2, Settings: proto.Settings{CameraDisabled: false}}}
		}, proto.CauseReport, proto.StateNonCompliant, true, true, false},
		{"same report", func(d *store.Device) {}, proto.CauseReport, proto.StateNonCompliant, false, false, false},
		{"fixing report", func(d *store.Device) {
			d.Report = &store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 2, Settings: proto.Settings{CameraDisabled: true}, Compliant: true}}
		}, proto.CauseReport, proto.StateCompliant, true, true, false},
	}
	for i, s := range steps {
		at := t0.Add(time.Duration(i+1) * time.Minute)
		before := d
		s.change(&d)
		w := Apply(&before, &d, s.cause, at)
		if d.Rev != before.Rev+1 || w.Change.Device.Rev != d.Rev {
			t.Errorf("%s: rev %d after %d", s.name, d.Rev, before.Rev)
		}
		if w.Change.State != s.wantState || w.From != mustState(before) {
			t.Errorf("%s: %s -> %s, want -> %s", s.name, w.From, w.Change.State, s.wantState)
		}
		if got := len(w.Change.Transitions) == 1; got != s.transition {
			t.Errorf("%s: transition recorded %v, want %v", s.name, got, s.transition)
		}
		if w.Counted(false) != s.counted {
			t.Errorf("%s: counted %v, want %v", s.name, w.Counted(false), s.counted)
		}
		if bumped := d.PolicyChangedAt.Equal(at); bumped != s.bumped {
			t.Errorf("%s: policyChangedAt %v at %v", s.name, d.PolicyChangedAt, at)
		}
	}
	if !d.NonCompliantSince.IsZero() || d.FailingSince != nil {
		t.Errorf("compliant device keeps nonCompliantSince %v / failingSince %v", d.NonCompliantSince, d.FailingSince)
	}
}

func mustState(d store.Device) proto.ComplianceState {
	st, _ := Derive(d)
	return st
}

// TestRegroup: membership follows member(id); the device must be written
// when its membership or policy changed, and only its policy change bumps
// the version.
func TestRegroup(t *testing.T) {
	g := store.Group{ID: "g1", Name: "kiosks", Layer: store.Layer{Values: proto.SettingValues{proto.SettingCameraDisabled: json.RawMessage("true")}}}
	empty := store.Group{ID: "g2", Name: "empty"}
	all := map[string]store.Group{g.ID: g, empty.ID: empty}
	d := store.Device{ID: "d", Policy: proto.DevicePolicy{Version: 1}}
	Recompute(&d, nil)
	v := d.Policy.Version
	in := func(string) bool { return true }
	out := func(string) bool { return false }
	if changed, write := Regroup(&d, all, empty.ID, in); changed || !write || d.Policy.Version != v {
		t.Fatalf("joining an empty group: changed %v write %v version %d", changed, write, d.Policy.Version)
	}
	if changed, write := Regroup(&d, all, g.ID, in); !changed || !write || d.Policy.Version != v+1 || !d.Policy.CameraDisabled {
		t.Fatalf("joining g1: changed %v write %v policy %+v", changed, write, d.Policy)
	}
	if changed, write := Regroup(&d, all, g.ID, in); changed || write {
		t.Fatalf("joining g1 again: changed %v write %v", changed, write)
	}
	if changed, write := Regroup(&d, all, "", nil); changed || write {
		t.Fatalf("recomputing unchanged groups: changed %v write %v", changed, write)
	}
	Regroup(&d, all, g.ID, out)
	if changed, write := Regroup(&d, all, empty.ID, out); changed || !write || d.Groups != nil {
		t.Fatalf("leaving every group: changed %v write %v groups %v", changed, write, d.Groups)
	}
}
