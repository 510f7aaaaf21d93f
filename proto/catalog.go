package proto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// SettingType is the JSON type of a setting's value.
type SettingType string

// The setting types. TypeBool, TypeInt and TypeStrings are checked by the
// catalog from the entry's bounds; TypeObject (an object, or a list of
// objects) brings its own Parse, Schema and, if needed, Equal.
const (
	TypeBool    SettingType = "bool"
	TypeInt     SettingType = "int"
	TypeStrings SettingType = "strings"
	TypeObject  SettingType = "object"
)

// The platforms a setting may support, the keys of SettingDef.Platforms.
const (
	PlatformAndroid = "android"
	PlatformLinux   = "linux"
)

// SettingDef is one catalog entry: everything the server, the console, the
// CLI and the docs know about a setting. Validation (ParseSetting), Diff,
// explanations, the OpenAPI schemas, GET /settings, the console's policy
// editor, `doorbell policy set` and the table in docs/POLICY.md all follow
// from it; only each platform's enforcer is written by hand.
type SettingDef struct {
	// Name is the setting's JSON name on the wire.
	Name string
	// Type is the JSON type of its value.
	Type SettingType
	// Description is one line for docs, the console and the CLI.
	Description string
	// Min and Max bound a TypeInt value (inclusive).
	Min, Max int
	// MaxItems and MaxItemBytes bound a TypeStrings value; each item is 1
	// to MaxItemBytes bytes.
	MaxItems, MaxItemBytes int
	// Platforms says, per platform (PlatformAndroid, PlatformLinux), how
	// the setting is enforced there (the DPM call, the file or service).
	// A platform not named reports the setting UNSUPPORTED.
	Platforms map[string]string
	// Default is the effective value when no group and no device override
	// sets it; nil means the setting is unmanaged unless a layer sets it.
	Default json.RawMessage
	// Schema is the OpenAPI 3.0 schema of a value, without description;
	// nil for the built-in types, which derive it from their bounds.
	Schema map[string]any
	// Parse checks a value and returns it in canonical JSON; nil for the
	// built-in types. It is only called with a non-null value.
	Parse func(raw json.RawMessage) (json.RawMessage, error)
	// Equal reports whether two canonical values mean the same; nil means
	// byte equality of the canonical forms.
	Equal func(a, b json.RawMessage) bool
}

// catalog holds the entries in canonical order; replaced whole by Register.
var catalog atomic.Pointer[[]SettingDef]

func init() {
	defs := slices.Clone(builtinSettings)
	catalog.Store(&defs)
	SettingNames = names(defs)
}

func names(defs []SettingDef) []string {
	out := make([]string, len(defs))
	for i, d := range defs {
		out[i] = d.Name
	}
	return out
}

// Catalog returns every setting in canonical order. The slice is shared:
// do not modify it.
func Catalog() []SettingDef { return *catalog.Load() }

// LookupSetting returns the catalog entry of name.
func LookupSetting(name string) (SettingDef, bool) {
	for _, d := range Catalog() {
		if d.Name == name {
			return d, true
		}
	}
	return SettingDef{}, false
}

// Register appends def to the catalog and returns a function that removes
// it again. It is for tests (a made-up setting) and program start; it must
// not run while requests are served, since SettingNames is replaced.
func Register(def SettingDef) (remove func()) {
	if def.Name == "" || IsSetting(def.Name) {
		panic(fmt.Sprintf("proto: setting %q is empty or registered twice", def.Name))
	}
	if def.Type == TypeObject && (def.Parse == nil || def.Schema == nil) {
		panic(fmt.Sprintf("proto: object setting %q needs Parse and Schema", def.Name))
	}
	old := catalog.Load()
	defs := append(slices.Clone(*old), def)
	catalog.Store(&defs)
	SettingNames = names(defs)
	return func() {
		catalog.Store(old)
		SettingNames = names(*old)
	}
}

