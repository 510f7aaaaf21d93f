package inventory

import (
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
)

// The boundaries a hand-written comparison gets wrong: epochs, tildes,
// release parts, numeric against lexical order, apk suffixes.
func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		format, a, b string
		want         int
	}{
		{proto.FormatDeb, "3.0.11-1~deb12u2", "3.0.11", 1},
		{proto.FormatDeb, "3.0.11~rc1", "3.0.11", -1},
		{proto.FormatDeb, "3.0.9", "3.0.11", -1},
		{proto.FormatDeb, "1:1.0", "9.9", 1},
		{proto.FormatDeb, "3.0.11-1", "3.0.11-1", 0},
		{proto.FormatDeb, "2.36-9+deb12u4", "2.36-9+deb12u10", -1},
		{proto.FormatRPM, "3.0.9-2.fc40", "3.0.11-1.fc40", -1},
		{proto.FormatRPM, "1:3.0.9-2.fc40", "3.0.11-1.fc40", 1},
		{proto.FormatRPM, "3.0.11-1.fc40", "3.0.11-1.fc40", 0},
		{proto.FormatRPM, "3.0.11-10.fc40", "3.0.11-9.fc40", 1},
		{proto.FormatRPM, "1.0~rc1-1", "1.0-1", -1},
		{proto.FormatAPK, "3.1.4-r5", "3.1.4-r10", -1},
		{proto.FormatAPK, "3.1.4_rc1-r0", "3.1.4-r0", -1},
		{proto.FormatAPK, "3.1.4_p1-r0", "3.1.4-r0", 1},
		{"", "6.1.0-18-amd64", "6.1", 1},
		{"", "5.15.0-91-generic", "6.1", -1},
		{"", "6.10.3", "6.9.12", 1},
	} {
		got, err := CompareVersions(c.format, c.a, c.b)
		if err != nil || got != c.want {
			t.Errorf("CompareVersions(%q, %q, %q) = %d, %v; want %d", c.format, c.a, c.b, got, err, c.want)
		}
		back, _ := CompareVersions(c.format, c.b, c.a)
		if back != -c.want {
			t.Errorf("CompareVersions(%q, %q, %q) = %d, not the opposite of the other order", c.format, c.b, c.a, back)
		}
	}
	if _, err := CompareVersions(proto.FormatDeb, "not a version", "1"); err == nil {
		t.Error("a Debian version with a space compares")
	}
}
