// Package enforcertest is the conformance suite every agent.Enforcer runs,
// so each implementation is held to the same contract.
package enforcertest

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Run tests the Enforcer contract against fresh enforcers made by
// newEnforcer, one per subtest. Each must start as a device that accepts
// changes (not locked) and manages no optional setting.
//
// The contract: Enforce then Observe returns what was enforced, for every
// setting the enforcer supports (all of them unless it is an
// agent.Supporter); a nil optional setting is not managed and keeps its
// value; a setting it does not support is left alone without an error and
// observed as nil; enforcing is idempotent and, for an agent.Watcher, does
// not touch a watched file when the device already matches; Observe changes
// nothing; a canceled Enforce never half-applies.
func Run(t *testing.T, newEnforcer func(t *testing.T) agent.Enforcer) {
	t.Helper()
	supported := func(e agent.Enforcer) func(string) bool {
		if s, ok := e.(agent.Supporter); ok {
			return s.Supports
		}
		return func(string) bool { return true }
	}
	// on and off manage every setting, with opposite values; only the
	// supported part of each is expected back.
	on, off := settingsOn(), settingsOff()

	t.Run("observe before enforce", func(t *testing.T) {
		e := newEnforcer(t)
		got, err := e.Observe(t.Context())
		if err != nil {
			t.Fatalf("Observe on a fresh device: %v", err)
		}
		got.CameraDisabled = false
		if !got.Equal(proto.Settings{}) {
			t.Fatalf("a fresh device observes optional settings: %s", show(got))
		}
	})

	for _, want := range []proto.Settings{on, off, {CameraDisabled: true}, {CameraDisabled: false}} {
		t.Run("enforce then observe/"+name(want), func(t *testing.T) {
			e := newEnforcer(t)
			enforce(t, e, want)
			observe(t, e, only(want, supported(e)))
		})
	}

	t.Run("idempotent", func(t *testing.T) {
		for _, want := range []proto.Settings{on, off} {
			e := newEnforcer(t)
			for range 3 {
				enforce(t, e, want)
			}
			observe(t, e, only(want, supported(e)))
		}
	})

	t.Run("enforcing a matching device touches no watched file", func(t *testing.T) {
		e := newEnforcer(t)
		w, ok := e.(agent.Watcher)
		if !ok {
			t.Skip("not an agent.Watcher")
		}
		for _, want := range []proto.Settings{on, off} {
			enforce(t, e, want)
			before := stat(t, w.WatchPaths())
			enforce(t, e, want)
			after := stat(t, w.WatchPaths())
			for p, b := range before {
				if a := after[p]; (a == nil) != (b == nil) || a != nil && (!os.SameFile(a, b) || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size()) {
					t.Fatalf("enforcing %s again touched %s", name(want), p)
				}
			}
		}
	})

	t.Run("switches both ways", func(t *testing.T) {
		e := newEnforcer(t)
		for _, want := range []proto.Settings{on, off, on, off} {
			enforce(t, e, want)
			observe(t, e, only(want, supported(e)))
		}
	})

	t.Run("unmanaged settings are left alone", func(t *testing.T) {
		for _, first := range []proto.Settings{on, off} {
			e := newEnforcer(t)
			enforce(t, e, first)
			// Manage only the camera, with the other value: every
			// optional setting keeps what the first policy set.
			next := proto.Settings{CameraDisabled: !first.CameraDisabled}
			enforce(t, e, next)
			want := only(first, supported(e))
			want.CameraDisabled = next.CameraDisabled
			observe(t, e, want)
		}
	})

	t.Run("supports", func(t *testing.T) {
		e := newEnforcer(t)
		s, ok := e.(agent.Supporter)
		if !ok {
			t.Skip("not an agent.Supporter: supports every setting")
		}
		if !s.Supports("cameraDisabled") {
			t.Error(`Supports("cameraDisabled") = false: the camera is always managed`)
		}
		if s.Supports("noSuchSetting") {
			t.Error(`Supports("noSuchSetting") = true`)
		}
		// An unsupported setting is left alone without an error and
		// never observed.
		for _, n := range names() {
			if s.Supports(n) {
				continue
			}
			desired := proto.Settings{CameraDisabled: true}
			set(&desired, n, on)
			enforce(t, e, desired)
			got, err := e.Observe(t.Context())
			if err != nil {
				t.Fatalf("Observe: %v", err)
			}
			if v := field(got, n); !v.IsNil() {
				t.Errorf("unsupported %s observed as %s", n, jsonOf(v.Interface()))
			}
		}
	})

	t.Run("observe does not change state", func(t *testing.T) {
		for _, want := range []proto.Settings{on, off} {
			e := newEnforcer(t)
			enforce(t, e, want)
			for range 3 {
				observe(t, e, only(want, supported(e)))
			}
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		e := newEnforcer(t)
		enforce(t, e, on)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		// An enforcer may or may not honour a canceled context, but it
		// must not half-apply: the state is either old or new.
		_ = e.Enforce(ctx, off)
		got, err := e.Observe(t.Context())
		if err != nil {
			t.Fatalf("Observe: %v", err)
		}
		a, b := only(on, supported(e)), only(off, supported(e))
		if !got.Equal(a) && !got.Equal(b) {
			t.Fatalf("Observe after a canceled Enforce = %s, want %s or %s", show(got), show(a), show(b))
		}
	})
}

// settingsOn manages every setting with one value each.
func settingsOn() proto.Settings {
	t, pkgs, n := true, []string{"com.example.kiosk", "com.example.browser"}, 12
	return proto.Settings{
		CameraDisabled:          true,
		ScreenCaptureDisabled:   &t,
		StatusBarDisabled:       &t,
		LockTaskPackages:        &pkgs,
		USBFileTransferDisabled: &t,
		PasswordMinLength:       &n,
		SSHPasswordAuthDisabled: &t,
		AutoUpdatesEnabled:      &t,
		Packages:                &[]proto.Package{{Name: "curl", State: proto.PackagePresent, MinVersion: "7.0"}, {Name: "telnet", State: proto.PackageAbsent}},
		Services:                &[]proto.Service{{Name: "cups.service", Enabled: &t, Running: &t}},
		FirewallEnabled:         &t,
		SSHRootLoginDisabled:    &t,
		PasswordQuality:         &proto.PasswordQuality{MinLen: 12, MinClass: 3},
		MACEnforcing:            &t,
		AuditdRunning:           &t,
		DiskEncryptionRequired:  &t,
	}
}

// settingsOff manages every setting with a value other than settingsOn's.
func settingsOff() proto.Settings {
	f, pkgs, n := false, []string{}, 4
	return proto.Settings{
		CameraDisabled:          false,
		ScreenCaptureDisabled:   &f,
		StatusBarDisabled:       &f,
		LockTaskPackages:        &pkgs,
		USBFileTransferDisabled: &f,
		PasswordMinLength:       &n,
		SSHPasswordAuthDisabled: &f,
		AutoUpdatesEnabled:      &f,
		Packages:                &[]proto.Package{{Name: "curl", State: proto.PackageAbsent}},
		Services:                &[]proto.Service{{Name: "cups.service", Enabled: &f, Running: &f}},
		FirewallEnabled:         &f,
		SSHRootLoginDisabled:    &f,
		PasswordQuality:         &proto.PasswordQuality{MinLen: 8, MinClass: 0},
		MACEnforcing:            &f,
		AuditdRunning:           &f,
		DiskEncryptionRequired:  &f,
	}
}

// names lists the JSON names of the optional settings.
func names() []string {
	var out []string
	rt := reflect.TypeFor[proto.Settings]()
	for i := range rt.NumField() {
		if rt.Field(i).Type.Kind() == reflect.Pointer {
			out = append(out, jsonName(rt.Field(i)))
		}
	}
	return out
}

func jsonName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return n
}

