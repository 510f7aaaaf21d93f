package doorbell

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// sampleValues returns, for every setting the policy knows, a value that is
// not its zero value, built from its JSON name only (so a setting added to
// the policy is covered here without a change: a new kind of value makes
// this test fail until it says how to build one).
func sampleValues(t *testing.T) proto.SettingValues {
	t.Helper()
	vals := proto.SettingValues{}
	for _, name := range proto.SettingNames {
		var found bool
		for _, raw := range []string{`true`, `["org.example.kiosk","org.example.help"]`, `6`, `"x"`, `[]`, `{}`, `{"minlen":12,"minclass":3}`} {
			v, err := proto.ParseSetting(name, json.RawMessage(raw))
			if err == nil {
				vals[name], found = v, true
				break
			}
		}
		if !found {
			t.Fatalf("no sample value for setting %q: teach sampleValues its type", name)
		}
	}
	return vals
}

func allSupported() map[string]bool {
	m := map[string]bool{}
	for _, n := range proto.SettingNames {
		m[n] = true
	}
	return m
}

// TestEnforcerAdapterRoundTrip: every setting crosses the boundary as the
// policy's own JSON, and what the app reads back is what the agent reports.
func TestEnforcerAdapterRoundTrip(t *testing.T) {
	f := &fakeEnforcer{supported: allSupported()}
	a := enforcerAdapter{f}
	want := sampleValues(t)
	desired, err := want.ToSettings()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Enforce(t.Context(), desired); err != nil {
		t.Fatalf("Enforce: %v", err)
	}
	for name, v := range want {
		if got := f.vals[name]; got != string(v) {
			t.Errorf("the app got %s = %s, want %s", name, got, v)
		}
	}
	got, err := a.Observe(t.Context())
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if !got.Equal(desired) {
		t.Errorf("Observe = %+v, want %+v", got.Values(), want)
	}
}

// TestEnforcerAdapterUnmanaged: a setting the policy does not manage is not
// applied; one the app does not support is neither applied nor read.
func TestEnforcerAdapterUnmanaged(t *testing.T) {
	sup := allSupported()
	delete(sup, proto.SettingScreenCaptureDisabled)
	f := &fakeEnforcer{supported: sup, vals: map[string]string{proto.SettingScreenCaptureDisabled: `"junk"`}}
	a := enforcerAdapter{f}
	if err := a.Enforce(t.Context(), proto.Settings{CameraDisabled: true}); err != nil {
		t.Fatal(err)
	}
	if len(f.vals) != 2 || f.vals[proto.SettingCameraDisabled] != "true" {
		t.Fatalf("the app got %v, want cameraDisabled alone applied", f.vals)
	}
	if a.Supports(proto.SettingScreenCaptureDisabled) || !a.Supports(proto.SettingCameraDisabled) {
		t.Fatal("Supports does not follow the app")
	}
	got, err := a.Observe(t.Context())
	if err != nil {
		t.Fatalf("Observe read an unsupported setting: %v", err)
	}
	if got.ScreenCaptureDisabled != nil || !got.CameraDisabled {
		t.Fatalf("Observe = %+v", got.Values())
	}
}

// refusingEnforcer throws for one setting.
type refusingEnforcer struct {
	*fakeEnforcer
	setting string
}

func (r refusingEnforcer) Apply(setting, value string) error {
	if setting == r.setting {
		return errors.New("java.lang.SecurityException: refused by the test")
	}
	return r.fakeEnforcer.Apply(setting, value)
}

// TestEnforcerAdapterOneFails: an exception for one setting fails that
// setting only; every other one is applied.
func TestEnforcerAdapterOneFails(t *testing.T) {
	for _, bad := range proto.SettingNames {
		t.Run(bad, func(t *testing.T) {
			f := &fakeEnforcer{supported: allSupported()}
			a := enforcerAdapter{refusingEnforcer{f, bad}}
			want := sampleValues(t)
			desired, _ := want.ToSettings()
			err := a.Enforce(t.Context(), desired)
			var se *agent.SettingsError
			if !errors.As(err, &se) || len(se.Failed) != 1 || !strings.Contains(se.Failed[bad], "refused by the test") {
				t.Fatalf("Enforce = %v, want a SettingsError for %s alone", err, bad)
			}
			for name, v := range want {
				if name != bad && f.vals[name] != string(v) {
					t.Errorf("%s not applied (%q)", name, f.vals[name])
				}
			}
		})
	}
}

// badReader reads back a value of the wrong type.
type badReader struct{ *fakeEnforcer }

func (badReader) Read(setting string) (string, error) {
	if setting == proto.SettingPasswordMinLength {
		return `"six"`, nil
	}
	return "", nil
}

func TestEnforcerAdapterBadReadBack(t *testing.T) {
	a := enforcerAdapter{badReader{&fakeEnforcer{supported: allSupported()}}}
	_, err := a.Observe(t.Context())
	if err == nil || !strings.Contains(err.Error(), "passwordMinLength") || !strings.Contains(err.Error(), `six`) {
		t.Fatalf("Observe = %v, want an error naming passwordMinLength and the value", err)
	}
}

func TestSettingNamesJSON(t *testing.T) {
	var names []string
	if err := json.Unmarshal([]byte(SettingNames()), &names); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != strings.Join(proto.SettingNames, ",") {
		t.Fatalf("SettingNames = %v", names)
	}
}
