package proto

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The inventory (capability 5) is what a device is, runs and has installed.
// It travels in sections, each hashed on its own, so an agent uploads only
// the sections that changed (PUT /devices/{id}/inventory) and the server
// remembers when each section last changed. docs/INVENTORY.md names the
// source of every field.

// Inventory section names, the keys of an Inventory's JSON object.
const (
	SectionSystem   = "system"
	SectionHardware = "hardware"
	SectionDisks    = "disks"
	SectionNetwork  = "network"
	SectionUsers    = "users"
	SectionPackages = "packages"
	SectionUnits    = "units"
	SectionFirewall = "firewall"
	SectionAndroid  = "android"
)

// InventorySections lists every section name, in the order of Inventory's
// fields.
var InventorySections = []string{SectionSystem, SectionHardware, SectionDisks, SectionNetwork,
	SectionUsers, SectionPackages, SectionUnits, SectionFirewall, SectionAndroid}

// Limits of one inventory upload. The server refuses a body above
// MaxInventoryBodyBytes as sent (gzip or not) or MaxInventoryBytes once
// decompressed, and an inventory with more items than these caps, storing
// nothing. A Debian desktop lists ~2,000 packages in ~250 KiB of JSON.
const (
	MaxInventoryBodyBytes  = 1 << 20 // 1 MiB as sent
	MaxInventoryBytes      = 8 << 20 // 8 MiB decompressed
	MaxInventoryPackages   = 20000
	MaxInventoryItems      = 4096 // disks, interfaces, addresses per interface, users, units
	MaxInventoryStringLen  = 1024 // bytes, any one string
	InventoryFullResendAge = 24 * time.Hour
)

// InventorySystem is the operating system.
type InventorySystem struct {
	Hostname string `json:"hostname,omitempty"`
	// OSID and OSVersion are os-release's ID and VERSION_ID ("debian",
	// "12"); on Android "android" and the release ("14").
	OSID      string `json:"osId,omitempty"`
	OSVersion string `json:"osVersion,omitempty"`
	// OSName is os-release's PRETTY_NAME.
	OSName   string    `json:"osName,omitempty"`
	Kernel   string    `json:"kernel,omitempty"`
	Arch     string    `json:"arch,omitempty"`
	BootTime time.Time `json:"bootTime,omitzero"`
}

// InventoryHardware is the machine. Serial is empty when not readable
// (DMI's product_serial is root-only; Android gives it to device owners).
type InventoryHardware struct {
	Vendor      string `json:"vendor,omitempty"`
	Model       string `json:"model,omitempty"`
	Serial      string `json:"serial,omitempty"`
	CPUModel    string `json:"cpuModel,omitempty"`
	CPUCount    int    `json:"cpuCount,omitempty"`
	MemoryBytes int64  `json:"memoryBytes,omitempty"`
}

// InventoryDisk is one block device. Type is "disk", "part", "crypt"
// (dm-crypt/LUKS), "dm" (another device-mapper target), "loop" or "other".
type InventoryDisk struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	SizeBytes int64  `json:"sizeBytes"`
	// Removable is the kernel's removable flag.
	Removable bool `json:"removable,omitempty"`
	// FreeBytes is known only for Android storage volumes.
	FreeBytes int64 `json:"freeBytes,omitempty"`
}

// InventoryDisks lists block devices and says whether the root filesystem
// is encrypted. RootEncrypted is nil when it could not be told.
type InventoryDisks struct {
	Disks         []InventoryDisk `json:"disks"`
	RootDevice    string          `json:"rootDevice,omitempty"`
	RootEncrypted *bool           `json:"rootEncrypted,omitempty"`
}

// InventoryInterface is one network interface. Addresses are CIDR
// strings ("192.0.2.7/24").
type InventoryInterface struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac,omitempty"`
	Up        bool     `json:"up"`
	Addresses []string `json:"addresses,omitempty"`
}

// InventoryNetwork lists network interfaces.
type InventoryNetwork struct {
	Interfaces []InventoryInterface `json:"interfaces"`
}

// InventoryUser is one local account. System is true below the system's
// first regular uid (login.defs UID_MIN, 1000 by default) and for nobody.
type InventoryUser struct {
	Name   string `json:"name"`
	UID    int    `json:"uid"`
	Home   string `json:"home,omitempty"`
	Shell  string `json:"shell,omitempty"`
	System bool   `json:"system,omitempty"`
}

// InventoryUsers lists local accounts.
type InventoryUsers struct {
	Users []InventoryUser `json:"users"`
}

