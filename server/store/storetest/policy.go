package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// runPolicy is the conformance suite of OverrideStore, GroupStore and
// HistoryStore.
func runPolicy(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("GroupLifecycle", func(t *testing.T) { testGroupLifecycle(t, newStore(t)) })
	t.Run("GroupRefusals", func(t *testing.T) { testGroupRefusals(t, newStore(t)) })
	t.Run("GroupMembers", func(t *testing.T) { testGroupMembers(t, newStore(t)) })
	t.Run("GroupPriorityAndName", func(t *testing.T) { testGroupPriorityAndName(t, newStore(t)) })
	t.Run("UpdateOverride", func(t *testing.T) { testUpdateOverride(t, newStore(t)) })
	t.Run("History", func(t *testing.T) { testHistory(t, newStore(t)) })
	t.Run("Summary", func(t *testing.T) { testSummary(t, newStore(t)) })
}

func values(kv ...string) proto.SettingValues {
	v := proto.SettingValues{}
	for i := 0; i < len(kv); i += 2 {
		v[kv[i]] = json.RawMessage(kv[i+1])
	}
	return v
}

func mustDevice(t *testing.T, s store.Store, id string) store.Device {
	t.Helper()
	d, err := s.Device(context.Background(), id)
	if err != nil {
		t.Fatalf("Device(%s): %v", id, err)
	}
	return d
}

func changedIDs(ch []store.Change) []string {
	var ids []string
	for _, c := range ch {
		ids = append(ids, c.Device.ID)
	}
	slices.Sort(ids)
	return ids
}

func testGroupLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, id := range []string{"m1", "m2", "n1"} {
		mustCreate(t, s, NewDevice(id))
	}
	g := store.Group{ID: "g1", Name: "kiosks", Priority: 5, Layer: store.Layer{Values: values("cameraDisabled", "true")}, Members: []string{"m2", "m1", "m1"}}
	changes, err := s.CreateGroup(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if got := changedIDs(changes); !reflect.DeepEqual(got, []string{"m1", "m2"}) {
		t.Fatalf("CreateGroup changed %v, want [m1 m2]", got)
	}
	for _, c := range changes {
		if c.Device.Policy.Version != 2 {
			t.Errorf("change %+v: version %d, want 2", c, c.Device.Policy.Version)
		}
	}
	for _, id := range []string{"m1", "m2"} {
		d := mustDevice(t, s, id)
		if d.Policy.Version != 2 || !d.Policy.CameraDisabled || !reflect.DeepEqual(d.Groups, []string{"g1"}) {
			t.Errorf("member %s = %+v groups %v, want version 2 camera disabled in g1", id, d.Policy, d.Groups)
		}
	}
	if d := mustDevice(t, s, "n1"); d.Policy.Version != 1 || d.Policy.CameraDisabled || len(d.Groups) != 0 {
		t.Errorf("non-member changed: %+v", d)
	}
	got, err := s.Group(ctx, "g1")
	if err != nil || got.Name != "kiosks" || !reflect.DeepEqual(got.Members, []string{"m1", "m2"}) {
		t.Fatalf("Group = %+v, %v; want kiosks with sorted unique members", got, err)
	}

	// The same settings again bump nothing.
	_, changes, err = s.UpdateGroup(ctx, "g1", func(g store.Group) (store.Group, error) { return g, nil })
	if err != nil || len(changes) != 0 {
		t.Fatalf("no-op UpdateGroup changed %v, err %v", changedIDs(changes), err)
	}
	// A real edit bumps each member by exactly one.
	_, changes, err = s.UpdateGroup(ctx, "g1", func(g store.Group) (store.Group, error) {
		g.Values = values("cameraDisabled", "true", "passwordMinLength", "8")
		return g, nil
	})
	if err != nil || len(changes) != 2 {
		t.Fatalf("UpdateGroup changed %v, err %v; want both members", changedIDs(changes), err)
	}
	if d := mustDevice(t, s, "m1"); d.Policy.Version != 3 || d.Policy.PasswordMinLength == nil || *d.Policy.PasswordMinLength != 8 {
		t.Errorf("after edit m1 = %+v, want version 3 with passwordMinLength 8", d.Policy)
	}
	// change may refuse, and then nothing changes.
	refusal := errors.New("no")
	if _, _, err := s.UpdateGroup(ctx, "g1", func(g store.Group) (store.Group, error) { return g, refusal }); !errors.Is(err, refusal) {
		t.Fatalf("refused UpdateGroup err = %v", err)
	}

	// A higher-priority group wins; the device's own override wins over both.
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g2", Name: "open", Priority: 10, Layer: store.Layer{Values: values("cameraDisabled", "false")}, Members: []string{"m1"}}); err != nil {
		t.Fatal(err)
	}
	if d := mustDevice(t, s, "m1"); d.Policy.Version != 4 || d.Policy.CameraDisabled {
		t.Errorf("m1 under a higher group = %+v, want version 4 camera allowed", d.Policy)
	}
	if _, changed, err := s.UpdateOverride(ctx, "m1", func(l store.Layer) store.Layer {
		return store.Layer{Values: values("cameraDisabled", "true")}
	}); err != nil || !changed {
		t.Fatalf("UpdateOverride changed=%v err=%v", changed, err)
	}
	if d := mustDevice(t, s, "m1"); d.Policy.Version != 5 || !d.Policy.CameraDisabled {
		t.Errorf("m1 with override = %+v, want version 5 camera disabled", d.Policy)
	}

	groups, err := s.Groups(ctx)
	if err != nil || len(groups) != 2 || groups[0].ID != "g2" || groups[1].ID != "g1" {
		t.Fatalf("Groups = %+v, %v; want [g2 g1] in precedence order", groups, err)
	}

	// Deleting g2 changes nothing for m1 (its override decides the camera).
	changes, err = s.DeleteGroup(ctx, "g2")
	if err != nil || len(changes) != 0 {
		t.Fatalf("DeleteGroup(g2) changed %v err %v, want none", changedIDs(changes), err)
	}
	if d := mustDevice(t, s, "m1"); !reflect.DeepEqual(d.Groups, []string{"g1"}) || d.Policy.Version != 5 {
		t.Errorf("m1 after delete = %+v groups %v", d.Policy, d.Groups)
	}
	changes, err = s.DeleteGroup(ctx, "g1")
	if err != nil || !reflect.DeepEqual(changedIDs(changes), []string{"m1", "m2"}) {
		t.Fatalf("DeleteGroup(g1) changed %v err %v, want [m1 m2] (passwordMinLength unmanaged)", changedIDs(changes), err)
	}
	if _, err := s.Group(ctx, "g1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted group: %v", err)
	}
	if _, err := s.DeleteGroup(ctx, "g1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteGroup twice: %v", err)
	}
	// The name is free again.
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g3", Name: "kiosks"}); err != nil {
		t.Errorf("re-using a deleted group's name: %v", err)
	}
}

