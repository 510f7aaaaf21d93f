package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/doorbell-mdm/doorbell/proto"
)

// The files the Linux enforcer owns, relative to its root.
const (
	// LinuxCameraFile blacklists the USB video class driver, so no USB
	// camera can be used.
	LinuxCameraFile = "/etc/modprobe.d/doorbell-camera.conf"
	// LinuxSSHFile is the sshd drop-in that sets PasswordAuthentication.
	LinuxSSHFile = "/etc/ssh/sshd_config.d/50-doorbell.conf"
	// LinuxAptFile is apt's periodic configuration, which turns
	// unattended upgrades on or off.
	LinuxAptFile = "/etc/apt/apt.conf.d/20auto-upgrades"
)

const (
	sshdConfig    = "/etc/ssh/sshd_config"
	aptConfDir    = "/etc/apt/apt.conf.d"
	cameraModule  = "uvcvideo"
	managedHeader = "# Managed by Doorbell MDM: edits are reverted at the next sync.\n"
)

// LinuxEnforcer enforces the settings a Linux host can honour, by writing
// configuration files under a root directory: "/" on a real host (the agent
// then runs as root), a temporary tree in tests. It is the same code in
// both cases; only the reload hook (see SetSSHReload) differs.
//
//   - cameraDisabled: a kernel-module blacklist, LinuxCameraFile
//     ("blacklist uvcvideo" and "install uvcvideo /bin/false"); the file is
//     removed when the camera is allowed.
//   - sshPasswordAuthDisabled: an sshd drop-in, LinuxSSHFile
//     ("PasswordAuthentication no" or "yes"), then sshd is reloaded.
//   - autoUpdatesEnabled: apt's periodic configuration, LinuxAptFile
//     (APT::Periodic::Update-Package-Lists and Unattended-Upgrade "1" or "0").
//
// The Android-only settings are not supported: Enforce leaves them alone and
// Observe leaves them nil. A nil optional setting is not managed and its file
// is left as it is. Observe reads the files back and parses them as the
// daemon would, so a hand-edited file is observed for what it says, and a
// setting overridden by another file (an earlier sshd drop-in, a later apt
// file) is observed as overridden and reported by Enforce as failed.
type LinuxEnforcer struct {
	root string
	// run makes every program call of the host settings (package
	// managers, systemctl, firewall tools); nil under a root prefix
	// without WithRunner, and those settings are then unsupported.
	run Runner

	// scope is what the current policy names in its list settings, so
	// Observe reads back those packages and units (see Scope).
	hostScope hostScope

	mu            sync.Mutex
	reloadSSH     func(ctx context.Context) error
	reloadPending bool // the drop-in changed but sshd was not reloaded yet
}

var (
	_ Enforcer  = (*LinuxEnforcer)(nil)
	_ Supporter = (*LinuxEnforcer)(nil)
	_ Watcher   = (*LinuxEnforcer)(nil)
	_ Scoper    = (*LinuxEnforcer)(nil)
)

