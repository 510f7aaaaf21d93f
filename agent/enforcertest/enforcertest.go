// Package enforcertest is the conformance suite every agent.Enforcer runs,
// so each implementation is held to the same contract.
package enforcertest

import (
	"context"
	"testing"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Run tests the Enforcer contract against fresh enforcers made by
// newEnforcer, one per subtest. Each must start as a device that accepts
// changes (not locked).
func Run(t *testing.T, newEnforcer func(t *testing.T) agent.Enforcer) {
	t.Helper()
	all := []proto.Settings{
		{CameraDisabled: true},
		{CameraDisabled: false},
	}

	t.Run("observe before enforce", func(t *testing.T) {
		e := newEnforcer(t)
		if _, err := e.Observe(t.Context()); err != nil {
			t.Fatalf("Observe on a fresh device: %v", err)
		}
	})

	for _, want := range all {
		t.Run("enforce then observe/"+name(want), func(t *testing.T) {
			e := newEnforcer(t)
			enforce(t, e, want)
			observe(t, e, want)
		})
	}

	t.Run("idempotent", func(t *testing.T) {
		for _, want := range all {
			e := newEnforcer(t)
			for range 3 {
				enforce(t, e, want)
			}
			observe(t, e, want)
		}
	})

	t.Run("switches both ways", func(t *testing.T) {
		e := newEnforcer(t)
		for _, want := range []proto.Settings{all[0], all[1], all[0], all[1]} {
			enforce(t, e, want)
			observe(t, e, want)
		}
	})

	t.Run("observe does not change state", func(t *testing.T) {
		for _, want := range all {
			e := newEnforcer(t)
			enforce(t, e, want)
			for range 3 {
				observe(t, e, want)
			}
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		e := newEnforcer(t)
		enforce(t, e, all[0])
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		// An enforcer may or may not honour a canceled context, but it
		// must not half-apply: the state is either old or new.
		_ = e.Enforce(ctx, all[1])
		got, err := e.Observe(t.Context())
		if err != nil {
			t.Fatalf("Observe: %v", err)
		}
		if got != all[0] && got != all[1] {
			t.Fatalf("Observe after a canceled Enforce = %+v, want %+v or %+v", got, all[0], all[1])
		}
	})
}

func enforce(t *testing.T, e agent.Enforcer, s proto.Settings) {
	t.Helper()
	if err := e.Enforce(t.Context(), s); err != nil {
		t.Fatalf("Enforce(%+v): %v", s, err)
	}
}

func observe(t *testing.T, e agent.Enforcer, want proto.Settings) {
	t.Helper()
	got, err := e.Observe(t.Context())
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if got != want {
		t.Fatalf("Observe = %+v, want %+v", got, want)
	}
}

func name(s proto.Settings) string {
	if s.CameraDisabled {
		return "cameraDisabled=true"
	}
	return "cameraDisabled=false"
}