// testGroupPriorityAndName: a group's priority and name change after
// creation. Raising a group above another flips the winner of the setting
// both set for a device in both (one new version, in the change), reorders
// Groups, and is no policy revision; a rename keeps everything else.
func testGroupPriorityAndName(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("d1"))
	mustCreate(t, s, NewDevice("d2"))
	if _, err := s.CreateGroup(ctx, store.Group{ID: "lo", Name: "low", Priority: 1, Layer: store.Layer{Values: values("cameraDisabled", "true")}, Members: []string{"d1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{ID: "hi", Name: "high", Priority: 5, Layer: store.Layer{Values: values("cameraDisabled", "false")}, Members: []string{"d1", "d2"}}); err != nil {
		t.Fatal(err)
	}
	before := mustDevice(t, s, "d1")
	if before.Policy.CameraDisabled {
		t.Fatalf("d1 under high (5) over low (1) = %+v, want the camera allowed", before.Policy)
	}
	revs, err := s.Revisions(ctx, store.RevisionGroup, "lo")
	if err != nil {
		t.Fatal(err)
	}
	g, changes, err := s.UpdateGroup(ctx, "lo", func(g store.Group) (store.Group, error) { g.Priority = 10; return g, nil })
	if err != nil {
		t.Fatal(err)
	}
	if g.Priority != 10 || g.Name != "low" || !reflect.DeepEqual(g.Members, []string{"d1"}) {
		t.Errorf("UpdateGroup returned %+v", g)
	}
	if got := changedIDs(changes); !reflect.DeepEqual(got, []string{"d1"}) {
		t.Fatalf("raising low changed %v, want [d1] (d2 is not in it)", got)
	}
	if d := mustDevice(t, s, "d1"); !d.Policy.CameraDisabled || d.Policy.Version != before.Policy.Version+1 {
		t.Errorf("d1 after low rose to 10 = %+v, want the camera disabled at version %d", d.Policy, before.Policy.Version+1)
	}
	if d := mustDevice(t, s, "d2"); d.Policy.CameraDisabled {
		t.Errorf("d2 (only in high) changed: %+v", d.Policy)
	}
	gs, err := s.Groups(ctx)
	if err != nil || len(gs) != 2 || gs[0].ID != "lo" || gs[1].ID != "hi" {
		t.Fatalf("Groups after the change = %+v, %v; want [lo hi]", gs, err)
	}
	if got, err := s.Group(ctx, "lo"); err != nil || got.Priority != 10 {
		t.Errorf("Group(lo) = %+v, %v; want priority 10 kept", got, err)
	}
	if after, err := s.Revisions(ctx, store.RevisionGroup, "lo"); err != nil || len(after) != len(revs) {
		t.Errorf("a priority change made revisions %d -> %d (%v); it is not a policy change", len(revs), len(after), err)
	}

	// A rename with the same priority changes no device.
	g, changes, err = s.UpdateGroup(ctx, "lo", func(g store.Group) (store.Group, error) { g.Name = "lowest"; return g, nil })
	if err != nil || len(changes) != 0 || g.Name != "lowest" || g.Priority != 10 {
		t.Fatalf("rename: %+v changed %v, err %v", g, changedIDs(changes), err)
	}
	// The old name is free, the new one taken.
	if _, err := s.CreateGroup(ctx, store.Group{ID: "x", Name: "low"}); err != nil {
		t.Errorf("re-using the old name: %v", err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{ID: "y", Name: "lowest"}); !errors.Is(err, store.ErrNameTaken) {
		t.Errorf("the new name: err %v, want ErrNameTaken", err)
	}
}

func testGroupRefusals(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("d1"))
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g1", Name: "a", Layer: store.Layer{Values: values("cameraDisabled", "true")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g2", Name: "a"}); !errors.Is(err, store.ErrNameTaken) {
		t.Errorf("duplicate name err = %v, want ErrNameTaken", err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g1", Name: "b"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("duplicate id err = %v, want ErrExists", err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g3", Name: "c", Members: []string{"d1", "ghost"}}); !errors.Is(err, store.ErrUnknownDevice) {
		t.Errorf("unknown member err = %v, want ErrUnknownDevice", err)
	}
	if _, err := s.Group(ctx, "g3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused group was stored: %v", err)
	}
	if _, _, err := s.SetGroupMembers(ctx, "g1", []string{"d1", "ghost"}); !errors.Is(err, store.ErrUnknownDevice) {
		t.Errorf("SetGroupMembers(unknown) err = %v, want ErrUnknownDevice", err)
	}
	if d := mustDevice(t, s, "d1"); d.Policy.Version != 1 || len(d.Groups) != 0 {
		t.Errorf("refused membership changed the device: %+v %v", d.Policy, d.Groups)
	}
	if _, _, err := s.SetGroupMembers(ctx, "nope", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetGroupMembers(unknown group) err = %v", err)
	}
	if _, _, err := s.UpdateGroup(ctx, "nope", func(g store.Group) (store.Group, error) { return g, nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateGroup(unknown) err = %v", err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g4", Name: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UpdateGroup(ctx, "g4", func(g store.Group) (store.Group, error) { g.Name = "a"; return g, nil }); !errors.Is(err, store.ErrNameTaken) {
		t.Errorf("rename to a taken name err = %v", err)
	}
	if _, _, err := s.UpdateOverride(ctx, "nope", func(l store.Layer) store.Layer { return l }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateOverride(unknown) err = %v", err)
	}
	if _, err := s.History(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("History(unknown) err = %v", err)
	}
}

func testGroupMembers(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 60
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("d%03d", i)
		ids = append(ids, id)
		mustCreate(t, s, NewDevice(id))
	}
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g", Name: "half", Layer: store.Layer{Values: values("cameraDisabled", "true")}}); err != nil {
		t.Fatal(err)
	}
	_, changes, err := s.SetGroupMembers(ctx, "g", ids[:n/2])
	if err != nil || len(changes) != n/2 {
		t.Fatalf("SetGroupMembers changed %d err %v, want %d", len(changes), err, n/2)
	}
	// Replace: the first ten leave, ten new ones join, the rest stay as is.
	next := append(slices.Clone(ids[10:n/2]), ids[n/2:n/2+10]...)
	g, changes, err := s.SetGroupMembers(ctx, "g", next)
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(ids[:10]), ids[n/2:n/2+10]...)
	if got := changedIDs(changes); !reflect.DeepEqual(got, want) {
		t.Fatalf("replace changed %v, want %v", got, want)
	}
	if len(g.Members) != len(next) {
		t.Errorf("members = %d, want %d", len(g.Members), len(next))
	}
	for i, id := range ids {
		d := mustDevice(t, s, id)
		member := i >= 10 && i < n/2+10
		wantVersion := int64(1)
		switch {
		case i < 10:
			wantVersion = 3 // joined, then left
		case member:
			wantVersion = 2
		}
		if d.Policy.CameraDisabled != member || d.Policy.Version != wantVersion || slices.Contains(d.Groups, "g") != member {
			t.Errorf("%s: camera %v version %d groups %v; want member=%v version %d", id, d.Policy.CameraDisabled, d.Policy.Version, d.Groups, member, wantVersion)
		}
	}
	// The same list again changes nothing.
	if _, changes, err := s.SetGroupMembers(ctx, "g", next); err != nil || len(changes) != 0 {
		t.Errorf("same members again changed %d, err %v", len(changes), err)
	}
}

