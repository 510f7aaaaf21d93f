package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// LinuxCollector reads a Linux host's inventory from the files the kernel
// and the distribution keep (docs/INVENTORY.md names the source of every
// field). It only reads, and needs no privilege except for what the kernel
// reserves to root (the DMI serial, the nftables ruleset), which it leaves
// out when it cannot read it. The zero value reads this host.
type LinuxCollector struct {
	// Root is the directory the host's files are read under; "" means "/".
	// Tests point it at a fixture tree.
	Root string
	// Run runs rpm, systemctl and nft listings; nil means ExecRunner. With
	// a Root other than "/", commands get --root where they take one, and
	// nft, which has none, runs only with a Runner set.
	Run Runner
	// Addrs returns an interface's addresses as CIDR strings; nil means the
	// kernel's (net.InterfaceByName), and no addresses when Root is not "/".
	Addrs func(name string) ([]string, error)
}

var _ Collector = (*LinuxCollector)(nil)

func (c *LinuxCollector) root() string {
	if c.Root == "" {
		return "/"
	}
	return c.Root
}

func (c *LinuxCollector) path(p string) string { return filepath.Join(c.root(), p) }

func (c *LinuxCollector) read(p string) (string, error) {
	b, err := os.ReadFile(c.path(p))
	return strings.TrimSpace(string(b)), err
}

// readOr returns the trimmed content of p, or "" when it cannot be read.
func (c *LinuxCollector) readOr(p string) string {
	s, _ := c.read(p)
	return s
}

func (c *LinuxCollector) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var r Runner = ExecRunner{}
	if c.Run != nil {
		r = c.Run
	}
	return r.Run(ctx, Command{Name: name, Args: args})
}

// Collect implements Collector.
func (c *LinuxCollector) Collect(ctx context.Context) (proto.Inventory, error) {
	var inv proto.Inventory
	if err := ctx.Err(); err != nil {
		return inv, err
	}
	var errs []error
	section := func(name string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		if err := f(); err != nil {
			errs = append(errs, fmt.Errorf("inventory section %s: %w", name, err))
		}
	}
	section(proto.SectionSystem, func() (err error) { inv.System, err = c.system(); return })
	section(proto.SectionHardware, func() (err error) { inv.Hardware, err = c.hardware(); return })
	section(proto.SectionDisks, func() (err error) { inv.Disks, err = c.disks(); return })
	section(proto.SectionNetwork, func() (err error) { inv.Network, err = c.network(); return })
	section(proto.SectionUsers, func() (err error) { inv.Users, err = c.users(); return })
	section(proto.SectionPackages, func() (err error) { inv.Packages, err = c.packages(ctx); return })
	section(proto.SectionUnits, func() (err error) { inv.Units, err = c.units(ctx); return })
	section(proto.SectionFirewall, func() (err error) { inv.Firewall, err = c.firewall(ctx, inv.Units); return })
	if err := ctx.Err(); err != nil {
		return proto.Inventory{}, err
	}
	return inv, errors.Join(errs...)
}

func (c *LinuxCollector) system() (*proto.InventorySystem, error) {
	s := &proto.InventorySystem{}
	// The enforcer's reading of os-release (the distribution family it
	// picks a package manager by) is the inventory's.
	d, err := DetectDistro(c.root())
	if err != nil {
		return nil, fmt.Errorf("reading os-release: %w", err)
	}
	if d.ID == "" && d.Name == "" && d.VersionID == "" {
		return nil, errors.New("reading os-release: no /etc/os-release or /usr/lib/os-release")
	}
	s.OSID, s.OSVersion, s.OSName = d.ID, d.VersionID, d.Name
	s.Hostname = c.readOr("proc/sys/kernel/hostname")
	if s.Hostname == "" {
		s.Hostname = c.readOr("etc/hostname")
	}
	s.Kernel = c.readOr("proc/sys/kernel/osrelease")
	s.Arch = c.readOr("proc/sys/kernel/arch")
	if s.Arch == "" {
		s.Arch = unameArch(runtime.GOARCH)
	}
	if st, err := c.read("proc/stat"); err == nil {
		for _, line := range strings.Split(st, "\n") {
			if v, ok := strings.CutPrefix(line, "btime "); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					s.BootTime = time.Unix(n, 0).UTC()
				}
			}
		}
	}
	return s, nil
}

// unameArch maps GOARCH to the kernel's machine name, for kernels older
// than 6.1 without /proc/sys/kernel/arch.
func unameArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "386":
		return "i686"
	case "arm64":
		return "aarch64"
	case "arm":
		return "armv7l"
	}
	return goarch
}

