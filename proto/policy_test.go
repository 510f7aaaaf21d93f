package proto

import (
	"encoding/json"
	"reflect"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestDiff(t *testing.T) {
	desired := DevicePolicy{Version: 2, Settings: Settings{
		CameraDisabled:    true,
		PasswordMinLength: ptr(8),
		LockTaskPackages:  ptr([]string{"com.example.kiosk"}),
	}}
	monitored := desired
	monitored.Monitor = []string{SettingPasswordMinLength}
	match := Settings{CameraDisabled: true, PasswordMinLength: ptr(8), LockTaskPackages: ptr([]string{"com.example.kiosk"})}
	with := func(f func(*Settings)) Settings {
		s := match
		f(&s)
		return s
	}
	tests := []struct {
		name    string
		desired DevicePolicy
		report  ComplianceReport
		want    []SettingFailure
	}{
		{"everything matches", desired, ComplianceReport{Settings: match}, nil},
		{"unmanaged settings in the report are ignored", desired,
			ComplianceReport{Settings: with(func(s *Settings) { s.StatusBarDisabled = ptr(true) })}, nil},
		{"camera drift is a mismatch", desired,
			ComplianceReport{Settings: with(func(s *Settings) { s.CameraDisabled = false })},
			[]SettingFailure{{Setting: "cameraDisabled", Expected: json.RawMessage("true"), Actual: json.RawMessage("false"), Reason: ReasonMismatch}}},
		{"a managed setting not reported is a mismatch with null", desired,
			ComplianceReport{Settings: with(func(s *Settings) { s.PasswordMinLength = nil })},
			[]SettingFailure{{Setting: "passwordMinLength", Expected: json.RawMessage("8"), Actual: json.RawMessage("null"), Reason: ReasonMismatch}}},
		{"failed enforcement names the detail", desired,
			ComplianceReport{Settings: with(func(s *Settings) { s.PasswordMinLength = ptr(4) }), Failed: map[string]string{"passwordMinLength": "policy locked by admin"}},
			[]SettingFailure{{Setting: "passwordMinLength", Expected: json.RawMessage("8"), Actual: json.RawMessage("4"), Reason: ReasonEnforcementFailed, Detail: "policy locked by admin"}}},
		{"a failure that still matches is not failing", desired,
			ComplianceReport{Settings: match, Failed: map[string]string{"cameraDisabled": "flaky"}}, nil},
		{"unsupported fails even when the value matches", desired,
			ComplianceReport{Settings: match, Unsupported: []string{"lockTaskPackages"}},
			[]SettingFailure{{Setting: "lockTaskPackages", Expected: json.RawMessage(`["com.example.kiosk"]`), Actual: json.RawMessage(`["com.example.kiosk"]`), Reason: ReasonUnsupported}}},
		{"list order matters", desired,
			ComplianceReport{Settings: with(func(s *Settings) { s.LockTaskPackages = ptr([]string{}) })},
			[]SettingFailure{{Setting: "lockTaskPackages", Expected: json.RawMessage(`["com.example.kiosk"]`), Actual: json.RawMessage(`[]`), Reason: ReasonMismatch}}},
		{"monitored mismatch is a mismatch marked monitored", monitored,
			ComplianceReport{Settings: with(func(s *Settings) { s.PasswordMinLength = ptr(0) })},
			[]SettingFailure{{Setting: "passwordMinLength", Expected: json.RawMessage("8"), Actual: json.RawMessage("0"), Reason: ReasonMismatch, Monitored: true}}},
		{"several failures come in canonical order", desired,
			ComplianceReport{Settings: Settings{PasswordMinLength: ptr(1)}, Unsupported: []string{"lockTaskPackages"}},
			[]SettingFailure{
				{Setting: "cameraDisabled", Expected: json.RawMessage("true"), Actual: json.RawMessage("false"), Reason: ReasonMismatch},
				{Setting: "lockTaskPackages", Expected: json.RawMessage(`["com.example.kiosk"]`), Actual: json.RawMessage("null"), Reason: ReasonUnsupported},
				{Setting: "passwordMinLength", Expected: json.RawMessage("8"), Actual: json.RawMessage("1"), Reason: ReasonMismatch},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.desired, tt.report)
			if !reflect.DeepEqual(got, tt.want) {
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(tt.want)
				t.Errorf("Diff =\n%s\nwant\n%s", gb, wb)
			}
			if sat := tt.desired.IsSatisfiedBy(tt.report); sat != (len(tt.want) == 0) {
				t.Errorf("IsSatisfiedBy = %v with %d failures", sat, len(tt.want))
			}
		})
	}
}

