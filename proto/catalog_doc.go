package proto

import (
	"fmt"
	"strings"
)

//go:generate go run ./internal/settingsdoc ../docs/POLICY.md

// Markers around the generated settings table in docs/POLICY.md.
const (
	SettingsTableBegin = "<!-- settings table: generated from the catalog by `go generate ./proto`; do not edit -->"
	SettingsTableEnd   = "<!-- end of settings table -->"
)

// SettingsTable returns the Markdown table of every setting for
// docs/POLICY.md: name, type and bounds, how each platform enforces it,
// and its description.
func SettingsTable() string {
	var b strings.Builder
	b.WriteString("| setting | type | Android (`DevicePolicyManager`) | Linux (`--enforcer linux`) | meaning |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, d := range Catalog() {
		how := func(p string) string {
			if s, ok := d.Platforms[p]; ok {
				return s
			}
			return "unsupported"
		}
		desc := d.Description
		if d.Default != nil {
			desc += fmt.Sprintf(" Default `%s`.", d.Default)
		} else {
			desc += " Optional."
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", d.Name, d.typeDoc(), how(PlatformAndroid), how(PlatformLinux), desc)
	}
	return b.String()
}

// typeDoc describes d's type and bounds in words.
func (d SettingDef) typeDoc() string {
	switch d.Type {
	case TypeBool:
		return "bool"
	case TypeInt:
		return fmt.Sprintf("whole number %d–%d", d.Min, d.Max)
	case TypeStrings:
		return fmt.Sprintf("list of strings (≤ %d, each 1–%d bytes; order matters)", d.MaxItems, d.MaxItemBytes)
	default:
		return "object (see `GET /settings`)"
	}
}

// ReplaceSettingsTable returns doc with the text between the settings
// table markers replaced by SettingsTable, or an error when the markers
// are missing.
func ReplaceSettingsTable(doc string) (string, error) {
	i := strings.Index(doc, SettingsTableBegin)
	j := strings.Index(doc, SettingsTableEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("the settings table markers are missing")
	}
	return doc[:i+len(SettingsTableBegin)] + "\n" + SettingsTable() + doc[j:], nil
}
