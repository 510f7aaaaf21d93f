package proto

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func sampleInventory() Inventory {
	yes := true
	return Inventory{
		System:   &InventorySystem{Hostname: "kiosk-1", OSID: "debian", OSVersion: "12", Kernel: "6.1.0-18-amd64", Arch: "x86_64"},
		Hardware: &InventoryHardware{Vendor: "ACME", Model: "K1", Serial: "S1", CPUCount: 4},
		Disks:    &InventoryDisks{Disks: []InventoryDisk{{Name: "vda", Type: "disk", SizeBytes: 1 << 30}}, RootEncrypted: &yes},
		Network: &InventoryNetwork{Interfaces: []InventoryInterface{
			{Name: "lo", Up: true, Addresses: []string{"127.0.0.1/8"}},
			{Name: "eth0", MAC: "52:54:00:12:34:56", Up: true, Addresses: []string{"192.0.2.7/24", "2001:db8::7/64"}},
		}},
		Packages: &InventoryPackages{Format: FormatDeb, Packages: []InventoryPackage{{Name: "openssl", Version: "3.0.11-1~deb12u2"}}},
		Firewall: &InventoryFirewall{Backend: "nftables", Active: true, Rules: 3},
	}
}

func TestInventoryHashes(t *testing.T) {
	inv := sampleInventory()
	h := inv.Hashes()
	if got, want := len(h), len(inv.Present()); got != want || want != 6 {
		t.Fatalf("%d hashes for %d sections (want 6): %v", got, want, h)
	}
	if !reflect.DeepEqual(h, sampleInventory().Hashes()) {
		t.Fatal("hashes of equal inventories differ")
	}
	changed := sampleInventory()
	changed.Packages.Packages[0].Version = "3.0.13-1~deb12u1"
	h2 := changed.Hashes()
	for _, s := range inv.Present() {
		if (h[s] != h2[s]) != (s == SectionPackages) {
			t.Errorf("section %s: hash changed = %v, want only packages to change", s, h[s] != h2[s])
		}
	}
}

func TestInventoryOnlyMerge(t *testing.T) {
	inv := sampleInventory()
	part := inv.Only([]string{SectionPackages, SectionSystem})
	if got := part.Present(); !reflect.DeepEqual(got, []string{SectionSystem, SectionPackages}) {
		t.Fatalf("Only kept %v", got)
	}
	var merged Inventory
	merged.Merge(inv.Only([]string{SectionHardware}))
	merged.Merge(part)
	if got := merged.Present(); !reflect.DeepEqual(got, []string{SectionSystem, SectionHardware, SectionPackages}) {
		t.Fatalf("Merge kept %v", got)
	}
}

func TestParseInventory(t *testing.T) {
	b, _ := json.Marshal(sampleInventory())
	inv, err := ParseInventory(b)
	if err != nil || !reflect.DeepEqual(inv.Hashes(), sampleInventory().Hashes()) {
		t.Fatalf("round trip: %v", err)
	}
	for name, body := range map[string]string{
		"not an object":   `[1]`,
		"unknown section": `{"bios": {}}`,
		"bad format":      `{"packages": {"format": "msi", "packages": []}}`,
		"nameless":        `{"packages": {"format": "deb", "packages": [{"version": "1"}]}}`,
		"long string":     `{"system": {"hostname": "` + strings.Repeat("a", MaxInventoryStringLen+1) + `"}}`,
		"wrong type":      `{"system": {"hostname": 7}}`,
	} {
		if _, err := ParseInventory([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	many := Inventory{Packages: &InventoryPackages{Format: FormatRPM}}
	for range MaxInventoryPackages + 1 {
		many.Packages.Packages = append(many.Packages.Packages, InventoryPackage{Name: "p", Version: "1"})
	}
	if err := many.Validate(); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("too many packages: %v", err)
	}
}

func TestInventoryUploadValidate(t *testing.T) {
	inv := sampleInventory()
	ok := InventoryUpload{Hashes: inv.Hashes(), Inventory: inv.Only([]string{SectionSystem})}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	probe := InventoryUpload{Hashes: inv.Hashes()}
	if err := probe.Validate(); err != nil {
		t.Fatalf("a probe (hashes only) is refused: %v", err)
	}
	for name, u := range map[string]InventoryUpload{
		"no hashes":       {Inventory: inv},
		"unhashed":        {Hashes: map[string]string{SectionSystem: "x"}, Inventory: inv.Only([]string{SectionUsers, SectionHardware})},
		"unknown section": {Hashes: map[string]string{"bios": "x"}},
	} {
		if err := u.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestInventoryFacts(t *testing.T) {
	f := sampleInventory().Facts()
	want := map[string][]string{
		FactOS: {"debian 12"}, FactOSID: {"debian"}, FactKernel: {"6.1.0-18-amd64"}, FactArch: {"x86_64"},
		FactHostname: {"kiosk-1"}, FactVendor: {"ACME"}, FactModel: {"K1"}, FactSerial: {"S1"},
		FactIP: {"192.0.2.7", "2001:db8::7"}, FactMAC: {"52:54:00:12:34:56"}, FactRootEncrypted: {"true"},
		FactFirewall: {"nftables active"}, FactPkgFormat: {"deb"},
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("Facts =\n%v\nwant\n%v", f, want)
	}
	for k := range f {
		found := false
		for _, n := range InventoryFacts {
			found = found || n == k
		}
		if !found {
			t.Errorf("fact %q is not in InventoryFacts", k)
		}
	}
}
