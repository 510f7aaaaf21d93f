package inventory

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func validUpload() []byte {
	inv := proto.Inventory{System: &proto.InventorySystem{Hostname: "h"}}
	b, _ := json.Marshal(proto.InventoryUpload{Hashes: inv.Hashes(), Inventory: inv})
	return b
}

func TestDecodeUpload(t *testing.T) {
	for _, enc := range []string{"", "identity", "gzip", "GZIP"} {
		body := validUpload()
		if strings.EqualFold(enc, "gzip") {
			body = gz(t, body)
		}
		up, err := DecodeUpload(body, enc)
		if err != nil || up.System == nil || up.System.Hostname != "h" {
			t.Errorf("encoding %q: %+v, %v", enc, up, err)
		}
	}
	// A gzip bomb: 1 KiB of zeros per byte sent, far past the limit once
	// inflated, small as sent.
	bomb := gz(t, append([]byte(`{"hashes":{"system":"x"},"system":{"hostname":"`), make([]byte, proto.MaxInventoryBytes+1)...))
	if len(bomb) > proto.MaxInventoryBodyBytes {
		t.Fatalf("the bomb is %d bytes compressed; the test needs it under the sent limit", len(bomb))
	}
	for name, c := range map[string]struct {
		body []byte
		enc  string
		want error
	}{
		"gzip bomb":       {bomb, "gzip", ErrTooLarge},
		"too large sent":  {make([]byte, proto.MaxInventoryBodyBytes+1), "", ErrTooLarge},
		"not gzip":        {validUpload(), "gzip", ErrInvalid},
		"truncated gzip":  {gz(t, validUpload())[:20], "gzip", ErrInvalid},
		"br":              {validUpload(), "br", ErrEncoding},
		"not JSON":        {[]byte(`{"hashes": `), "", ErrInvalid},
		"trailing data":   {append(validUpload(), []byte(` {}`)...), "", ErrInvalid},
		"no hashes":       {[]byte(`{"system": {"hostname": "h"}}`), "", ErrInvalid},
		"unknown section": {[]byte(`{"hashes": {"bios": "x"}}`), "", ErrInvalid},
	} {
		if _, err := DecodeUpload(c.body, c.enc); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	fleet := map[string]proto.Inventory{
		"deb-old": {System: &proto.InventorySystem{Hostname: "Kiosk-A", OSID: "debian", OSVersion: "12", Kernel: "5.10.0-28-amd64"},
			Packages: &proto.InventoryPackages{Format: proto.FormatDeb, Packages: []proto.InventoryPackage{{Name: "openssl", Version: "3.0.11~rc1-1"}}}},
		"deb-new": {System: &proto.InventorySystem{Hostname: "kiosk-b", OSID: "debian", OSVersion: "12", Kernel: "6.1.0-18-amd64"},
			Packages: &proto.InventoryPackages{Format: proto.FormatDeb, Packages: []proto.InventoryPackage{{Name: "openssl", Version: "3.0.11-1~deb12u2"}}}},
		"rpm-epoch": {System: &proto.InventorySystem{Hostname: "ws", OSID: "fedora", OSVersion: "40", Kernel: "6.8.5-301.fc40.x86_64"},
			Packages: &proto.InventoryPackages{Format: proto.FormatRPM, Packages: []proto.InventoryPackage{{Name: "openssl", Version: "1:3.0.9-2.fc40"}}}},
	}
	// match evaluates q against one inventory the way a store does.
	match := func(q store.InventoryQuery, inv proto.Inventory) bool {
		facts := inv.Facts()
	conds:
		for _, c := range q.Facts {
			for _, v := range facts[c.Fact] {
				if (c.Match == nil && v == c.Equal) || (c.Match != nil && c.Match(v)) {
					continue conds
				}
			}
			return false
		}
	pkgs:
		for _, c := range q.Packages {
			for _, p := range inv.Packages.Packages {
				if p.Name == c.Name && (c.Match == nil || c.Match(inv.Packages.Format, p.Version)) {
					continue pkgs
				}
			}
			return false
		}
		return true
	}
	for _, c := range []struct {
		query string
		want  string
	}{
		{"os=debian+12", "deb-new deb-old"},
		{"hostname~=KIOSK", "deb-new deb-old"},
		{"kernel.lt=6.1", "deb-old"},
		{"kernel.ge=6.1", "deb-new rpm-epoch"},
		{"package=openssl&package.lt=3.0.11", "deb-old"}, // ~rc1 is before; the epoch puts 1:3.0.9 after
		{"package=openssl&package.ge=3.0.11&os.id=debian", "deb-new"},
		{"package=openssl&package.ge=3.0.9&package.lt=3.0.11-1", "deb-new deb-old"}, // ~deb12u2 sorts before -1
		{"package=nginx", ""},
		{"state=COMPLIANT&package=openssl", "deb-new deb-old rpm-epoch"},
	} {
		v, _ := url.ParseQuery(c.query)
		q, ok, err := ParseQuery(v)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", c.query, ok, err)
		}
		var got []string
		for _, id := range []string{"deb-new", "deb-old", "rpm-epoch"} {
			if match(q, fleet[id]) {
				got = append(got, id)
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s matched %v, want %s", c.query, got, c.want)
		}
	}
	if _, ok, err := ParseQuery(url.Values{"state": {"STALE"}, "limit": {"5"}}); ok || err != nil {
		t.Errorf("no inventory filter: ok %v err %v", ok, err)
	}
	for _, bad := range []string{"kernel.newer=6", "package.lt=3", "package=a&package=b&package.lt=1", "os=", "package~=ssl"} {
		v, _ := url.ParseQuery(bad)
		if _, _, err := ParseQuery(v); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
