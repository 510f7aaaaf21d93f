// Package executortest is the conformance suite every agent.Executor runs,
// so each implementation is held to the same contract.
package executortest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Harness is one fresh executor and what the suite must know about it.
type Harness struct {
	Executor agent.Executor
	// Supported maps each type the executor carries out to params that
	// make it succeed on this (test) device.
	Supported map[proto.CommandType]map[string]string
	// Ran returns the types of the commands the device carried out so far,
	// oldest first: what the stand-in device, or the recorder in front of
	// the real one, saw.
	Ran func() []proto.CommandType
}

// unsupportedWithin is how fast "at once" must be for an unsupported type.
const unsupportedWithin = time.Second

// Run tests the Executor contract against fresh executors made by
// newHarness, one per subtest.
//
// The contract: a supported type with good params is carried out once and
// ACKNOWLEDGED; every other type of the catalog, and a type unknown to it,
// is answered ERROR "unsupported" at once and nothing is carried out; every
// result passes proto.CommandResult.Validate; a done context carries out
// nothing and answers NOT_NOW or ERROR; concurrent commands are each
// carried out exactly once.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	seq := 0
	command := func(typ proto.CommandType, params map[string]string) proto.Command {
		seq++
		now := time.Now().UTC()
		return proto.Command{CommandID: fmt.Sprintf("c%d", seq), DeviceID: "dev", Type: typ, Params: params,
			State: proto.CommandDelivered, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	}

	t.Run("supported types are carried out once", func(t *testing.T) {
		h := newHarness(t)
		if len(h.Supported) == 0 {
			t.Fatal("the harness names no supported type")
		}
		for _, spec := range proto.CommandTypes {
			params, ok := h.Supported[spec.Type]
			if !ok {
				continue
			}
			before := h.Ran()
			r := h.Executor.Execute(t.Context(), command(spec.Type, params))
			valid(t, r)
			if r.State != proto.CommandAcknowledged {
				t.Fatalf("%s = %+v, want ACKNOWLEDGED", spec.Type, r)
			}
			after := h.Ran()
			if len(after) != len(before)+1 || after[len(after)-1] != spec.Type {
				t.Fatalf("after %s the device ran %v (before: %v), want exactly one more %s", spec.Type, after, before, spec.Type)
			}
		}
	})

	t.Run("other types are unsupported at once", func(t *testing.T) {
		h := newHarness(t)
		types := []proto.CommandType{"no_such_command"}
		for _, spec := range proto.CommandTypes {
			if _, ok := h.Supported[spec.Type]; !ok {
				types = append(types, spec.Type)
			}
		}
		for _, typ := range types {
			start := time.Now()
			r := h.Executor.Execute(t.Context(), command(typ, nil))
			valid(t, r)
			if took := time.Since(start); took > unsupportedWithin {
				t.Errorf("%s answered after %v, want at once", typ, took)
			}
			if r.State != proto.CommandError || r.ErrorCode != proto.ErrorCodeUnsupported {
				t.Errorf("%s = %+v, want ERROR unsupported", typ, r)
			}
		}
		if ran := h.Ran(); len(ran) != 0 {
			t.Fatalf("unsupported commands were carried out: %v", ran)
		}
	})

	t.Run("a done context carries out nothing", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for typ, params := range h.Supported {
			r := h.Executor.Execute(ctx, command(typ, params))
			valid(t, r)
			if r.State != proto.CommandNotNow && r.State != proto.CommandError {
				t.Errorf("%s with a done context = %+v, want NOT_NOW or ERROR", typ, r)
			}
		}
		if ran := h.Ran(); len(ran) != 0 {
			t.Fatalf("a done context carried out %v", ran)
		}
	})

	t.Run("concurrent commands each run once", func(t *testing.T) {
		h := newHarness(t)
		var want []proto.CommandType
		var cmds []proto.Command
		for typ, params := range h.Supported {
			for range 3 {
				cmds = append(cmds, command(typ, params))
				want = append(want, typ)
			}
		}
		results := make([]proto.CommandResult, len(cmds))
		var wg sync.WaitGroup
		for i, c := range cmds {
			wg.Go(func() { results[i] = h.Executor.Execute(t.Context(), c) })
		}
		wg.Wait()
		for i, r := range results {
			if r.State != proto.CommandAcknowledged {
				t.Errorf("%s = %+v, want ACKNOWLEDGED", cmds[i].Type, r)
			}
		}
		got := h.Ran()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("the device ran %v, want %v", got, want)
		}
	})
}

func valid(t *testing.T, r proto.CommandResult) {
	t.Helper()
	if err := r.Validate(); err != nil {
		t.Fatalf("result %+v is not valid: %v", r, err)
	}
}
