package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
)

// More files the Linux enforcer owns, relative to its root.
const (
	// LinuxSSHRootFile is the sshd drop-in that sets PermitRootLogin. It
	// sorts before LinuxSSHFile, and sshd keeps the first value it reads.
	LinuxSSHRootFile = "/etc/ssh/sshd_config.d/50-doorbell-root.conf"
	// LinuxPWQualityFile is pam_pwquality's drop-in with minlen and
	// minclass.
	LinuxPWQualityFile = "/etc/security/pwquality.conf.d/50-doorbell.conf"
)

const (
	pwqualityConf    = "/etc/security/pwquality.conf"
	pwqualityConfDir = "/etc/security/pwquality.conf.d"
	selinuxConfig    = "/etc/selinux/config"
	selinuxEnforce   = "/sys/fs/selinux/enforce"
	apparmorEnabled  = "/sys/module/apparmor/parameters/enabled"
	apparmorProfiles = "/sys/kernel/security/apparmor/profiles"
	auditdUnit       = "auditd.service"
)

// --- passwordQuality ---

// pamStacks are the PAM files that hold the password stack: Debian's and
// openSUSE's common-password, the RHEL family's and Arch's system-auth.
var pamStacks = []string{"/etc/pam.d/common-password", "/etc/pam.d/system-auth"}

// pamPasswordStack returns the host's PAM password stack file, or why there
// is none.
func (e *LinuxEnforcer) pamPasswordStack() (string, string) {
	for _, p := range pamStacks {
		if e.exists(p) {
			return p, ""
		}
	}
	return "", "no PAM password stack (" + strings.Join(pamStacks, " or ") + ")"
}

// pwqualityLine matches an active pam_pwquality line of a password stack.
var pwqualityLine = regexp.MustCompile(`^password\s+\S+(\s+\S+)*?\s+(\S*/)?pam_pwquality\.so\b(.*)$`)

// enforcePasswordQuality writes pam_pwquality's drop-in and reads back.
func (e *LinuxEnforcer) enforcePasswordQuality(q proto.PasswordQuality) error {
	content := managedHeader + fmt.Sprintf("minlen = %d\nminclass = %d\n", q.MinLen, q.MinClass)
	if _, err := writeIfChanged(e.path(LinuxPWQualityFile), []byte(content)); err != nil {
		return err
	}
	got, why, err := e.observePasswordQuality()
	if err != nil {
		return err
	}
	if got == nil || *got != q {
		return fmt.Errorf("not in effect: %s", why)
	}
	return nil
}

// observePasswordQuality returns the minlen and minclass pam_pwquality
// applies, and what decided them; nil when Doorbell's drop-in does not
// exist. pam_pwquality reads pwquality.conf, then pwquality.conf.d/*.conf
// in lexical order (the last value wins), and arguments on its PAM line win
// over both. When the password stack does not call pam_pwquality nothing
// is checked: {0, 0}.
func (e *LinuxEnforcer) observePasswordQuality() (*proto.PasswordQuality, string, error) {
	if _, err := os.Stat(e.path(LinuxPWQualityFile)); notExist(err) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	stack, why := e.pamPasswordStack()
	if why != "" {
		return &proto.PasswordQuality{}, why, nil
	}
	b, err := os.ReadFile(e.path(stack))
	if err != nil {
		return nil, "", err
	}
	var args []string
	found := false
	for _, line := range configLines(b, "#") {
		if m := pwqualityLine.FindStringSubmatch(line); m != nil {
			found, args = true, strings.Fields(m[3])
			break
		}
	}
	if !found {
		return &proto.PasswordQuality{}, fmt.Sprintf("pam_pwquality is not in the password stack %s (install libpam-pwquality, or libpwquality on Fedora)", stack), nil
	}
	q := proto.PasswordQuality{MinLen: 8} // libpwquality's defaults
	src := map[string]string{}
	files := []string{e.path(pwqualityConf)}
	more, _ := filepath.Glob(e.path(filepath.Join(pwqualityConfDir, "*.conf")))
	sort.Strings(more)
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if notExist(err) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		for _, line := range configLines(b, "#") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			if setPWQuality(&q, strings.TrimSpace(k), strings.TrimSpace(v)) {
				src[strings.TrimSpace(k)] = e.hostPath(f)
			}
		}
	}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && setPWQuality(&q, k, v) {
			src[k] = stack
		}
	}
	why = fmt.Sprintf("minlen from %s, minclass from %s", orDefault(src["minlen"]), orDefault(src["minclass"]))
	return &q, why, nil
}

func orDefault(s string) string {
	if s == "" {
		return "the default"
	}
	return s
}

// setPWQuality sets minlen or minclass from a key and value, reporting
// whether it did.
func setPWQuality(q *proto.PasswordQuality, k, v string) bool {
	n, err := strconv.Atoi(v)
	if err != nil {
		return false
	}
	switch k {
	case "minlen":
		q.MinLen = n
	case "minclass":
		q.MinClass = n
	default:
		return false
	}
	return true
}

// --- macEnforcing ---

// macKind returns "selinux" or "apparmor", whichever the host has (the
// running kernel first, then the configuration), or "".
func (e *LinuxEnforcer) macKind() string {
	switch {
	case e.exists(selinuxEnforce):
		return "selinux"
	case e.exists(apparmorEnabled):
		return "apparmor"
	case e.exists(selinuxConfig):
		return "selinux"
	}
	return ""
}

