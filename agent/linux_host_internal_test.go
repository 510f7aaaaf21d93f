package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name, content string
		id            string
		family        Family
	}{
		{"debian", "ID=debian\nVERSION_ID=\"12\"\n", "debian", FamilyDebian},
		{"ubuntu", "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\n", "ubuntu", FamilyDebian},
		{"pop through ID_LIKE", "ID=pop\nID_LIKE=\"ubuntu debian\"\n", "pop", FamilyDebian},
		{"fedora", "ID=fedora\nVERSION_ID=40\n", "fedora", FamilyRHEL},
		{"rocky", "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n", "rocky", FamilyRHEL},
		{"oracle through ID_LIKE", "ID=\"ol\"\nID_LIKE=\"fedora\"\n", "ol", FamilyRHEL},
		{"tumbleweed", "ID=\"opensuse-tumbleweed\"\nID_LIKE=\"opensuse suse\"\n", "opensuse-tumbleweed", FamilySUSE},
		{"arch", "NAME=\"Arch Linux\"\nID=arch\n", "arch", FamilyArch},
		{"alpine", "ID=alpine\nVERSION_ID=3.20.3\n", "alpine", FamilyAlpine},
		{"gentoo is unknown", "ID=gentoo\n", "gentoo", ""},
		{"comments and blanks", "# hi\n\nID='debian'\n", "debian", FamilyDebian},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseOSRelease([]byte(tt.content))
			if d.ID != tt.id || d.Family != tt.family {
				t.Errorf("parseOSRelease = %+v, want ID %q family %q", d, tt.id, tt.family)
			}
		})
	}
}

func TestDetectDistroFallsBackToUsrLib(t *testing.T) {
	root := t.TempDir()
	if d, err := DetectDistro(root); err != nil || d.ID != "" {
		t.Fatalf("empty root: %+v, %v", d, err)
	}
	p := filepath.Join(root, "usr/lib/os-release")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("ID=arch\n"), 0o644)
	if d, err := DetectDistro(root); err != nil || d.Family != FamilyArch {
		t.Fatalf("usr/lib/os-release: %+v, %v", d, err)
	}
}

// scriptRunner answers commands from a table, for the managers no fixture
// host covers.
type scriptRunner map[string]struct {
	out  string
	code int
}

func (s scriptRunner) Run(_ context.Context, c Command) ([]byte, error) {
	r, ok := s[c.String()]
	if !ok {
		return nil, fmt.Errorf("unexpected command %q", c)
	}
	if r.code != 0 {
		return []byte(r.out), &RunError{Cmd: c, Code: r.code}
	}
	return []byte(r.out), nil
}

func TestPackageManagersParse(t *testing.T) {
	ctx := t.Context()
	names := []string{"bash", "nosuch", "openssl"}
	tests := []struct {
		name string
		m    pkgManager
		r    scriptRunner
		want map[string]string
	}{
		{"pacman", pacmanManager{}, scriptRunner{
			"pacman -Q -- bash nosuch openssl": {"bash 5.2.026-2\nopenssl 3.3.1-1\n", 1},
		}, map[string]string{"bash": "5.2.026-2", "openssl": "3.3.1-1"}},
		{"apk", apkManager{}, scriptRunner{
			"apk info -v": {"musl-1.2.5-r0\nbash-5.2.26-r0\nopenssl-3.3.2-r0\nlibssl3-3.3.2-r0\n", 0},
		}, map[string]string{"bash": "5.2.26-r0", "openssl": "3.3.2-r0"}},
		{"zypper (rpm)", rpmManager{frontend: "zypper"}, scriptRunner{
			"rpm -q --qf '%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n' -- bash nosuch openssl": {"bash\t0:5.2.26-1.1\npackage nosuch is not installed\nopenssl\t1:3.1.4-9.1\n", 1},
		}, map[string]string{"bash": "5.2.26-1.1", "openssl": "1:3.1.4-9.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.installed(ctx, tt.r, names)
			if err != nil {
				t.Fatal(err)
			}
			if js(got) != js(tt.want) {
				t.Errorf("installed = %v, want %v", got, tt.want)
			}
		})
	}
	if c := (rpmManager{frontend: "zypper"}).cmd("install", []string{"x"}); c.String() != "zypper --non-interactive install x" {
		t.Errorf("zypper install = %q", c)
	}
}

func TestDiskEncryptionThroughLVM(t *testing.T) {
	// LVM on LUKS: / is dm-1 (LVM), whose slave dm-0 is the LUKS mapping.
	root := t.TempDir()
	files := map[string]string{
		"proc/self/mountinfo":              "28 1 254:1 / / rw - ext4 /dev/mapper/vg-root rw\n",
		"sys/class/block/dm-1/dev":         "254:1\n",
		"sys/class/block/dm-1/dm/uuid":     "LVM-abc\n",
		"sys/class/block/dm-1/slaves/dm-0": "",
		"sys/class/block/dm-0/dev":         "254:0\n",
		"sys/class/block/dm-0/dm/uuid":     "CRYPT-LUKS2-xyz-sda3_crypt\n",
		"sys/class/block/dm-0/slaves/sda3": "",
		"sys/class/block/sda3/dev":         "8:3\n",
	}
	for p, c := range files {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(c), 0o644)
	}
	e := NewLinuxEnforcer(root)
	if enc, why, err := e.observeDiskEncryption(); err != nil || !enc {
		t.Fatalf("LVM on LUKS: %v %q %v", enc, why, err)
	}
	col := &LinuxCollector{Root: root}
	if d, err := col.disks(); err != nil || d.RootDevice != "dm-1" || d.RootEncrypted == nil || !*d.RootEncrypted {
		t.Fatalf("the collector on LVM on LUKS: %+v %v", d, err)
	}
	// Plain dm-crypt (no LUKS header) is encrypted for the inventory but
	// not LUKS for the setting.
	os.WriteFile(filepath.Join(root, "sys/class/block/dm-0/dm/uuid"), []byte("CRYPT-PLAIN-sda3_crypt\n"), 0o644)
	if enc, why, _ := e.observeDiskEncryption(); enc || !strings.Contains(why, "(device 254:1)") {
		t.Fatalf("plain dm-crypt: %v %q", enc, why)
	}
	if d, err := col.disks(); err != nil || d.RootDevice != "dm-1" || d.RootEncrypted == nil || !*d.RootEncrypted {
		t.Fatalf("the collector on plain dm-crypt: %+v %v", d, err)
	}
	os.WriteFile(filepath.Join(root, "sys/class/block/dm-0/dm/uuid"), []byte("LVM-plain\n"), 0o644)
	if enc, why, _ := e.observeDiskEncryption(); enc || !strings.Contains(why, "254:1") {
		t.Fatalf("plain LVM: %v %q", enc, why)
	}
	if d, err := col.disks(); err != nil || d.RootDevice != "dm-1" || d.RootEncrypted == nil || *d.RootEncrypted {
		t.Fatalf("the collector on plain LVM: %+v %v", d, err)
	}
	if err := e.enforceDiskEncryption(true); err == nil || !strings.Contains(err.Error(), "never encrypts") {
		t.Errorf("enforceDiskEncryption(true) = %v", err)
	}
	if err := e.enforceDiskEncryption(false); err != nil {
		t.Errorf("enforceDiskEncryption(false) = %v", err)
	}
}
