package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
)

// hookReceiver is an httptest webhook receiver that keeps every event
// whose signature verifies under secret and counts those that do not:
// device.escalated events apart (escalated), every other as a
// daemon.WebhookEvent (events).
type hookReceiver struct {
	srv       *httptest.Server
	mu        sync.Mutex
	events    []daemon.WebhookEvent
	escalated []proto.EscalationEvent
	bodies    [][]byte // every verified body, as received
	bad       int
}

func startHookReceiver(t *testing.T, secret string) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.Header.Get(daemon.SignatureHeader) != daemon.Sign(secret, body) {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.bodies = append(h.bodies, body)
		if r.Header.Get(daemon.EventHeader) == daemon.EventEscalated {
			var ev proto.EscalationEvent
			if err := json.Unmarshal(body, &ev); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			h.escalated = append(h.escalated, ev)
			return
		}
		var ev daemon.WebhookEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.events = append(h.events, ev)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// escalations are the device.escalated events about device id.
func (h *hookReceiver) escalations(id string) []proto.EscalationEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []proto.EscalationEvent
	for _, ev := range h.escalated {
		if ev.DeviceID == id {
			out = append(out, ev)
		}
	}
	return out
}

// steps renders a device's transitions as "FROM>TO:cause".
func (h *hookReceiver) steps(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.events {
		if ev.DeviceID == id {
			out = append(out, fmt.Sprintf("%s>%s:%s", ev.From, ev.To, ev.Cause))
		}
	}
	return out
}