// Package formats: how a package's version compares (docs/INVENTORY.md).
const (
	FormatDeb     = "deb"
	FormatRPM     = "rpm"
	FormatAPK     = "apk"
	FormatPacman  = "pacman"
	FormatAndroid = "android"
)

// InventoryPackage is one installed package. Version is the full version
// the package manager shows (Debian "1:2.3-4", RPM "1:2.3-4.fc40" with the
// epoch only when set); on Android the versionName, with VersionCode.
type InventoryPackage struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Arch        string `json:"arch,omitempty"`
	VersionCode int64  `json:"versionCode,omitempty"`
}

// InventoryPackages lists installed packages of one format, sorted by name.
type InventoryPackages struct {
	Format   string             `json:"format"`
	Packages []InventoryPackage `json:"packages"`
}

// InventoryUnit is one systemd unit that is enabled, running, or both.
type InventoryUnit struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Running bool   `json:"running"`
}

// InventoryUnits lists systemd services that are enabled or running.
type InventoryUnits struct {
	Units []InventoryUnit `json:"units"`
}

// InventoryFirewall is the packet filter's state. Backend is "nftables",
// "iptables", "ufw" or "firewalld" (the one that decides), or "" when none
// was found; Active says whether it filters anything; Rules is the number
// of rules when it could be read, -1 when not (unprivileged).
type InventoryFirewall struct {
	Backend string `json:"backend"`
	Active  bool   `json:"active"`
	Rules   int    `json:"rules"`
}

// InventoryAndroid holds what only Android reports (the app-side collector,
// through the gomobile facade).
type InventoryAndroid struct {
	APILevel         int    `json:"apiLevel,omitempty"`
	SecurityPatch    string `json:"securityPatch,omitempty"` // "2026-10-05"
	BuildFingerprint string `json:"buildFingerprint,omitempty"`
	BatteryPercent   int    `json:"batteryPercent,omitempty"`
	Charging         bool   `json:"charging,omitempty"`
	DeviceOwner      bool   `json:"deviceOwner,omitempty"`
}

// Inventory is a device's inventory as JSON sections. A nil section is
// absent: not collected on this device, or unchanged and not sent.
type Inventory struct {
	System   *InventorySystem   `json:"system,omitempty"`
	Hardware *InventoryHardware `json:"hardware,omitempty"`
	Disks    *InventoryDisks    `json:"disks,omitempty"`
	Network  *InventoryNetwork  `json:"network,omitempty"`
	Users    *InventoryUsers    `json:"users,omitempty"`
	Packages *InventoryPackages `json:"packages,omitempty"`
	Units    *InventoryUnits    `json:"units,omitempty"`
	Firewall *InventoryFirewall `json:"firewall,omitempty"`
	Android  *InventoryAndroid  `json:"android,omitempty"`
}

// section returns a pointer to the named field's value (nil pointer when
// absent) as an any, or false for an unknown name.
func (inv *Inventory) section(name string) (any, bool) {
	switch name {
	case SectionSystem:
		return inv.System, inv.System != nil
	case SectionHardware:
		return inv.Hardware, inv.Hardware != nil
	case SectionDisks:
		return inv.Disks, inv.Disks != nil
	case SectionNetwork:
		return inv.Network, inv.Network != nil
	case SectionUsers:
		return inv.Users, inv.Users != nil
	case SectionPackages:
		return inv.Packages, inv.Packages != nil
	case SectionUnits:
		return inv.Units, inv.Units != nil
	case SectionFirewall:
		return inv.Firewall, inv.Firewall != nil
	case SectionAndroid:
		return inv.Android, inv.Android != nil
	}
	return nil, false
}

// Present lists the sections inv carries, in InventorySections order.
func (inv Inventory) Present() []string {
	var out []string
	for _, s := range InventorySections {
		if _, ok := inv.section(s); ok {
			out = append(out, s)
		}
	}
	return out
}

