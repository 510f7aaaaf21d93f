package agent_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/agent/enforcertest"
	"github.com/doorbell-mdm/doorbell/proto"
)

func TestLinuxEnforcerConformance(t *testing.T) {
	enforcertest.Run(t, func(t *testing.T) agent.Enforcer { return agent.NewLinuxEnforcer(t.TempDir()) })
}

func ptr[T any](v T) *T { return &v }

// writeFile writes a file under root, creating its directories.
func writeFile(t *testing.T, root, path, content string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLinuxEnforcerFiles(t *testing.T) {
	root := t.TempDir()
	e := agent.NewLinuxEnforcer(root)
	all := proto.Settings{CameraDisabled: true, SSHPasswordAuthDisabled: ptr(true), AutoUpdatesEnabled: ptr(true)}
	if err := e.Enforce(t.Context(), all); err != nil {
		t.Fatalf("Enforce: %v", err)
	}
	want := map[string][]string{
		agent.LinuxCameraFile: {"\nblacklist uvcvideo\n", "\ninstall uvcvideo /bin/false\n"},
		agent.LinuxSSHFile:    {"\nPasswordAuthentication no\n"},
		agent.LinuxAptFile:    {"\nAPT::Periodic::Update-Package-Lists \"1\";\n", "\nAPT::Periodic::Unattended-Upgrade \"1\";\n"},
	}
	for path, lines := range want {
		p := filepath.Join(root, path)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if !strings.Contains(string(b), l) {
				t.Errorf("%s = %q, want a line %q", path, b, strings.TrimSpace(l))
			}
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", path, fi.Mode().Perm())
		}
		if tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*.tmp")); len(tmps) > 0 {
			t.Errorf("temporary files left: %v", tmps)
		}
	}

	// Turning everything off: the blacklist goes, the others say so.
	if err := e.Enforce(t.Context(), proto.Settings{SSHPasswordAuthDisabled: ptr(false), AutoUpdatesEnabled: ptr(false)}); err != nil {
		t.Fatalf("Enforce: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, agent.LinuxCameraFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("camera blacklist still there (%v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, agent.LinuxSSHFile)); !strings.Contains(string(b), "\nPasswordAuthentication yes\n") {
		t.Errorf("sshd drop-in = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, agent.LinuxAptFile)); !strings.Contains(string(b), `Unattended-Upgrade "0";`) {
		t.Errorf("apt periodic config = %q", b)
	}
}

// TestLinuxEnforcerObserve checks that hand-edited files are read the way
// modprobe, sshd and apt would read them.
func TestLinuxEnforcerObserve(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  proto.Settings
	}{
		{name: "empty root", want: proto.Settings{}},
		{
			name:  "blacklist alone does not stop an explicit modprobe",
			files: map[string]string{agent.LinuxCameraFile: "blacklist uvcvideo\n"},
			want:  proto.Settings{CameraDisabled: false},
		},
		{
			name:  "install line disables the camera",
			files: map[string]string{agent.LinuxCameraFile: "install uvcvideo /bin/true\n"},
			want:  proto.Settings{CameraDisabled: true},
		},
		{
			name:  "commented out install line",
			files: map[string]string{agent.LinuxCameraFile: "blacklist uvcvideo\n# install uvcvideo /bin/false\n"},
			want:  proto.Settings{CameraDisabled: false},
		},
		{
			name:  "hand-edited sshd drop-in saying yes",
			files: map[string]string{agent.LinuxSSHFile: "# Managed by Doorbell MDM\nPasswordAuthentication yes\n"},
			want:  proto.Settings{SSHPasswordAuthDisabled: ptr(false)},
		},
		{
			name:  "sshd keywords are case-insensitive and take =",
			files: map[string]string{agent.LinuxSSHFile: "passwordauthentication=no\n"},
			want:  proto.Settings{SSHPasswordAuthDisabled: ptr(true)},
		},
		{
			name:  "commented out: sshd's default allows passwords",
			files: map[string]string{agent.LinuxSSHFile: "#PasswordAuthentication no\n"},
			want:  proto.Settings{SSHPasswordAuthDisabled: ptr(false)},
		},
		{
			name: "an earlier drop-in wins in sshd",
			files: map[string]string{
				agent.LinuxSSHFile:                     "PasswordAuthentication no\n",
				"/etc/ssh/sshd_config.d/10-cloud.conf": "PasswordAuthentication yes\n",
			},
			want: proto.Settings{SSHPasswordAuthDisabled: ptr(false)},
		},
		{
			name: "main config before its Include wins",
			files: map[string]string{
				agent.LinuxSSHFile:     "PasswordAuthentication no\n",
				"/etc/ssh/sshd_config": "PasswordAuthentication yes\nInclude /etc/ssh/sshd_config.d/*.conf\n",
			},
			want: proto.Settings{SSHPasswordAuthDisabled: ptr(false)},
		},
		{
			name: "Include at the top, as Debian ships it",
			files: map[string]string{
				agent.LinuxSSHFile:     "PasswordAuthentication no\n",
				"/etc/ssh/sshd_config": "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n",
			},
			want: proto.Settings{SSHPasswordAuthDisabled: ptr(true)},
		},
		{
			name:  "a Match block applies only to some connections",
			files: map[string]string{agent.LinuxSSHFile: "Match User backup\n  PasswordAuthentication no\n"},
			want:  proto.Settings{SSHPasswordAuthDisabled: ptr(false)},
		},
		{
			name:  "apt: unattended upgrades off",
			files: map[string]string{agent.LinuxAptFile: "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"0\";\n"},
			want:  proto.Settings{AutoUpdatesEnabled: ptr(false)},
		},
		{
			name:  "apt: weekly is on, comments ignored",
			files: map[string]string{agent.LinuxAptFile: "// weekly\nAPT::Periodic::Update-Package-Lists \"7\"; APT::Periodic::Unattended-Upgrade \"always\"; // x\n"},
			want:  proto.Settings{AutoUpdatesEnabled: ptr(true)},
		},
		{
			name: "apt: a later file wins",
			files: map[string]string{
				agent.LinuxAptFile:                        "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n",
				"/etc/apt/apt.conf.d/99-no-upgrades":      "APT::Periodic::Unattended-Upgrade \"0\";\n",
				"/etc/apt/apt.conf.d/99-ignored.disabled": "APT::Periodic::Unattended-Upgrade \"1\";\n",
			},
			want: proto.Settings{AutoUpdatesEnabled: ptr(false)},
		},
		{
			name:  "apt: a missing key is off",
			files: map[string]string{agent.LinuxAptFile: "APT::Periodic::Update-Package-Lists \"1\";\n"},
			want:  proto.Settings{AutoUpdatesEnabled: ptr(false)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, c := range tt.files {
				writeFile(t, root, p, c)
			}
			got, err := agent.NewLinuxEnforcer(root).Observe(t.Context())
			if err != nil {
				t.Fatalf("Observe: %v", err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("Observe = %s, want %s", mustJSON(t, got), mustJSON(t, tt.want))
			}
		})
	}
}

func TestLinuxEnforcerOverriddenSetting(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "/etc/ssh/sshd_config.d/10-cloud.conf", "PasswordAuthentication yes\n")
	writeFile(t, root, "/etc/apt/apt.conf.d/99-local", "APT::Periodic::Unattended-Upgrade \"0\";\n")
	e := agent.NewLinuxEnforcer(root)
	err := e.Enforce(t.Context(), proto.Settings{CameraDisabled: true, SSHPasswordAuthDisabled: ptr(true), AutoUpdatesEnabled: ptr(true)})
	var se *agent.SettingsError
	if !errors.As(err, &se) {
		t.Fatalf("Enforce = %v, want a *SettingsError", err)
	}
	if len(se.Failed) != 2 ||
		!strings.Contains(se.Failed["sshPasswordAuthDisabled"], "/etc/ssh/sshd_config.d/10-cloud.conf") ||
		!strings.Contains(se.Failed["autoUpdatesEnabled"], "/etc/apt/apt.conf.d/99-local") {
		t.Errorf("Failed = %v, want sshPasswordAuthDisabled and autoUpdatesEnabled naming the overriding files", se.Failed)
	}
	got, err := e.Observe(t.Context())
	want := proto.Settings{CameraDisabled: true, SSHPasswordAuthDisabled: ptr(false), AutoUpdatesEnabled: ptr(false)}
	if err != nil || !got.Equal(want) {
		t.Errorf("Observe = %s, %v; want %s", mustJSON(t, got), err, mustJSON(t, want))
	}
}