// observeMAC reports whether SELinux is enforcing (/sys/fs/selinux/enforce
// is 1) or AppArmor is enabled with at least one profile in enforce mode.
func (e *LinuxEnforcer) observeMAC() (bool, string, error) {
	switch e.macKind() {
	case "selinux":
		s, err := e.readHostFile(selinuxEnforce)
		if err != nil {
			return false, "", err
		}
		switch strings.TrimSpace(s) {
		case "1":
			return true, "", nil
		case "0":
			return false, "SELinux is permissive", nil
		}
		return false, "SELinux is disabled in the running kernel", nil
	case "apparmor":
		s, err := e.readHostFile(apparmorEnabled)
		if err != nil {
			return false, "", err
		}
		if strings.TrimSpace(s) != "Y" {
			return false, "AppArmor is disabled in the running kernel", nil
		}
		p, err := e.readHostFile(apparmorProfiles)
		if err != nil {
			return false, "", err
		}
		if strings.Contains(p, "(enforce)") {
			return true, "", nil
		}
		return false, "no AppArmor profile is loaded in enforce mode", nil
	}
	return false, "neither AppArmor nor SELinux", nil
}

// enforceMAC switches SELinux between enforcing and permissive (at once
// with setenforce, and in /etc/selinux/config for the next boot), or loads
// AppArmor's profiles. What takes a reboot (SELinux or AppArmor disabled in
// the running kernel, AppArmor switched off) is only read back and
// reported: the agent never reboots.
func (e *LinuxEnforcer) enforceMAC(ctx context.Context, h linuxHost, on bool) error {
	got, why, err := e.observeMAC()
	if err != nil {
		return err
	}
	switch e.macKind() {
	case "selinux":
		mode := "permissive"
		if on {
			mode = "enforcing"
		}
		if err := e.setSELinuxConfig(mode); err != nil {
			return err
		}
		if got == on {
			return nil
		}
		if !e.exists(selinuxEnforce) {
			return fmt.Errorf("not in effect: SELinux is disabled in the running kernel; %s takes a reboot (%s now says %s)", mode, selinuxConfig, mode)
		}
		arg := "0"
		if on {
			arg = "1"
		}
		if _, err := e.runCmd(ctx, "setenforce", arg); err != nil {
			return err
		}
	case "apparmor":
		if got == on {
			return nil
		}
		if !on {
			return errors.New("not in effect: switching AppArmor off takes a reboot (apparmor=0); the agent does not do it")
		}
		if strings.Contains(why, "kernel") {
			return errors.New("not in effect: AppArmor is disabled in the running kernel; enabling it takes apparmor=1 security=apparmor on the kernel command line and a reboot")
		}
		if !h.systemd {
			return fmt.Errorf("not in effect: %s, and loading the profiles needs systemd (%s)", why, h.systemdWhy)
		}
		if _, err := e.runCmd(ctx, "systemctl", "enable", "--now", "apparmor.service"); err != nil {
			return err
		}
	default:
		return errors.New("neither AppArmor nor SELinux is in this kernel or configured")
	}
	got, why, err = e.observeMAC()
	if err != nil {
		return err
	}
	if got != on {
		return fmt.Errorf("not in effect: %s", why)
	}
	return nil
}

// setSELinuxConfig sets SELINUX= in /etc/selinux/config, keeping every
// other line; a missing file is left missing.
func (e *LinuxEnforcer) setSELinuxConfig(mode string) error {
	s, err := e.readHostFile(selinuxConfig)
	if err != nil || s == "" {
		return err
	}
	lines := strings.Split(s, "\n")
	set := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "SELINUX=") {
			lines[i], set = "SELINUX="+mode, true
		}
	}
	if !set {
		lines = append([]string{"SELINUX=" + mode}, lines...)
	}
	_, err = writeIfChanged(e.path(selinuxConfig), []byte(strings.Join(lines, "\n")))
	return err
}

// --- auditdRunning ---

// enforceAuditd enables and starts auditd, or stops and disables it.
func (e *LinuxEnforcer) enforceAuditd(ctx context.Context, h linuxHost, on bool) error {
	if !h.systemd {
		return errors.New(h.systemdWhy)
	}
	st, err := e.unitStatus(ctx, auditdUnit)
	if err != nil {
		return err
	}
	if !st.found && on {
		return errors.New("auditd is not installed (add auditd, or audit on Fedora, to packages)")
	}
	if err := e.enforceService(ctx, proto.Service{Name: auditdUnit, Enabled: &on, Running: &on}); err != nil {
		return err
	}
	if got, err := e.observeAuditd(ctx, h); err != nil {
		return err
	} else if got != on {
		return fmt.Errorf("not in effect: %s is still %s", auditdUnit, map[bool]string{true: "running", false: "stopped"}[got])
	}
	return nil
}

// observeAuditd reports whether auditd is running.
func (e *LinuxEnforcer) observeAuditd(ctx context.Context, h linuxHost) (bool, error) {
	if !h.systemd {
		return false, errors.New(h.systemdWhy)
	}
	st, err := e.unitStatus(ctx, auditdUnit)
	return st.running, err
}

// --- diskEncryptionRequired ---

// enforceDiskEncryption never encrypts: it fails when encryption is
// required and the root file system is not on LUKS.
func (e *LinuxEnforcer) enforceDiskEncryption(required bool) error {
	if !required {
		return nil
	}
	enc, why, err := e.observeDiskEncryption()
	if err != nil {
		return err
	}
	if !enc {
		return fmt.Errorf("not in effect: %s; the agent never encrypts a disk (encrypt when installing)", why)
	}
	return nil
}

// observeDiskEncryption reports whether the root file system sits on a LUKS
// device, directly or through device-mapper layers (LVM on LUKS); see
// readRootDisk, which the inventory collector reads too.
func (e *LinuxEnforcer) observeDiskEncryption() (bool, string, error) {
	rd, err := readRootDisk(e.root)
	if err != nil {
		return false, "", err
	}
	if rd.LUKS {
		return true, "", nil
	}
	return false, "the root file system (device " + rd.Dev + ") is not on LUKS", nil
}