// field returns the optional setting with JSON name n.
func field(s proto.Settings, n string) reflect.Value {
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		if jsonName(v.Type().Field(i)) == n {
			return v.Field(i)
		}
	}
	panic("no setting " + n)
}

// set copies the optional setting n from src into dst.
func set(dst *proto.Settings, n string, src proto.Settings) {
	v := reflect.ValueOf(dst).Elem()
	for i := range v.NumField() {
		if jsonName(v.Type().Field(i)) == n {
			v.Field(i).Set(field(src, n))
		}
	}
}

// only returns s without the optional settings supports rejects.
func only(s proto.Settings, supports func(string) bool) proto.Settings {
	out := proto.Settings{CameraDisabled: s.CameraDisabled}
	for _, n := range names() {
		if supports(n) {
			set(&out, n, s)
		}
	}
	return out
}

// stat returns each path's file info, nil for a missing file.
func stat(t *testing.T, paths []string) map[string]os.FileInfo {
	t.Helper()
	out := map[string]os.FileInfo{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		out[p] = fi
	}
	return out
}

func enforce(t *testing.T, e agent.Enforcer, s proto.Settings) {
	t.Helper()
	if err := e.Enforce(t.Context(), s); err != nil {
		t.Fatalf("Enforce(%s): %v", show(s), err)
	}
}

func observe(t *testing.T, e agent.Enforcer, want proto.Settings) {
	t.Helper()
	got, err := e.Observe(t.Context())
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if !got.Equal(want) {
		t.Fatalf("Observe = %s, want %s", show(got), show(want))
	}
}

func show(s proto.Settings) string { return jsonOf(s) }

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func name(s proto.Settings) string {
	return strings.NewReplacer(`"`, "", "{", "", "}", "").Replace(show(s))
}