func TestFailingOnlyWhenNonCompliant(t *testing.T) {
	desired := DevicePolicy{Version: 2, Settings: Settings{CameraDisabled: true}}
	tests := []struct {
		name   string
		report *ComplianceReport
		want   int
	}{
		{"unknown", nil, 0},
		{"stale report of an older policy", &ComplianceReport{AppliedPolicyVersion: 1}, 0},
		{"compliant", &ComplianceReport{AppliedPolicyVersion: 2, Settings: Settings{CameraDisabled: true}}, 0},
		{"non-compliant", &ComplianceReport{AppliedPolicyVersion: 2}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Failing(desired, tt.report); len(got) != tt.want {
				t.Errorf("Failing = %+v, want %d entries", got, tt.want)
			}
		})
	}
}

func TestParseSetting(t *testing.T) {
	tests := []struct {
		name, setting, raw, want string
		ok                       bool
	}{
		{"bool", "cameraDisabled", "true", "true", true},
		{"bool with spaces", "statusBarDisabled", " false ", "false", true},
		{"bool wrong type", "cameraDisabled", `"yes"`, "", false},
		{"int", "passwordMinLength", "8", "8", true},
		{"int negative", "passwordMinLength", "-1", "", false},
		{"int too big", "passwordMinLength", "65", "", false},
		{"int fraction", "passwordMinLength", "8.5", "", false},
		{"list", "lockTaskPackages", `["a.b", "c.d"]`, `["a.b","c.d"]`, true},
		{"empty list", "lockTaskPackages", `[]`, `[]`, true},
		{"list with empty name", "lockTaskPackages", `[""]`, "", false},
		{"list wrong type", "lockTaskPackages", `"a.b"`, "", false},
		{"unknown", "cameraDisable", "true", "", false},
		{"null is not a value", "cameraDisabled", "null", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSetting(tt.setting, json.RawMessage(tt.raw))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseSetting(%s, %s) err = %v, want ok=%v", tt.setting, tt.raw, err, tt.ok)
			}
			if tt.ok && string(got) != tt.want {
				t.Errorf("ParseSetting = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPolicyWireCompatible(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"camera-only policy looks as in v1", DevicePolicy{Version: 3, Settings: Settings{CameraDisabled: true}}, `{"version":3,"cameraDisabled":true}`},
		{"monitor list", DevicePolicy{Version: 3, Monitor: []string{"cameraDisabled"}}, `{"version":3,"cameraDisabled":false,"monitor":["cameraDisabled"]}`},
		{"report with detail", ComplianceReport{AppliedPolicyVersion: 1, Unsupported: []string{"statusBarDisabled"}, Failed: map[string]string{"cameraDisabled": "locked"}},
			`{"appliedPolicyVersion":1,"cameraDisabled":false,"compliant":false,"unsupported":["statusBarDisabled"],"failed":{"cameraDisabled":"locked"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
		})
	}
}

// TestValuesMatchesJSON checks Values' reflection against what
// encoding/json makes of the same Settings: every managed setting, the same
// canonical bytes.
func TestValuesMatchesJSON(t *testing.T) {
	tr, fa, n := true, false, 12
	pk := []string{"com.example.kiosk", "a<b>&c"}
	for _, s := range []Settings{
		{},
		{CameraDisabled: true},
		{CameraDisabled: false, ScreenCaptureDisabled: &tr, StatusBarDisabled: &fa, LockTaskPackages: &pk,
			USBFileTransferDisabled: &tr, PasswordMinLength: &n, SSHPasswordAuthDisabled: &fa, AutoUpdatesEnabled: &tr},
		{LockTaskPackages: &[]string{}, PasswordMinLength: &n},
	} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var want SettingValues
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if got := s.Values(); !reflect.DeepEqual(got, want) {
			t.Errorf("Values(%s) = %v, want %v", b, got, want)
		}
	}
}
