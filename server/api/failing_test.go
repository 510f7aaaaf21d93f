package api

import (
	"net/url"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// TestFailingSince: a device's status says since when it is NON_COMPLIANT
// and, per failing setting, since when that setting fails; GET
// /devices?failingSince.lt= lists the devices failing since before an
// RFC 3339 time or a duration ago, alone or with another filter; a bad
// value is a 400 that lists nothing. The clock is injected.
func TestFailingSince(t *testing.T) {
	h := newHarness(t)
	e1, e2, e3 := h.enroll(), h.enroll(), h.enroll()
	for _, e := range []proto.EnrollResponse{e1, e2, e3} {
		h.must("PUT", "/devices/"+e.DeviceID+"/policy", `{"cameraDisabled":true,"passwordMinLength":8}`, 200, nil)
	}
	t0 := h.clock.Now()
	// e1 fails the camera from t0, and the password length too from t0+1h.
	h.report(e1, `{"appliedPolicyVersion":2,"cameraDisabled":false,"passwordMinLength":8}`)
	h.clock.Set(t0.Add(time.Hour))
	h.report(e1, `{"appliedPolicyVersion":2,"cameraDisabled":false,"passwordMinLength":4}`)
	// e2 fails from t0+2h; e3 complies.
	h.clock.Set(t0.Add(2 * time.Hour))
	h.report(e2, `{"appliedPolicyVersion":2,"cameraDisabled":false,"passwordMinLength":8}`)
	h.report(e3, `{"appliedPolicyVersion":2,"cameraDisabled":true,"passwordMinLength":8}`)
	h.clock.Set(t0.Add(3 * time.Hour))

	s := h.status(e1.DeviceID)
	if s.State != proto.StateNonCompliant || s.NonCompliantSince == nil || !s.NonCompliantSince.Equal(t0) {
		t.Fatalf("e1 status: state %s nonCompliantSince %v, want NON_COMPLIANT since %v", s.State, s.NonCompliantSince, t0)
	}
	want := map[string]time.Time{"cameraDisabled": t0, "passwordMinLength": t0.Add(time.Hour)}
	if len(s.Failing) != 2 {
		t.Fatalf("e1 failing %+v, want two settings", s.Failing)
	}
	for _, f := range s.Failing {
		if f.FailingSince == nil || !f.FailingSince.Equal(want[f.Setting]) {
			t.Errorf("e1 %s failingSince %v, want %v", f.Setting, f.FailingSince, want[f.Setting])
		}
	}
	if s := h.status(e3.DeviceID); s.NonCompliantSince != nil {
		t.Errorf("compliant e3 has nonCompliantSince %v", s.NonCompliantSince)
	}

	list := func(query string) []string {
		t.Helper()
		var l proto.DeviceList
		h.must("GET", "/devices?"+query, "", 200, &l)
		var ids []string
		for _, d := range l.Devices {
			ids = append(ids, d.DeviceID)
		}
		return ids
	}
	same := func(got []string, want ...string) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	}
	e1e2 := []string{e1.DeviceID, e2.DeviceID}
	if e2.DeviceID < e1.DeviceID {
		e1e2 = []string{e2.DeviceID, e1.DeviceID}
	}
	cases := []struct {
		query string
		want  []string
	}{
		{"failingSince.lt=2h", []string{e1.DeviceID}}, // before t0+1h
		{"failingSince.lt=1h", []string{e1.DeviceID}}, // before t0+2h: e2 fails from exactly then
		{"failingSince.lt=59m", e1e2},
		{"failingSince.lt=1d", nil}, // before t0-21h
		{"failingSince.lt=" + url.QueryEscape(t0.Add(2*time.Hour).Format(time.RFC3339)), []string{e1.DeviceID}}, // strictly before
		{"failingSince.lt=" + url.QueryEscape(t0.Add(2*time.Hour+time.Second).Format(time.RFC3339)), e1e2},
		{"failingSince.lt=30m&state=NON_COMPLIANT", e1e2},
		{"failingSince.lt=30m&state=COMPLIANT", nil},
		{"failingSince.lt=30m&limit=1", e1e2[:1]},
	}
	for _, c := range cases {
		if got := list(c.query); !same(got, c.want...) {
			t.Errorf("GET /devices?%s = %v, want %v", c.query, got, c.want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "0s", "99999d", "1.5d", "2026-11-23"} {
		r := h.do("GET", "/devices?failingSince.lt="+url.QueryEscape(bad), adminToken, "")
		if r.status != 400 || r.errCode(t) != "invalid_query" {
			t.Errorf("failingSince.lt=%s: %d %s, want 400 invalid_query", bad, r.status, r.body)
		}
	}

	// A policy edit keeps the start; a compliant report clears it.
	h.must("PUT", "/devices/"+e1.DeviceID+"/policy", `{"cameraDisabled":true,"passwordMinLength":10}`, 200, nil)
	if s := h.status(e1.DeviceID); s.State != proto.StateStale || s.NonCompliantSince == nil || !s.NonCompliantSince.Equal(t0) {
		t.Fatalf("after an edit: state %s since %v, want STALE since %v", s.State, s.NonCompliantSince, t0)
	}
	if got := list("failingSince.lt=2h"); !same(got, e1.DeviceID) {
		t.Errorf("after an edit: %v, want [%s]", got, e1.DeviceID)
	}
	h.report(e1, `{"appliedPolicyVersion":3,"cameraDisabled":true,"passwordMinLength":10}`)
	if s := h.status(e1.DeviceID); s.State != proto.StateCompliant || s.NonCompliantSince != nil {
		t.Fatalf("after complying: state %s since %v", s.State, s.NonCompliantSince)
	}
	if got := list("failingSince.lt=30m"); !same(got, e2.DeviceID) {
		t.Errorf("after e1 complied: %v, want [%s]", got, e2.DeviceID)
	}
}
