package proto

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestCatalogMatchesSettings keeps the typed Settings struct and the
// catalog in step: the same JSON names in the same order, matching types,
// and a non-pointer field exactly for a setting with a default.
func TestCatalogMatchesSettings(t *testing.T) {
	st := reflect.TypeOf(Settings{})
	cat := Catalog()
	if st.NumField() != len(cat) {
		t.Fatalf("Settings has %d fields, the catalog %d entries", st.NumField(), len(cat))
	}
	for i, d := range cat {
		f := st.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != d.Name {
			t.Errorf("field %d is %q (%s), catalog entry %d is %q: same order please", i, name, f.Name, i, d.Name)
			continue
		}
		typ := f.Type
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
			if d.Default != nil {
				t.Errorf("%s: a setting with a default is always managed: a plain field, not a pointer", d.Name)
			}
		} else if d.Default == nil {
			t.Errorf("%s: an optional setting needs a pointer field (nil = unmanaged)", d.Name)
		}
		want := TypeObject
		switch {
		case typ.Kind() == reflect.Bool:
			want = TypeBool
		case typ.Kind() == reflect.Int:
			want = TypeInt
		case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.String:
			want = TypeStrings
		}
		if d.Type != want {
			t.Errorf("%s: catalog type %s, the field's Go type %s is %s", d.Name, d.Type, f.Type, want)
		}
	}
}

// TestCatalogEntries checks each entry is complete and its bounds sane.
func TestCatalogEntries(t *testing.T) {
	for _, d := range Catalog() {
		if d.Description == "" || len(d.Platforms) == 0 {
			t.Errorf("%s: needs a description and at least one platform", d.Name)
		}
		switch d.Type {
		case TypeInt:
			if d.Min > d.Max {
				t.Errorf("%s: Min %d > Max %d", d.Name, d.Min, d.Max)
			}
		case TypeStrings:
			if d.MaxItems <= 0 || d.MaxItemBytes <= 0 {
				t.Errorf("%s: a list needs MaxItems and MaxItemBytes", d.Name)
			}
		case TypeObject:
			if d.Parse == nil || d.Schema == nil {
				t.Errorf("%s: an object setting needs Parse and Schema", d.Name)
			}
		}
		if d.Default != nil {
			if c, err := d.ParseValue(d.Default); err != nil || string(c) != string(d.Default) {
				t.Errorf("%s: default %s is not a canonical value (%s, %v)", d.Name, d.Default, c, err)
			}
		}
	}
}

// TestSettingsTableInDocs fails when docs/POLICY.md's settings table is not
// the one the catalog generates; `go generate ./proto` rewrites it.
func TestSettingsTableInDocs(t *testing.T) {
	b, err := os.ReadFile("../docs/POLICY.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceSettingsTable(string(b))
	if err != nil {
		t.Fatalf("docs/POLICY.md: %v", err)
	}
	if want != string(b) {
		t.Errorf("docs/POLICY.md's settings table differs from the catalog; run `go generate ./proto`")
	}
}

// TestRegisteredSettingIsValidatedAndDiffed adds an int setting through
// the catalog alone: ParseSetting checks its bounds, SettingNames lists it,
// DiffValues compares it, and removing it restores the catalog.
func TestRegisteredSettingIsValidatedAndDiffed(t *testing.T) {
	before := len(SettingNames)
	remove := Register(SettingDef{Name: "madeUpVolume", Type: TypeInt, Min: 1, Max: 11, Description: "Made up.", Platforms: map[string]string{PlatformLinux: "made up"}})
	if !IsSetting("madeUpVolume") || SettingNames[len(SettingNames)-1] != "madeUpVolume" {
		t.Fatalf("SettingNames = %v, want madeUpVolume last", SettingNames)
	}
	if _, err := ParseSetting("madeUpVolume", json.RawMessage("12")); err == nil {
		t.Error("12 accepted, want out of range")
	}
	c, err := ParseSetting("madeUpVolume", json.RawMessage(" 11 "))
	if err != nil || string(c) != "11" {
		t.Errorf("ParseSetting(11) = %s, %v", c, err)
	}
	want := SettingValues{"madeUpVolume": json.RawMessage("11")}
	if f := DiffValues(want, []string{"madeUpVolume"}, SettingValues{"madeUpVolume": json.RawMessage("3")}, nil, nil); len(f) != 1 || f[0].Reason != ReasonMismatch || !f[0].Monitored || string(f[0].Actual) != "3" {
		t.Errorf("diff = %+v, want a monitored MISMATCH with actual 3", f)
	}
	if f := DiffValues(want, nil, want, nil, nil); len(f) != 0 {
		t.Errorf("equal values fail: %+v", f)
	}
	if !strings.Contains(SettingsTable(), "| `madeUpVolume` | whole number 1–11 |") {
		t.Errorf("the docs table lacks madeUpVolume:\n%s", SettingsTable())
	}
	remove()
	if IsSetting("madeUpVolume") || len(SettingNames) != before {
		t.Errorf("after remove SettingNames = %v", SettingNames)
	}
}
