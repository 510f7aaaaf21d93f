package agent

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
)

func ptr[T any](v T) *T { return &v }

// setDevicePolicy replaces the fake server's whole policy for id (settings
// and monitor list) as a new version.
func (s *fakeServer) setDevicePolicy(id string, p proto.DevicePolicy) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[id]
	p.Version = d.policy.Version + 1
	d.policy = p
	return p.Version
}

// settingsEnforcer is a device with per-setting abilities: it cannot do
// the settings in unsupported, and refuses those in refuse (enforcing the
// rest). It records what it was asked to enforce.
type settingsEnforcer struct {
	MemoryEnforcer
	unsupported map[string]bool
	refuse      map[string]string
	mu          sync.Mutex
	asked       []proto.Settings
}

var (
	_ Enforcer  = (*settingsEnforcer)(nil)
	_ Supporter = (*settingsEnforcer)(nil)
)

func (e *settingsEnforcer) Supports(name string) bool { return !e.unsupported[name] }

func (e *settingsEnforcer) Enforce(ctx context.Context, desired proto.Settings) error {
	e.mu.Lock()
	e.asked = append(e.asked, desired)
	e.mu.Unlock()
	cur, _ := e.MemoryEnforcer.Observe(ctx)
	want, have := desired.Values(), cur.Values()
	for name := range e.refuse {
		if v, ok := have[name]; ok {
			want[name] = v
		} else {
			delete(want, name)
		}
	}
	s, err := want.ToSettings()
	if err != nil {
		return err
	}
	if err := e.MemoryEnforcer.Enforce(ctx, s); err != nil {
		return err
	}
	if len(e.refuse) > 0 {
		return &SettingsError{Failed: e.refuse}
	}
	return nil
}

func (e *settingsEnforcer) lastAsked() proto.Settings {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.asked[len(e.asked)-1]
}

func TestPerSettingReports(t *testing.T) {
	start := proto.Settings{CameraDisabled: false, PasswordMinLength: ptr(4), StatusBarDisabled: ptr(false)}
	policy := proto.DevicePolicy{Settings: proto.Settings{CameraDisabled: true, PasswordMinLength: ptr(8), StatusBarDisabled: ptr(true)}}
	tests := []struct {
		name        string
		monitor     []string
		unsupported map[string]bool
		refuse      map[string]string
		wantAsked   proto.Settings // what Enforce is given
		wantState   proto.Settings // the device afterwards
		wantReport  proto.ComplianceReport
	}{
		{
			name:       "everything enforced",
			wantAsked:  policy.Settings,
			wantState:  policy.Settings,
			wantReport: proto.ComplianceReport{Settings: policy.Settings, Compliant: true},
		},
		{
			name:       "monitored settings are left as observed",
			monitor:    []string{"cameraDisabled", "passwordMinLength"},
			wantAsked:  proto.Settings{CameraDisabled: false, StatusBarDisabled: ptr(true)},
			wantState:  proto.Settings{CameraDisabled: false, PasswordMinLength: ptr(4), StatusBarDisabled: ptr(true)},
			wantReport: proto.ComplianceReport{Settings: proto.Settings{CameraDisabled: false, PasswordMinLength: ptr(4), StatusBarDisabled: ptr(true)}},
		},
		{
			name:        "unsupported settings are not tried and are reported",
			unsupported: map[string]bool{"statusBarDisabled": true},
			wantAsked:   proto.Settings{CameraDisabled: true, PasswordMinLength: ptr(8)},
			wantState:   proto.Settings{CameraDisabled: true, PasswordMinLength: ptr(8), StatusBarDisabled: ptr(false)},
			wantReport:  proto.ComplianceReport{Settings: proto.Settings{CameraDisabled: true, PasswordMinLength: ptr(8), StatusBarDisabled: ptr(false)}, Unsupported: []string{"statusBarDisabled"}},
		},
		{
			name:       "per-setting failures are reported by name",
			refuse:     map[string]string{"passwordMinLength": "user refused"},
			wantAsked:  policy.Settings,
			wantState:  proto.Settings{CameraDisabled: true, PasswordMinLength: ptr(4), StatusBarDisabled: ptr(true)},
			wantReport: proto.ComplianceReport{Settings: proto.Settings{CameraDisabled: true, PasswordMinLength: ptr(4), StatusBarDisabled: ptr(true)}, Failed: map[string]string{"passwordMinLength": "user refused"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t)
			enf := &settingsEnforcer{unsupported: tt.unsupported}
			h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Enforcer = enf })
			r := h.sync(t)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			// The device as it is before the policy under test arrives.
			enf.Set(start)
			enf.refuse = tt.refuse
			p := policy
			p.Monitor = tt.monitor
			v := srv.setDevicePolicy(r.DeviceID, p)
			if r = h.sync(t); r.Err != nil || r.PolicyVersion != v {
				t.Fatalf("sync = %+v", r)
			}
			if got := enf.lastAsked(); !got.Equal(tt.wantAsked) {
				t.Errorf("Enforce got %+v, want %+v", got.Values(), tt.wantAsked.Values())
			}
			if got, _ := enf.Observe(t.Context()); !got.Equal(tt.wantState) {
				t.Errorf("device = %v, want %v", got.Values(), tt.wantState.Values())
			}
			reports := srv.reports(r.DeviceID)
			want := tt.wantReport
			want.AppliedPolicyVersion = v
			want.SyncIntervalSeconds = 3600 // the harness's Interval, told to the server
			if got := reports[len(reports)-1]; !reflect.DeepEqual(got, want) {
				t.Errorf("report = %+v, want %+v", got, want)
			}
			if r.Compliant != want.Compliant {
				t.Errorf("SyncResult.Compliant = %v", r.Compliant)
			}
		})
	}
}

