// Package collectortest is the conformance suite every agent.Collector
// runs, so each implementation is held to the same contract.
package collectortest

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Run tests the Collector contract against collectors made by
// newCollector, one per subtest, each reading the same device.
//
// The contract: Collect succeeds and returns at least one section, within
// the proto limits (Validate); collecting twice gives the same hashes (lists
// sorted, nothing random), so an unchanged device uploads nothing; the
// inventory survives its JSON sections form unchanged (what the mobile
// facade carries); lists are sorted (packages by name, units by name, users
// by uid); a canceled context returns its error and no sections.
func Run(t *testing.T, newCollector func(t *testing.T) agent.Collector) {
	t.Helper()
	collect := func(t *testing.T, c agent.Collector) proto.Inventory {
		t.Helper()
		inv, err := c.Collect(t.Context())
		if err != nil {
			t.Fatalf("Collect: %v", err)
		}
		return inv
	}

	t.Run("valid", func(t *testing.T) {
		inv := collect(t, newCollector(t))
		if len(inv.Present()) == 0 {
			t.Fatal("Collect returned no section")
		}
		if err := inv.Validate(); err != nil {
			t.Fatalf("the inventory breaks the contract's limits: %v", err)
		}
		if up := (proto.InventoryUpload{Hashes: inv.Hashes(), Inventory: inv}); up.Validate() != nil {
			t.Fatalf("a full upload of it is invalid: %v", up.Validate())
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		c := newCollector(t)
		a, b := collect(t, c).Hashes(), collect(t, c).Hashes()
		if !maps.Equal(a, b) {
			for s := range a {
				if a[s] != b[s] {
					t.Errorf("section %s changed between two collections of the same device", s)
				}
			}
		}
	})

	t.Run("JSON sections round trip", func(t *testing.T) {
		inv := collect(t, newCollector(t))
		b, err := json.Marshal(inv)
		if err != nil {
			t.Fatal(err)
		}
		back, err := proto.ParseInventory(b)
		if err != nil {
			t.Fatalf("its JSON sections do not parse: %v", err)
		}
		if !maps.Equal(back.Hashes(), inv.Hashes()) {
			t.Fatal("the inventory changed through its JSON sections")
		}
	})

	t.Run("sorted", func(t *testing.T) {
		inv := collect(t, newCollector(t))
		if p := inv.Packages; p != nil && !slices.IsSortedFunc(p.Packages, func(a, b proto.InventoryPackage) int { return strings.Compare(a.Name, b.Name) }) {
			t.Error("packages are not sorted by name")
		}
		if u := inv.Units; u != nil && !slices.IsSortedFunc(u.Units, func(a, b proto.InventoryUnit) int { return strings.Compare(a.Name, b.Name) }) {
			t.Error("units are not sorted by name")
		}
		if u := inv.Users; u != nil && !slices.IsSortedFunc(u.Users, func(a, b proto.InventoryUser) int { return a.UID - b.UID }) {
			t.Error("users are not sorted by uid")
		}
	})

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		inv, err := newCollector(t).Collect(ctx)
		if err == nil {
			t.Fatal("Collect with a canceled context succeeded")
		}
		if len(inv.Present()) != 0 {
			t.Fatalf("Collect with a canceled context returned sections %v", inv.Present())
		}
	})
}
