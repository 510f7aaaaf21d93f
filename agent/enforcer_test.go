package agent_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/agent/enforcertest"
	"github.com/doorbell-mdm/doorbell/proto"
)

func TestFileEnforcerConformance(t *testing.T) {
	enforcertest.Run(t, func(t *testing.T) agent.Enforcer {
		return agent.NewFileEnforcer(filepath.Join(t.TempDir(), "device.json"))
	})
}

func TestMemoryEnforcerConformance(t *testing.T) {
	enforcertest.Run(t, func(t *testing.T) agent.Enforcer { return &agent.MemoryEnforcer{} })
}

func TestFileEnforcer(t *testing.T) {
	tests := []struct {
		name        string
		initial     string // file content; "" = no file
		enforce     proto.Settings
		wantErr     error // errors.Is target; nil = success
		anyErr      bool
		wantObserve proto.Settings
		wantKeys    map[string]any // keys that must be in the file afterwards
		unchanged   bool           // the file must be byte-for-byte unchanged
	}{
		{
			name:        "missing file is created",
			enforce:     proto.Settings{CameraDisabled: true},
			wantObserve: proto.Settings{CameraDisabled: true},
			wantKeys:    map[string]any{"cameraDisabled": true},
		},
		{
			name:        "locked device refuses and keeps its state",
			initial:     `{"cameraDisabled": false, "locked": true}`,
			enforce:     proto.Settings{CameraDisabled: true},
			wantErr:     agent.ErrLocked,
			wantObserve: proto.Settings{CameraDisabled: false},
			unchanged:   true,
		},
		{
			name:        "unlocked device with the key present",
			initial:     `{"cameraDisabled": false, "locked": false}`,
			enforce:     proto.Settings{CameraDisabled: true},
			wantObserve: proto.Settings{CameraDisabled: true},
			wantKeys:    map[string]any{"cameraDisabled": true, "locked": false},
		},
		{
			name:        "unknown keys are preserved",
			initial:     `{"cameraDisabled": true, "wifi": {"ssid": "office"}, "owner": "kiosk-7"}`,
			enforce:     proto.Settings{CameraDisabled: false},
			wantObserve: proto.Settings{CameraDisabled: false},
			wantKeys:    map[string]any{"cameraDisabled": false, "owner": "kiosk-7", "wifi": map[string]any{"ssid": "office"}},
		},
		{
			name:        "empty file is a device with zero settings",
			initial:     "\n",
			enforce:     proto.Settings{CameraDisabled: true},
			wantObserve: proto.Settings{CameraDisabled: true},
		},
		{
			name:        "optional settings are written; unmanaged ones keep their keys",
			initial:     `{"cameraDisabled": false, "statusBarDisabled": true, "passwordMinLength": 6}`,
			enforce:     proto.Settings{CameraDisabled: true, SSHPasswordAuthDisabled: ptr(true), LockTaskPackages: ptr([]string{"com.example.kiosk"}), PasswordMinLength: ptr(10)},
			wantObserve: proto.Settings{CameraDisabled: true, StatusBarDisabled: ptr(true), SSHPasswordAuthDisabled: ptr(true), LockTaskPackages: ptr([]string{"com.example.kiosk"}), PasswordMinLength: ptr(10)},
			wantKeys:    map[string]any{"statusBarDisabled": true, "sshPasswordAuthDisabled": true, "lockTaskPackages": []string{"com.example.kiosk"}, "passwordMinLength": 10},
		},
		{
			name:        "a matching hand-formatted file is not rewritten",
			initial:     `{"cameraDisabled":true,"autoUpdatesEnabled":false}`,
			enforce:     proto.Settings{CameraDisabled: true, AutoUpdatesEnabled: ptr(false)},
			wantObserve: proto.Settings{CameraDisabled: true, AutoUpdatesEnabled: ptr(false)},
			unchanged:   true,
		},
		{
			name:        "locked refuses optional settings too",
			initial:     `{"cameraDisabled": true, "usbFileTransferDisabled": false, "locked": true}`,
			enforce:     proto.Settings{CameraDisabled: true, USBFileTransferDisabled: ptr(true)},
			wantErr:     agent.ErrLocked,
			wantObserve: proto.Settings{CameraDisabled: true, USBFileTransferDisabled: ptr(false)},
			unchanged:   true,
		},
		{
			name:      "not JSON is an error and nothing changes",
			initial:   `camera off please`,
			enforce:   proto.Settings{CameraDisabled: true},
			anyErr:    true,
			unchanged: true,
		},
		{
			name:      "locked that is not a boolean is an error",
			initial:   `{"locked": "yes"}`,
			enforce:   proto.Settings{CameraDisabled: true},
			anyErr:    true,
			unchanged: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "device.json")
			if tt.initial != "" {
				if err := os.WriteFile(path, []byte(tt.initial), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			e := agent.NewFileEnforcer(path)
			err := e.Enforce(t.Context(), tt.enforce)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Enforce = %v, want %v", err, tt.wantErr)
			case tt.anyErr && err == nil:
				t.Fatal("Enforce = nil, want an error")
			case tt.wantErr == nil && !tt.anyErr && err != nil:
				t.Fatalf("Enforce: %v", err)
			}
			if tt.unchanged {
				if b, _ := os.ReadFile(path); string(b) != tt.initial {
					t.Errorf("file changed to %q", b)
				}
			}
			if !tt.anyErr {
				got, err := e.Observe(t.Context())
				if err != nil || !got.Equal(tt.wantObserve) {
					t.Errorf("Observe = %s, %v; want %s", mustJSON(t, got), err, mustJSON(t, tt.wantObserve))
				}
			}
			if tt.wantKeys != nil {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				var doc map[string]any
				if err := json.Unmarshal(b, &doc); err != nil {
					t.Fatalf("file is not JSON: %v", err)
				}
				for k, want := range tt.wantKeys {
					if got, _ := json.Marshal(doc[k]); string(got) != mustJSON(t, want) {
						t.Errorf("file[%q] = %s, want %s", k, got, mustJSON(t, want))
					}
				}
			}
		})
	}
}

func TestFileEnforcerObserveMissingFile(t *testing.T) {
	e := agent.NewFileEnforcer(filepath.Join(t.TempDir(), "nope", "device.json"))
	got, err := e.Observe(t.Context())
	if err != nil || got != (proto.Settings{}) {
		t.Errorf("Observe of a missing file = %+v, %v; want zero settings", got, err)
	}
}

func TestMemoryEnforcerLocked(t *testing.T) {
	e := &agent.MemoryEnforcer{}
	e.SetLocked(true)
	if err := e.Enforce(t.Context(), proto.Settings{CameraDisabled: true}); !errors.Is(err, agent.ErrLocked) {
		t.Fatalf("Enforce on a locked device = %v, want ErrLocked", err)
	}
	if got, _ := e.Observe(t.Context()); got.CameraDisabled {
		t.Error("locked device changed")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
