package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Family is a group of Linux distributions that share a package manager and
// the layout of their system configuration.
type Family string

// The distribution families the Linux enforcer knows.
const (
	FamilyDebian Family = "debian" // Debian, Ubuntu, Mint, Raspberry Pi OS: apt/dpkg
	FamilyRHEL   Family = "rhel"   // Fedora, RHEL, CentOS, Rocky, Alma: dnf/rpm
	FamilySUSE   Family = "suse"   // openSUSE, SLES: zypper/rpm
	FamilyArch   Family = "arch"   // Arch, Manjaro, EndeavourOS: pacman
	FamilyAlpine Family = "alpine" // Alpine: apk
)

// Distro is what /etc/os-release says about a host.
type Distro struct {
	// ID and Like are os-release's ID and ID_LIKE ("ubuntu", ["debian"]).
	ID   string
	Like []string
	// Name is PRETTY_NAME, or NAME, for messages.
	Name      string
	VersionID string
	// Family is derived from ID and Like; empty for a distribution the
	// enforcer does not know.
	Family Family
}

// familyOf maps os-release IDs to families; ID_LIKE is consulted when ID
// itself is not listed.
var familyOf = map[string]Family{
	"debian": FamilyDebian, "ubuntu": FamilyDebian, "raspbian": FamilyDebian, "linuxmint": FamilyDebian,
	"fedora": FamilyRHEL, "rhel": FamilyRHEL, "centos": FamilyRHEL, "rocky": FamilyRHEL, "almalinux": FamilyRHEL,
	"opensuse": FamilySUSE, "opensuse-leap": FamilySUSE, "opensuse-tumbleweed": FamilySUSE, "sles": FamilySUSE, "suse": FamilySUSE,
	"arch": FamilyArch, "manjaro": FamilyArch, "endeavouros": FamilyArch,
	"alpine": FamilyAlpine,
}

// DetectDistro reads os-release under root (/etc/os-release, else
// /usr/lib/os-release, as systemd does). A host without either is an empty
// Distro with no family, not an error: the settings that need a package
// manager are then unsupported.
func DetectDistro(root string) (Distro, error) {
	var b []byte
	var err error
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err = os.ReadFile(filepath.Join(root, p)); err == nil {
			break
		}
		if !notExist(err) {
			return Distro{}, err
		}
	}
	if err != nil {
		return Distro{}, nil
	}
	return parseOSRelease(b), nil
}

// shellVars parses a file of shell-style KEY=value lines (os-release,
// ufw.conf); values may be quoted. Comments and other lines are skipped.
func shellVars(b []byte) map[string]string {
	kv := map[string]string{}
	for _, line := range configLines(b) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		kv[strings.TrimSpace(k)] = v
	}
	return kv
}

// parseOSRelease parses os-release's KEY=value lines (values may be quoted
// with shell quoting).
func parseOSRelease(b []byte) Distro {
	kv := shellVars(b)
	d := Distro{
		ID:        strings.ToLower(kv["ID"]),
		Like:      strings.Fields(strings.ToLower(kv["ID_LIKE"])),
		Name:      kv["PRETTY_NAME"],
		VersionID: kv["VERSION_ID"],
	}
	if d.Name == "" {
		d.Name = kv["NAME"]
	}
	if f, ok := familyOf[d.ID]; ok {
		d.Family = f
	} else {
		for _, l := range d.Like {
			if f, ok := familyOf[l]; ok {
				d.Family = f
				break
			}
		}
	}
	if d.Family == "" && strings.HasPrefix(d.ID, "opensuse") {
		d.Family = FamilySUSE
	}
	return d
}
