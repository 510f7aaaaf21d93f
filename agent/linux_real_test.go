package agent_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// realDebian skips unless the test runs as root on Debian, where it
// manages the machine itself (make test runs as root).
func realDebian(t *testing.T) *agent.LinuxEnforcer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("managing this machine's packages and units needs root (make test runs as root)")
	}
	d, err := agent.DetectDistro("/")
	if err != nil {
		t.Fatal(err)
	}
	if d.Family != agent.FamilyDebian {
		t.Skipf("this machine runs %q, not Debian: the real test drives apt and dpkg", d.Name)
	}
	return agent.NewLinuxEnforcer("/")
}

// dpkgStatus asks dpkg itself, not the enforcer.
func dpkgStatus(t *testing.T, pkg string) string {
	out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return strings.TrimSpace(string(out))
}

// TestLinuxRealPackage installs and removes a real small package (GNU
// hello) on this Debian machine through the enforcer and the host's apt,
// checking with dpkg and by running the program.
func TestLinuxRealPackage(t *testing.T) {
	e := realDebian(t)
	const pkg = "hello"
	before := dpkgStatus(t, pkg) == "install ok installed"
	t.Cleanup(func() {
		verb := "remove"
		if before {
			verb = "install"
		}
		if out, err := exec.Command("apt-get", verb, "-y", "-q", pkg).CombinedOutput(); err != nil {
			t.Errorf("restoring %s: %v\n%s", pkg, err, out)
		}
	})
	ctx := t.Context()
	enforce := func(p ...proto.Package) map[string]string {
		failed := map[string]string{}
		e.EnforceHost(ctx, agent.HostSettings{Packages: &p}, failed)
		return failed
	}

	if f := enforce(proto.Package{Name: pkg, State: proto.PackagePresent, MinVersion: "2.10"}); len(f) > 0 {
		t.Fatalf("installing %s: %v", pkg, f)
	}
	if st := dpkgStatus(t, pkg); st != "install ok installed" {
		t.Fatalf("dpkg says %s is %q", pkg, st)
	}
	if out, err := exec.Command("/usr/bin/hello").Output(); err != nil || !strings.Contains(string(out), "Hello, world!") {
		t.Fatalf("running hello: %q, %v", out, err)
	}
	obs, err := e.ObserveHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := js(obs.Packages); got != `[{"name":"hello","state":"present","minVersion":"2.10"}]` {
		t.Errorf("observed %s", got)
	}

	// A minVersion no repository has: reported with the installed version.
	if f := enforce(proto.Package{Name: pkg, State: proto.PackagePresent, MinVersion: "99"}); !strings.Contains(f[agent.SettingPackages], "is below 99") {
		t.Errorf("minVersion 99: %v", f)
	}

	if f := enforce(proto.Package{Name: pkg, State: proto.PackageAbsent}); len(f) > 0 {
		t.Fatalf("removing %s: %v", pkg, f)
	}
	if st := dpkgStatus(t, pkg); st == "install ok installed" {
		t.Fatalf("dpkg still has %s installed", pkg)
	}
	if _, err := os.Stat("/usr/bin/hello"); !os.IsNotExist(err) {
		t.Errorf("/usr/bin/hello after removal: %v", err)
	}
	if obs, _ := e.ObserveHost(ctx); js(obs.Packages) != `[{"name":"hello","state":"absent"}]` {
		t.Errorf("observed after removal %s", js(obs.Packages))
	}
}

// TestLinuxRealUnit toggles a real systemd unit, where systemd runs this
// machine; elsewhere it checks that services are reported unsupported with
// the reason, and says so in its skip message.
func TestLinuxRealUnit(t *testing.T) {
	e := realDebian(t)
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		pid1, _ := os.ReadFile("/proc/1/comm")
		why := e.UnsupportedReason(agent.SettingServices)
		if !strings.Contains(why, "systemd is not running") || e.Supports(agent.SettingServices) {
			t.Fatalf("without systemd, services: supported=%v, reason %q", e.Supports(agent.SettingServices), why)
		}
		t.Skipf("systemd is not PID 1 on this machine (PID 1 is %q, no /run/systemd/system): no real unit can be toggled; services are UNSUPPORTED here (%q)", strings.TrimSpace(string(pid1)), why)
	}
	const unit = "doorbell-test-unit.service"
	p := filepath.Join("/etc/systemd/system", unit)
	if err := os.WriteFile(p, []byte("[Unit]\nDescription=Doorbell test unit\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("systemctl", "disable", "--now", unit).Run()
		os.Remove(p)
		exec.Command("systemctl", "daemon-reload").Run()
	})
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		t.Fatalf("daemon-reload: %v %s", err, out)
	}
	ctx := t.Context()
	for _, on := range []bool{true, false, true} {
		svcs := []proto.Service{{Name: unit, Enabled: &on, Running: &on}}
		failed := map[string]string{}
		e.EnforceHost(ctx, agent.HostSettings{Services: &svcs}, failed)
		if len(failed) > 0 {
			t.Fatalf("enforcing %s running=%v: %v", unit, on, failed)
		}
		active := exec.Command("systemctl", "is-active", "--quiet", unit).Run() == nil
		enabled := exec.Command("systemctl", "is-enabled", "--quiet", unit).Run() == nil
		if active != on || enabled != on {
			t.Fatalf("systemctl says active=%v enabled=%v, want %v", active, enabled, on)
		}
	}
}

// TestLinuxRealDiskEncryption compares what the enforcer observes about this
// machine's root file system with lsblk's view of the devices under it
// (util-linux, an independent reader): LUKS means a "crypt" device.
func TestLinuxRealDiskEncryption(t *testing.T) {
	e := realDebian(t)
	src, err := exec.Command("findmnt", "-no", "SOURCE", "/").Output()
	if err != nil {
		t.Fatalf("findmnt: %v", err)
	}
	out, err := exec.Command("lsblk", "-s", "-no", "TYPE", strings.TrimSpace(string(src))).Output()
	if err != nil {
		t.Skipf("lsblk cannot describe the root device %q here (%v): nothing to compare with", strings.TrimSpace(string(src)), err)
	}
	want := strings.Contains(string(out), "crypt")
	e.EnforceHost(t.Context(), agent.HostSettings{DiskEncryptionRequired: ptr(false)}, map[string]string{})
	obs, err := e.ObserveHost(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if obs.DiskEncryptionRequired == nil || *obs.DiskEncryptionRequired != want {
		t.Fatalf("observed encrypted=%v, lsblk says %q", obs.DiskEncryptionRequired, strings.Fields(string(out)))
	}
	failed := map[string]string{}
	e.EnforceHost(t.Context(), agent.HostSettings{DiskEncryptionRequired: ptr(true)}, failed)
	if want != (failed[agent.SettingDiskEncryptionRequired] == "") {
		t.Errorf("requiring encryption on a root with encrypted=%v: failed = %q", want, failed)
	}
}