func testUpdateOverride(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, NewDevice("o1"))
	set := func(l store.Layer) func(store.Layer) store.Layer { return func(store.Layer) store.Layer { return l } }
	c, changed, err := s.UpdateOverride(ctx, "o1", set(store.Layer{Values: values("passwordMinLength", "6")}))
	d := c.Device
	if err != nil || !changed || d.Policy.Version != 2 || d.Policy.PasswordMinLength == nil || *d.Policy.PasswordMinLength != 6 || d.Policy.CameraDisabled {
		t.Fatalf("override = %+v changed=%v err=%v", d.Policy, changed, err)
	}
	// Managing the camera at its default value changes the source, not the policy.
	c, changed, err = s.UpdateOverride(ctx, "o1", set(store.Layer{Values: values("passwordMinLength", "6", "cameraDisabled", "false")}))
	d = c.Device
	if err != nil || changed || d.Policy.Version != 2 {
		t.Fatalf("same effective policy: version %d changed=%v err=%v", d.Policy.Version, changed, err)
	}
	if got := mustDevice(t, s, "o1").Override.Values; len(got) != 2 {
		t.Errorf("override not stored: %v", got)
	}
	// A mode is part of the policy.
	c, changed, err = s.UpdateOverride(ctx, "o1", set(store.Layer{Values: values("passwordMinLength", "6"), Modes: map[string]proto.Mode{"passwordMinLength": proto.ModeMonitor}}))
	d = c.Device
	if err != nil || !changed || d.Policy.Version != 3 || !reflect.DeepEqual(d.Policy.Monitor, []string{"passwordMinLength"}) {
		t.Fatalf("monitor = %+v changed=%v err=%v", d.Policy, changed, err)
	}
	// Un-managing a setting removes it from the policy.
	c, changed, err = s.UpdateOverride(ctx, "o1", set(store.Layer{}))
	d = c.Device
	if err != nil || !changed || d.Policy.Version != 4 || d.Policy.PasswordMinLength != nil || d.Policy.Monitor != nil {
		t.Fatalf("unmanaged = %+v changed=%v err=%v", d.Policy, changed, err)
	}
}

