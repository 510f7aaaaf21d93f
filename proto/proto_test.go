package proto

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	desired := DevicePolicy{Version: 3, Settings: Settings{CameraDisabled: true}}
	report := func(v int64, camera bool) *ComplianceReport {
		return &ComplianceReport{AppliedPolicyVersion: v, Settings: Settings{CameraDisabled: camera}}
	}
	tests := []struct {
		name    string
		desired DevicePolicy
		report  *ComplianceReport
		want    ComplianceState
	}{
		{"never reported is unknown", desired, nil, StateUnknown},
		{"content matches but a version behind is stale", desired, report(2, true), StateStale},
		{"content differs and a version behind is stale", desired, report(2, false), StateStale},
		{"version zero is stale", desired, report(0, true), StateStale},
		{"current version and matching content is compliant", desired, report(3, true), StateCompliant},
		{"current version and differing content is non-compliant", desired, report(3, false), StateNonCompliant},
		{"agent's own claim is not trusted", desired, &ComplianceReport{AppliedPolicyVersion: 3, Compliant: true}, StateNonCompliant},
		{"agent's own denial is not trusted", desired, &ComplianceReport{AppliedPolicyVersion: 3, Settings: Settings{CameraDisabled: true}}, StateCompliant},
		{"first policy, camera allowed, compliant", DevicePolicy{Version: 1}, report(1, false), StateCompliant},
		{"a version ahead is judged on content", desired, report(4, true), StateCompliant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Evaluate(tt.desired, tt.report); got != tt.want {
				t.Errorf("Evaluate = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestTransitions walks the state diagram: each step is an event on the same
// device and the state it must lead to.
func TestTransitions(t *testing.T) {
	desired := DevicePolicy{Version: 1}
	var report *ComplianceReport
	steps := []struct {
		name  string
		event func()
		want  ComplianceState
	}{
		{"enrolled", func() {}, StateUnknown},
		{"reports v1 matching", func() { report = &ComplianceReport{AppliedPolicyVersion: 1} }, StateCompliant},
		{"operator edits to v2", func() { desired.Version, desired.CameraDisabled = 2, true }, StateStale},
		{"device applies v2", func() { report = &ComplianceReport{AppliedPolicyVersion: 2, Settings: Settings{CameraDisabled: true}} }, StateCompliant},
		{"device drifts", func() { report = &ComplianceReport{AppliedPolicyVersion: 2} }, StateNonCompliant},
		{"operator edits to v3 while drifting", func() { desired.Version, desired.CameraDisabled = 3, false }, StateStale},
		{"device refuses v3", func() { report = &ComplianceReport{AppliedPolicyVersion: 3, Settings: Settings{CameraDisabled: true}} }, StateNonCompliant},
		{"device fixed", func() { report = &ComplianceReport{AppliedPolicyVersion: 3} }, StateCompliant},
	}
	for _, s := range steps {
		s.event()
		if got := Evaluate(desired, report); got != s.want {
			t.Fatalf("after %q: state %s, want %s", s.name, got, s.want)
		}
	}
}

func TestWireNames(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"policy", DevicePolicy{Version: 3, Settings: Settings{CameraDisabled: true}}, `{"version":3,"cameraDisabled":true}`},
		{"report", ComplianceReport{AppliedPolicyVersion: 3, Settings: Settings{CameraDisabled: true}, Compliant: true}, `{"appliedPolicyVersion":3,"cameraDisabled":true,"compliant":true}`},
		{"doorbell", Doorbell{Type: DoorbellType, Version: 4}, `{"type":"policy_changed","version":4}`},
		{"error", ErrorBody{ErrorDetail{"not_found", "no such device"}}, `{"error":{"code":"not_found","message":"no such device"}}`},
		{"token", TokenRegistration{FCMToken: "t"}, `{"fcmToken":"t"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("json = %s, want %s", b, tt.want)
			}
		})
	}
}

func TestPolicyUpdate(t *testing.T) {
	var u PolicyUpdate
	if err := json.Unmarshal([]byte(`{}`), &u); err != nil {
		t.Fatal(err)
	}
	if u.Validate() == nil {
		t.Fatal("an update without cameraDisabled validated")
	}
	if err := json.Unmarshal([]byte(`{"cameraDisabled":true}`), &u); err != nil {
		t.Fatal(err)
	}
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := u.Apply(Settings{}); !got.CameraDisabled {
		t.Fatalf("Apply = %+v", got)
	}
}

func TestTopic(t *testing.T) {
	if got := PolicyChangedTopic("abc"); got != "devices/abc/policy_changed" {
		t.Fatalf("topic = %s", got)
	}
}

// TestDeps enforces the import rules of DESIGN.md for the packages that
// ship outside the server: outside the standard library each may depend
// only on the listed module paths (and their own dependencies' prefixes).
func TestDeps(t *testing.T) {
	const mod = "github.com/doorbell-mdm/doorbell/"
	// paho's and fsnotify's own dependencies, allowed wherever they are.
	pahoFsnotify := []string{"github.com/eclipse/paho.mqtt.golang", "github.com/gorilla/websocket",
		"golang.org/x/net/", "golang.org/x/sync/", "github.com/fsnotify/fsnotify", "golang.org/x/sys/"}
	// Package version comparison for the Linux packages setting: pure Go,
	// standard library only.
	pahoFsnotify = append(pahoFsnotify, mod+"internal/pkgver", "github.com/knqyf263/go-deb-version",
		"github.com/knqyf263/go-rpm-version", "github.com/knqyf263/go-apk-version")
	// The one backoff (internal/backoff) is standard library only, so every
	// shipped package may use it.
	pahoFsnotify = append(pahoFsnotify, mod+"internal/backoff")
	tests := []struct {
		name    string
		pkg     string
		allowed []string
	}{
		{"proto is a leaf", "../proto", []string{mod + "proto"}},
		{"the backoff is a leaf", "../internal/backoff", []string{mod + "internal/backoff"}},
		{"the agent stays small for the mobile library", "../agent", append([]string{mod + "agent", mod + "proto"}, pahoFsnotify...)},
		{"the mobile library uses only the agent", "../android", append([]string{mod + "android", mod + "agent", mod + "proto"}, pahoFsnotify...)},
		{"the operator client uses only the contract", "../client", []string{mod + "client", mod + "proto", mod + "internal/backoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", tt.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps %s: %v\n%s", tt.pkg, err, out)
			}
			deps := strings.Fields(string(out))
			if len(deps) == 0 {
				t.Fatalf("go list -deps %s listed nothing", tt.pkg)
			}
			for _, d := range deps {
				ok := false
				for _, a := range tt.allowed {
					if d == a || strings.HasPrefix(d, strings.TrimSuffix(a, "/")+"/") {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s depends on %s, which DESIGN.md does not allow", tt.pkg, d)
				}
			}
		})
	}
}
