package policy

import (
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// The rules below are what every storage backend does, inside the
// transaction that writes a device, so that bbolt and PostgreSQL cannot
// drift apart: each backend keeps only how it reads and writes.

// Write is what one write of a device does to its derived state.
type Write struct {
	// From and FromFailing are the state and failing settings before
	// the write; zero for a new device.
	From        proto.ComplianceState
	FromFailing []proto.SettingFailure
	// Change is what the write commits: the device as it will be
	// stored, its state, and the transition recorded (when the state
	// changed or the device is new).
	Change store.Change
}

// Counted reports whether the fleet's counters change with w: the state
// or the failing settings changed, or the device is new. A report that
// changes neither (the common one) leaves them alone.
func (w Write) Counted(isNew bool) bool {
	return isNew || w.From != w.Change.State || !sameSettings(w.FromFailing, w.Change.Failing)
}

// Apply prepares after, the new record of a device that was before (nil
// when it is new), to be written by a change with cause at time at: it
// derives the state before and after and applies ApplyDerived.
func Apply(before, after *store.Device, cause proto.EventCause, at time.Time) Write {
	var from proto.ComplianceState
	var fromFailing []proto.SettingFailure
	if before != nil {
		from, fromFailing = Derive(*before)
	}
	to, failing := Derive(*after)
	w := ApplyDerived(before, after, from, to, failing, cause, at)
	w.FromFailing = fromFailing
	return w
}

// ApplyDerived is Apply for a backend that knows the state before (from,
// zero for a new device) and has derived after's (to, failing), so that a
// write evaluates the device once: it stamps the next revision
// (Device.Rev), notes PolicyChangedAt on a bump of the desired version (an
// enrollment is not an edit), keeps the failing-since times
// (TrackFailing), and records a transition when the state changed or the
// device is new. The returned Write has no FromFailing.
func ApplyDerived(before, after *store.Device, from, to proto.ComplianceState, failing []proto.SettingFailure, cause proto.EventCause, at time.Time) Write {
	w := Write{From: from}
	after.Rev = 1
	if before != nil {
		after.Rev = before.Rev + 1
		if after.Policy.Version != before.Policy.Version {
			after.PolicyChangedAt = at.UTC()
		}
	}
	TrackFailing(before, after, to, failing, at)
	w.Change = store.Change{Device: *after, State: to, Failing: failing}
	if before == nil || from != to {
		w.Change.Transitions = []proto.Transition{{DeviceID: after.ID, From: from, To: to, At: at.UTC(), Cause: cause, Failing: failing}}
	}
	return w
}

// sameSettings reports whether a and b name the same settings in the same
// order (the counters count failures by setting).
func sameSettings(a, b []proto.SettingFailure) bool {
	return slices.EqualFunc(a, b, func(x, y proto.SettingFailure) bool { return x.Setting == y.Setting })
}

// Current is a device as it is, with its derived state and no
// transition: what a write that changed nothing returns.
func Current(d store.Device) store.Change {
	c := store.Change{Device: d}
	c.State, c.Failing = Derive(d)
	return c
}

// NormalizeMembers sorts a group's member ids and drops repeats.
func NormalizeMembers(ids []string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return slices.Compact(out)
}

// GroupsOf returns, of all groups by id, those d belongs to (a group
// deleted meanwhile is skipped).
func GroupsOf(d store.Device, all map[string]store.Group) []store.Group {
	if len(d.Groups) == 0 {
		return nil
	}
	out := make([]store.Group, 0, len(d.Groups))
	for _, id := range d.Groups {
		if g, ok := all[id]; ok {
			out = append(out, g)
		}
	}
	return out
}

// Regroup re-derives d's effective policy after a group change (all holds
// every group as the change left them). When gid is not empty, d's
// membership of group gid first becomes member(d.ID). changed says
// whether the effective policy changed (and its version was bumped);
// write whether anything did (policy or membership), so d must be
// written.
func Regroup(d *store.Device, all map[string]store.Group, gid string, member func(string) bool) (changed, write bool) {
	before := d.Groups
	if gid != "" {
		has := slices.Contains(d.Groups, gid)
		switch want := member(d.ID); {
		case want && !has:
			d.Groups = append(slices.Clone(d.Groups), gid)
			sort.Strings(d.Groups)
		case !want && has:
			d.Groups = slices.DeleteFunc(slices.Clone(d.Groups), func(x string) bool { return x == gid })
		}
		if len(d.Groups) == 0 {
			d.Groups = nil
		}
	}
	changed = Recompute(d, GroupsOf(*d, all))
	return changed, changed || !slices.Equal(before, d.Groups)
}

// EditOverride replaces d's own layer with change(current) and recomputes
// its effective policy over its groups. changed says whether the
// effective policy changed (and its version was bumped); write whether
// anything did (policy or layer), so d must be written.
func EditOverride(d *store.Device, groups []store.Group, change func(store.Layer) store.Layer) (changed, write bool) {
	before := d.Override
	d.Override = change(d.Override)
	changed = Recompute(d, groups)
	return changed, changed || !layerEqual(before, d.Override)
}

func layerEqual(a, b store.Layer) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// ChangeGroup is the group that change makes of cur, as GroupStore's
// UpdateGroup stores it: change may refuse with an error; the id and the
// members are kept whatever change returns.
func ChangeGroup(cur store.Group, change func(store.Group) (store.Group, error)) (store.Group, error) {
	g, err := change(cur)
	if err != nil {
		return g, err
	}
	g.ID, g.Members = cur.ID, cur.Members
	return g, nil
}