func TestLinuxEnforcerUnsupported(t *testing.T) {
	root := t.TempDir()
	e := agent.NewLinuxEnforcer(root)
	for _, n := range []string{"screenCaptureDisabled", "statusBarDisabled", "lockTaskPackages", "usbFileTransferDisabled", "passwordMinLength"} {
		if e.Supports(n) {
			t.Errorf("Supports(%q) = true on Linux", n)
		}
	}
	for _, n := range []string{"cameraDisabled", "sshPasswordAuthDisabled", "autoUpdatesEnabled"} {
		if !e.Supports(n) {
			t.Errorf("Supports(%q) = false on Linux", n)
		}
	}
	android := proto.Settings{
		ScreenCaptureDisabled: ptr(true), StatusBarDisabled: ptr(true), LockTaskPackages: ptr([]string{"a"}),
		USBFileTransferDisabled: ptr(true), PasswordMinLength: ptr(8),
	}
	if err := e.Enforce(t.Context(), android); err != nil {
		t.Fatalf("Enforce of Android-only settings: %v", err)
	}
	var files []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if len(files) > 0 {
		t.Errorf("Android-only settings wrote %v", files)
	}
	if got, err := e.Observe(t.Context()); err != nil || !got.Equal(proto.Settings{}) {
		t.Errorf("Observe = %s, %v; want nothing observed", mustJSON(t, got), err)
	}
}

