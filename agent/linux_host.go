package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// linuxHost is what the Linux enforcer found on the host under its root:
// the distribution and which tools exist. It is read again for every
// Enforce, Observe and Supports, so a tool the policy itself installs (ufw
// through packages) is used from the next sync on.
type linuxHost struct {
	distro Distro
	pkg    pkgManager // nil: why in pkgWhy
	pkgWhy string
	// systemd is true when systemd runs the host (as sd_booted(3) decides:
	// /run/systemd/system exists) and a runner can call systemctl.
	systemd    bool
	systemdWhy string
	fw         firewallBackend // nil: why in fwWhy
	fwWhy      string
}

// detect reads the host under the root.
func (e *LinuxEnforcer) detect() linuxHost {
	var h linuxHost
	d, err := DetectDistro(e.root)
	if err != nil {
		h.pkgWhy = fmt.Sprintf("reading os-release: %v", err)
	}
	h.distro = d
	switch {
	case e.run == nil:
		why := fmt.Sprintf("no programs are run under the root prefix %s", e.root)
		h.pkgWhy, h.systemdWhy, h.fwWhy = why, why, why
		return h
	case err != nil:
	case d.Family == "" && d.ID == "":
		h.pkgWhy = "no /etc/os-release: the distribution is unknown"
	case d.Family == "":
		h.pkgWhy = fmt.Sprintf("distribution %q (%s) has no supported package manager", d.ID, d.Name)
	default:
		m := managerFor(d.Family)
		if tool := m.tool(); !e.hasProgram(tool) {
			h.pkgWhy = fmt.Sprintf("%s: %s not found", d.Name, tool)
		} else {
			h.pkg = m
		}
	}
	if !e.exists("/run/systemd/system") {
		h.systemdWhy = "systemd is not running this host (no /run/systemd/system)"
	} else if !e.hasProgram("systemctl") {
		h.systemdWhy = "systemctl not found"
	} else {
		h.systemd = true
	}
	h.fw, h.fwWhy = e.detectFirewall(h)
	return h
}

// programDirs are where the enforcer looks for a program under the root.
var programDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// hasProgram reports whether an executable file name exists under the root.
func (e *LinuxEnforcer) hasProgram(name string) bool {
	for _, d := range programDirs {
		if fi, err := os.Stat(e.path(filepath.Join(d, name))); err == nil && !fi.IsDir() {
			return true
		}
	}
	return false
}

// exists reports whether a host path exists under the root.
func (e *LinuxEnforcer) exists(p string) bool {
	_, err := os.Stat(e.path(p))
	return err == nil
}

// readHostFile reads a host path under the root, "" when it does not
// exist.
func (e *LinuxEnforcer) readHostFile(p string) (string, error) {
	b, err := os.ReadFile(e.path(p))
	if notExist(err) {
		return "", nil
	}
	return string(b), err
}

// runOut runs a command through the enforcer's runner.
func (e *LinuxEnforcer) runCmd(ctx context.Context, name string, args ...string) ([]byte, error) {
	return e.run.Run(ctx, Command{Name: name, Args: args})
}

// The JSON names of the Linux host settings (their catalog entries are in
// proto).
const (
	settingPackages               = "packages"
	settingServices               = "services"
	settingFirewallEnabled        = "firewallEnabled"
	settingSSHRootLoginDisabled   = "sshRootLoginDisabled"
	settingPasswordQuality        = "passwordQuality"
	settingMACEnforcing           = "macEnforcing"
	settingAuditdRunning          = "auditdRunning"
	settingDiskEncryptionRequired = "diskEncryptionRequired"
)

// UnsupportedReason says why this host cannot enforce a setting, "" when it
// can. The reasons depend on the host: no package manager the enforcer
// knows, no systemd, no firewall tool, neither AppArmor nor SELinux.
func (e *LinuxEnforcer) UnsupportedReason(setting string) string {
	return e.unsupportedReason(e.detect(), setting)
}

func (e *LinuxEnforcer) unsupportedReason(h linuxHost, setting string) string {
	switch setting {
	case "cameraDisabled", "sshPasswordAuthDisabled", "autoUpdatesEnabled", settingSSHRootLoginDisabled:
		return ""
	case settingPackages:
		if h.pkg == nil {
			return h.pkgWhy
		}
	case settingServices, settingAuditdRunning:
		if !h.systemd {
			return h.systemdWhy
		}
	case settingFirewallEnabled:
		if h.fw == nil {
			return h.fwWhy
		}
	case settingPasswordQuality:
		if _, why := e.pamPasswordStack(); why != "" {
			return why
		}
	case settingMACEnforcing:
		if e.run == nil {
			return h.systemdWhy
		}
		if e.macKind() == "" {
			return "neither AppArmor nor SELinux is in this kernel or configured"
		}
	case settingDiskEncryptionRequired:
		if !e.exists("/proc/self/mountinfo") {
			return "no /proc/self/mountinfo to find the root file system's device"
		}
	default:
		return "not a Linux setting"
	}
	return ""
}

// firstLine returns the first line of b, trimmed, for messages.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