func report(v int64, camera bool, at time.Time) store.Report {
	return store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: v, Settings: proto.Settings{CameraDisabled: camera}}, ReceivedAt: at}
}

func testHistory(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := NewDevice("h1")
	mustCreate(t, s, d)
	t0 := d.EnrolledAt
	if _, err := s.SaveReport(ctx, "h1", report(1, false, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	// The same state again is no transition.
	if _, err := s.SaveReport(ctx, "h1", report(1, false, t0.Add(2*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UpdateOverride(ctx, "h1", setCamera(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveReport(ctx, "h1", report(2, false, t0.Add(3*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveReport(ctx, "h1", report(2, true, t0.Add(4*time.Minute))); err != nil {
		t.Fatal(err)
	}
	ts, err := s.History(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		from, to proto.ComplianceState
		cause    proto.EventCause
	}
	want := []step{
		{"", proto.StateUnknown, proto.CauseEnroll},
		{proto.StateUnknown, proto.StateCompliant, proto.CauseReport},
		{proto.StateCompliant, proto.StateStale, proto.CauseEdit},
		{proto.StateStale, proto.StateNonCompliant, proto.CauseReport},
		{proto.StateNonCompliant, proto.StateCompliant, proto.CauseReport},
	}
	var got []step
	for _, tr := range ts {
		got = append(got, step{tr.From, tr.To, tr.Cause})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("history = %+v, want %+v", got, want)
	}
	if !ts[0].At.Equal(t0) || !ts[3].At.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("times = %v, %v; want enrolment and report times", ts[0].At, ts[3].At)
	}
	if len(ts[3].Failing) != 1 || ts[3].Failing[0].Setting != "cameraDisabled" {
		t.Errorf("non-compliant transition failing = %+v, want cameraDisabled", ts[3].Failing)
	}

	// Retention: only the newest HistoryLimit are kept.
	for i := 0; i < store.HistoryLimit; i++ {
		if _, err := s.SaveReport(ctx, "h1", report(2, i%2 == 0, t0.Add(time.Hour+time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	ts, err = s.History(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != store.HistoryLimit {
		t.Fatalf("kept %d transitions, want %d", len(ts), store.HistoryLimit)
	}
	if last := ts[len(ts)-1]; !last.At.Equal(t0.Add(time.Hour+time.Duration(store.HistoryLimit-1)*time.Second)) || last.To != proto.StateNonCompliant { // i = HistoryLimit-1 is odd: camera allowed
		t.Errorf("newest = %+v", last)
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].At.Before(ts[i-1].At) {
			t.Fatalf("history not oldest first at %d", i)
		}
	}
}

func testSummary(t *testing.T, s store.Store) {
	ctx := context.Background()
	check := func(what string, counts map[proto.ComplianceState]int64, drift []proto.DriftingSetting) {
		t.Helper()
		sum, err := s.Summary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range proto.States {
			if sum.Counts[st] != counts[st] {
				t.Errorf("%s: counts = %v, want %v", what, sum.Counts, counts)
				break
			}
		}
		if len(sum.Counts) != len(proto.States) {
			t.Errorf("%s: counts has %d states, want all %d", what, len(sum.Counts), len(proto.States))
		}
		if drift == nil {
			drift = []proto.DriftingSetting{}
		}
		if !reflect.DeepEqual(sum.DriftingSettings, drift) {
			t.Errorf("%s: drifting = %+v, want %+v", what, sum.DriftingSettings, drift)
		}
	}
	check("empty", nil, nil)
	for _, id := range []string{"s1", "s2", "s3"} {
		mustCreate(t, s, NewDevice(id))
	}
	check("enrolled", map[proto.ComplianceState]int64{proto.StateUnknown: 3}, nil)
	now := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	s.SaveReport(ctx, "s1", report(1, false, now))
	s.SaveReport(ctx, "s2", report(1, true, now))
	check("reported", map[proto.ComplianceState]int64{proto.StateUnknown: 1, proto.StateCompliant: 1, proto.StateNonCompliant: 1},
		[]proto.DriftingSetting{{Setting: "cameraDisabled", Devices: 1}})
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g", Name: "g", Layer: store.Layer{Values: values("passwordMinLength", "8")}, Members: []string{"s1", "s2"}}); err != nil {
		t.Fatal(err)
	}
	check("group edit", map[proto.ComplianceState]int64{proto.StateUnknown: 1, proto.StateStale: 2}, nil)
	s.SaveReport(ctx, "s1", report(2, false, now))
	s.SaveReport(ctx, "s2", report(2, true, now))
	check("drifting", map[proto.ComplianceState]int64{proto.StateUnknown: 1, proto.StateNonCompliant: 2},
		[]proto.DriftingSetting{{Setting: "passwordMinLength", Devices: 2}, {Setting: "cameraDisabled", Devices: 1}})
}