// Section returns the named section's JSON, or nil when absent.
func (inv Inventory) Section(name string) json.RawMessage {
	v, ok := inv.section(name)
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// Hashes returns the hash of every present section: "sha256:" and the hex
// SHA-256 of the section's JSON as this package encodes it. The server
// treats hashes as opaque change markers and never recomputes them.
func (inv Inventory) Hashes() map[string]string {
	out := map[string]string{}
	for _, s := range inv.Present() {
		sum := sha256.Sum256(inv.Section(s))
		out[s] = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out
}

// Only returns the sections of inv named in names; the others are nil.
func (inv Inventory) Only(names []string) Inventory {
	var out Inventory
	for _, s := range names {
		out.Merge(inv.pick(s))
	}
	return out
}

func (inv Inventory) pick(name string) Inventory {
	var out Inventory
	switch name {
	case SectionSystem:
		out.System = inv.System
	case SectionHardware:
		out.Hardware = inv.Hardware
	case SectionDisks:
		out.Disks = inv.Disks
	case SectionNetwork:
		out.Network = inv.Network
	case SectionUsers:
		out.Users = inv.Users
	case SectionPackages:
		out.Packages = inv.Packages
	case SectionUnits:
		out.Units = inv.Units
	case SectionFirewall:
		out.Firewall = inv.Firewall
	case SectionAndroid:
		out.Android = inv.Android
	}
	return out
}

// Merge sets every section present in o on inv.
func (inv *Inventory) Merge(o Inventory) {
	if o.System != nil {
		inv.System = o.System
	}
	if o.Hardware != nil {
		inv.Hardware = o.Hardware
	}
	if o.Disks != nil {
		inv.Disks = o.Disks
	}
	if o.Network != nil {
		inv.Network = o.Network
	}
	if o.Users != nil {
		inv.Users = o.Users
	}
	if o.Packages != nil {
		inv.Packages = o.Packages
	}
	if o.Units != nil {
		inv.Units = o.Units
	}
	if o.Firewall != nil {
		inv.Firewall = o.Firewall
	}
	if o.Android != nil {
		inv.Android = o.Android
	}
}

// ParseInventory decodes an inventory from its JSON sections (the form an
// app-side collector hands over through the mobile facade), refusing
// unknown sections, and validates it.
func ParseInventory(b []byte) (Inventory, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Inventory{}, fmt.Errorf("inventory is not a JSON object: %w", err)
	}
	for k := range raw {
		if !slices.Contains(InventorySections, k) {
			return Inventory{}, fmt.Errorf("unknown inventory section %q", k)
		}
	}
	var inv Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return Inventory{}, fmt.Errorf("decoding inventory: %w", err)
	}
	return inv, inv.Validate()
}

// Validate checks inv against the item and string limits, and that each
// package has a name and version and a known format.
func (inv Inventory) Validate() error {
	var errs []string
	str := func(where, s string) {
		if len(s) > MaxInventoryStringLen {
			errs = append(errs, fmt.Sprintf("%s is longer than %d bytes", where, MaxInventoryStringLen))
		} else if !utf8.ValidString(s) {
			errs = append(errs, where+" is not UTF-8")
		}
	}
	count := func(where string, n, max int) {
		if n > max {
			errs = append(errs, fmt.Sprintf("%s: %d items, at most %d", where, n, max))
		}
	}
	if s := inv.System; s != nil {
		for k, v := range map[string]string{"hostname": s.Hostname, "osId": s.OSID, "osVersion": s.OSVersion, "osName": s.OSName, "kernel": s.Kernel, "arch": s.Arch} {
			str("system."+k, v)
		}
	}
	if h := inv.Hardware; h != nil {
		for k, v := range map[string]string{"vendor": h.Vendor, "model": h.Model, "serial": h.Serial, "cpuModel": h.CPUModel} {
			str("hardware."+k, v)
		}
	}
	if d := inv.Disks; d != nil {
		count("disks", len(d.Disks), MaxInventoryItems)
		str("disks.rootDevice", d.RootDevice)
		for i, x := range d.Disks {
			str("disks["+strconv.Itoa(i)+"].name", x.Name)
			str("disks["+strconv.Itoa(i)+"].type", x.Type)
		}
	}
	if n := inv.Network; n != nil {
		count("network.interfaces", len(n.Interfaces), MaxInventoryItems)
		for i, x := range n.Interfaces {
			w := "network.interfaces[" + strconv.Itoa(i) + "]"
			str(w+".name", x.Name)
			str(w+".mac", x.MAC)
			count(w+".addresses", len(x.Addresses), MaxInventoryItems)
			for _, a := range x.Addresses {
				str(w+".addresses", a)
			}
		}
	}
	if u := inv.Users; u != nil {
		count("users", len(u.Users), MaxInventoryItems)
		for i, x := range u.Users {
			w := "users[" + strconv.Itoa(i) + "]"
			str(w+".name", x.Name)
			str(w+".home", x.Home)
			str(w+".shell", x.Shell)
		}
	}
	if p := inv.Packages; p != nil {
		if !slices.Contains([]string{FormatDeb, FormatRPM, FormatAPK, FormatPacman, FormatAndroid}, p.Format) {
			errs = append(errs, fmt.Sprintf("packages.format %q is not one of deb, rpm, apk, pacman, android", p.Format))
		}
		count("packages", len(p.Packages), MaxInventoryPackages)
		for i, x := range p.Packages {
			w := "packages[" + strconv.Itoa(i) + "]"
			if x.Name == "" || x.Version == "" {
				errs = append(errs, w+" needs a name and a version")
			}
			if strings.ContainsRune(x.Name, 0) || strings.ContainsRune(x.Version, 0) {
				errs = append(errs, w+" contains a NUL byte")
			}
			str(w+".name", x.Name)
			str(w+".version", x.Version)
			str(w+".arch", x.Arch)
		}
	}
	if u := inv.Units; u != nil {
		count("units", len(u.Units), MaxInventoryItems)
		for i, x := range u.Units {
			str("units["+strconv.Itoa(i)+"].name", x.Name)
		}
	}
	if f := inv.Firewall; f != nil {
		str("firewall.backend", f.Backend)
	}
	if a := inv.Android; a != nil {
		str("android.securityPatch", a.SecurityPatch)
		str("android.buildFingerprint", a.BuildFingerprint)
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		if len(errs) > 5 {
			errs = append(errs[:5], fmt.Sprintf("and %d more", len(errs)-5))
		}
		return fmt.Errorf("invalid inventory: %s", strings.Join(errs, "; "))
	}
	return nil
}