func TestLinuxEnforcerWriteFailure(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{
			// Works even as root, whom permissions do not stop.
			name: "a file where the directory should be",
			setup: func(t *testing.T, root string) {
				writeFile(t, root, "/etc/ssh", "not a directory\n")
			},
		},
		{
			name: "read-only directory",
			setup: func(t *testing.T, root string) {
				if os.Geteuid() == 0 {
					t.Skip("root writes to read-only directories")
				}
				dir := filepath.Join(root, filepath.Dir(agent.LinuxSSHFile))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, 0o555); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(dir, 0o755) })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			e := agent.NewLinuxEnforcer(root)
			err := e.Enforce(t.Context(), proto.Settings{CameraDisabled: true, SSHPasswordAuthDisabled: ptr(true), AutoUpdatesEnabled: ptr(true)})
			var se *agent.SettingsError
			if !errors.As(err, &se) {
				t.Fatalf("Enforce = %v, want a *SettingsError", err)
			}
			if _, ok := se.Failed["sshPasswordAuthDisabled"]; !ok || len(se.Failed) != 1 {
				t.Errorf("Failed = %v, want sshPasswordAuthDisabled alone", se.Failed)
			}
			// The others were enforced all the same.
			got, err := e.Observe(t.Context())
			if err != nil {
				t.Fatalf("Observe: %v", err)
			}
			if !got.CameraDisabled || got.AutoUpdatesEnabled == nil || !*got.AutoUpdatesEnabled {
				t.Errorf("Observe = %s, want camera disabled and auto updates on", mustJSON(t, got))
			}
		})
	}
}

func TestLinuxEnforcerSSHReload(t *testing.T) {
	root := t.TempDir()
	e := agent.NewLinuxEnforcer(root)
	reloads := 0
	var fail error
	e.SetSSHReload(func(context.Context) error { reloads++; return fail })
	ssh := func(disabled bool) error {
		return e.Enforce(t.Context(), proto.Settings{SSHPasswordAuthDisabled: ptr(disabled)})
	}

	if err := ssh(true); err != nil || reloads != 1 {
		t.Fatalf("first Enforce = %v with %d reloads, want nil and 1", err, reloads)
	}
	if err := ssh(true); err != nil || reloads != 1 {
		t.Fatalf("unchanged Enforce = %v with %d reloads, want nil and still 1", err, reloads)
	}
	if err := e.Enforce(t.Context(), proto.Settings{CameraDisabled: true}); err != nil || reloads != 1 {
		t.Fatalf("Enforce without ssh = %v with %d reloads, want nil and still 1", err, reloads)
	}

	fail = errors.New("sshd is confused")
	var se *agent.SettingsError
	if err := ssh(false); !errors.As(err, &se) || !strings.Contains(se.Failed["sshPasswordAuthDisabled"], "sshd is confused") {
		t.Fatalf("Enforce with a failing reload = %v, want a SettingsError for sshPasswordAuthDisabled", err)
	}
	fail = nil
	if err := ssh(false); err != nil || reloads != 3 {
		t.Fatalf("Enforce after a failed reload = %v with %d reloads, want nil and 3 (retried)", err, reloads)
	}
}
