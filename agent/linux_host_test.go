package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/agent/linuxtest"
	"github.com/doorbell-mdm/doorbell/proto"
)

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// hostPolicy is one policy with every host setting, for a distribution.
func hostPolicy(curlMin, auditPkg string, encrypted bool) agent.HostSettings {
	pkgs := []proto.Package{
		{Name: "curl", State: proto.PackagePresent, MinVersion: curlMin},
		{Name: "telnet", State: proto.PackageAbsent},
		{Name: auditPkg, State: proto.PackagePresent},
		{Name: "fail2ban", State: proto.PackagePresent},
	}
	svcs := []proto.Service{
		{Name: "cups.service", Enabled: ptr(false), Running: ptr(false)},
		{Name: "avahi-daemon.service", Masked: ptr(true)},
		{Name: "fail2ban", Enabled: ptr(true), Running: ptr(true)},
	}
	return agent.HostSettings{
		Packages:               &pkgs,
		Services:               &svcs,
		FirewallEnabled:        ptr(true),
		SSHRootLoginDisabled:   ptr(true),
		PasswordQuality:        &proto.PasswordQuality{MinLen: 12, MinClass: 3},
		MACEnforcing:           ptr(true),
		AuditdRunning:          ptr(true),
		DiskEncryptionRequired: ptr(encrypted),
	}
}

