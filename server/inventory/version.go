// Package inventory holds the server's inventory rules that are not storage:
// which version ordering a package format or a fact uses, and the fleet
// query language of GET /devices.
package inventory

import (
	"github.com/doorbell-mdm/doorbell/internal/pkgver"
	"github.com/doorbell-mdm/doorbell/proto"
)

// CompareVersions compares two versions of one package format with
// internal/pkgver: -1 when a is older than b, 0 when equal, +1 when newer.
// Android versionNames and facts without a format (kernel releases) compare
// as Debian versions, which order dotted numbers with letters the way people
// read them ("6.1.0-18-amd64" is after "6.1", "5.15" before "6.1"). A
// version the format cannot parse is an error: it matches no comparison.
func CompareVersions(format, a, b string) (int, error) {
	f := pkgver.Format(format)
	switch format {
	case proto.FormatDeb, proto.FormatRPM, proto.FormatAPK, proto.FormatPacman:
	default:
		f = pkgver.Deb
	}
	return pkgver.Compare(f, a, b)
}
