package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

var null = json.RawMessage("null")

// DiffRevisions lists what changed from a layer (and group mode) to
// another: every setting value, every per-setting mode, and the mode.
func DiffRevisions(from, to store.Layer, fromMode, toMode proto.Mode) []proto.RevisionChange {
	var out []proto.RevisionChange
	add := func(name string, a, b json.RawMessage, oka, okb bool) {
		if oka == okb && bytes.Equal(a, b) {
			return
		}
		if !oka {
			a = null
		}
		if !okb {
			b = null
		}
		out = append(out, proto.RevisionChange{Setting: name, From: a, To: b})
	}
	names := map[string]bool{}
	for n := range from.Values {
		names[n] = true
	}
	for n := range to.Values {
		names[n] = true
	}
	for _, n := range sortedKeys(names) {
		a, oka := from.Values[n]
		b, okb := to.Values[n]
		add(n, a, b, oka, okb)
	}
	modes := map[string]bool{}
	for n := range from.Modes {
		modes[n] = true
	}
	for n := range to.Modes {
		modes[n] = true
	}
	for _, n := range sortedKeys(modes) {
		a, oka := from.Modes[n]
		b, okb := to.Modes[n]
		add("modes."+n, quote(string(a)), quote(string(b)), oka, okb)
	}
	if from.Deadline != to.Deadline {
		add("deadline", quote(from.Deadline), quote(to.Deadline), from.Deadline != "", to.Deadline != "")
	}
	if fromMode != toMode {
		add("mode", quote(string(fromMode)), quote(string(toMode)), fromMode != "", toMode != "")
	}
	return out
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// NextRevision is the revision that a change of a layer (and group mode)
// to l and mode at time at records after prev (the layer's newest kept
// revision, zero when none), with the actor and action of ctx's audit
// entry. ok is false when nothing changed since prev: no revision.
func NextRevision(ctx context.Context, prev store.Revision, l store.Layer, mode proto.Mode, at time.Time) (r store.Revision, ok bool) {
	changes := DiffRevisions(prev.Layer, l, prev.Mode, mode)
	if prev.N > 0 && len(changes) == 0 {
		return r, false
	}
	r = store.Revision{N: prev.N + 1, At: at, Layer: l, Mode: mode, Changes: changes}
	if r.Changes == nil {
		r.Changes = []store.RevisionChange{}
	}
	if e, ok := store.AuditFrom(ctx); ok {
		r.Actor, r.Action = e.Actor, e.Action
	}
	return r, true
}