// InventoryUpload is the body of PUT /devices/{id}/inventory (gzip
// accepted: Content-Encoding: gzip). Hashes names every section the device
// collected with its hash; the embedded sections are those sent this time
// (all of them in a full upload, only the changed ones otherwise, none in a
// probe that asks the server which it lacks). The server keeps a section it
// holds but Hashes does not name.
type InventoryUpload struct {
	CollectedAt time.Time         `json:"collectedAt"`
	Hashes      map[string]string `json:"hashes"`
	Inventory
}

// Validate checks u: known section names, a hash for every section sent,
// and the inventory's own limits.
func (u InventoryUpload) Validate() error {
	if len(u.Hashes) == 0 {
		return fmt.Errorf("hashes is required: one per collected section")
	}
	for s, h := range u.Hashes {
		if !slices.Contains(InventorySections, s) {
			return fmt.Errorf("hashes names unknown section %q", s)
		}
		if h == "" || len(h) > 128 {
			return fmt.Errorf("hashes[%q] must be 1 to 128 characters", s)
		}
	}
	for _, s := range u.Present() {
		if _, ok := u.Hashes[s]; !ok {
			return fmt.Errorf("section %q is sent without its hash", s)
		}
	}
	return u.Inventory.Validate()
}

// InventoryAck is the answer to PUT /devices/{id}/inventory. Missing names
// the sections of the upload's Hashes whose content the server does not
// hold at that hash: the agent sends them next.
type InventoryAck struct {
	Missing []string `json:"missing"`
}

// InventorySectionMeta says when the server received a section and when its
// hash last changed.
type InventorySectionMeta struct {
	Hash       string    `json:"hash"`
	ChangedAt  time.Time `json:"changedAt"`
	ReceivedAt time.Time `json:"receivedAt"`
}

// DeviceInventory is the answer to GET /devices/{id}/inventory: the latest
// sections and, per section, when it changed.
type DeviceInventory struct {
	DeviceID    string                          `json:"deviceId"`
	CollectedAt time.Time                       `json:"collectedAt,omitzero"`
	UpdatedAt   time.Time                       `json:"updatedAt,omitzero"`
	Sections    map[string]InventorySectionMeta `json:"sections"`
	Inventory   Inventory                       `json:"inventory"`
}

// PackageVersionCount is one installed version of a package and on how
// many devices it is.
type PackageVersionCount struct {
	Format  string `json:"format"`
	Version string `json:"version"`
	Devices int    `json:"devices"`
}

// PackageVersions is the answer to GET /inventory/packages?name=: every
// installed version, newest first within a format. Devices is the sum of
// the versions' counts (a device with two versions of the package, say two
// architectures at different versions, counts twice).
type PackageVersions struct {
	Name     string                `json:"name"`
	Versions []PackageVersionCount `json:"versions"`
	Devices  int                   `json:"devices"`
}

// FactValueCount is one value of a fact and on how many devices it is.
type FactValueCount struct {
	Value   string `json:"value"`
	Devices int    `json:"devices"`
}

