package agent_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/agent/collectortest"
	"github.com/doorbell-mdm/doorbell/proto"
)

// The Linux collector on this machine, for real.
func TestLinuxCollectorConformanceThisHost(t *testing.T) {
	collectortest.Run(t, func(t *testing.T) agent.Collector { return &agent.LinuxCollector{} })
}

// TestLinuxCollectorThisHost checks what the collector reads on this
// machine against what other tools say.
func TestLinuxCollectorThisHost(t *testing.T) {
	inv, err := (&agent.LinuxCollector{}).Collect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := func(name string, args ...string) string {
		t.Helper()
		b, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return strings.TrimSpace(string(b))
	}
	host, _ := os.Hostname()
	if s := inv.System; s == nil || s.Hostname != host || s.Kernel != out("uname", "-r") || s.Arch != out("uname", "-m") || s.OSID == "" || s.BootTime.IsZero() {
		t.Errorf("system = %+v; want hostname %q, kernel %q, arch %q", s, host, out("uname", "-r"), out("uname", "-m"))
	}
	if h := inv.Hardware; h == nil || strconv.Itoa(h.CPUCount) != out("nproc", "--all") || h.MemoryBytes <= 0 {
		t.Errorf("hardware = %+v; want %s CPUs and some memory", h, out("nproc", "--all"))
	}
	ifs, _ := net.Interfaces()
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	var got []string
	for _, i := range inv.Network.Interfaces {
		got = append(got, i.Name)
	}
	slices.Sort(names)
	if !reflect.DeepEqual(got, names) {
		t.Errorf("interfaces %v, want %v", got, names)
	}
	if u := inv.Users; u == nil || len(u.Users) == 0 || u.Users[0].Name != "root" || u.Users[0].UID != 0 {
		t.Errorf("users = %+v; want root first", u)
	}
	if d := inv.Disks; d == nil || len(d.Disks) == 0 {
		t.Errorf("disks = %+v", d)
	}
	// The package count from dpkg itself (make test runs on Debian).
	if _, err := exec.LookPath("dpkg-query"); err == nil {
		n := 0
		for _, l := range strings.Split(out("dpkg-query", "-W", "-f", "${db:Status-Status}\n"), "\n") {
			if l == "installed" {
				n++
			}
		}
		if p := inv.Packages; p == nil || p.Format != proto.FormatDeb || len(p.Packages) != n {
			t.Errorf("packages: %d, dpkg-query says %d installed", len(inv.Packages.Packages), n)
		}
	}
}

// fakeRunner answers commands from a table keyed by the command line; an
// unknown command is not installed.
func fakeRunner(t *testing.T, answers map[string]string) (agent.Runner, *[]string) {
	r := &tableRunner{answers: answers}
	return r, &r.calls
}

type tableRunner struct {
	answers map[string]string
	calls   []string
}

func (r *tableRunner) Run(ctx context.Context, cmd agent.Command) ([]byte, error) {
	line := strings.Join(append([]string{cmd.Name}, cmd.Args...), " ")
	r.calls = append(r.calls, line)
	for prefix, answer := range r.answers {
		if strings.HasPrefix(line, prefix) {
			return []byte(answer), nil
		}
	}
	return nil, fmt.Errorf("running %s: %w", cmd.Name, exec.ErrNotFound)
}

func fixture(name string) string { return filepath.Join("testdata", "inventory", name) }

