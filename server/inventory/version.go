// Package inventory holds the server's inventory rules that are not storage:
// version comparison per package format and the fleet query language of
// GET /devices.
package inventory

import (
	"fmt"

	apkver "github.com/knqyf263/go-apk-version"
	debver "github.com/knqyf263/go-deb-version"
	rpmver "github.com/knqyf263/go-rpm-version"

	"github.com/doorbell-mdm/doorbell/proto"
)

// CompareVersions compares two versions of one package format: -1 when a is
// older than b, 0 when equal, +1 when newer. Debian versions follow dpkg
// (epoch, upstream, revision, '~' before everything); RPM and pacman
// versions follow rpmvercmp (epoch:version-release; pacman's vercmp is
// rpmvercmp's algorithm); APK versions follow apk-tools (suffixes such as
// _rc, _p and -rN). Android versionNames and facts without a format (kernel
// releases) compare as Debian upstream versions, which orders dotted
// numbers with letters the way people read them ("6.1.0-18-amd64" is after
// "6.1", "5.15" before "6.1"). A version the format cannot parse is an
// error: it matches no comparison.
func CompareVersions(format, a, b string) (int, error) {
	switch format {
	case proto.FormatRPM, proto.FormatPacman:
		va, vb := rpmver.NewVersion(a), rpmver.NewVersion(b)
		return sign(va.Compare(vb)), nil
	case proto.FormatAPK:
		va, err := apkver.NewVersion(a)
		if err != nil {
			return 0, fmt.Errorf("apk version %q: %w", a, err)
		}
		vb, err := apkver.NewVersion(b)
		if err != nil {
			return 0, fmt.Errorf("apk version %q: %w", b, err)
		}
		return sign(va.Compare(vb)), nil
	default:
		va, err := debver.NewVersion(a)
		if err != nil {
			return 0, fmt.Errorf("version %q: %w", a, err)
		}
		vb, err := debver.NewVersion(b)
		if err != nil {
			return 0, fmt.Errorf("version %q: %w", b, err)
		}
		// go-deb-version returns the difference, not its sign.
		return sign(va.Compare(vb)), nil
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
