package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
)

// madeUpPackages is a structured setting that exists only in this test: a
// list of {name, state} objects with its own parser and an order-blind
// Equal, the shape the linux branch's packages setting will have.
func madeUpPackages() proto.SettingDef {
	type pkg struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	parse := func(raw json.RawMessage) ([]pkg, error) {
		var ps []pkg
		if err := json.Unmarshal(raw, &ps); err != nil {
			return nil, errors.New("must be a list of {name, state}")
		}
		for _, p := range ps {
			if p.Name == "" || (p.State != "present" && p.State != "absent") {
				return nil, errors.New(`each package needs a name and state "present" or "absent"`)
			}
		}
		return ps, nil
	}
	return proto.SettingDef{
		Name: "madeUpPackages", Type: proto.TypeObject,
		Description: "Made-up packages, for the catalog test.",
		Platforms:   map[string]string{proto.PlatformLinux: "made up"},
		Schema: map[string]any{"type": "array", "items": map[string]any{
			"type": "object", "required": []string{"name", "state"},
			"properties": map[string]any{"name": map[string]any{"type": "string"}, "state": map[string]any{"type": "string", "enum": []string{"present", "absent"}}},
		}},
		Parse: func(raw json.RawMessage) (json.RawMessage, error) {
			ps, err := parse(raw)
			if err != nil {
				return nil, err
			}
			return json.Marshal(ps)
		},
		Equal: func(a, b json.RawMessage) bool {
			pa, _ := parse(a)
			pb, _ := parse(b)
			key := func(p pkg) string { return p.Name + "=" + p.State }
			ka, kb := make([]string, 0, len(pa)), make([]string, 0, len(pb))
			for _, p := range pa {
				ka = append(ka, key(p))
			}
			for _, p := range pb {
				kb = append(kb, key(p))
			}
			slices.Sort(ka)
			slices.Sort(kb)
			return slices.Equal(ka, kb)
		},
	}
}

// TestMadeUpSettingFollowsFromCatalog adds a setting through the catalog
// alone and sees it validated by the API, diffed, explained, listed by
// GET /settings and described in the served OpenAPI document.
func TestMadeUpSettingFollowsFromCatalog(t *testing.T) {
	t.Cleanup(proto.Register(madeUpPackages())) // registered first: removed after the daemon stops
	h := newHarness(t)
	e := h.enroll()

	// Validated: a bad value is a 400 naming the setting; a good one is kept.
	if r := h.do("PUT", "/devices/"+e.DeviceID+"/policy", adminToken, `{"madeUpPackages":[{"name":"vim","state":"maybe"}]}`); r.status != 400 || !strings.Contains(string(r.body), "madeUpPackages") {
		t.Fatalf("bad value: %d %s, want 400 naming madeUpPackages", r.status, r.body)
	}
	if r := h.do("PUT", "/devices/"+e.DeviceID+"/policy", adminToken, `{"madeUpPackages":[{"name":"vim","state":"present"}]}`); r.status != 200 {
		t.Fatalf("good value: %d %s", r.status, r.body)
	}

	// Explained: the device's own layer is its source.
	var ex proto.PolicyExplanation
	h.must("GET", "/devices/"+e.DeviceID+"/policy/explain", "", 200, &ex)
	got, ok := ex.Settings["madeUpPackages"]
	if !ok || got.Source != "device" || string(got.Value) != `[{"name":"vim","state":"present"}]` {
		t.Fatalf("explain madeUpPackages = %+v (present %v), want the device's value", got, ok)
	}

	// Diffed with the entry's own Equal: order does not matter, state does.
	want := proto.SettingValues{"madeUpPackages": json.RawMessage(`[{"name":"a","state":"present"},{"name":"b","state":"absent"}]`)}
	same := proto.SettingValues{"madeUpPackages": json.RawMessage(`[{"name":"b","state":"absent"},{"name":"a","state":"present"}]`)}
	other := proto.SettingValues{"madeUpPackages": json.RawMessage(`[{"name":"a","state":"absent"},{"name":"b","state":"absent"}]`)}
	if f := proto.DiffValues(want, nil, same, nil, nil); len(f) != 0 {
		t.Errorf("reordered packages fail: %+v", f)
	}
	if f := proto.DiffValues(want, nil, other, nil, nil); len(f) != 1 || f[0].Setting != "madeUpPackages" || f[0].Reason != proto.ReasonMismatch {
		t.Errorf("changed state: failures %+v, want madeUpPackages MISMATCH", f)
	}

	// Listed by GET /settings.
	var cat proto.SettingCatalog
	h.must("GET", "/settings", "", 200, &cat)
	if i := slices.IndexFunc(cat.Settings, func(s proto.SettingInfo) bool { return s.Name == "madeUpPackages" }); i < 0 || cat.Settings[i].Type != proto.TypeObject {
		t.Fatalf("GET /settings does not list madeUpPackages: %+v", cat.Settings)
	}

	// Described in the served OpenAPI document.
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Enum       []string                   `json:"enum"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	r := h.do("GET", "/openapi.json", "", "")
	if r.status != 200 {
		t.Fatalf("openapi.json: %d", r.status)
	}
	r.decode(t, &doc)
	if !slices.Contains(doc.Components.Schemas["SettingName"].Enum, "madeUpPackages") {
		t.Errorf("SettingName enum %v lacks madeUpPackages", doc.Components.Schemas["SettingName"].Enum)
	}
	for _, s := range []string{"DevicePolicy", "ComplianceReport", "PolicyEdit", "GroupPolicy", "SettingValues", "LastReport"} {
		p, ok := doc.Components.Schemas[s].Properties["madeUpPackages"]
		var c bytes.Buffer
		json.Compact(&c, p)
		if !ok || !strings.Contains(c.String(), `"enum":["present","absent"]`) {
			t.Errorf("schema %s: madeUpPackages = %s, want the entry's schema", s, p)
		}
	}
}