// racingEnforcer is a FileEnforcer whose device changes (meanwhile) after
// the agent observed it and before it writes, once.
type racingEnforcer struct {
	*FileEnforcer
	meanwhile func()
}

func (r *racingEnforcer) race() {
	if f := r.meanwhile; f != nil {
		r.meanwhile = nil
		f()
	}
}

func (r *racingEnforcer) Enforce(ctx context.Context, d proto.Settings) error {
	r.race()
	return r.FileEnforcer.Enforce(ctx, d)
}

func (r *racingEnforcer) EnforceExcept(ctx context.Context, d proto.Settings, leave []string) error {
	r.race()
	return r.FileEnforcer.EnforceExcept(ctx, d, leave)
}

// TestMonitoredSettingNotWrittenBack: a monitored cameraDisabled that the
// device's user changes between the agent's observation and its write is
// left as the user set it. Handing the enforcer the value observed before
// wrote the old value back (seen as a flaky TestRecoveredMonitoredDevice).
func TestMonitoredSettingNotWrittenBack(t *testing.T) {
	srv := newFakeServer(t)
	path := filepath.Join(t.TempDir(), "device.json")
	if err := os.WriteFile(path, []byte(`{"cameraDisabled": false}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	enf := &racingEnforcer{FileEnforcer: NewFileEnforcer(path)}
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Enforcer = enf })
	r := h.sync(t)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	enf.meanwhile = func() {
		if err := os.WriteFile(path, []byte(`{"cameraDisabled": true}`+"\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	srv.setDevicePolicy(r.DeviceID, proto.DevicePolicy{Settings: proto.Settings{CameraDisabled: true}, Monitor: []string{proto.SettingCameraDisabled}})
	if r = h.sync(t); r.Err != nil {
		t.Fatal(r.Err)
	}
	if enf.meanwhile != nil {
		t.Fatal("the sync never wrote: the race was not exercised")
	}
	if got, err := enf.Observe(t.Context()); err != nil || !got.CameraDisabled {
		t.Fatalf("device cameraDisabled = %v (%v): the agent wrote a monitored setting back", got.CameraDisabled, err)
	}
}