// treeSum hashes every path, mode and content under root, to prove the
// collector wrote nothing.
func treeSum(t *testing.T, root string) [32]byte {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %v\n", p, info.Mode(), info.ModTime())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

const fedoraRPM = "openssl\t1:3.2.1-2.fc40\tx86_64\n" +
	"bash\t5.2.26-3.fc40\tx86_64\n" +
	"gpg-pubkey\ta15b79cc-63d04c2c\t(none)\n" +
	"tzdata\t2024a-5.fc40\tnoarch\n"

func fedoraRunner(t *testing.T) (agent.Runner, *[]string) {
	return fakeRunner(t, map[string]string{
		"rpm --root " + fixture("fedora") + " -qa --qf":              fedoraRPM,
		"systemctl --root=" + fixture("fedora") + " list-unit-files": "sshd.service enabled disabled\nfirewalld.service enabled enabled\n",
		"systemctl list-units": "firewalld.service loaded active running firewalld - dynamic firewall daemon\n" +
			"sshd.service loaded active running OpenSSH server daemon\n" +
			"user@1000.service loaded active running User Manager for UID 1000\n",
	})
}

func TestLinuxCollectorConformanceFixtures(t *testing.T) {
	for _, name := range []string{"debian", "fedora", "alpine"} {
		t.Run(name, func(t *testing.T) {
			collectortest.Run(t, func(t *testing.T) agent.Collector {
				run, _ := fakeRunner(t, nil)
				if name == "fedora" {
					run, _ = fedoraRunner(t)
				}
				return &agent.LinuxCollector{Root: fixture(name), Run: run}
			})
		})
	}
}

func TestLinuxCollectorFixtures(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name     string
		run      func(t *testing.T) (agent.Runner, *[]string)
		addrs    map[string][]string
		system   proto.InventorySystem
		hardware proto.InventoryHardware
		root     string
		rootEnc  *bool
		disks    []string // name/type/size
		ifaces   []string // name/mac/up
		users    []string // name/uid/system
		packages *proto.InventoryPackages
		units    *proto.InventoryUnits
		firewall proto.InventoryFirewall
	}{
		{
			name: "debian",
			run: func(t *testing.T) (agent.Runner, *[]string) {
				return fakeRunner(t, map[string]string{"systemctl --root=" + fixture("debian") + " list-unit-files": "ssh.service enabled enabled\ngetty@.service enabled enabled\napt-daily.service static -\n"})
			},
			addrs: map[string][]string{"enp0s31f6": {"192.0.2.10/24", "2001:db8::10/64"}, "lo": {"127.0.0.1/8"}, "wlp2s0": {}},
			system: proto.InventorySystem{Hostname: "kiosk-deb-01", OSID: "debian", OSVersion: "12", OSName: "Debian GNU/Linux 12 (bookworm)",
				Kernel: "6.1.0-18-amd64", Arch: "x86_64", BootTime: time.Unix(1764400000, 0).UTC()},
			hardware: proto.InventoryHardware{Vendor: "LENOVO", Model: "20KGS0KL00", Serial: "PF1ABCDE", CPUModel: "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz", CPUCount: 4, MemoryBytes: 8041124 * 1024},
			root:     "dm-0", rootEnc: &yes,
			disks:  []string{"dm-0 (sda3_crypt)/crypt/254432247808", "sda/disk/256060514304", "sda1/part/536870912", "sda2/part/1073741824", "sda3/part/254449025024"},
			ifaces: []string{"enp0s31f6/8c:16:45:aa:bb:cc/true/[192.0.2.10/24 2001:db8::10/64]", "lo//true/[127.0.0.1/8]", "wlp2s0/a4:34:d9:11:22:33/false/[]"},
			users:  []string{"root/0/true", "daemon/1/true", "kiosk/1000/false", "nobody/65534/true"},
			packages: &proto.InventoryPackages{Format: proto.FormatDeb, Packages: []proto.InventoryPackage{
				{Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64"}, {Name: "libc6", Version: "2.36-9+deb12u4", Arch: "i386"},
				{Name: "openssl", Version: "3.0.11-1~deb12u2", Arch: "amd64"}, {Name: "tzdata", Version: "2024a-0+deb12u1", Arch: "all"}}},
			units:    &proto.InventoryUnits{Units: []proto.InventoryUnit{{Name: "getty@.service", Enabled: true}, {Name: "ssh.service", Enabled: true}}},
			firewall: proto.InventoryFirewall{Backend: "ufw", Active: true, Rules: -1},
		},
		{
			name: "fedora",
			run:  fedoraRunner,
			system: proto.InventorySystem{Hostname: "ws-fedora-07", OSID: "fedora", OSVersion: "40", OSName: "Fedora Linux 40 (Workstation Edition)",
				Kernel: "6.8.5-301.fc40.x86_64", Arch: map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH], BootTime: time.Unix(1764300000, 0).UTC()},
			hardware: proto.InventoryHardware{Vendor: "Dell Inc.", Model: "Latitude 7420", CPUModel: "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz", CPUCount: 4, MemoryBytes: 16316412 * 1024},
			root:     "dm-1", rootEnc: &yes, // LVM on LUKS
			disks: []string{"dm-0 (luks-aaaa)/crypt/510389125120", "dm-1 (fedora-root)/dm/510389125120", "nvme0n1/disk/512110190592",
				"nvme0n1p1/part/629145600", "nvme0n1p2/part/1073741824", "nvme0n1p3/part/510405902336", "sdb/disk/32212254720"},
			ifaces: []string{"lo//true/[]", "wlp0s20f3/f8:e4:e3:01:02:03/true/[]"},
			users:  []string{"root/0/true", "systemd-oom/999/true", "alice/1000/false"},
			packages: &proto.InventoryPackages{Format: proto.FormatRPM, Packages: []proto.InventoryPackage{
				{Name: "bash", Version: "5.2.26-3.fc40", Arch: "x86_64"}, {Name: "openssl", Version: "1:3.2.1-2.fc40", Arch: "x86_64"}, {Name: "tzdata", Version: "2024a-5.fc40", Arch: "noarch"}}},
			units: &proto.InventoryUnits{Units: []proto.InventoryUnit{{Name: "firewalld.service", Enabled: true, Running: true},
				{Name: "sshd.service", Enabled: true, Running: true}, {Name: "user@1000.service", Running: true}}},
			firewall: proto.InventoryFirewall{Backend: "firewalld", Active: true, Rules: -1},
		},
		{
			name: "alpine",
			run:  func(t *testing.T) (agent.Runner, *[]string) { return fakeRunner(t, nil) },
			system: proto.InventorySystem{Hostname: "edge-alpine", OSID: "alpine", OSVersion: "3.20.3", OSName: "Alpine Linux v3.20",
				Kernel: "6.6.58-0-lts", Arch: "aarch64", BootTime: time.Unix(1764200000, 0).UTC()},
			hardware: proto.InventoryHardware{CPUModel: "Raspberry Pi 4 Model B Rev 1.4", CPUCount: 2, MemoryBytes: 3884436 * 1024},
			root:     "mmcblk0p2", rootEnc: &no,
			disks:  []string{"mmcblk0/disk/31914983424", "mmcblk0p1/part/268435456", "mmcblk0p2/part/31645499392"},
			ifaces: []string{"eth0/dc:a6:32:00:11:22/true/[]", "lo//true/[]"},
			users:  []string{"root/0/true", "bin/1/true", "edge/1000/false", "nobody/65534/true"},
			packages: &proto.InventoryPackages{Format: proto.FormatAPK, Packages: []proto.InventoryPackage{
				{Name: "busybox", Version: "1.36.1-r29", Arch: "aarch64"}, {Name: "musl", Version: "1.2.5-r0", Arch: "aarch64"}, {Name: "openssl", Version: "3.3.2-r1", Arch: "aarch64"}}},
			firewall: proto.InventoryFirewall{Rules: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(tt.name)
			before := treeSum(t, root)
			run, calls := tt.run(t)
			c := &agent.LinuxCollector{Root: root, Run: run}
			if tt.addrs != nil {
				c.Addrs = func(name string) ([]string, error) { return tt.addrs[name], nil }
			}
			inv, err := c.Collect(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if treeSum(t, root) != before {
				t.Fatal("collecting changed the fixture tree")
			}
			for _, call := range *calls {
				if f := strings.Fields(call); f[0] == "systemctl" && !slices.ContainsFunc(f, func(a string) bool { return strings.HasPrefix(a, "list-") }) {
					t.Errorf("a command that is not a listing ran: %s", call)
				}
			}
			if !reflect.DeepEqual(*inv.System, tt.system) {
				t.Errorf("system =\n%+v\nwant\n%+v", *inv.System, tt.system)
			}
			if !reflect.DeepEqual(*inv.Hardware, tt.hardware) {
				t.Errorf("hardware =\n%+v\nwant\n%+v", *inv.Hardware, tt.hardware)
			}
			var disks []string
			for _, d := range inv.Disks.Disks {
				disks = append(disks, fmt.Sprintf("%s/%s/%d", d.Name, d.Type, d.SizeBytes))
			}
			if !reflect.DeepEqual(disks, tt.disks) || inv.Disks.RootDevice != tt.root || !reflect.DeepEqual(inv.Disks.RootEncrypted, tt.rootEnc) {
				t.Errorf("disks = %v root %q encrypted %v; want %v root %q encrypted %v", disks, inv.Disks.RootDevice, show(inv.Disks.RootEncrypted), tt.disks, tt.root, show(tt.rootEnc))
			}
			var ifaces []string
			for _, i := range inv.Network.Interfaces {
				ifaces = append(ifaces, fmt.Sprintf("%s/%s/%v/%v", i.Name, i.MAC, i.Up, i.Addresses))
			}
			if !reflect.DeepEqual(ifaces, tt.ifaces) {
				t.Errorf("interfaces = %v, want %v", ifaces, tt.ifaces)
			}
			var users []string
			for _, u := range inv.Users.Users {
				users = append(users, fmt.Sprintf("%s/%d/%v", u.Name, u.UID, u.System))
			}
			if !reflect.DeepEqual(users, tt.users) {
				t.Errorf("users = %v, want %v", users, tt.users)
			}
			if !reflect.DeepEqual(inv.Packages, tt.packages) {
				t.Errorf("packages = %+v, want %+v", inv.Packages, tt.packages)
			}
			if !reflect.DeepEqual(inv.Units, tt.units) {
				t.Errorf("units = %+v, want %+v", inv.Units, tt.units)
			}
			if !reflect.DeepEqual(*inv.Firewall, tt.firewall) {
				t.Errorf("firewall = %+v, want %+v", *inv.Firewall, tt.firewall)
			}
		})
	}
}

func show(b *bool) string {
	if b == nil {
		return "unknown"
	}
	return strconv.FormatBool(*b)
}

// A failing section is left out and named; the others still arrive.
func TestLinuxCollectorPartial(t *testing.T) {
	run, _ := fakeRunner(t, nil) // rpm is "not installed"
	inv, err := (&agent.LinuxCollector{Root: fixture("fedora"), Run: run}).Collect(t.Context())
	if err == nil || !strings.Contains(err.Error(), "inventory section packages") || !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("err = %v, want the packages section named", err)
	}
	if inv.Packages != nil || inv.System == nil || inv.Disks == nil {
		t.Fatalf("sections = %v, want all but packages", inv.Present())
	}
}

