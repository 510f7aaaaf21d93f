package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

func (f *fakeBell) counts() (calls, rings int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, len(f.rings)
}

func (h *harness) must(method, path, body string, status int, out any) {
	h.t.Helper()
	r := h.do(method, path, adminToken, body)
	if r.status != status {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.body, status)
	}
	if out != nil {
		r.decode(h.t, out)
	}
}

func (h *harness) report(e proto.EnrollResponse, body string) {
	h.t.Helper()
	r := h.do("POST", "/devices/"+e.DeviceID+"/report", e.DeviceSecret, body)
	if r.status != 204 {
		h.t.Fatalf("report: %d %s", r.status, r.body)
	}
}

func (h *harness) policy(id string) proto.DevicePolicy {
	h.t.Helper()
	var p proto.DevicePolicy
	h.must("GET", "/devices/"+id+"/policy", "", 200, &p)
	return p
}

func TestGroupPolicyAPI(t *testing.T) {
	h := newHarness(t)
	d1, d2, d3 := h.enroll(), h.enroll(), h.enroll()
	for _, e := range []proto.EnrollResponse{d1, d2, d3} {
		h.report(e, `{"appliedPolicyVersion":1,"cameraDisabled":false}`)
	}

	var kiosks proto.GroupChange
	h.must("POST", "/groups", `{"name":"kiosks","priority":10,"policy":{"cameraDisabled":true,"passwordMinLength":8}}`, 201, &kiosks)
	if kiosks.GroupID == "" || kiosks.Name != "kiosks" || kiosks.Priority != 10 || kiosks.Mode != proto.ModeEnforce || kiosks.ChangedDevices != 0 {
		t.Fatalf("created = %+v", kiosks)
	}
	if calls, _ := h.bell.counts(); calls != 0 {
		t.Fatalf("an empty group rang %d times", calls)
	}

	var ch proto.GroupChange
	h.must("PUT", "/groups/"+kiosks.GroupID+"/devices", fmt.Sprintf(`{"deviceIds":[%q,%q]}`, d1.DeviceID, d2.DeviceID), 200, &ch)
	if ch.ChangedDevices != 2 {
		t.Fatalf("membership changed %d devices, want 2", ch.ChangedDevices)
	}
	if calls, rings := h.bell.counts(); calls != 1 || rings != 2 {
		t.Fatalf("bell: %d calls with %d rings, want one batched call with 2", calls, rings)
	}
	for _, e := range []proto.EnrollResponse{d1, d2} {
		p := h.policy(e.DeviceID)
		if p.Version != 2 || !p.CameraDisabled || p.PasswordMinLength == nil || *p.PasswordMinLength != 8 {
			t.Errorf("member policy = %+v, want v2 camera disabled, passwordMinLength 8", p)
		}
		if s := h.status(e.DeviceID); s.State != proto.StateStale {
			t.Errorf("member state = %s, want STALE", s.State)
		}
	}
	if p := h.policy(d3.DeviceID); !reflect.DeepEqual(p, proto.DevicePolicy{Version: 1}) {
		t.Errorf("non-member policy = %+v, want untouched v1", p)
	}

	// The same policy again bumps and rings nothing.
	h.must("PUT", "/groups/"+kiosks.GroupID+"/policy", `{"cameraDisabled":true,"passwordMinLength":8}`, 200, &ch)
	if calls, _ := h.bell.counts(); ch.ChangedDevices != 0 || calls != 1 {
		t.Fatalf("no-op group edit changed %d devices, bell calls %d", ch.ChangedDevices, calls)
	}

	// Precedence: a higher-priority group wins for the settings it sets.
	var open proto.GroupChange
	h.must("POST", "/groups", fmt.Sprintf(`{"name":"camera-ok","priority":20,"policy":{"cameraDisabled":false},"deviceIds":[%q]}`, d1.DeviceID), 201, &open)
	if open.ChangedDevices != 1 {
		t.Fatalf("camera-ok changed %d, want 1", open.ChangedDevices)
	}
	explain := func(id string) proto.PolicyExplanation {
		var ex proto.PolicyExplanation
		h.must("GET", "/devices/"+id+"/policy/explain", "", 200, &ex)
		return ex
	}
	sources := func(ex proto.PolicyExplanation) map[string]string {
		out := map[string]string{}
		for k, v := range ex.Settings {
			out[k] = v.Source + "=" + string(v.Value)
		}
		return out
	}
	ex := explain(d1.DeviceID)
	want := map[string]string{"cameraDisabled": "group:" + open.GroupID + "=false", "passwordMinLength": "group:" + kiosks.GroupID + "=8"}
	if got := sources(ex); !reflect.DeepEqual(got, want) || ex.Policy.Version != 3 || ex.Policy.CameraDisabled {
		t.Fatalf("explain = %v (policy %+v), want %v at v3", got, ex.Policy, want)
	}

	// The device's own setting wins over every group; null hands it back.
	var p proto.DevicePolicy
	h.must("PUT", "/devices/"+d1.DeviceID+"/policy", `{"cameraDisabled":true}`, 200, &p)
	if p.Version != 4 || !p.CameraDisabled {
		t.Fatalf("device override = %+v, want v4 camera disabled", p)
	}
	if got := sources(explain(d1.DeviceID))["cameraDisabled"]; got != "device=true" {
		t.Errorf("camera source = %s, want device", got)
	}
	h.must("PUT", "/devices/"+d1.DeviceID+"/policy", `{"cameraDisabled":null}`, 200, &p)
	if p.Version != 5 || p.CameraDisabled {
		t.Fatalf("after null = %+v, want v5 camera from camera-ok (false)", p)
	}
	// A device subset manages just that setting.
	h.must("PUT", "/devices/"+d3.DeviceID+"/policy", `{"passwordMinLength":6}`, 200, &p)
	if p.Version != 2 || p.PasswordMinLength == nil || *p.PasswordMinLength != 6 || p.CameraDisabled {
		t.Fatalf("subset = %+v", p)
	}
	if got := sources(explain(d3.DeviceID)); !reflect.DeepEqual(got, map[string]string{"cameraDisabled": "default=false", "passwordMinLength": "device=6"}) {
		t.Errorf("d3 explain = %v", got)
	}

	// Lists and single groups; precedence order, winner first.
	var list proto.GroupList
	h.must("GET", "/groups", "", 200, &list)
	if len(list.Groups) != 2 || list.Groups[0].Name != "camera-ok" || list.Groups[1].Name != "kiosks" {
		t.Fatalf("groups = %+v", list.Groups)
	}
	var g proto.Group
	h.must("GET", "/groups/"+kiosks.GroupID, "", 200, &g)
	if !reflect.DeepEqual(g.DeviceIDs, sorted(d1.DeviceID, d2.DeviceID)) || string(g.Policy["passwordMinLength"]) != "8" {
		t.Errorf("group = %+v", g)
	}

	// Deleting a group restores its members' next-best policy.
	h.must("DELETE", "/groups/"+open.GroupID, "", 200, &ch)
	if ch.ChangedDevices != 1 || h.policy(d1.DeviceID).Version != 6 || !h.policy(d1.DeviceID).CameraDisabled {
		t.Fatalf("delete changed %d; d1 = %+v", ch.ChangedDevices, h.policy(d1.DeviceID))
	}
	h.must("GET", "/groups/"+open.GroupID, "", 404, nil)
}