// NewLinuxEnforcer returns an enforcer for the host whose file system is
// mounted at root ("/" for the host itself). When root is "/" and systemctl
// or service exists, a change of the sshd drop-in reloads sshd; under any
// other root nothing outside root is ever touched or run.
//
// The host settings that call programs (packages, services, the firewall,
// MAC, auditd) run them through a Runner: on "/" the host's own programs
// (ExecRunner), under any other root only the one WithRunner gives (tests
// pass a recorder); without one they are unsupported.
func NewLinuxEnforcer(root string, opts ...LinuxOption) *LinuxEnforcer {
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	e := &LinuxEnforcer{root: root}
	if root == "/" {
		e.reloadSSH = systemSSHReload()
		e.run = ExecRunner{}
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Root returns the directory the enforcer treats as the host's "/".
func (e *LinuxEnforcer) Root() string { return e.root }

// LinuxOption configures a LinuxEnforcer.
type LinuxOption func(*LinuxEnforcer)

// WithRunner makes the enforcer run every program through r, also under a
// root prefix, and reload sshd through it ("systemctl try-reload-or-restart
// ssh.service") when the root has /usr/sbin/sshd.
func WithRunner(r Runner) LinuxOption {
	return func(e *LinuxEnforcer) {
		e.run = r
		if _, err := os.Stat(e.path("/usr/sbin/sshd")); err == nil && r != nil {
			e.reloadSSH = func(ctx context.Context) error {
				var errs []error
				for _, unit := range []string{"ssh.service", "sshd.service"} {
					_, err := r.Run(ctx, Command{Name: "systemctl", Args: []string{"try-reload-or-restart", unit}})
					if err == nil {
						return nil
					}
					errs = append(errs, err)
				}
				return errors.Join(errs...)
			}
		}
	}
}

// SetSSHReload replaces the hook that makes sshd read its configuration
// again after the drop-in changed; nil means no reload. A failed reload is
// reported as a failure of sshPasswordAuthDisabled and retried by the next
// Enforce.
func (e *LinuxEnforcer) SetSSHReload(reload func(ctx context.Context) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reloadSSH = reload
}

// systemSSHReload returns a hook that reloads the running sshd through
// systemd or SysV init, or nil when this host has neither or no sshd.
func systemSSHReload() func(ctx context.Context) error {
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		return nil
	}
	if systemctl, err := exec.LookPath("systemctl"); err == nil {
		return func(ctx context.Context) error {
			// Debian names the unit ssh, most others sshd.
			// try-reload-or-restart does nothing when sshd is not running.
			var errs []error
			for _, unit := range []string{"ssh.service", "sshd.service"} {
				out, err := exec.CommandContext(ctx, systemctl, "try-reload-or-restart", unit).CombinedOutput()
				if err == nil {
					return nil
				}
				errs = append(errs, fmt.Errorf("systemctl try-reload-or-restart %s: %v: %s", unit, err, bytes.TrimSpace(out)))
			}
			return errors.Join(errs...)
		}
	}
	if service, err := exec.LookPath("service"); err == nil {
		return func(ctx context.Context) error {
			out, err := exec.CommandContext(ctx, service, "ssh", "reload").CombinedOutput()
			if err != nil {
				return fmt.Errorf("service ssh reload: %v: %s", err, bytes.TrimSpace(out))
			}
			return nil
		}
	}
	return nil
}

// Supports implements Supporter: the settings this host can enforce (see
// UnsupportedReason for why not).
func (e *LinuxEnforcer) Supports(setting string) bool { return e.UnsupportedReason(setting) == "" }

// WatchPaths implements Watcher.
func (e *LinuxEnforcer) WatchPaths() []string {
	return []string{e.path(LinuxCameraFile), e.path(LinuxSSHFile), e.path(LinuxAptFile), e.path(LinuxSSHRootFile), e.path(LinuxPWQualityFile)}
}

// path maps an absolute host path under the root.
func (e *LinuxEnforcer) path(p string) string { return filepath.Join(e.root, p) }

// Enforce implements Enforcer. Files are written only when their content
// changes, so enforcing a matching host touches nothing (and wakes no
// watcher). Settings that failed are listed in a *SettingsError.
func (e *LinuxEnforcer) Enforce(ctx context.Context, desired proto.Settings) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	failed := map[string]string{}

	if err := e.enforceCamera(desired.CameraDisabled); err != nil {
		failed["cameraDisabled"] = err.Error()
	}
	if d := desired.SSHPasswordAuthDisabled; d != nil {
		if err := e.enforceSSH(ctx, sshPassword, *d); err != nil {
			failed["sshPasswordAuthDisabled"] = err.Error()
		}
	}
	if d := desired.AutoUpdatesEnabled; d != nil {
		if err := e.enforceApt(*d); err != nil {
			failed["autoUpdatesEnabled"] = err.Error()
		}
	}
	e.enforceHost(ctx, e.detect(), hostSettingsOf(desired), failed)
	if len(failed) > 0 {
		return &SettingsError{Failed: failed}
	}
	return nil
}

func (e *LinuxEnforcer) enforceCamera(disabled bool) error {
	p := e.path(LinuxCameraFile)
	if !disabled {
		if err := os.Remove(p); err != nil && !notExist(err) {
			return err
		}
		return nil
	}
	content := managedHeader +
		"# The camera is disabled by policy: the USB video class driver may not load.\n" +
		"blacklist " + cameraModule + "\n" +
		"install " + cameraModule + " /bin/false\n"
	_, err := writeIfChanged(p, []byte(content))
	return err
}

// sshKeyword is a boolean setting Doorbell holds with one sshd keyword in a
// drop-in of its own: "no" while the setting is on, allowed while it is off.
type sshKeyword struct {
	file    string // the drop-in
	keyword string // PasswordAuthentication, PermitRootLogin
	allowed string // written when the setting is off; also sshd's default
}

var (
	// sshPassword is sshPasswordAuthDisabled.
	sshPassword = sshKeyword{file: LinuxSSHFile, keyword: "PasswordAuthentication", allowed: "yes"}
	// sshRootLogin is sshRootLoginDisabled: allowed is sshd's default
	// "prohibit-password", so Doorbell never opens password logins for root.
	sshRootLogin = sshKeyword{file: LinuxSSHRootFile, keyword: "PermitRootLogin", allowed: "prohibit-password"}
)