// TestLinuxHostConverges enforces every host setting on the Debian and
// Fedora fixture trees through the recording runner: one Enforce makes the
// host match (except what no agent can do: encrypt Fedora's disk), a second
// changes nothing, and drift is undone.
func TestLinuxHostConverges(t *testing.T) {
	tests := []struct {
		distro       string
		want         agent.HostSettings
		wantFailed   map[string]string // setting -> part of its error
		wantCalls    []string          // commands the first Enforce must run
		mustNotCall  []string
		reloadedUnit string
	}{
		{
			distro: "debian",
			want:   hostPolicy("7.88.1-10+deb12u8", "auditd", true),
			wantCalls: []string{
				"DEBIAN_FRONTEND=noninteractive apt-get remove -y -q telnet",
				"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends auditd fail2ban",
				"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --only-upgrade curl",
				"systemctl stop -- cups.service",
				"systemctl disable -- cups.service",
				"systemctl mask --now -- avahi-daemon.service",
				"ufw --force enable",
				"systemctl enable --now apparmor.service",
				"systemctl try-reload-or-restart ssh.service",
			},
			mustNotCall: []string{"dnf", "rpm", "firewall-cmd", "setenforce"},
		},
		{
			distro:     "fedora",
			want:       hostPolicy("8.6.0-10.fc40", "audit", true),
			wantFailed: map[string]string{agent.SettingDiskEncryptionRequired: "the root file system (device 252:3) is not on LUKS; the agent never encrypts"},
			wantCalls: []string{
				"rpm -q --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n' -- audit curl fail2ban telnet",
				"dnf remove -y telnet",
				"dnf install -y audit fail2ban",
				"dnf upgrade -y curl",
				"systemctl enable -- fail2ban",
				"systemctl start -- fail2ban",
				"systemctl enable --now firewalld.service",
				"setenforce 1",
				"systemctl enable -- auditd.service",
				"systemctl start -- auditd.service",
				"systemctl try-reload-or-restart sshd.service",
			},
			mustNotCall: []string{"apt-get", "dpkg-query", "ufw"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.distro, func(t *testing.T) {
			host := linuxtest.Load(t, filepath.Join("testdata/hosts", tt.distro))
			e := agent.NewLinuxEnforcer(host.Root, agent.WithRunner(host))
			ctx := t.Context()

			for _, n := range tt.want.Managed() {
				if why := e.UnsupportedReason(n); why != "" {
					t.Fatalf("%s unsupported on the %s fixture: %s", n, tt.distro, why)
				}
			}

			failed := map[string]string{}
			e.EnforceHost(ctx, tt.want, failed)
			if len(failed) != len(tt.wantFailed) {
				t.Errorf("failed = %q, want only %v", failed, tt.wantFailed)
			}
			for n, part := range tt.wantFailed {
				if !strings.Contains(failed[n], part) {
					t.Errorf("failed[%s] = %q, want it to say %q", n, failed[n], part)
				}
			}
			calls := strings.Join(host.Calls(), "\n")
			for _, c := range tt.wantCalls {
				if !strings.Contains(calls+"\n", c+"\n") {
					t.Errorf("no call %q; calls:\n%s", c, calls)
				}
			}
			for _, p := range tt.mustNotCall {
				if got := host.CallsTo(p); len(got) > 0 {
					t.Errorf("called %s on %s: %q", p, tt.distro, got)
				}
			}

			wantObs := tt.want
			if len(tt.wantFailed) > 0 {
				wantObs.DiskEncryptionRequired = ptr(false)
			}
			got, err := e.ObserveHost(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if js(got) != js(wantObs) {
				t.Errorf("observed\n%s\nwant\n%s", js(got), js(wantObs))
			}

			// The files say it too.
			for path, line := range map[string]string{
				agent.LinuxSSHRootFile:   "\nPermitRootLogin no\n",
				agent.LinuxPWQualityFile: "\nminlen = 12\nminclass = 3\n",
			} {
				if b, _ := os.ReadFile(filepath.Join(host.Root, path)); !strings.Contains(string(b), line) {
					t.Errorf("%s = %q", path, b)
				}
			}

			// Again: only questions, no change.
			host.ResetCalls()
			failed = map[string]string{}
			e.EnforceHost(ctx, tt.want, failed)
			if len(failed) != len(tt.wantFailed) {
				t.Errorf("second Enforce failed = %q", failed)
			}
			for _, c := range host.Calls() {
				if !isQuery(c) {
					t.Errorf("second Enforce changed something: %q", c)
				}
			}

			// Drift: cups started and telnet installed by hand.
			host.SetUnit("cups.service", linuxtest.Unit{Enabled: true, Active: true})
			if got, _ := e.ObserveHost(ctx); js(got) == js(wantObs) {
				t.Fatal("drift not observed")
			}
			host.ResetCalls()
			e.EnforceHost(ctx, tt.want, map[string]string{})
			if u, _ := host.Unit("cups.service"); u.Enabled || u.Active {
				t.Errorf("cups after drift and Enforce: %+v; calls %q", u, host.Calls())
			}
			if got, _ := e.ObserveHost(ctx); js(got) != js(wantObs) {
				t.Errorf("after drift, observed %s", js(got))
			}
		})
	}
}

// isQuery reports whether a recorded command only reads state.
func isQuery(c string) bool {
	for _, p := range []string{"dpkg-query ", "rpm -q ", "systemctl show ", "ufw status", "firewall-cmd --state", "nft list "} {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

func TestLinuxHostFailures(t *testing.T) {
	host := linuxtest.Load(t, "testdata/hosts/debian")
	e := agent.NewLinuxEnforcer(host.Root, agent.WithRunner(host))
	ctx := t.Context()
	pkgs := []proto.Package{{Name: "no-such-package", State: proto.PackagePresent}, {Name: "curl", State: proto.PackagePresent, MinVersion: "99.0"}}
	svcs := []proto.Service{{Name: "nosuch.service", Enabled: ptr(true)}}
	failed := map[string]string{}
	e.EnforceHost(ctx, agent.HostSettings{Packages: &pkgs, Services: &svcs, AuditdRunning: ptr(true)}, failed)
	for n, part := range map[string]string{
		agent.SettingPackages:      "no-such-package is absent",
		agent.SettingServices:      "nosuch.service: no such unit",
		agent.SettingAuditdRunning: "auditd is not installed",
	} {
		if !strings.Contains(failed[n], part) {
			t.Errorf("failed[%s] = %q, want %q", n, failed[n], part)
		}
	}
	if !strings.Contains(failed[agent.SettingPackages], "curl 7.88.1-10+deb12u8 is below 99.0") {
		t.Errorf("failed[packages] = %q, want the version below minVersion", failed[agent.SettingPackages])
	}
	// apt-get update was tried once before giving up on the unknown name.
	if n := len(host.CallsTo("apt-get")); n < 3 || !strings.Contains(strings.Join(host.Calls(), "\n"), "apt-get update -q") {
		t.Errorf("apt-get calls: %q", host.CallsTo("apt-get"))
	}
	obs, err := e.ObserveHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"no-such-package","state":"absent"},{"name":"curl","state":"present","version":"7.88.1-10+deb12u8"}]`
	if js(obs.Packages) != want {
		t.Errorf("observed packages %s, want %s", js(obs.Packages), want)
	}

	// A failing program is named with its output.
	host.Fail("ufw --force enable", 1, "ERROR: problem running iptables")
	failed = map[string]string{}
	e.EnforceHost(ctx, agent.HostSettings{FirewallEnabled: ptr(true)}, failed)
	if !strings.Contains(failed[agent.SettingFirewallEnabled], "problem running iptables") {
		t.Errorf("failed[firewallEnabled] = %q", failed[agent.SettingFirewallEnabled])
	}
}

func TestLinuxHostUnsupported(t *testing.T) {
	// Under a root prefix without a runner nothing is run, and says so.
	bare := agent.NewLinuxEnforcer(t.TempDir())
	for _, n := range []string{agent.SettingPackages, agent.SettingServices, agent.SettingFirewallEnabled, agent.SettingAuditdRunning, agent.SettingMACEnforcing} {
		if why := bare.UnsupportedReason(n); !strings.Contains(why, "no programs are run under the root prefix") {
			t.Errorf("UnsupportedReason(%s) = %q", n, why)
		}
	}
	if why := bare.UnsupportedReason(agent.SettingPasswordQuality); !strings.Contains(why, "no PAM password stack") {
		t.Errorf("UnsupportedReason(passwordQuality) = %q", why)
	}
	if why := bare.UnsupportedReason("statusBarDisabled"); why == "" {
		t.Error("statusBarDisabled supported on Linux")
	}

	// Debian without systemd running: packages yes, services no.
	host := linuxtest.Load(t, "testdata/hosts/debian")
	os.RemoveAll(filepath.Join(host.Root, "run/systemd"))
	os.Remove(filepath.Join(host.Root, "usr/sbin/ufw"))
	e := agent.NewLinuxEnforcer(host.Root, agent.WithRunner(host))
	if why := e.UnsupportedReason(agent.SettingPackages); why != "" {
		t.Errorf("packages unsupported: %s", why)
	}
	if why := e.UnsupportedReason(agent.SettingServices); !strings.Contains(why, "systemd is not running") {
		t.Errorf("services: %q", why)
	}
	if why := e.UnsupportedReason(agent.SettingFirewallEnabled); !strings.Contains(why, "no firewall tool") {
		t.Errorf("firewallEnabled: %q", why)
	}
	failed := map[string]string{}
	e.EnforceHost(t.Context(), agent.HostSettings{Services: &[]proto.Service{{Name: "x", Running: ptr(true)}}}, failed)
	if _, ok := failed[agent.SettingServices]; ok {
		t.Errorf("enforcing an unsupported setting: %q", failed[agent.SettingServices])
	}

	// An unknown distribution has no package manager.
	os.WriteFile(filepath.Join(host.Root, "etc/os-release"), []byte("ID=gentoo\nPRETTY_NAME=\"Gentoo\"\n"), 0o644)
	if why := e.UnsupportedReason(agent.SettingPackages); !strings.Contains(why, `"gentoo"`) {
		t.Errorf("packages on gentoo: %q", why)
	}
}

func TestPasswordQualityReadBack(t *testing.T) {
	host := linuxtest.Load(t, "testdata/hosts/fedora")
	e := agent.NewLinuxEnforcer(host.Root, agent.WithRunner(host))
	q := proto.PasswordQuality{MinLen: 14, MinClass: 4}
	if err := e.EnforcePasswordQuality(q); err != nil {
		t.Fatal(err)
	}
	// A later drop-in wins over Doorbell's.
	os.WriteFile(filepath.Join(host.Root, "etc/security/pwquality.conf.d/99-local.conf"), []byte("minlen = 9\n"), 0o644)
	if err := e.EnforcePasswordQuality(q); err == nil || !strings.Contains(err.Error(), "minlen from /etc/security/pwquality.conf.d/99-local.conf") {
		t.Errorf("overridden by a later drop-in: %v", err)
	}
	os.Remove(filepath.Join(host.Root, "etc/security/pwquality.conf.d/99-local.conf"))
	// Module arguments win over every file.
	stack := filepath.Join(host.Root, "etc/pam.d/system-auth")
	b, _ := os.ReadFile(stack)
	os.WriteFile(stack, []byte(strings.Replace(string(b), "pam_pwquality.so local_users_only", "pam_pwquality.so local_users_only minclass=2", 1)), 0o644)
	if got, why, _ := e.ObservePasswordQuality(); got == nil || got.MinClass != 2 || !strings.Contains(why, "minclass from /etc/pam.d/system-auth") {
		t.Errorf("module argument: %+v %q", got, why)
	}
	// Without pam_pwquality in the stack nothing is checked.
	os.WriteFile(stack, []byte("password sufficient pam_unix.so\n#password requisite pam_pwquality.so\n"), 0o644)
	if err := e.EnforcePasswordQuality(q); err == nil || !strings.Contains(err.Error(), "pam_pwquality is not in the password stack") {
		t.Errorf("no pam_pwquality: %v", err)
	}
}

func TestLinuxNotifier(t *testing.T) {
	host := linuxtest.Load(t, "testdata/hosts/debian")
	os.WriteFile(filepath.Join(host.Root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"), 0o644)
	os.MkdirAll(filepath.Join(host.Root, "run/user/1000"), 0o755)
	os.WriteFile(filepath.Join(host.Root, "run/user/1000/bus"), nil, 0o644)
	os.MkdirAll(filepath.Join(host.Root, "run/user/1001"), 0o755) // no bus: no desktop
	n := agent.LinuxNotifier{Root: host.Root, Runner: host}
	by := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	if err := n.Notify(t.Context(), agent.Notice{Pending: []agent.PendingSetting{{Setting: "firewallEnabled", RemediateBy: by}}}); err != nil {
		t.Fatal(err)
	}
	calls := host.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls %q", calls)
	}
	if !strings.HasPrefix(calls[0], "wall 'Your device needs attention\nfirewallEnabled: fix it by 2026-12-01 17:00 UTC") {
		t.Errorf("wall call %q", calls[0])
	}
	if !strings.HasPrefix(calls[1], "runuser -u alice -- env DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus notify-send --urgency=critical --app-name=Doorbell 'Your device needs attention' 'firewallEnabled: fix it by") {
		t.Errorf("desktop call %q", calls[1])
	}
	// When every channel fails, the error says so.
	host.Fail("wall", 1, "wall: cannot get tty name")
	host.Fail("runuser", 1, "runuser: user alice does not exist")
	if err := n.Notify(t.Context(), agent.Notice{Pending: []agent.PendingSetting{{Setting: "x", RemediateBy: by}}}); err == nil || !strings.Contains(err.Error(), "cannot get tty name") {
		t.Errorf("all channels failing: %v", err)
	}
}

// TestLinuxScopeObservesMonitored checks that what the policy names is read
// back even when the agent only monitors it (Enforce gets it as nil), and
// that an unsupported setting's reason reaches the agent's report.
func TestLinuxScopeObservesMonitored(t *testing.T) {
	host := linuxtest.Load(t, "testdata/hosts/debian")
	e := agent.NewLinuxEnforcer(host.Root, agent.WithRunner(host))
	pkgs := []proto.Package{{Name: "telnet", State: proto.PackageAbsent}}
	policy := proto.Settings{Packages: &pkgs, FirewallEnabled: ptr(true)}
	e.Scope(policy)
	if err := e.Enforce(t.Context(), proto.Settings{}); err != nil { // everything monitored
		t.Fatal(err)
	}
	got, err := e.Observe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if js(got.Packages) != `[{"name":"telnet","state":"present"}]` || got.FirewallEnabled == nil || *got.FirewallEnabled {
		t.Errorf("observed %s", js(got))
	}
	if host.Installed("telnet") == "" || host.UFWActive() {
		t.Error("a monitored setting was changed")
	}
	// A new policy that names nothing: nothing is read back any more.
	e.Scope(proto.Settings{})
	if got, _ := e.Observe(t.Context()); got.Packages != nil || got.FirewallEnabled != nil {
		t.Errorf("out of scope, observed %s", js(got))
	}
}