func (c *LinuxCollector) hardware() (*proto.InventoryHardware, error) {
	h := &proto.InventoryHardware{
		Vendor: c.readOr("sys/class/dmi/id/sys_vendor"),
		Model:  c.readOr("sys/class/dmi/id/product_name"),
		// Readable by root only; left out otherwise.
		Serial: c.readOr("sys/class/dmi/id/product_serial"),
	}
	cpu, err := c.read("proc/cpuinfo")
	if err != nil {
		return nil, fmt.Errorf("reading cpuinfo: %w", err)
	}
	for _, line := range strings.Split(cpu, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			h.CPUCount++
		case "model name", "Model", "cpu model":
			if h.CPUModel == "" {
				h.CPUModel = v
			}
		}
	}
	mem, err := c.read("proc/meminfo")
	if err != nil {
		return nil, fmt.Errorf("reading meminfo: %w", err)
	}
	for _, line := range strings.Split(mem, "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					h.MemoryBytes = kb * 1024
				}
			}
		}
	}
	return h, nil
}

// blockType classifies a block device from its sysfs entry.
func (c *LinuxCollector) blockType(name string) string {
	dir := "sys/class/block/" + name
	switch {
	case strings.HasPrefix(name, "loop"):
		return "loop"
	case strings.HasPrefix(name, "dm-"):
		if crypt, _ := dmCrypt(c.root(), name); crypt {
			return "crypt"
		}
		return "dm"
	}
	if _, err := os.Stat(c.path(dir + "/partition")); err == nil {
		return "part"
	}
	if _, err := os.Stat(c.path(dir + "/device")); err == nil {
		return "disk"
	}
	return "other"
}

func (c *LinuxCollector) disks() (*proto.InventoryDisks, error) {
	ents, err := os.ReadDir(c.path("sys/class/block"))
	if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	d := &proto.InventoryDisks{Disks: []proto.InventoryDisk{}}
	for _, e := range ents {
		name := e.Name()
		dir := "sys/class/block/" + name
		typ := c.blockType(name)
		if typ == "loop" && c.readOr(dir+"/size") == "0" {
			continue // an unused loop device
		}
		sectors, _ := strconv.ParseInt(c.readOr(dir+"/size"), 10, 64)
		label := name
		if dm := c.readOr(dir + "/dm/name"); dm != "" {
			label = name + " (" + dm + ")"
		}
		d.Disks = append(d.Disks, proto.InventoryDisk{
			Name:      label,
			Type:      typ,
			SizeBytes: sectors * 512, // sysfs counts 512-byte sectors whatever the device's own
			Removable: c.readOr(dir+"/removable") == "1",
		})
	}
	slices.SortFunc(d.Disks, func(a, b proto.InventoryDisk) int { return strings.Compare(a.Name, b.Name) })
	// The enforcer's reading of the root device (diskEncryptionRequired)
	// is the inventory's; absent when / is not on a block device.
	if rd, err := readRootDisk(c.root()); err == nil && rd.Name != "" {
		d.RootDevice = rd.Name
		d.RootEncrypted = &rd.Crypt
	}
	return d, nil
}

func (c *LinuxCollector) network() (*proto.InventoryNetwork, error) {
	ents, err := os.ReadDir(c.path("sys/class/net"))
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	n := &proto.InventoryNetwork{Interfaces: []proto.InventoryInterface{}}
	addrs := c.Addrs
	if addrs == nil && c.root() == "/" {
		addrs = kernelAddrs
	}
	for _, e := range ents {
		name := e.Name()
		dir := "sys/class/net/" + name
		flags, _ := strconv.ParseUint(strings.TrimPrefix(c.readOr(dir+"/flags"), "0x"), 16, 32)
		i := proto.InventoryInterface{Name: name, Up: flags&1 == 1} // IFF_UP
		if mac := c.readOr(dir + "/address"); mac != "" && mac != "00:00:00:00:00:00" {
			i.MAC = mac
		}
		if addrs != nil {
			a, err := addrs(name)
			if err != nil {
				return nil, fmt.Errorf("addresses of %s: %w", name, err)
			}
			slices.Sort(a)
			i.Addresses = a
		}
		n.Interfaces = append(n.Interfaces, i)
	}
	return n, nil
}

func kernelAddrs(name string) ([]string, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	as, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, a := range as {
		out = append(out, a.String())
	}
	return out, nil
}

