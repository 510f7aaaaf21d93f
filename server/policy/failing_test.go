package policy

import (
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

func TestTrackFailing(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	fail := func(names ...string) []proto.SettingFailure {
		var out []proto.SettingFailure
		for _, n := range names {
			out = append(out, proto.SettingFailure{Setting: n})
		}
		return out
	}
	var d store.Device
	TrackFailing(nil, &d, proto.StateUnknown, nil, t0)
	if !d.NonCompliantSince.IsZero() || d.FailingSince != nil {
		t.Fatalf("new device: %+v", d)
	}
	steps := []struct {
		name    string
		to      proto.ComplianceState
		failing []string
		at      time.Duration
		since   time.Duration // -1: zero
		per     map[string]time.Duration
	}{
		{"fails a setting", proto.StateNonCompliant, []string{"packages"}, time.Hour, time.Hour, map[string]time.Duration{"packages": time.Hour}},
		{"fails another too", proto.StateNonCompliant, []string{"packages", "firewallEnabled"}, 2 * time.Hour, time.Hour, map[string]time.Duration{"packages": time.Hour, "firewallEnabled": 2 * time.Hour}},
		{"an edit keeps both", proto.StateStale, nil, 3 * time.Hour, time.Hour, map[string]time.Duration{"packages": time.Hour, "firewallEnabled": 2 * time.Hour}},
		{"one fixed", proto.StateNonCompliant, []string{"firewallEnabled"}, 4 * time.Hour, time.Hour, map[string]time.Duration{"firewallEnabled": 2 * time.Hour}},
		{"compliant clears", proto.StateCompliant, nil, 5 * time.Hour, -1, nil},
		{"fails again: a new start", proto.StateNonCompliant, []string{"packages"}, 6 * time.Hour, 6 * time.Hour, map[string]time.Duration{"packages": 6 * time.Hour}},
	}
	for _, s := range steps {
		before := d
		TrackFailing(&before, &d, s.to, fail(s.failing...), t0.Add(s.at))
		if s.since < 0 {
			if !d.NonCompliantSince.IsZero() || len(d.FailingSince) != 0 {
				t.Fatalf("%s: %+v %v", s.name, d.NonCompliantSince, d.FailingSince)
			}
			continue
		}
		if !d.NonCompliantSince.Equal(t0.Add(s.since)) {
			t.Fatalf("%s: nonCompliantSince %v, want %v", s.name, d.NonCompliantSince, t0.Add(s.since))
		}
		if len(d.FailingSince) != len(s.per) {
			t.Fatalf("%s: failingSince %v", s.name, d.FailingSince)
		}
		for n, at := range s.per {
			if !d.FailingSince[n].Equal(t0.Add(at)) {
				t.Fatalf("%s: failingSince[%s] = %v, want %v", s.name, n, d.FailingSince[n], t0.Add(at))
			}
		}
	}
}

func TestEffectiveGuided(t *testing.T) {
	g := store.Group{ID: "g1", Name: "laptops", Layer: store.Layer{Values: proto.SettingValues{"packages": []byte(`[]`), "firewallEnabled": []byte("true")},
		Modes: map[string]proto.Mode{"packages": proto.ModeGuided}, Deadline: "48h"}}
	d := store.Device{}
	if !Recompute(&d, []store.Group{g}) {
		t.Fatal("no change")
	}
	if len(d.Policy.Guided) != 1 || d.Policy.Guided["packages"] != "48h" {
		t.Fatalf("guided %v", d.Policy.Guided)
	}
	// The device's own mode wins, with its own deadline (default 72h).
	d.Override = store.Layer{Modes: map[string]proto.Mode{"firewallEnabled": proto.ModeGuided}}
	v := d.Policy.Version
	if !Recompute(&d, []store.Group{g}) || d.Policy.Version != v+1 {
		t.Fatal("a new guided setting did not bump the version")
	}
	if d.Policy.Guided["firewallEnabled"] != DefaultGuidedDeadline || d.Policy.Guided["packages"] != "48h" {
		t.Fatalf("guided %v", d.Policy.Guided)
	}
	// A deadline change alone is a policy change.
	g.Deadline = "24h"
	if !Recompute(&d, []store.Group{g}) || d.Policy.Guided["packages"] != "24h" {
		t.Fatalf("deadline change: %v", d.Policy.Guided)
	}
	if Recompute(&d, []store.Group{g}) {
		t.Fatal("recomputing an unchanged policy bumped it")
	}
}
