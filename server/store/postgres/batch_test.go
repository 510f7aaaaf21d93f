package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestBatchedGroupEdits runs group edits whose members span several
// batches (of 4 rows here, 1,000 in production): every member is locked,
// recomputed and written once, and memberships, versions, history and
// counters come out as with one batch.
func TestBatchedGroupEdits(t *testing.T) {
	defer postgres.SetBatchSize(4)()
	s := open(t, migrated(t))
	ctx := context.Background()
	var ids []string
	for i := range 23 {
		id := fmt.Sprintf("d%02d", i)
		ids = append(ids, id)
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
	}
	changes, err := s.CreateGroup(ctx, store.Group{ID: "g", Name: "g", Layer: store.Layer{Values: proto.SettingValues{"cameraDisabled": []byte("true")}}, Members: ids})
	if err != nil || len(changes) != len(ids) {
		t.Fatalf("CreateGroup: %d changes, %v; want %d", len(changes), err, len(ids))
	}
	_, changes, err = s.UpdateGroup(ctx, "g", func(g store.Group) (store.Group, error) {
		g.Values = proto.SettingValues{"cameraDisabled": []byte("true"), "passwordMinLength": []byte("6")}
		return g, nil
	})
	if err != nil || len(changes) != len(ids) {
		t.Fatalf("UpdateGroup: %d changes, %v", len(changes), err)
	}
	// Keep the odd ones.
	var odd []string
	for i, id := range ids {
		if i%2 == 1 {
			odd = append(odd, id)
		}
	}
	g, changes, err := s.SetGroupMembers(ctx, "g", odd)
	if err != nil || len(changes) != len(ids)-len(odd) || !slices.Equal(g.Members, odd) {
		t.Fatalf("SetGroupMembers: %d changes, members %v, %v", len(changes), g.Members, err)
	}
	for i, id := range ids {
		d, err := s.Device(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		member := i%2 == 1
		want := int64(3)
		if !member {
			want = 4
		}
		if d.Policy.Version != want || d.Policy.CameraDisabled != member || slices.Contains(d.Groups, "g") != member {
			t.Errorf("%s: version %d camera %v groups %v; want version %d member %v", id, d.Policy.Version, d.Policy.CameraDisabled, d.Groups, want, member)
		}
		// Enrolled UNKNOWN, and UNKNOWN it stays without a report: one
		// transition, not one per batch or per edit.
		if h, err := s.History(ctx, id); err != nil || len(h) != 1 {
			t.Errorf("%s: history %+v, %v; want the enrollment only", id, h, err)
		}
	}
	if got, _ := s.Group(ctx, "g"); !slices.Equal(got.Members, odd) {
		t.Errorf("stored members %v, want %v", got.Members, odd)
	}
	changes, err = s.DeleteGroup(ctx, "g")
	if err != nil || len(changes) != len(odd) {
		t.Fatalf("DeleteGroup: %d changes, %v; want %d", len(changes), err, len(odd))
	}
	sum, err := s.Summary(ctx)
	if err != nil || sum.Counts[proto.StateUnknown] != int64(len(ids)) {
		t.Errorf("summary %+v, %v; want %d unknown", sum.Counts, err, len(ids))
	}
}