func (c *LinuxCollector) users() (*proto.InventoryUsers, error) {
	pw, err := c.read("etc/passwd")
	if err != nil {
		return nil, fmt.Errorf("reading passwd: %w", err)
	}
	uidMin := 1000
	if defs, err := c.read("etc/login.defs"); err == nil {
		for _, line := range strings.Split(defs, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == "UID_MIN" {
				if n, err := strconv.Atoi(f[1]); err == nil {
					uidMin = n
				}
			}
		}
	}
	u := &proto.InventoryUsers{Users: []proto.InventoryUser{}}
	for _, line := range strings.Split(pw, "\n") {
		f := strings.Split(line, ":")
		if len(f) < 7 || strings.HasPrefix(line, "#") {
			continue
		}
		uid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		u.Users = append(u.Users, proto.InventoryUser{
			Name: f[0], UID: uid, Home: f[5], Shell: f[6],
			System: uid < uidMin || f[0] == "nobody" || uid == 65534,
		})
	}
	slices.SortFunc(u.Users, func(a, b proto.InventoryUser) int { return a.UID - b.UID })
	return u, nil
}

func (c *LinuxCollector) exists(p string) bool {
	_, err := os.Stat(c.path(p))
	return err == nil
}

// packages reads the distribution's own package database: dpkg's status
// file, rpm's database (through rpm itself), apk's installed file or
// pacman's local database, whichever the host has, in that order.
func (c *LinuxCollector) packages(ctx context.Context) (*proto.InventoryPackages, error) {
	var p *proto.InventoryPackages
	var err error
	switch {
	case c.exists("var/lib/dpkg/status"):
		p, err = c.dpkg()
	case c.exists("var/lib/rpm") || c.exists("usr/lib/sysimage/rpm"):
		p, err = c.rpm(ctx)
	case c.exists("lib/apk/db/installed"):
		p, err = c.apk()
	case c.exists("var/lib/pacman/local"):
		p, err = c.pacman()
	default:
		return nil, errors.New("no package database found (dpkg, rpm, apk, pacman)")
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(p.Packages, func(a, b proto.InventoryPackage) int {
		if n := strings.Compare(a.Name, b.Name); n != 0 {
			return n
		}
		return strings.Compare(a.Arch, b.Arch)
	})
	if len(p.Packages) > proto.MaxInventoryPackages {
		return nil, fmt.Errorf("%d packages, more than the %d an inventory carries", len(p.Packages), proto.MaxInventoryPackages)
	}
	return p, nil
}

// stanzas splits an RFC 822-style database (dpkg status, apk installed)
// into records of field -> value, continuation lines dropped.
func stanzas(s string, sep string) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(line, sep); ok {
			cur[k] = strings.TrimSpace(v)
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (c *LinuxCollector) dpkg() (*proto.InventoryPackages, error) {
	st, err := c.read("var/lib/dpkg/status")
	if err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	p := &proto.InventoryPackages{Format: proto.FormatDeb, Packages: []proto.InventoryPackage{}}
	for _, r := range stanzas(st, ":") {
		// Only packages dpkg calls installed; removed ones keep their
		// configuration ("deinstall ok config-files").
		if !strings.HasSuffix(r["Status"], " installed") {
			continue
		}
		p.Packages = append(p.Packages, proto.InventoryPackage{Name: r["Package"], Version: r["Version"], Arch: r["Architecture"]})
	}
	return p, nil
}

// rpmQueryFormat prints name, [epoch:]version-release and arch per package.
const rpmQueryFormat = `%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n`

func (c *LinuxCollector) rpm(ctx context.Context) (*proto.InventoryPackages, error) {
	out, err := c.run(ctx, "rpm", "--root", c.root(), "-qa", "--qf", rpmQueryFormat)
	if err != nil {
		return nil, fmt.Errorf("querying rpm: %w", err)
	}
	p := &proto.InventoryPackages{Format: proto.FormatRPM, Packages: []proto.InventoryPackage{}}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || f[0] == "" || f[0] == "gpg-pubkey" { // imported keys are not software
			continue
		}
		arch := f[2]
		if arch == "(none)" {
			arch = ""
		}
		p.Packages = append(p.Packages, proto.InventoryPackage{Name: f[0], Version: f[1], Arch: arch})
	}
	return p, nil
}

func (c *LinuxCollector) apk() (*proto.InventoryPackages, error) {
	db, err := c.read("lib/apk/db/installed")
	if err != nil {
		return nil, fmt.Errorf("reading apk database: %w", err)
	}
	p := &proto.InventoryPackages{Format: proto.FormatAPK, Packages: []proto.InventoryPackage{}}
	for _, r := range stanzas(db, ":") {
		if r["P"] != "" {
			p.Packages = append(p.Packages, proto.InventoryPackage{Name: r["P"], Version: r["V"], Arch: r["A"]})
		}
	}
	return p, nil
}

func (c *LinuxCollector) pacman() (*proto.InventoryPackages, error) {
	ents, err := os.ReadDir(c.path("var/lib/pacman/local"))
	if err != nil {
		return nil, fmt.Errorf("reading pacman database: %w", err)
	}
	p := &proto.InventoryPackages{Format: proto.FormatPacman, Packages: []proto.InventoryPackage{}}
	for _, e := range ents {
		desc, err := c.read("var/lib/pacman/local/" + e.Name() + "/desc")
		if errors.Is(err, fs.ErrNotExist) {
			continue // ALPM_DB_VERSION and the like
		}
		if err != nil {
			return nil, fmt.Errorf("reading pacman database: %w", err)
		}
		fields := map[string]string{}
		lines := strings.Split(desc, "\n")
		for i := 0; i+1 < len(lines); i++ {
			if k := strings.TrimSpace(lines[i]); strings.HasPrefix(k, "%") && strings.HasSuffix(k, "%") {
				fields[k] = strings.TrimSpace(lines[i+1])
			}
		}
		if fields["%NAME%"] != "" {
			p.Packages = append(p.Packages, proto.InventoryPackage{Name: fields["%NAME%"], Version: fields["%VERSION%"], Arch: fields["%ARCH%"]})
		}
	}
	return p, nil
}

// units lists the services systemd has enabled (its unit files, readable
// without a running systemd) and those running (only when systemd runs).
func (c *LinuxCollector) units(ctx context.Context) (*proto.InventoryUnits, error) {
	args := []string{"list-unit-files", "--type=service", "--state=enabled", "--no-legend", "--plain", "--no-pager"}
	if c.root() != "/" {
		args = append([]string{"--root=" + c.root()}, args...)
	}
	out, err := c.run(ctx, "systemctl", args...)
	if errors.Is(err, exec.ErrNotFound) {
		return nil, nil // no systemd (Alpine's OpenRC, a container): no section
	}
	if err != nil {
		return nil, fmt.Errorf("listing enabled units: %w", err)
	}
	byName := map[string]*proto.InventoryUnit{}
	get := func(name string) *proto.InventoryUnit {
		if u, ok := byName[name]; ok {
			return u
		}
		u := &proto.InventoryUnit{Name: name}
		byName[name] = u
		return u
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "enabled" {
			get(f[0]).Enabled = true
		}
	}
	if c.exists("run/systemd/system") { // systemd is PID 1 (sd_booted)
		out, err := c.run(ctx, "systemctl", "list-units", "--type=service", "--state=running", "--no-legend", "--plain", "--no-pager")
		if err != nil {
			return nil, fmt.Errorf("listing running units: %w", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[3] == "running" {
				get(f[0]).Running = true
			}
		}
	}
	u := &proto.InventoryUnits{Units: []proto.InventoryUnit{}}
	for _, x := range byName {
		u.Units = append(u.Units, *x)
	}
	slices.SortFunc(u.Units, func(a, b proto.InventoryUnit) int { return strings.Compare(a.Name, b.Name) })
	return u, nil
}

// firewall finds the packet filter that decides: firewalld when its service
// runs, ufw when its configuration enables it, else the nftables ruleset
// (which also holds iptables-nft rules) when it can be read.
func (c *LinuxCollector) firewall(ctx context.Context, units *proto.InventoryUnits) (*proto.InventoryFirewall, error) {
	if units != nil {
		for _, u := range units.Units {
			if u.Name == "firewalld.service" && u.Running {
				return &proto.InventoryFirewall{Backend: "firewalld", Active: true, Rules: -1}, nil
			}
		}
	}
	if conf, err := c.read("etc/ufw/ufw.conf"); err == nil {
		if shellVars([]byte(conf))["ENABLED"] == "yes" {
			return &proto.InventoryFirewall{Backend: "ufw", Active: true, Rules: -1}, nil
		}
	}
	if c.root() != "/" && c.Run == nil {
		return &proto.InventoryFirewall{Rules: -1}, nil // not this host's kernel
	}
	out, err := c.run(ctx, "nft", "-j", "list", "ruleset")
	if errors.Is(err, exec.ErrNotFound) {
		return &proto.InventoryFirewall{Rules: -1}, nil
	}
	if err != nil {
		// nft needs CAP_NET_ADMIN: unprivileged, the state is unknown.
		return &proto.InventoryFirewall{Backend: "nftables", Rules: -1}, nil
	}
	var rs struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &rs); err != nil {
		return nil, fmt.Errorf("reading nft ruleset: %w", err)
	}
	n := 0
	for _, o := range rs.Nftables {
		if _, ok := o["rule"]; ok {
			n++
		}
	}
	return &proto.InventoryFirewall{Backend: "nftables", Active: n > 0, Rules: n}, nil
}
