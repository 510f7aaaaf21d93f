package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// putInventory uploads inv as device e.
func (h *harness) putInventory(e proto.EnrollResponse, inv proto.Inventory) {
	h.t.Helper()
	b, _ := json.Marshal(proto.InventoryUpload{CollectedAt: h.clock.Now(), Hashes: inv.Hashes(), Inventory: inv})
	if r := h.do("PUT", "/devices/"+e.DeviceID+"/inventory", e.DeviceSecret, string(b)); r.status != 200 {
		h.t.Fatalf("inventory: %d %s", r.status, r.body)
	}
}

func (h *harness) listIDs(query string) ([]string, string) {
	h.t.Helper()
	r := h.do("GET", "/devices?"+query, adminToken, "")
	if r.status != 200 {
		h.t.Fatalf("GET /devices?%s: %d %s", query, r.status, r.body)
	}
	var l proto.DeviceList
	r.decode(h.t, &l)
	var ids []string
	for _, d := range l.Devices {
		ids = append(ids, d.DeviceID)
	}
	return ids, l.NextAfter
}

// TestFleetSearch: GET /devices?q= finds a device by id prefix, by its
// model, and by its inventory's hostname, serial, IP and hardware model,
// case-insensitively, each once, in id order, paged with after; combined
// with state; bad text is a 400.
func TestFleetSearch(t *testing.T) {
	h := newHarness(t)
	var devs []proto.EnrollResponse
	for range 5 {
		devs = append(devs, h.enroll()) // model "Pixel 8"
	}
	slices.SortFunc(devs, func(a, b proto.EnrollResponse) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	host := func(name, serial, ip, model string) proto.Inventory {
		return proto.Inventory{
			System:   &proto.InventorySystem{Hostname: name, OSID: "debian", OSVersion: "12"},
			Hardware: &proto.InventoryHardware{Serial: serial, Model: model},
			Network:  &proto.InventoryNetwork{Interfaces: []proto.InventoryInterface{{Name: "eth0", Addresses: []string{ip + "/24"}}}},
		}
	}
	h.putInventory(devs[0], host("build-Runner-01", "SN-AAA", "10.1.2.3", "ThinkPad X1"))
	h.putInventory(devs[2], host("lobby-kiosk", "SN-BBB", "10.9.9.9", "OptiPlex"))
	h.putInventory(devs[4], host("build-runner-02", "SN-CCC", "10.1.2.77", "OptiPlex"))

	ids := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, devs[i].DeviceID)
		}
		return out
	}
	for _, tc := range []struct {
		name, q string
		want    []string
	}{
		{"hostname, any case", "RUNNER", ids(0, 4)},
		{"serial", "sn-bbb", ids(2)},
		{"ip", "10.1.2.", ids(0, 4)},
		{"hardware model", "optiplex", ids(2, 4)},
		{"enrolled model", "pixel", ids(0, 1, 2, 3, 4)},
		{"id prefix", devs[3].DeviceID[:10], ids(3)},
		{"whole id", strings.ToUpper(devs[1].DeviceID), ids(1)},
		{"nothing", "no-such-thing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, next := h.listIDs("q=" + tc.q)
			if !slices.Equal(got, tc.want) || next != "" {
				t.Fatalf("q=%s: %v next %q, want %v", tc.q, got, next, tc.want)
			}
		})
	}

	// Paging: two a page, every device once, in order.
	var all []string
	after := ""
	for page := 0; ; page++ {
		got, next := h.listIDs("q=pixel&limit=2&after=" + after)
		all = append(all, got...)
		if next == "" {
			break
		}
		if page > 3 {
			t.Fatalf("too many pages: %v", all)
		}
		after = next
	}
	if !slices.Equal(all, ids(0, 1, 2, 3, 4)) {
		t.Fatalf("paged search gave %v", all)
	}
	// A device found by two sources (hostname and IP) comes once, across pages too.
	got, next := h.listIDs("q=1&limit=1")
	if len(got) != 1 || next == "" {
		t.Fatalf("q=1&limit=1: %v next %q", got, next)
	}

	// With a state: none of them reported, so none is COMPLIANT.
	if got, _ := h.listIDs("q=runner&state=COMPLIANT"); len(got) != 0 {
		t.Fatalf("q with state=COMPLIANT: %v", got)
	}
	if got, _ := h.listIDs("q=runner&state=UNKNOWN"); !slices.Equal(got, ids(0, 4)) {
		t.Fatalf("q with state=UNKNOWN: %v", got)
	}

	for _, bad := range []string{"q=", "q=%20%20", "q=" + strings.Repeat("x", 129), "q=a&hostname~=b", "q=%ff"} {
		r := h.do("GET", "/devices?"+bad, adminToken, "")
		if r.status != 400 || r.errCode(t) != "invalid_query" {
			t.Errorf("GET /devices?%.40s: %d %s, want 400 invalid_query", bad, r.status, r.body)
		}
	}
}