func sorted(ids ...string) []string {
	out := append([]string(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestCameraOnlyEditUnchanged(t *testing.T) {
	h := newHarness(t)
	e := h.enroll()
	r := h.do("PUT", "/devices/"+e.DeviceID+"/policy", adminToken, `{"cameraDisabled": true}`)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"version":2,"cameraDisabled":true}` {
		t.Fatalf("camera edit = %d %s, want exactly the v1 answer", r.status, r.body)
	}
	r = h.do("GET", "/devices/"+e.DeviceID+"/policy", e.DeviceSecret, "")
	if strings.TrimSpace(string(r.body)) != `{"version":2,"cameraDisabled":true}` {
		t.Fatalf("policy = %s", r.body)
	}
}

func TestPolicyRefusals(t *testing.T) {
	h := newHarness(t)
	e := h.enroll()
	var g proto.GroupChange
	h.must("POST", "/groups", `{"name":"taken","priority":1,"policy":{"cameraDisabled":true}}`, 201, &g)
	snapshot := func() string {
		var list proto.GroupList
		h.must("GET", "/groups", "", 200, &list)
		b, _ := json.Marshal(list)
		p := h.policy(e.DeviceID)
		pb, _ := json.Marshal(p)
		return string(b) + string(pb)
	}
	before := snapshot()
	gp := "/groups/" + g.GroupID
	dp := "/devices/" + e.DeviceID + "/policy"
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"duplicate group name", "POST", "/groups", `{"name":"taken","priority":2}`, 409, "group_name_taken"},
		{"group without name", "POST", "/groups", `{"priority":2}`, 400, "invalid_body"},
		{"blank group name", "POST", "/groups", `{"name":"  "}`, 400, "invalid_body"},
		{"unknown group field", "POST", "/groups", `{"name":"x","priorty":2}`, 400, "invalid_body"},
		{"unknown setting in group", "POST", "/groups", `{"name":"x","policy":{"cameraDisable":true}}`, 400, "invalid_body"},
		{"wrong type in group", "POST", "/groups", `{"name":"x","policy":{"cameraDisabled":"yes"}}`, 400, "invalid_body"},
		{"negative passwordMinLength", "POST", "/groups", `{"name":"x","policy":{"passwordMinLength":-1}}`, 400, "invalid_body"},
		{"bad group mode", "POST", "/groups", `{"name":"x","mode":"fix"}`, 400, "invalid_body"},
		{"bad per-setting mode", "POST", "/groups", `{"name":"x","policy":{"cameraDisabled":true,"modes":{"cameraDisabled":"watch"}}}`, 400, "invalid_body"},
		{"mode for an unknown setting", "PUT", gp + "/policy", `{"modes":{"wifi":"monitor"}}`, 400, "invalid_body"},
		{"priority wrong type", "POST", "/groups", `{"name":"x","priority":"high"}`, 400, "invalid_body"},
		{"unknown device ids", "PUT", gp + "/devices", fmt.Sprintf(`{"deviceIds":[%q,"ghost"]}`, e.DeviceID), 400, "unknown_devices"},
		{"unknown device on create", "POST", "/groups", `{"name":"x","deviceIds":["ghost"]}`, 400, "unknown_devices"},
		{"deviceIds missing", "PUT", gp + "/devices", `{}`, 400, "invalid_body"},
		{"deviceIds wrong type", "PUT", gp + "/devices", `{"deviceIds":"all"}`, 400, "invalid_body"},
		{"group policy unknown setting", "PUT", gp + "/policy", `{"camera":true}`, 400, "invalid_body"},
		{"group policy not an object", "PUT", gp + "/policy", `[true]`, 400, "invalid_body"},
		{"group policy malformed", "PUT", gp + "/policy", `{"cameraDisabled":`, 400, "invalid_body"},
		{"unknown group policy", "PUT", "/groups/nope/policy", `{"cameraDisabled":true}`, 404, "group_not_found"},
		{"unknown group devices", "PUT", "/groups/nope/devices", `{"deviceIds":[]}`, 404, "group_not_found"},
		{"unknown group delete", "DELETE", "/groups/nope", ``, 404, "group_not_found"},
		{"device policy empty object", "PUT", dp, `{}`, 400, "invalid_body"},
		{"device policy unknown setting", "PUT", dp, `{"cameraDisabled":true,"kiosk":true}`, 400, "invalid_body"},
		{"device policy wrong type", "PUT", dp, `{"lockTaskPackages":"com.a"}`, 400, "invalid_body"},
		{"device policy group mode key", "PUT", dp, `{"mode":"monitor"}`, 400, "invalid_body"},
		{"explain unknown device", "GET", "/devices/nope/policy/explain", ``, 404, "device_not_found"},
		{"history unknown device", "GET", "/devices/nope/history", ``, 404, "device_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, adminToken, tt.body)
			if r.status != tt.status || r.errCode(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
			if after := snapshot(); after != before {
				t.Fatalf("refused request changed state:\n%s\n%s", before, after)
			}
		})
	}
	if calls, _ := h.bell.counts(); calls != 0 {
		t.Errorf("refusals rang %d times", calls)
	}
	// Device credentials may not touch groups.
	if r := h.do("POST", "/groups", e.DeviceSecret, `{"name":"x"}`); r.status != 403 {
		t.Errorf("device creating a group: %d", r.status)
	}
	if r := h.do("GET", "/compliance/summary", "", ""); r.status != 401 {
		t.Errorf("anonymous summary: %d", r.status)
	}
}

func TestVerdictsAndMonitorMode(t *testing.T) {
	h := newHarness(t)
	e := h.enroll()
	var g proto.GroupChange
	h.must("POST", "/groups", fmt.Sprintf(`{"name":"watch","mode":"monitor","policy":{"cameraDisabled":true,"statusBarDisabled":true,"passwordMinLength":8,"modes":{"passwordMinLength":"enforce"}},"deviceIds":[%q]}`, e.DeviceID), 201, &g)
	p := h.policy(e.DeviceID)
	if !reflect.DeepEqual(p.Monitor, []string{"cameraDisabled", "statusBarDisabled"}) {
		t.Fatalf("monitor = %v, want camera and status bar", p.Monitor)
	}
	h.report(e, `{"appliedPolicyVersion":2,"cameraDisabled":false,"passwordMinLength":4,"unsupported":["statusBarDisabled"],"failed":{"passwordMinLength":"denied by user"}}`)
	s := h.status(e.DeviceID)
	if s.State != proto.StateNonCompliant {
		t.Fatalf("state = %s", s.State)
	}
	got, _ := json.Marshal(s.Failing)
	// Each failing setting says since when it fails: since the report.
	since := h.clock.Now().UTC().Format(time.RFC3339)
	want := `[{"setting":"cameraDisabled","expected":true,"actual":false,"reason":"MISMATCH","monitored":true,"failingSince":"` + since + `"},` +
		`{"setting":"statusBarDisabled","expected":true,"actual":null,"reason":"UNSUPPORTED","monitored":true,"failingSince":"` + since + `"},` +
		`{"setting":"passwordMinLength","expected":8,"actual":4,"reason":"ENFORCEMENT_FAILED","detail":"denied by user","failingSince":"` + since + `"}]`
	if string(got) != want {
		t.Fatalf("failing =\n%s\nwant\n%s", got, want)
	}
	var sum proto.ComplianceSummary
	h.must("GET", "/compliance/summary", "", 200, &sum)
	if sum.Counts[proto.StateNonCompliant] != 1 || len(sum.DriftingSettings) != 3 {
		t.Errorf("summary = %+v", sum)
	}
	// Compliant: no failing list.
	h.report(e, `{"appliedPolicyVersion":2,"cameraDisabled":true,"statusBarDisabled":true,"passwordMinLength":8}`)
	if s := h.status(e.DeviceID); s.State != proto.StateCompliant || s.Failing != nil {
		t.Fatalf("status = %s failing %+v", s.State, s.Failing)
	}
	var hist proto.History
	h.must("GET", "/devices/"+e.DeviceID+"/history", "", 200, &hist)
	var steps []string
	for _, tr := range hist.Transitions {
		steps = append(steps, fmt.Sprintf("%s>%s:%s", tr.From, tr.To, tr.Cause))
	}
	wantSteps := []string{">UNKNOWN:enroll", "UNKNOWN>NON_COMPLIANT:report", "NON_COMPLIANT>COMPLIANT:report"}
	if !reflect.DeepEqual(steps, wantSteps) {
		t.Errorf("history = %v, want %v", steps, wantSteps)
	}
	h.must("GET", "/compliance/summary", "", 200, &sum)
	if sum.Counts[proto.StateCompliant] != 1 || sum.Counts[proto.StateNonCompliant] != 0 || len(sum.DriftingSettings) != 0 {
		t.Errorf("summary after fix = %+v", sum)
	}
}

// TestLargeMemberList sends a member list above the ordinary body limit
// (300 devices, each named 7 times: duplicates are folded) and sees every
// change rung in one call. BenchmarkGroupEdit10k covers 10,000 members.
func TestLargeMemberList(t *testing.T) {
	h := newHarness(t)
	var ids []string
	for i := 0; i < 300; i++ {
		ids = append(ids, h.enroll().DeviceID)
	}
	var list []string
	for i := 0; i < 7; i++ {
		list = append(list, ids...)
	}
	var g proto.GroupChange
	h.must("POST", "/groups", `{"name":"big","policy":{"cameraDisabled":true}}`, 201, &g)
	body, _ := json.Marshal(proto.GroupMembers{DeviceIDs: list})
	if len(body) <= proto.MaxBodyBytes {
		t.Fatalf("body %d bytes does not exceed the ordinary limit", len(body))
	}
	var ch proto.GroupChange
	h.must("PUT", "/groups/"+g.GroupID+"/devices", string(body), 200, &ch)
	if calls, rings := h.bell.counts(); ch.ChangedDevices != len(ids) || calls != 1 || rings != len(ids) {
		t.Fatalf("changed %d, bell calls %d rings %d; want %d in one call", ch.ChangedDevices, calls, rings, len(ids))
	}
	// Other routes keep the ordinary limit.
	r := h.do("PUT", "/devices/"+ids[0]+"/policy", adminToken, `{"cameraDisabled":true,"x":"`+strings.Repeat("y", proto.MaxBodyBytes)+`"}`)
	if r.status != 413 {
		t.Errorf("oversized device edit: %d", r.status)
	}
}

func TestReportDetailSanitized(t *testing.T) {
	h := newHarness(t)
	e := h.enroll()
	h.must("PUT", "/devices/"+e.DeviceID+"/policy", `{"cameraDisabled":true}`, 200, nil)
	long := strings.Repeat("é", 300)
	h.report(e, `{"appliedPolicyVersion":2,"cameraDisabled":false,"unsupported":["wifi","wifi"],"failed":{"cameraDisabled":"`+long+`","future":"x"}}`)
	s := h.status(e.DeviceID)
	if len(s.Failing) != 1 || s.Failing[0].Reason != proto.ReasonEnforcementFailed || len(s.Failing[0].Detail) > 256 || !strings.HasPrefix(s.Failing[0].Detail, "é") {
		t.Fatalf("failing = %+v", s.Failing)
	}
}

// TestGroupPolicyPutReplacesMode: PUT /groups/{id}/policy replaces the
// group's policy as a whole, as docs/POLICY.md says: a body without "mode"
// puts the group back to enforce instead of keeping monitor.
func TestGroupPolicyPutReplacesMode(t *testing.T) {
	h := newHarness(t)
	var g proto.GroupChange
	h.must("POST", "/groups", `{"name":"watch","mode":"monitor","policy":{"cameraDisabled":true}}`, 201, &g)
	if g.Mode != proto.ModeMonitor {
		t.Fatalf("created mode %q", g.Mode)
	}
	h.must("PUT", "/groups/"+g.GroupID+"/policy", `{"cameraDisabled":true,"mode":"monitor"}`, 200, &g)
	if g.Mode != proto.ModeMonitor {
		t.Fatalf("mode after a PUT with monitor: %q", g.Mode)
	}
	h.must("PUT", "/groups/"+g.GroupID+"/policy", `{"cameraDisabled":true}`, 200, &g)
	if g.Mode != proto.ModeEnforce {
		t.Fatalf("mode after a PUT without mode: %q, want enforce (replaced)", g.Mode)
	}
}
