package bolt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// items counts a part's items as DumpParts does, and returns the weight of
// its heaviest single item.
func items(d store.Dump) (n, heaviest int) {
	add := func(w int) {
		n += w
		heaviest = max(heaviest, w)
	}
	for _, dev := range d.Devices {
		add(1 + len(d.History[dev.ID]))
	}
	for range len(d.Groups) + len(d.OperatorTokens) + len(d.EnrollmentTokens) + len(d.Audit) + len(d.Inventories) + len(d.Commands) {
		add(1)
	}
	for _, lr := range d.Revisions {
		add(max(1, len(lr.Revisions)))
	}
	for _, steps := range d.Escalations {
		add(max(1, len(steps)))
	}
	return n, heaviest
}

// TestDumpParts: a fleet dumped in parts comes in parts no bigger than
// asked (give or take the item that filled one), several of them, in load
// order, and together they are exactly the one-piece Dump.
func TestDumpParts(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var ids []string
	for i := range 23 {
		id := fmt.Sprintf("d%02d", i)
		ids = append(ids, id)
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
		// Every third device drifts and gets a transition, with an audit
		// entry and a revision.
		if i%3 == 0 {
			actx := store.WithAudit(ctx, proto.AuditEntry{Actor: "admin", Action: "policy.update", Target: id})
			if _, _, err := s.UpdateOverride(actx, id, func(store.Layer) store.Layer {
				return store.Layer{Values: proto.SettingValues{"cameraDisabled": json.RawMessage("true")}}
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for g := range 4 {
		if _, err := s.CreateGroup(ctx, store.Group{ID: fmt.Sprintf("g%d", g), Name: fmt.Sprintf("group %d", g), Members: ids[g*5 : g*5+5]}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateCommands(ctx, []proto.Command{storetest.NewCommand("d01", proto.CommandReboot, 0), storetest.NewCommand("d02", proto.CommandLock, 1)}); err != nil {
		t.Fatal(err)
	}
	whole, err := s.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}

	const size = 5
	var merged store.Dump
	parts := 0
	if err := s.DumpParts(ctx, size, func(p store.Dump) error {
		parts++
		n, heaviest := items(p)
		if n == 0 || n > size-1+heaviest {
			t.Errorf("part %d holds %d items, want 1 to %d", parts, n, size-1+heaviest)
		}
		merged.Devices = append(merged.Devices, p.Devices...)
		for id, h := range p.History {
			if merged.History == nil {
				merged.History = map[string][]proto.Transition{}
			}
			if _, dup := merged.History[id]; dup {
				t.Errorf("history of %s split over two parts", id)
			}
			merged.History[id] = h
		}
		merged.Groups = append(merged.Groups, p.Groups...)
		merged.OperatorTokens = append(merged.OperatorTokens, p.OperatorTokens...)
		merged.EnrollmentTokens = append(merged.EnrollmentTokens, p.EnrollmentTokens...)
		merged.Audit = append(merged.Audit, p.Audit...)
		merged.Inventories = append(merged.Inventories, p.Inventories...)
		merged.Commands = append(merged.Commands, p.Commands...)
		merged.Revisions = append(merged.Revisions, p.Revisions...)
		// A device's part comes before any part holding what refers to it.
		for _, g := range p.Groups {
			for _, m := range g.Members {
				if !containsDevice(merged.Devices, m) {
					t.Errorf("group %s's member %s comes before the device", g.ID, m)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if parts < 8 {
		t.Errorf("%d parts of at most %d items, want at least 8 for %d devices and the rest", parts, size, len(ids))
	}
	if len(whole.Devices) != len(ids) || len(whole.Groups) != 4 || len(whole.Commands) != 2 || len(whole.Audit) == 0 || len(whole.History) == 0 || len(whole.Revisions) == 0 {
		t.Fatalf("the one-piece dump misses things: %d devices, %d groups, %d commands, %d audit, %d histories, %d revision lists",
			len(whole.Devices), len(whole.Groups), len(whole.Commands), len(whole.Audit), len(whole.History), len(whole.Revisions))
	}
	if !reflect.DeepEqual(merged, whole) {
		t.Errorf("the parts together differ from the dump:\n%+v\nwant\n%+v", merged, whole)
	}

	// An error from yield stops the dump there.
	stop := fmt.Errorf("stop")
	calls := 0
	if err := s.DumpParts(ctx, size, func(store.Dump) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("DumpParts after a failing yield = %v after %d calls, want stop after 1", err, calls)
	}
}

func containsDevice(ds []store.Device, id string) bool {
	for _, d := range ds {
		if d.ID == id {
			return true
		}
	}
	return false
}