func (s *serverProc) mustAdmin(method, path, body string, out any) {
	s.t.Helper()
	if code, b := s.call(method, path, s.admin, body, out); code/100 != 2 {
		s.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
}

func (s *serverProc) explain(id string) map[string]string {
	s.t.Helper()
	var ex proto.PolicyExplanation
	s.mustAdmin("GET", "/devices/"+id+"/policy/explain", "", &ex)
	out := map[string]string{}
	for k, v := range ex.Settings {
		out[k] = fmt.Sprintf("%s=%s/%s", v.Source, v.Value, v.Mode)
	}
	return out
}

func (s *serverProc) historySteps(id string) []string {
	s.t.Helper()
	var h proto.History
	s.mustAdmin("GET", "/devices/"+id+"/history", "", &h)
	var out []string
	for _, tr := range h.Transitions {
		out = append(out, fmt.Sprintf("%s>%s:%s", tr.From, tr.To, tr.Cause))
	}
	return out
}

func enrolledIDs(t *testing.T, agents ...*agentProc) []string {
	t.Helper()
	ids := make([]string, len(agents))
	testkit.Eventually(t, 30*time.Second, "every agent enrolled", func() bool {
		for i, a := range agents {
			ids[i], _ = a.identity()
			if ids[i] == "" {
				return false
			}
		}
		return true
	})
	return ids
}

func (s *serverProc) waitState(id string, state proto.ComplianceState, version int64) proto.DeviceStatus {
	s.t.Helper()
	var st proto.DeviceStatus
	testkit.Eventually(s.t, 30*time.Second, fmt.Sprintf("%s %s at version %d", id, state, version), func() bool {
		st = s.status(id)
		return st.State == state && st.AppliedVersion == version && st.DesiredVersion == version
	})
	return st
}

// TestGroupPolicies: a group edit converges its members through their
// doorbells while a non-member is untouched; a higher-priority group and a
// device's own setting take precedence, as explain says; a monitor-mode
// setting leaves the device file as it is and the device NON_COMPLIANT
// with the setting named.
func TestGroupPolicies(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	agents := []*agentProc{
		startAgent(t, "kiosk-1", srv, t.TempDir()),
		startAgent(t, "kiosk-2", srv, t.TempDir()),
		startAgent(t, "kiosk-3", srv, t.TempDir()),
		startAgent(t, "phone", srv, t.TempDir()),
	}
	ids := enrolledIDs(t, agents...)
	for _, id := range ids {
		srv.waitState(id, proto.StateCompliant, 1)
	}
	phone, phoneID := agents[3], ids[3]
	phoneFile, err := os.ReadFile(phone.devicePath)
	if err != nil {
		t.Fatal(err)
	}

	// One request puts three devices in a group; each converges.
	var kiosks proto.GroupChange
	srv.mustAdmin("POST", "/groups", fmt.Sprintf(`{"name":"lobby-kiosks","priority":10,"policy":{"cameraDisabled":true},"deviceIds":[%q,%q,%q]}`, ids[0], ids[1], ids[2]), &kiosks)
	if kiosks.ChangedDevices != 3 {
		t.Fatalf("group creation changed %d devices, want 3", kiosks.ChangedDevices)
	}
	for i := 0; i < 3; i++ {
		srv.waitState(ids[i], proto.StateCompliant, 2)
		if got := agents[i].deviceState()["cameraDisabled"]; got != true {
			t.Fatalf("kiosk %d file has cameraDisabled=%v, want true", i, got)
		}
	}
	if st := srv.status(phoneID); st.DesiredVersion != 1 || st.State != proto.StateCompliant {
		t.Fatalf("non-member touched: %+v", st)
	}
	if b, _ := os.ReadFile(phone.devicePath); !bytes.Equal(b, phoneFile) {
		t.Fatalf("non-member's device file changed: %s", b)
	}

	// Precedence: a higher-priority group wins; the device's own setting
	// wins over every group; explain names each source.
	var open proto.GroupChange
	srv.mustAdmin("POST", "/groups", fmt.Sprintf(`{"name":"camera-allowed","priority":20,"policy":{"cameraDisabled":false},"deviceIds":[%q]}`, ids[0]), &open)
	srv.waitState(ids[0], proto.StateCompliant, 3)
	if got := agents[0].deviceState()["cameraDisabled"]; got != false {
		t.Fatalf("kiosk-1 under camera-allowed has cameraDisabled=%v", got)
	}
	if got, want := srv.explain(ids[0])["cameraDisabled"], "group:"+open.GroupID+"=false/enforce"; got != want {
		t.Fatalf("kiosk-1 explain = %s, want %s", got, want)
	}
	if got, want := srv.explain(ids[1])["cameraDisabled"], "group:"+kiosks.GroupID+"=true/enforce"; got != want {
		t.Fatalf("kiosk-2 explain = %s, want %s", got, want)
	}
	if got := srv.explain(phoneID)["cameraDisabled"]; got != "default=false/enforce" {
		t.Fatalf("phone explain = %s, want default", got)
	}
	srv.mustAdmin("PUT", "/devices/"+ids[0]+"/policy", `{"cameraDisabled":true}`, nil)
	srv.waitState(ids[0], proto.StateCompliant, 4)
	if got := srv.explain(ids[0])["cameraDisabled"]; got != "device=true/enforce" {
		t.Fatalf("kiosk-1 explain after override = %s", got)
	}
	if got := agents[0].deviceState()["cameraDisabled"]; got != true {
		t.Fatalf("kiosk-1 override not enforced: %v", got)
	}

	// Monitor mode: the phone is told to disable its camera but only
	// watch it. Its file stays byte for byte; it is NON_COMPLIANT with the
	// setting named.
	var watch proto.GroupChange
	srv.mustAdmin("POST", "/groups", fmt.Sprintf(`{"name":"watch-phones","priority":5,"mode":"monitor","policy":{"cameraDisabled":true},"deviceIds":[%q]}`, phoneID), &watch)
	st := srv.waitState(phoneID, proto.StateNonCompliant, 2)
	// It fails from when the device became NON_COMPLIANT.
	if st.NonCompliantSince == nil {
		t.Fatalf("phone status without nonCompliantSince: %+v", st)
	}
	want := []proto.SettingFailure{{Setting: "cameraDisabled", Expected: json.RawMessage("true"), Actual: json.RawMessage("false"), Reason: proto.ReasonMismatch, Monitored: true,
		FailingSince: st.NonCompliantSince}}
	if !reflect.DeepEqual(st.Failing, want) {
		t.Fatalf("phone failing = %+v, want %+v", st.Failing, want)
	}
	if b, _ := os.ReadFile(phone.devicePath); !bytes.Equal(b, phoneFile) {
		t.Fatalf("monitored device file changed: %s (was %s)", b, phoneFile)
	}
	var sum proto.ComplianceSummary
	srv.mustAdmin("GET", "/compliance/summary", "", &sum)
	if sum.Counts[proto.StateNonCompliant] != 1 || sum.Counts[proto.StateCompliant] != 3 ||
		!reflect.DeepEqual(sum.DriftingSettings, []proto.DriftingSetting{{Setting: "cameraDisabled", Devices: 1}}) {
		t.Fatalf("summary = %+v", sum)
	}

	// Switching the group to enforce fixes the phone.
	srv.mustAdmin("PUT", "/groups/"+watch.GroupID+"/policy", `{"cameraDisabled":true,"mode":"enforce"}`, nil)
	srv.waitState(phoneID, proto.StateCompliant, 3)
	if got := phone.deviceState()["cameraDisabled"]; got != true {
		t.Fatalf("enforced phone has cameraDisabled=%v", got)
	}
	// The kiosks were not touched by the phone's groups.
	for i := 1; i < 3; i++ {
		if st := srv.status(ids[i]); st.DesiredVersion != 2 {
			t.Fatalf("kiosk %d at version %d, want 2", i, st.DesiredVersion)
		}
	}
}

// TestHistoryDriftAndFix: a device drifts (its file changed and locked
// behind the agent's back), is seen NON_COMPLIANT, then is fixed; the
// history and the signed webhook both show each transition.
func TestHistoryDriftAndFix(t *testing.T) {
	const secret = "e2e-webhook-secret"
	hook := startHookReceiver(t, secret)
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--webhook-url", hook.srv.URL+"/doorbell", "--webhook-secret", secret)
	// A short interval: the periodic sync is what notices drift here.
	a := startAgent(t, "drifter", srv, t.TempDir(), "--interval", "500ms")
	id := enrolledIDs(t, a)[0]
	srv.waitState(id, proto.StateCompliant, 1)

	// Drift: the camera is disabled by someone else and the device locked,
	// so the agent cannot fix it. An agent write racing this one could
	// undo it, so the drift is re-applied until the server sees it.
	drift := []byte(`{"cameraDisabled": true, "locked": true}`)
	testkit.Eventually(t, 30*time.Second, "drift reported NON_COMPLIANT", func() bool {
		if a.deviceState()["locked"] != true {
			if err := os.WriteFile(a.devicePath, drift, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return srv.status(id).State == proto.StateNonCompliant
	})
	st := srv.status(id)
	if len(st.Failing) != 1 || st.Failing[0].Setting != "cameraDisabled" || st.Failing[0].Reason != proto.ReasonEnforcementFailed {
		t.Fatalf("failing = %+v, want cameraDisabled ENFORCEMENT_FAILED (the device is locked)", st.Failing)
	}

	// Fix: unlocked, the agent puts the camera back.
	if err := os.WriteFile(a.devicePath, []byte(`{"cameraDisabled": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.waitState(id, proto.StateCompliant, 1)
	if got := a.deviceState()["cameraDisabled"]; got != false {
		t.Fatalf("fixed device has cameraDisabled=%v", got)
	}

	want := []string{">UNKNOWN:enroll", "UNKNOWN>COMPLIANT:report", "COMPLIANT>NON_COMPLIANT:report", "NON_COMPLIANT>COMPLIANT:report"}
	if got := srv.historySteps(id); !reflect.DeepEqual(got, want) {
		t.Fatalf("history = %v, want %v", got, want)
	}
	testkit.Eventually(t, 30*time.Second, "webhook received every transition", func() bool { return len(hook.steps(id)) >= len(want) })
	if got := hook.steps(id); !reflect.DeepEqual(got, want) {
		t.Fatalf("webhook events = %v, want %v", got, want)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.bad != 0 {
		t.Fatalf("%d webhook deliveries had a bad signature", hook.bad)
	}
}