// enforceSSH writes k's drop-in, reloads sshd when it changed (or a
// reload is still owed), and reads back what sshd would use.
func (e *LinuxEnforcer) enforceSSH(ctx context.Context, k sshKeyword, disabled bool) error {
	value := k.allowed
	if disabled {
		value = "no"
	}
	changed, err := writeIfChanged(e.path(k.file), []byte(managedHeader+k.keyword+" "+value+"\n"))
	if err != nil {
		return err
	}
	if changed {
		e.reloadPending = true
	}
	if e.reloadPending && e.reloadSSH != nil {
		if err := e.reloadSSH(ctx); err != nil {
			return fmt.Errorf("reloading sshd: %w", err)
		}
	}
	e.reloadPending = false
	got, src, err := e.observeSSH(k)
	if err != nil {
		return err
	}
	if got == nil || *got != disabled {
		return fmt.Errorf("not in effect: sshd takes %s from %s", k.keyword, src)
	}
	return nil
}

func (e *LinuxEnforcer) enforceApt(enabled bool) error {
	v := "0"
	if enabled {
		v = "1"
	}
	content := "// Managed by Doorbell MDM: edits are reverted at the next sync.\n" +
		"APT::Periodic::Update-Package-Lists \"" + v + "\";\n" +
		"APT::Periodic::Unattended-Upgrade \"" + v + "\";\n"
	if _, err := writeIfChanged(e.path(LinuxAptFile), []byte(content)); err != nil {
		return err
	}
	got, src, err := e.observeApt()
	if err != nil {
		return err
	}
	if got == nil || *got != enabled {
		return fmt.Errorf("not in effect: apt takes it from %s", src)
	}
	return nil
}

