package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// runRevisions is the conformance suite of RevisionStore: every change of a
// group's policy or a device's own layer is a revision, recorded with the
// change.
func runRevisions(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("GroupRevisions", func(t *testing.T) { testGroupRevisions(t, newStore(t)) })
	t.Run("DeviceRevisions", func(t *testing.T) { testDeviceRevisions(t, newStore(t)) })
	t.Run("FailingSince", func(t *testing.T) { testFailingSince(t, newStore(t)) })
	t.Run("Escalations", func(t *testing.T) { testEscalations(t, newStore(t)) })
}

func testGroupRevisions(t *testing.T, s store.Store) {
	ctx := store.WithAudit(context.Background(), proto.AuditEntry{Actor: "alice", Action: "group.create"})
	mustCreate(t, s, NewDevice("d1"))
	if revs, err := s.Revisions(ctx, store.RevisionGroup, "g1"); err != nil || len(revs) != 0 {
		t.Fatalf("revisions of an unknown group: %v, %v", revs, err)
	}
	g := store.Group{ID: "g1", Name: "laptops", Layer: store.Layer{Values: values("cameraDisabled", "true")}, Members: []string{"d1"}}
	if _, err := s.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	edit := func(actor string, l store.Layer, mode proto.Mode) {
		t.Helper()
		ctx := store.WithAudit(context.Background(), proto.AuditEntry{Actor: actor, Action: "group.policy"})
		if _, _, err := s.UpdateGroup(ctx, "g1", func(g store.Group) (store.Group, error) {
			g.Layer, g.Mode = l, mode
			return g, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	edit("bob", store.Layer{Values: values("cameraDisabled", "false", "sshPasswordAuthDisabled", "true")}, "")
	edit("bob", store.Layer{Values: values("cameraDisabled", "false", "sshPasswordAuthDisabled", "true")}, "") // no change: no revision
	edit("carol", store.Layer{Values: values("cameraDisabled", "false"), Modes: map[string]proto.Mode{"cameraDisabled": proto.ModeMonitor}}, proto.ModeMonitor)
	// A rename is not a policy change.
	if _, _, err := s.UpdateGroup(context.Background(), "g1", func(g store.Group) (store.Group, error) { g.Name = "notebooks"; return g, nil }); err != nil {
		t.Fatal(err)
	}

	revs, err := s.Revisions(ctx, store.RevisionGroup, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 3 {
		t.Fatalf("%d revisions, want 3: %+v", len(revs), revs)
	}
	if revs[0].N != 3 || revs[1].N != 2 || revs[2].N != 1 {
		t.Fatalf("revisions not newest first: %d %d %d", revs[0].N, revs[1].N, revs[2].N)
	}
	if revs[2].Actor != "alice" || revs[1].Actor != "bob" || revs[0].Actor != "carol" {
		t.Errorf("actors %q %q %q", revs[2].Actor, revs[1].Actor, revs[0].Actor)
	}
	if got := show(revs[1].Changes); got != `[{"setting":"cameraDisabled","from":true,"to":false},{"setting":"sshPasswordAuthDisabled","from":null,"to":true}]` {
		t.Errorf("revision 2 changes %s", got)
	}
	if got := show(revs[0].Changes); got != `[{"setting":"sshPasswordAuthDisabled","from":true,"to":null},{"setting":"modes.cameraDisabled","from":null,"to":"monitor"},{"setting":"mode","from":null,"to":"monitor"}]` {
		t.Errorf("revision 3 changes %s", got)
	}
	r1, err := s.Revision(ctx, store.RevisionGroup, "g1", 1)
	if err != nil || show(r1.Layer.Values) != `{"cameraDisabled":true}` || r1.At.IsZero() {
		t.Errorf("Revision 1 = %+v, %v", r1, err)
	}
	for _, n := range []int64{0, 4, -1} {
		if _, err := s.Revision(ctx, store.RevisionGroup, "g1", n); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Revision %d: %v, want ErrNotFound", n, err)
		}
	}

	// Restoring revision 1 is a new revision 4: numbers only grow.
	edit("dave", r1.Layer, r1.Mode)
	revs, _ = s.Revisions(ctx, store.RevisionGroup, "g1")
	if revs[0].N != 4 || show(revs[0].Layer.Values) != `{"cameraDisabled":true}` || revs[0].Mode != "" {
		t.Errorf("after restoring 1: %+v", revs[0])
	}
}

func testDeviceRevisions(t *testing.T, s store.Store) {
	ctx := store.WithAudit(context.Background(), proto.AuditEntry{Actor: "alice", Action: "policy.update"})
	mustCreate(t, s, NewDevice("d1"))
	set := func(kv ...string) {
		t.Helper()
		if _, _, err := s.UpdateOverride(ctx, "d1", func(store.Layer) store.Layer { return store.Layer{Values: values(kv...)} }); err != nil {
			t.Fatal(err)
		}
	}
	set("cameraDisabled", "true")
	set("cameraDisabled", "true") // unchanged
	set("cameraDisabled", "true", "autoUpdatesEnabled", "true")
	revs, err := s.Revisions(ctx, store.RevisionDevice, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 2 || revs[0].N != 2 || show(revs[0].Changes) != `[{"setting":"autoUpdatesEnabled","from":null,"to":true}]` || revs[0].Actor != "alice" {
		t.Fatalf("device revisions %+v", revs)
	}
	// Groups and devices are apart.
	if revs, _ := s.Revisions(ctx, store.RevisionGroup, "d1"); len(revs) != 0 {
		t.Errorf("group revisions under a device id: %+v", revs)
	}
	// An unknown device's edit fails and records nothing.
	if _, _, err := s.UpdateOverride(ctx, "nope", func(store.Layer) store.Layer { return store.Layer{Values: values("cameraDisabled", "true")} }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown device: %v", err)
	}
	if revs, _ := s.Revisions(ctx, store.RevisionDevice, "nope"); len(revs) != 0 {
		t.Errorf("revisions of an unknown device: %+v", revs)
	}
}

// show renders v as JSON, for comparisons.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