const androidJSON = `{
  "system": {"hostname": "kiosk-lobby", "osId": "android", "osVersion": "14", "kernel": "5.15.123-android14-11", "arch": "aarch64"},
  "hardware": {"vendor": "Google", "model": "Pixel 8", "serial": "35161FDJH000XY", "memoryBytes": 8000000000},
  "disks": {"disks": [{"name": "internal", "type": "disk", "sizeBytes": 128000000000, "freeBytes": 64000000000}]},
  "network": {"interfaces": [{"name": "wlan0", "mac": "02:00:00:00:00:00", "up": true, "addresses": ["192.168.1.20/24"]}]},
  "packages": {"format": "android", "packages": [
    {"name": "com.android.chrome", "version": "120.0.6099.43", "versionCode": 609904333},
    {"name": "com.example.kiosk", "version": "1.4.2", "versionCode": 142}]},
  "android": {"apiLevel": 34, "securityPatch": "2026-10-05", "buildFingerprint": "google/shiba/shiba:14/UQ1A.240205.004/11269751:user/release-keys", "batteryPercent": 81, "charging": true, "deviceOwner": true}
}`

// The shape the Android app hands over through the facade.
func TestJSONCollectorConformance(t *testing.T) {
	collectortest.Run(t, func(t *testing.T) agent.Collector {
		return agent.JSONCollector(func(context.Context) ([]byte, error) { return []byte(androidJSON), nil })
	})
}

func TestJSONCollectorRefusesBadJSON(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":        `{"system": `,
		"unknown section": `{"bios": {"vendor": "x"}}`,
		"invalid package": `{"packages": {"format": "android", "packages": [{"name": "x"}]}}`,
	} {
		inv, err := agent.JSONCollector(func(context.Context) ([]byte, error) { return []byte(body), nil }).Collect(t.Context())
		if err == nil || len(inv.Present()) != 0 {
			t.Errorf("%s: %v, %v; want an error and no sections", name, inv.Present(), err)
		}
	}
	f := proto.Inventory{}.Facts()
	if len(f) != 0 {
		t.Errorf("facts of nothing: %v", f)
	}
	inv, _ := agent.JSONCollector(func(context.Context) ([]byte, error) { return []byte(androidJSON), nil }).Collect(t.Context())
	if got := inv.Facts(); !reflect.DeepEqual(got[proto.FactPatch], []string{"2026-10-05"}) || !reflect.DeepEqual(got[proto.FactOS], []string{"android 14"}) || !reflect.DeepEqual(got[proto.FactModel], []string{"Pixel 8"}) {
		t.Errorf("Android facts = %v", got)
	}
}