// TestPatchGroup: PATCH /groups/{id} renames a group and changes its
// priority; a new priority makes another group win a setting for the
// members (new version, ring); audited; bad input changes nothing.
func TestPatchGroup(t *testing.T) {
	h := newHarness(t)
	d := h.enroll()
	mk := func(body string) proto.GroupChange {
		r := h.do("POST", "/groups", adminToken, body)
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		var g proto.GroupChange
		r.decode(t, &g)
		return g
	}
	lo := mk(fmt.Sprintf(`{"name":"low","priority":1,"policy":{"cameraDisabled":true},"deviceIds":[%q]}`, d.DeviceID))
	mk(fmt.Sprintf(`{"name":"high","priority":5,"policy":{"cameraDisabled":false},"deviceIds":[%q]}`, d.DeviceID))
	policy := func() proto.DevicePolicy {
		var p proto.DevicePolicy
		h.do("GET", "/devices/"+d.DeviceID+"/policy", adminToken, "").decode(t, &p)
		return p
	}
	before := policy()
	if before.CameraDisabled {
		t.Fatalf("high should win: %+v", before)
	}
	rings := len(h.bell.all())

	for _, tc := range []struct{ name, body, code string }{
		{"empty object", `{}`, "invalid_body"},
		{"unknown field", `{"prio":3}`, "invalid_body"},
		{"blank name", `{"name":"  "}`, "invalid_body"},
		{"priority not a number", `{"priority":"9"}`, "invalid_body"},
		{"taken name", `{"name":"high","priority":9}`, "group_name_taken"},
		{"not json", `priority=9`, "invalid_body"},
	} {
		r := h.do("PATCH", "/groups/"+lo.GroupID, adminToken, tc.body)
		if r.status/100 != 4 || r.errCode(t) != tc.code {
			t.Errorf("%s: %d %s, want %s", tc.name, r.status, r.body, tc.code)
		}
	}
	if r := h.do("PATCH", "/groups/nope", adminToken, `{"priority":1}`); r.status != 404 || r.errCode(t) != "group_not_found" {
		t.Errorf("unknown group: %d %s", r.status, r.body)
	}
	viewer := h.do("POST", "/tokens", adminToken, `{"name":"v","role":"viewer"}`)
	var vt proto.OperatorToken
	viewer.decode(t, &vt)
	if r := h.do("PATCH", "/groups/"+lo.GroupID, vt.Token, `{"priority":9}`); r.status != 403 {
		t.Errorf("viewer: %d %s", r.status, r.body)
	}
	if p := policy(); p.Version != before.Version {
		t.Fatalf("refused patches changed the policy: %+v", p)
	}

	r := h.do("PATCH", "/groups/"+lo.GroupID, adminToken, `{"name":"low, now first","priority":10}`)
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	var ch proto.GroupChange
	r.decode(t, &ch)
	if ch.Name != "low, now first" || ch.Priority != 10 || ch.ChangedDevices != 1 || !slices.Equal(ch.DeviceIDs, []string{d.DeviceID}) {
		t.Fatalf("patch answered %+v", ch)
	}
	if p := policy(); !p.CameraDisabled || p.Version != before.Version+1 {
		t.Fatalf("after the patch %+v, want the camera disabled at v%d", p, before.Version+1)
	}
	if len(h.bell.all()) <= rings {
		t.Error("the member's doorbell did not ring")
	}
	var gl proto.GroupList
	h.do("GET", "/groups", adminToken, "").decode(t, &gl)
	if len(gl.Groups) != 2 || gl.Groups[0].GroupID != lo.GroupID {
		t.Fatalf("groups not re-ordered: %+v", gl.Groups)
	}
	// Only the priority: the name is kept.
	r = h.do("PATCH", "/groups/"+lo.GroupID, adminToken, `{"priority":0}`)
	r.decode(t, &ch)
	if r.status != 200 || ch.Name != "low, now first" || ch.Priority != 0 {
		t.Fatalf("priority only: %d %s", r.status, r.body)
	}
	var audit proto.AuditList
	h.do("GET", "/audit", adminToken, "").decode(t, &audit)
	n := 0
	for _, e := range audit.Entries {
		if e.Action == "group.update" && e.Target == lo.GroupID {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d group.update audit entries, want 2 (refusals are not audited): %+v", n, audit.Entries)
	}
}

// TestCommandCatalog: GET /command-types is the catalog, params included,
// for any operator.
func TestCommandCatalog(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/command-types", adminToken, "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var c proto.CommandCatalog
	r.decode(t, &c)
	if len(c.Commands) != len(proto.CommandTypes) {
		t.Fatalf("%d types, want %d", len(c.Commands), len(proto.CommandTypes))
	}
	for i, ct := range c.Commands {
		spec := proto.CommandTypes[i]
		if ct.Type != spec.Type || len(ct.Params) != len(spec.Params) || ct.Destructive != (spec.Type == proto.CommandWipe) {
			t.Errorf("entry %d = %+v, catalog %+v", i, ct, spec)
		}
	}
	rs, _ := proto.LookupCommand(proto.CommandRunScript)
	for _, ct := range c.Commands {
		if ct.Type == proto.CommandRunScript {
			if ct.Params[1].Name != "timeout" || ct.Params[1].Max != rs.Params[1].Max.String() || ct.Params[1].Min != time.Second.String() {
				t.Errorf("run_script params: %+v", ct.Params)
			}
		}
	}
	if r := h.do("GET", "/command-types", "", ""); r.status != 401 {
		t.Errorf("without a token: %d", r.status)
	}
}
