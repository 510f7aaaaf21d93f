// Package pkgver compares package versions the way each Linux package
// manager does (dpkg, rpm, pacman, apk). It wraps well-kept libraries, one
// per format, so the agent's package enforcement and the server's inventory
// use one definition of "newer". It depends on nothing of Doorbell's and on
// no server library, so the agent may import it.
package pkgver

import (
	"fmt"

	apk "github.com/knqyf263/go-apk-version"
	deb "github.com/knqyf263/go-deb-version"
	rpm "github.com/knqyf263/go-rpm-version"
)

// Format is a package version format.
type Format string

// The formats Compare knows.
const (
	// Deb is Debian's [epoch:]upstream[-revision] (dpkg, apt).
	Deb Format = "deb"
	// RPM is [epoch:]version[-release] (rpm, dnf, zypper).
	RPM Format = "rpm"
	// Pacman is Arch's [epoch:]pkgver[-pkgrel], compared with rpm's
	// algorithm as libalpm's vercmp does.
	Pacman Format = "pacman"
	// APK is Alpine's version with its _suffixes and -rN release.
	APK Format = "apk"
)

// Compare returns -1, 0 or +1 as a is older than, the same as, or newer
// than b in format f. It fails for an unknown format or a version the
// format cannot parse (rpm and pacman accept any string, as rpm does).
func Compare(f Format, a, b string) (int, error) {
	switch f {
	case Deb:
		va, err := deb.NewVersion(a)
		if err != nil {
			return 0, fmt.Errorf("deb version %q: %w", a, err)
		}
		vb, err := deb.NewVersion(b)
		if err != nil {
			return 0, fmt.Errorf("deb version %q: %w", b, err)
		}
		return sign(va.Compare(vb)), nil
	case RPM, Pacman:
		return sign(rpm.NewVersion(a).Compare(rpm.NewVersion(b))), nil
	case APK:
		va, err := apk.NewVersion(a)
		if err != nil {
			return 0, fmt.Errorf("apk version %q: %w", a, err)
		}
		vb, err := apk.NewVersion(b)
		if err != nil {
			return 0, fmt.Errorf("apk version %q: %w", b, err)
		}
		return sign(va.Compare(vb)), nil
	}
	return 0, fmt.Errorf("unknown version format %q", f)
}

// sign maps the libraries' differences to -1, 0 or +1.
func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

// AtLeast reports whether version v is min or newer in format f.
func AtLeast(f Format, v, min string) (bool, error) {
	c, err := Compare(f, v, min)
	return c >= 0, err
}
