package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

func runInventory(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("InventorySaveAndGet", func(t *testing.T) { testInventorySaveAndGet(t, newStore(t)) })
	t.Run("InventorySections", func(t *testing.T) { testInventorySections(t, newStore(t)) })
	t.Run("InventoryIndex", func(t *testing.T) { testInventoryIndex(t, newStore(t)) })
	t.Run("InventoryFind", func(t *testing.T) { testInventoryFind(t, newStore(t)) })
}

// FixtureInventory returns an inventory of a host called host running
// osID/osVersion with the given packages ("name=version") of format.
func FixtureInventory(host, osID, osVersion, kernel, format string, pkgs ...string) proto.Inventory {
	inv := proto.Inventory{
		System:   &proto.InventorySystem{Hostname: host, OSID: osID, OSVersion: osVersion, Kernel: kernel, Arch: "x86_64"},
		Hardware: &proto.InventoryHardware{Vendor: "ACME", Model: "Kiosk " + osID, Serial: "SN-" + host, CPUCount: 2},
		Network: &proto.InventoryNetwork{Interfaces: []proto.InventoryInterface{
			{Name: "eth0", MAC: "02:00:00:00:00:01", Up: true, Addresses: []string{"10.0.0." + fmt.Sprint(len(host)) + "/24"}},
		}},
		Packages: &proto.InventoryPackages{Format: format},
	}
	for _, p := range pkgs {
		name, version, _ := strings.Cut(p, "=")
		inv.Packages.Packages = append(inv.Packages.Packages, proto.InventoryPackage{Name: name, Version: version})
	}
	return inv
}

// Full returns a full upload of inv.
func Full(inv proto.Inventory) proto.InventoryUpload {
	return proto.InventoryUpload{Hashes: inv.Hashes(), Inventory: inv}
}

func saveInv(t *testing.T, s store.Store, id string, up proto.InventoryUpload, at time.Time) []string {
	t.Helper()
	missing, err := s.SaveInventory(context.Background(), id, up, at)
	if err != nil {
		t.Fatalf("SaveInventory(%s): %v", id, err)
	}
	return missing
}

func testInventorySaveAndGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	if _, err := s.SaveInventory(ctx, "nope", Full(FixtureInventory("h", "debian", "12", "6.1", proto.FormatDeb)), t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SaveInventory(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := s.Inventory(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Inventory(unknown) err = %v, want ErrNotFound", err)
	}
	mustCreate(t, s, NewDevice("d1"))
	got, err := s.Inventory(ctx, "d1")
	if err != nil || len(got.Sections) != 0 || len(got.Inventory.Present()) != 0 || !got.UpdatedAt.IsZero() {
		t.Fatalf("Inventory of a device that never sent one = %+v, %v; want empty", got, err)
	}
	inv := FixtureInventory("kiosk-1", "debian", "12", "6.1.0-18-amd64", proto.FormatDeb, "openssl=3.0.11-1~deb12u2", "bash=5.2.15-2+b2")
	up := Full(inv)
	up.CollectedAt = t0.Add(-time.Second)
	if missing := saveInv(t, s, "d1", up, t0); len(missing) != 0 {
		t.Fatalf("a full upload leaves sections missing: %v", missing)
	}
	got, err = s.Inventory(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Inventory.Hashes(), inv.Hashes()) || !reflect.DeepEqual(got.Inventory, inv) {
		t.Fatalf("Inventory = %+v, want what was saved", got.Inventory)
	}
	if got.DeviceID != "d1" || !got.UpdatedAt.Equal(t0) || !got.CollectedAt.Equal(up.CollectedAt) {
		t.Fatalf("Inventory times/id = %q %v %v", got.DeviceID, got.UpdatedAt, got.CollectedAt)
	}
	for _, sec := range inv.Present() {
		m := got.Sections[sec]
		if m.Hash != inv.Hashes()[sec] || !m.ChangedAt.Equal(t0) || !m.ReceivedAt.Equal(t0) {
			t.Errorf("section %s meta = %+v", sec, m)
		}
	}
}

func testInventorySections(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	mustCreate(t, s, NewDevice("d1"))
	inv := FixtureInventory("kiosk-1", "debian", "12", "6.1", proto.FormatDeb, "openssl=3.0.11-1")

	// A probe to a server that holds nothing: every section is missing and
	// nothing is stored.
	if missing := saveInv(t, s, "d1", proto.InventoryUpload{Hashes: inv.Hashes()}, t0); !reflect.DeepEqual(missing, inv.Present()) {
		t.Fatalf("probe of an empty store: missing %v, want %v", missing, inv.Present())
	}
	if got, _ := s.Inventory(ctx, "d1"); !got.UpdatedAt.IsZero() {
		t.Fatalf("a probe stored something: %+v", got)
	}
	saveInv(t, s, "d1", Full(inv), t0)

	// Only packages changed: sent alone, the others keep their times.
	inv.Packages.Packages[0].Version = "3.0.13-1"
	part := proto.InventoryUpload{Hashes: inv.Hashes(), Inventory: inv.Only([]string{proto.SectionPackages})}
	if missing := saveInv(t, s, "d1", part, t1); len(missing) != 0 {
		t.Fatalf("changed section sent alone: missing %v", missing)
	}
	got, _ := s.Inventory(ctx, "d1")
	if !reflect.DeepEqual(got.Inventory, inv) {
		t.Fatalf("after a partial upload the inventory is %+v", got.Inventory)
	}
	if m := got.Sections[proto.SectionPackages]; !m.ChangedAt.Equal(t1) || !m.ReceivedAt.Equal(t1) {
		t.Errorf("packages meta = %+v, want changed and received at t1", m)
	}
	if m := got.Sections[proto.SectionSystem]; !m.ChangedAt.Equal(t0) || !m.ReceivedAt.Equal(t0) {
		t.Errorf("system meta = %+v, want untouched (t0)", m)
	}

	// The same content again (a daily full upload): received moves,
	// changed does not.
	saveInv(t, s, "d1", Full(inv), t2)
	got, _ = s.Inventory(ctx, "d1")
	if m := got.Sections[proto.SectionSystem]; !m.ChangedAt.Equal(t0) || !m.ReceivedAt.Equal(t2) {
		t.Errorf("unchanged system re-sent: meta %+v, want changed t0, received t2", m)
	}

	// A probe naming a hash the store does not hold lists that section.
	hashes := inv.Hashes()
	hashes[proto.SectionHardware] = "sha256:other"
	if missing := saveInv(t, s, "d1", proto.InventoryUpload{Hashes: hashes}, t2); !reflect.DeepEqual(missing, []string{proto.SectionHardware}) {
		t.Fatalf("probe with one changed hash: missing %v, want [hardware]", missing)
	}
	if missing := saveInv(t, s, "d1", proto.InventoryUpload{Hashes: inv.Hashes()}, t2); len(missing) != 0 {
		t.Fatalf("probe with the stored hashes: missing %v", missing)
	}
}

func testInventoryIndex(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for i, v := range []string{"3.0.11-1", "3.0.11-1", "3.0.13-1"} {
		id := fmt.Sprintf("deb%d", i)
		mustCreate(t, s, NewDevice(id))
		saveInv(t, s, id, Full(FixtureInventory(id, "debian", "12", "6.1.0-18-amd64", proto.FormatDeb, "openssl="+v, "bash=5.2")), t0)
	}
	mustCreate(t, s, NewDevice("rpm0"))
	saveInv(t, s, "rpm0", Full(FixtureInventory("rpm0", "fedora", "40", "6.8.5-301.fc40.x86_64", proto.FormatRPM, "openssl=1:3.0.9-2.fc40")), t0)

	want := []proto.PackageVersionCount{
		{Format: "deb", Version: "3.0.11-1", Devices: 2},
		{Format: "deb", Version: "3.0.13-1", Devices: 1},
		{Format: "rpm", Version: "1:3.0.9-2.fc40", Devices: 1},
	}
	if got, err := s.PackageVersions(ctx, "openssl"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("PackageVersions(openssl) = %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.PackageVersions(ctx, "nothing"); err != nil || len(got) != 0 {
		t.Fatalf("PackageVersions(unknown) = %+v, %v", got, err)
	}
	wantOS := []proto.FactValueCount{{Value: "debian 12", Devices: 3}, {Value: "fedora 40", Devices: 1}}
	if got, err := s.FactValues(ctx, proto.FactOS); err != nil || !reflect.DeepEqual(got, wantOS) {
		t.Fatalf("FactValues(os) = %+v, %v; want %+v", got, err, wantOS)
	}

	// An upgrade moves the counts; a device removed leaves the index.
	up := FixtureInventory("deb0", "debian", "12", "6.1.0-18-amd64", proto.FormatDeb, "openssl=3.0.13-1", "bash=5.2")
	saveInv(t, s, "deb0", proto.InventoryUpload{Hashes: up.Hashes(), Inventory: up.Only([]string{proto.SectionPackages})}, t0)
	if err := s.DeleteDevice(ctx, "rpm0"); err != nil {
		t.Fatal(err)
	}
	want = []proto.PackageVersionCount{{Format: "deb", Version: "3.0.11-1", Devices: 1}, {Format: "deb", Version: "3.0.13-1", Devices: 2}}
	if got, err := s.PackageVersions(ctx, "openssl"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after an upgrade and a deletion, PackageVersions(openssl) = %+v, %v; want %+v", got, err, want)
	}
	if got, _ := s.FactValues(ctx, proto.FactOS); !reflect.DeepEqual(got, wantOS[:1]) {
		t.Fatalf("after a deletion, FactValues(os) = %+v", got)
	}
	if got, _ := s.FactValues(ctx, proto.FactHostname); len(got) != 3 || slices.ContainsFunc(got, func(v proto.FactValueCount) bool { return v.Value == "rpm0" }) {
		t.Fatalf("after a deletion, FactValues(hostname) = %+v", got)
	}
	// Re-sending an unchanged section changes no count.
	saveInv(t, s, "deb1", Full(FixtureInventory("deb1", "debian", "12", "6.1.0-18-amd64", proto.FormatDeb, "openssl=3.0.11-1", "bash=5.2")), t0)
	if got, _ := s.PackageVersions(ctx, "bash"); !reflect.DeepEqual(got, []proto.PackageVersionCount{{Format: "deb", Version: "5.2", Devices: 3}}) {
		t.Fatalf("after a re-send, PackageVersions(bash) = %+v", got)
	}
	// A system section alone (a new hostname) moves that fact and leaves
	// the packages and the other facts as they were.
	renamed := FixtureInventory("deb2-renamed", "debian", "12", "6.1.0-18-amd64", proto.FormatDeb, "openssl=3.0.13-1", "bash=5.2")
	saveInv(t, s, "deb2", proto.InventoryUpload{Hashes: renamed.Hashes(), Inventory: renamed.Only([]string{proto.SectionSystem})}, t0)
	hosts, _ := s.FactValues(ctx, proto.FactHostname)
	if !slices.ContainsFunc(hosts, func(v proto.FactValueCount) bool { return v.Value == "deb2-renamed" }) ||
		slices.ContainsFunc(hosts, func(v proto.FactValueCount) bool { return v.Value == "deb2" }) {
		t.Fatalf("after a rename, FactValues(hostname) = %+v", hosts)
	}
	if got, _ := s.FactValues(ctx, proto.FactOS); !reflect.DeepEqual(got, wantOS[:1]) {
		t.Fatalf("after a rename, FactValues(os) = %+v", got)
	}
	if got, _ := s.PackageVersions(ctx, "openssl"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a rename, PackageVersions(openssl) = %+v; want %+v", got, want)
	}
	// A package removed leaves its count.
	less := FixtureInventory("deb1", "debian", "12", "6.1.0-18-amd64", proto.FormatDeb, "openssl=3.0.11-1")
	saveInv(t, s, "deb1", proto.InventoryUpload{Hashes: less.Hashes(), Inventory: less.Only([]string{proto.SectionPackages})}, t0)
	if got, _ := s.PackageVersions(ctx, "bash"); !reflect.DeepEqual(got, []proto.PackageVersionCount{{Format: "deb", Version: "5.2", Devices: 2}}) {
		t.Fatalf("after a removal, PackageVersions(bash) = %+v", got)
	}
	if ids, _, _ := s.FindDevices(ctx, store.InventoryQuery{Packages: []store.PackageCond{{Name: "bash"}}}, "", 10); !reflect.DeepEqual(ids, []string{"deb0", "deb2"}) {
		t.Fatalf("after a removal, devices with bash = %v", ids)
	}
}

func testInventoryFind(t *testing.T, s store.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	mustCreate(t, s, NewDevice("none")) // no inventory: never matches
	for i := range 10 {
		id := fmt.Sprintf("d%02d", i)
		mustCreate(t, s, NewDevice(id))
		osID, format, v := "debian", proto.FormatDeb, fmt.Sprintf("3.0.%d-1", 5+i)
		if i%2 == 1 {
			osID, format, v = "fedora", proto.FormatRPM, fmt.Sprintf("3.0.%d-1.fc40", 5+i)
		}
		saveInv(t, s, id, Full(FixtureInventory(id, osID, "1", "6.1", format, "openssl="+v, fmt.Sprintf("only%d=1", i))), t0)
	}
	find := func(q store.InventoryQuery, after string, limit int) ([]string, bool) {
		t.Helper()
		ids, more, err := s.FindDevices(ctx, q, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		return ids, more
	}
	all, more := find(store.InventoryQuery{}, "", 100)
	if len(all) != 10 || more || all[0] != "d00" || all[9] != "d09" {
		t.Fatalf("empty query = %v, %v; want d00..d09", all, more)
	}
	osIs := func(v string) store.FactCond { return store.FactCond{Fact: proto.FactOSID, Equal: v} }
	if ids, _ := find(store.InventoryQuery{Facts: []store.FactCond{osIs("fedora")}}, "", 100); fmt.Sprint(ids) != "[d01 d03 d05 d07 d09]" {
		t.Fatalf("os.id=fedora: %v", ids)
	}
	if ids, _ := find(store.InventoryQuery{Facts: []store.FactCond{osIs("beos")}}, "", 100); len(ids) != 0 {
		t.Fatalf("os.id=beos: %v", ids)
	}
	// Pages through a condition.
	page, more := find(store.InventoryQuery{Facts: []store.FactCond{osIs("fedora")}}, "", 2)
	page2, more2 := find(store.InventoryQuery{Facts: []store.FactCond{osIs("fedora")}}, page[len(page)-1], 10)
	if fmt.Sprint(page) != "[d01 d03]" || !more || fmt.Sprint(page2) != "[d05 d07 d09]" || more2 {
		t.Fatalf("pages: %v %v then %v %v", page, more, page2, more2)
	}
	// A package condition with a version predicate, intersected with a fact.
	below := func(max int) func(format, version string) bool {
		return func(_ string, v string) bool {
			var n int
			fmt.Sscanf(v, "3.0.%d", &n)
			return n < max
		}
	}
	q := store.InventoryQuery{Packages: []store.PackageCond{{Name: "openssl", Match: below(10)}}}
	if ids, _ := find(q, "", 100); fmt.Sprint(ids) != "[d00 d01 d02 d03 d04]" {
		t.Fatalf("openssl below 3.0.10: %v", ids)
	}
	q.Facts = []store.FactCond{osIs("debian")}
	if ids, _ := find(q, "", 100); fmt.Sprint(ids) != "[d00 d02 d04]" {
		t.Fatalf("debian with openssl below 3.0.10: %v", ids)
	}
	q = store.InventoryQuery{Packages: []store.PackageCond{{Name: "only7"}}}
	if ids, _ := find(q, "", 100); fmt.Sprint(ids) != "[d07]" {
		t.Fatalf("has only7: %v", ids)
	}
	q = store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactHostname, Match: func(v string) bool { return strings.Contains(v, "0") }}}}
	if ids, _ := find(q, "", 100); fmt.Sprint(ids) != "[d00 d01 d02 d03 d04 d05 d06 d07 d08 d09]" {
		t.Fatalf("hostname contains 0: %v", ids)
	}
	q.Facts = append(q.Facts, store.FactCond{Fact: proto.FactHostname, Match: func(v string) bool { return strings.HasSuffix(v, "3") }})
	if ids, _ := find(q, "", 100); fmt.Sprint(ids) != "[d03]" {
		t.Fatalf("two conditions on hostname: %v", ids)
	}
	// A substring condition as the API builds it (Contains with Match),
	// which a store may answer from a substring index.
	contains := func(sub string) store.FactCond {
		return store.FactCond{Fact: proto.FactHostname, Contains: sub, Match: func(v string) bool { return strings.Contains(strings.ToLower(v), sub) }}
	}
	for sub, want := range map[string]string{"d0": "[d00 d01 d02 d03 d04 d05 d06 d07 d08 d09]", "d07": "[d07]", "d1": "[]", "xd07": "[]"} {
		if ids, _ := find(store.InventoryQuery{Facts: []store.FactCond{contains(sub)}}, "", 100); fmt.Sprint(ids) != want {
			t.Errorf("hostname~=%s: %v, want %s", sub, ids, want)
		}
	}
}
