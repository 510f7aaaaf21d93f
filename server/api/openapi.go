package api

import (
	_ "embed"
	"encoding/json"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
)

// openAPITemplate is openapi.json as written by hand: wherever settings
// appear, a schema carries "x-settings" instead of one property per
// setting, and SettingName carries "x-settings-enum"; OpenAPIDocument fills
// them in from the settings catalog (proto.Catalog).
//
//go:embed openapi.json
var openAPITemplate []byte

// OpenAPI is the OpenAPI 3 description of the API as served at
// /openapi.json for the catalog at program start. A test checks real
// requests and answers of every route against it.
var OpenAPI = OpenAPIDocument()

var openAPICache struct {
	sync.Mutex
	names []string
	doc   []byte
}

// OpenAPIDocument returns the OpenAPI document for the current settings
// catalog: every "x-settings" schema gets one property per setting.
//
//	"x-settings": {"values": "bounded"|"observed", "nullable": bool}
//	    the setting's value schema (observed: without bounds, as devices
//	    send it), nullable when null removes the setting;
//	"x-settings": {"each": SCHEMA}   SCHEMA for every setting.
func OpenAPIDocument() []byte {
	openAPICache.Lock()
	defer openAPICache.Unlock()
	names := proto.SettingNames
	if openAPICache.doc != nil && sameSlice(openAPICache.names, names) {
		return openAPICache.doc
	}
	var doc any
	if err := json.Unmarshal(openAPITemplate, &doc); err != nil {
		panic("server: openapi.json is not JSON: " + err.Error())
	}
	fillSettings(doc)
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("server: marshalling the OpenAPI document: " + err.Error())
	}
	openAPICache.names, openAPICache.doc = names, out
	return out
}

// sameSlice reports whether a and b are the same slice (SettingNames is
// replaced, never modified, when the catalog changes).
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func fillSettings(v any) {
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			fillSettings(x)
		}
	case map[string]any:
		for _, x := range v {
			fillSettings(x)
		}
		if _, ok := v["x-settings-enum"]; ok {
			delete(v, "x-settings-enum")
			var enum []any
			for _, n := range proto.SettingNames {
				enum = append(enum, n)
			}
			v["enum"] = enum
		}
		spec, ok := v["x-settings"].(map[string]any)
		if !ok {
			return
		}
		delete(v, "x-settings")
		props, _ := v["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
			v["properties"] = props
		}
		for _, d := range proto.Catalog() {
			if each, ok := spec["each"]; ok {
				props[d.Name] = each
				continue
			}
			s := d.ValueSchema(spec["values"] != "observed")
			if d.Default == nil {
				s["description"] = d.Description + " Optional: absent means not managed (policy) or not observed (report)."
			}
			if spec["nullable"] == true {
				s["nullable"] = true
			}
			props[d.Name] = s
		}
	}
}

func serveOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(OpenAPIDocument())
}