// FactDistribution is the answer to GET /inventory/facts/{fact}: how the
// fleet's devices spread over the fact's values, most common first.
type FactDistribution struct {
	Fact   string           `json:"fact"`
	Values []FactValueCount `json:"values"`
}

// Fact names: the inventory facts the server indexes for fleet queries and
// distributions (GET /devices?<fact>=, GET /inventory/facts/{fact}).
const (
	FactOS            = "os"        // "<osId> <osVersion>", e.g. "debian 12"
	FactOSID          = "os.id"     // "debian"
	FactOSName        = "os.name"   // PRETTY_NAME
	FactKernel        = "kernel"    // "6.1.0-18-amd64"
	FactArch          = "arch"      // "x86_64"
	FactVendor        = "vendor"    // DMI sys_vendor or Android manufacturer
	FactModel         = "model"     // DMI product_name or Android model
	FactSerial        = "serial"    // where readable
	FactHostname      = "hostname"  //
	FactIP            = "ip"        // every address, without prefix length
	FactMAC           = "mac"       //
	FactPatch         = "patch"     // Android security patch level
	FactAPILevel      = "api"       // Android API level
	FactRootEncrypted = "encrypted" // "true"/"false": root fs on dm-crypt
	FactFirewall      = "firewall"  // "<backend> active|inactive", or "none"
	FactPkgFormat     = "pkgformat" // the package format
)

// InventoryFacts lists the fact names, in display order.
var InventoryFacts = []string{FactOS, FactOSID, FactOSName, FactKernel, FactArch, FactVendor, FactModel,
	FactSerial, FactHostname, FactIP, FactMAC, FactPatch, FactAPILevel, FactRootEncrypted, FactFirewall, FactPkgFormat}

// Facts returns inv's fact values (see the Fact constants); a fact without
// a value is left out. Every store backend indexes exactly these.
func (inv Inventory) Facts() map[string][]string {
	out := map[string][]string{}
	add := func(f, v string) {
		if v != "" && !slices.Contains(out[f], v) {
			out[f] = append(out[f], v)
		}
	}
	if s := inv.System; s != nil {
		add(FactOS, strings.TrimSpace(s.OSID+" "+s.OSVersion))
		add(FactOSID, s.OSID)
		add(FactOSName, s.OSName)
		add(FactKernel, s.Kernel)
		add(FactArch, s.Arch)
		add(FactHostname, s.Hostname)
	}
	if h := inv.Hardware; h != nil {
		add(FactVendor, h.Vendor)
		add(FactModel, h.Model)
		add(FactSerial, h.Serial)
	}
	if n := inv.Network; n != nil {
		for _, i := range n.Interfaces {
			if i.Name == "lo" {
				continue
			}
			add(FactMAC, i.MAC)
			for _, a := range i.Addresses {
				if j := strings.IndexByte(a, '/'); j >= 0 {
					a = a[:j]
				}
				if a == "127.0.0.1" || a == "::1" {
					continue
				}
				add(FactIP, a)
			}
		}
	}
	if d := inv.Disks; d != nil && d.RootEncrypted != nil {
		add(FactRootEncrypted, strconv.FormatBool(*d.RootEncrypted))
	}
	if f := inv.Firewall; f != nil {
		switch {
		case f.Backend == "":
			add(FactFirewall, "none")
		case f.Active:
			add(FactFirewall, f.Backend+" active")
		default:
			add(FactFirewall, f.Backend+" inactive")
		}
	}
	if p := inv.Packages; p != nil {
		add(FactPkgFormat, p.Format)
	}
	if a := inv.Android; a != nil {
		add(FactPatch, a.SecurityPatch)
		if a.APILevel > 0 {
			add(FactAPILevel, strconv.Itoa(a.APILevel))
		}
	}
	for _, vs := range out {
		slices.Sort(vs)
	}
	return out
}

// InventoryRequestHeader is the response header of GET
// /devices/{id}/policy (200 and 304) by which the server asks the agent for
// its whole inventory after an operator's POST
// /devices/{id}/inventory/refresh; its value is "full". The doorbell that
// goes with it only wakes the agent.
const InventoryRequestHeader = "Doorbell-Inventory"

// DoorbellRefreshInventory is the type of a doorbell that asks an agent to
// upload its whole inventory now. Agents act on it (MQTT and FCM); the
// server asks through InventoryRequestHeader instead, so the request
// survives a lost doorbell, and keeps this type for a command queue to use.
const DoorbellRefreshInventory = "refresh_inventory"
