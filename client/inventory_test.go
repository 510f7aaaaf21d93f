package client

import (
	"net/url"
	"testing"
)

func TestParseWhere(t *testing.T) {
	for _, c := range []struct{ expr, want string }{
		{"kernel<6.1", "kernel.lt=6.1"},
		{"kernel <= 6.1", "kernel.le=6.1"},
		{"kernel>=6.1", "kernel.ge=6.1"},
		{"os=debian 12", "os=debian+12"},
		{"os.id=debian", "os.id=debian"},
		{"hostname~kiosk", "hostname~=kiosk"},
		{"package:openssl<3.0.11", "package=openssl&package.lt=3.0.11"},
		{"package:openssl=3.0.11-1", "package=openssl&package.eq=3.0.11-1"},
		{"package:openssl", "package=openssl"},
	} {
		v, err := ParseWhere(c.expr)
		if err != nil || v.Encode() != c.want {
			t.Errorf("ParseWhere(%q) = %q, %v; want %q", c.expr, v.Encode(), err, c.want)
		}
	}
	for _, bad := range []string{"kernel", "=6", "kernel<", "package:", "package:<3", "package:ssl~x"} {
		if v, err := ParseWhere(bad); err == nil {
			t.Errorf("ParseWhere(%q) = %v, want an error", bad, url.Values(v))
		}
	}
}