// ParseValue checks one JSON value of d and returns it in canonical form.
// JSON null is not a value (callers give null its own meaning).
func (d SettingDef) ParseValue(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, fmt.Errorf("setting %q has no value", d.Name)
	}
	if d.Parse != nil {
		out, err := d.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("setting %q: %w", d.Name, err)
		}
		return out, nil
	}
	var v any
	switch d.Type {
	case TypeBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("setting %q must be true or false", d.Name)
		}
		v = b
	case TypeInt:
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("setting %q must be a whole number", d.Name)
		}
		if n < d.Min || n > d.Max {
			return nil, fmt.Errorf("setting %q must be from %d to %d", d.Name, d.Min, d.Max)
		}
		v = n
	case TypeStrings:
		var items []string
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("setting %q must be a list of strings", d.Name)
		}
		if len(items) > d.MaxItems {
			return nil, fmt.Errorf("setting %q has more than %d items", d.Name, d.MaxItems)
		}
		for _, p := range items {
			if p == "" || len(p) > d.MaxItemBytes {
				return nil, fmt.Errorf("setting %q: items must be 1 to %d bytes", d.Name, d.MaxItemBytes)
			}
		}
		if items == nil {
			items = []string{}
		}
		v = items
	default:
		return nil, fmt.Errorf("setting %q has no parser for type %q", d.Name, d.Type)
	}
	return json.Marshal(v)
}

// EqualValues reports whether two canonical values of d mean the same.
func (d SettingDef) EqualValues(a, b json.RawMessage) bool {
	if d.Equal != nil {
		return d.Equal(a, b)
	}
	return bytes.Equal(a, b)
}

// ValueSchema returns the OpenAPI 3.0 schema of d's value, with its
// description. Observed (report) values are not bounded: devices are
// lenient input; bounded is false for them.
func (d SettingDef) ValueSchema(bounded bool) map[string]any {
	s := map[string]any{}
	switch d.Type {
	case TypeBool:
		s["type"] = "boolean"
	case TypeInt:
		s["type"] = "integer"
		if bounded {
			s["minimum"], s["maximum"] = d.Min, d.Max
		}
	case TypeStrings:
		s["type"] = "array"
		if bounded {
			s["items"] = map[string]any{"type": "string", "minLength": 1, "maxLength": d.MaxItemBytes}
			s["maxItems"] = d.MaxItems
		} else {
			s["items"] = map[string]any{"type": "string"}
		}
	default:
		for k, v := range d.Schema {
			s[k] = v
		}
	}
	s["description"] = d.Description
	return s
}

// SettingInfo is one setting as GET /settings describes it: the catalog
// entry without its functions, for the console, the CLI and scripts.
type SettingInfo struct {
	Name        string            `json:"name"`
	Type        SettingType       `json:"type"`
	Description string            `json:"description"`
	Platforms   map[string]string `json:"platforms"`
	// Default is the value when nothing sets it; absent when unmanaged.
	Default json.RawMessage `json:"default,omitempty"`
	// Schema is the JSON schema of a value (bounds included).
	Schema map[string]any `json:"schema"`
}

// SettingCatalog is the answer to GET /settings: every setting in
// canonical order.
type SettingCatalog struct {
	Settings []SettingInfo `json:"settings"`
}

// Info returns d as GET /settings shows it.
func (d SettingDef) Info() SettingInfo {
	p := d.Platforms
	if p == nil {
		p = map[string]string{}
	}
	return SettingInfo{Name: d.Name, Type: d.Type, Description: d.Description, Platforms: p, Default: d.Default, Schema: d.ValueSchema(true)}
}

// CatalogInfo returns the whole catalog as GET /settings shows it.
func CatalogInfo() SettingCatalog {
	out := SettingCatalog{Settings: []SettingInfo{}}
	for _, d := range Catalog() {
		out.Settings = append(out.Settings, d.Info())
	}
	return out
}

// ParseText reads a value of d written on a command line and returns it in
// canonical JSON: a bool as true/false (or 1/0, yes/no), an int in
// decimal, a list of strings comma-separated ("" is the empty list), and a
// structured value as JSON.
func (d SettingDef) ParseText(s string) (json.RawMessage, error) {
	var raw json.RawMessage
	switch d.Type {
	case TypeBool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "1", "yes", "on":
			raw = json.RawMessage("true")
		case "false", "0", "no", "off":
			raw = json.RawMessage("false")
		default:
			return nil, fmt.Errorf("setting %q must be true or false, not %q", d.Name, s)
		}
	case TypeInt:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("setting %q must be a whole number, not %q", d.Name, s)
		}
		raw = json.RawMessage(strconv.Itoa(n))
	case TypeStrings:
		items := []string{}
		if strings.TrimSpace(s) != "" {
			for _, it := range strings.Split(s, ",") {
				items = append(items, strings.TrimSpace(it))
			}
		}
		b, err := json.Marshal(items)
		if err != nil {
			return nil, err
		}
		raw = b
	default:
		raw = json.RawMessage(s)
	}
	return d.ParseValue(raw)
}