// Observe implements Enforcer. cameraDisabled is always observed; the other
// Linux settings are nil while their file does not exist (the host does not
// manage them through Doorbell).
func (e *LinuxEnforcer) Observe(ctx context.Context) (proto.Settings, error) {
	if err := ctx.Err(); err != nil {
		return proto.Settings{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var s proto.Settings
	var err error
	if s.CameraDisabled, err = e.observeCamera(); err != nil {
		return proto.Settings{}, fmt.Errorf("observing cameraDisabled: %w", err)
	}
	if s.SSHPasswordAuthDisabled, _, err = e.observeSSH(sshPassword); err != nil {
		return proto.Settings{}, fmt.Errorf("observing sshPasswordAuthDisabled: %w", err)
	}
	if s.AutoUpdatesEnabled, _, err = e.observeApt(); err != nil {
		return proto.Settings{}, fmt.Errorf("observing autoUpdatesEnabled: %w", err)
	}
	host, err := e.observeHost(ctx, e.detect())
	if err != nil {
		return proto.Settings{}, err
	}
	host.into(&s)
	return s, nil
}

// observeCamera reports whether the drop-in stops the camera driver from
// loading. A blacklist line alone does not: it only stops automatic loading
// by alias, and an explicit modprobe still loads the module, so only an
// "install uvcvideo" line that runs false or true counts.
func (e *LinuxEnforcer) observeCamera() (bool, error) {
	b, err := os.ReadFile(e.path(LinuxCameraFile))
	if notExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	disabled := false
	for _, line := range configLines(b, "#") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "install" && f[1] == cameraModule {
			switch f[2] {
			case "/bin/false", "/usr/bin/false", "/bin/true", "/usr/bin/true":
				disabled = true
			default:
				disabled = false
			}
		}
	}
	return disabled, nil
}

// observeSSH returns whether sshd would use "no" for k's keyword, and the
// file that set it; nil when Doorbell's drop-in does not exist. sshd takes
// the first value it reads: the main configuration in order, with each
// Include expanded in place (lexical order), up to the first Match block.
// Without a main configuration the drop-in directory is read alone.
func (e *LinuxEnforcer) observeSSH(k sshKeyword) (*bool, string, error) {
	if _, err := os.Stat(e.path(k.file)); notExist(err) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	value, src, err := e.sshdKeyword(k.keyword)
	if err != nil {
		return nil, "", err
	}
	if value == "" {
		value, src = k.allowed, "sshd's default"
	}
	disabled := strings.EqualFold(value, "no")
	return &disabled, src, nil
}

// sshdKeyword returns the value sshd uses for key and the file that set it,
// "" when nothing sets it. Without a main configuration the drop-in
// directory is read alone.
func (e *LinuxEnforcer) sshdKeyword(key string) (string, string, error) {
	value, src, err := e.sshValue(key, e.path(sshdConfig), 0)
	if notExist(err) {
		value, src, err = e.sshInclude(key, filepath.Join(filepath.Dir(sshdConfig), "sshd_config.d/*.conf"), 0)
	}
	return value, src, err
}

// sshValue scans one sshd configuration file and returns the first value
// of key and the file (under the root) that set it,
// or "" when none does.
func (e *LinuxEnforcer) sshValue(keyword, path string, depth int) (string, string, error) {
	if depth > 8 {
		return "", "", fmt.Errorf("%s: Include nested too deeply", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	for _, line := range configLines(b, "#") {
		key, rest, _ := strings.Cut(strings.Replace(line, "=", " ", 1), " ")
		args := strings.Fields(rest)
		switch {
		case strings.EqualFold(key, "Match"):
			return "", "", nil
		case strings.EqualFold(key, keyword) && len(args) > 0:
			return args[0], e.hostPath(path), nil
		case strings.EqualFold(key, "Include"):
			for _, pattern := range args {
				v, src, err := e.sshInclude(keyword, pattern, depth+1)
				if err != nil || v != "" {
					return v, src, err
				}
			}
		}
	}
	return "", "", nil
}

// sshInclude scans the files an sshd Include pattern names, relative
// patterns being relative to /etc/ssh.
func (e *LinuxEnforcer) sshInclude(keyword, pattern string, depth int) (string, string, error) {
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(sshdConfig), pattern)
	}
	files, err := filepath.Glob(e.path(pattern))
	if err != nil {
		return "", "", err
	}
	sort.Strings(files)
	for _, f := range files {
		v, src, err := e.sshValue(keyword, f, depth)
		if err != nil && !notExist(err) {
			return "", "", err
		}
		if v != "" {
			return v, src, nil
		}
	}
	return "", "", nil
}

// aptPartName is the name apt accepts for a file in apt.conf.d.
var aptPartName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// observeApt reports whether both periodic package-list updates and
// unattended upgrades are on, and the file that decided it; nil when
// Doorbell's file does not exist. apt reads apt.conf.d in lexical order and
// the last assignment wins; a value is an interval in days ("0" is off) or
// "always". Only the flat "APT::Periodic::Key "value";" form is read.
func (e *LinuxEnforcer) observeApt() (*bool, string, error) {
	if _, err := os.Stat(e.path(LinuxAptFile)); notExist(err) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	entries, err := os.ReadDir(e.path(aptConfDir))
	if err != nil {
		return nil, "", err
	}
	values := map[string]string{}
	sources := map[string]string{}
	for _, ent := range entries { // ReadDir sorts by name.
		name := ent.Name()
		if ent.IsDir() || !aptPartName.MatchString(name) || aptIgnored(name) {
			continue
		}
		p := filepath.Join(e.path(aptConfDir), name)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", err
		}
		for _, line := range configLines(b, "//", "#") {
			for _, stmt := range strings.Split(line, ";") {
				f := strings.Fields(stmt)
				if len(f) != 2 {
					continue
				}
				key := strings.ToLower(f[0])
				if key == "apt::periodic::update-package-lists" || key == "apt::periodic::unattended-upgrade" {
					values[key] = strings.Trim(f[1], `"`)
					sources[key] = e.hostPath(p)
				}
			}
		}
	}
	enabled := true
	src := e.hostPath(e.path(LinuxAptFile))
	for _, key := range []string{"apt::periodic::update-package-lists", "apt::periodic::unattended-upgrade"} {
		if !aptOn(values[key]) {
			enabled = false
			if s, ok := sources[key]; ok {
				src = s
			}
		}
	}
	return &enabled, src, nil
}

// aptIgnored reports the backup and package-manager leftovers apt skips.
func aptIgnored(name string) bool {
	for _, suffix := range []string{".disabled", ".bak", ".save", ".orig", ".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".ucf-old", ".ucf-new", ".ucf-dist"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// aptOn reports whether an APT::Periodic interval means "on".
func aptOn(v string) bool {
	if strings.EqualFold(v, "always") {
		return true
	}
	n, err := strconv.Atoi(v)
	return err == nil && n > 0
}

// notExist reports whether err says a file is not there, including a path
// through something that is not a directory.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// hostPath turns a path under the root back into the host's path, for
// messages.
func (e *LinuxEnforcer) hostPath(p string) string {
	if rel, err := filepath.Rel(e.root, p); err == nil && !strings.HasPrefix(rel, "..") {
		return "/" + rel
	}
	return p
}

// configLines returns the non-empty lines of a configuration file, with
// comments (starting at any of the markers) and surrounding space removed.
func configLines(b []byte, comments ...string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		for _, c := range comments {
			if i := strings.Index(line, c); i >= 0 {
				line = line[:i]
			}
		}
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// writeIfChanged writes data to path atomically (temp file and rename, mode
// 0644, parent directories created) unless the file already holds exactly
// data. It reports whether it wrote.
func writeIfChanged(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return false, err
	}
	return true, nil
}
