// Package policy holds the compliance rules of the loop: how a device's
// groups and own layer make its effective policy (Effective, Recompute),
// what state that and its last report give (Derive, TrackFailing), and the
// small rules every storage backend applies inside its transactions. It is
// pure: no storage, no I/O; server/service and every backend call it.
package policy

import (
	"encoding/json"
	"slices"
	"sort"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// DefaultGuidedDeadline is the deadline of a guided setting whose layer
// names none.
const DefaultGuidedDeadline = "72h"

func deadline(l store.Layer) string {
	if l.Deadline != "" {
		return l.Deadline
	}
	return DefaultGuidedDeadline
}

// Precedes reports whether group g wins over o when both set a setting: the
// higher priority wins; on equal priority the name that sorts first (byte
// order), then the lower id.
func Precedes(g, o store.Group) bool {
	if g.Priority != o.Priority {
		return g.Priority > o.Priority
	}
	if g.Name != o.Name {
		return g.Name < o.Name
	}
	return g.ID < o.ID
}

// SortGroups sorts groups in precedence order, winner first.
func SortGroups(groups []store.Group) {
	sort.SliceStable(groups, func(i, j int) bool { return Precedes(groups[i], groups[j]) })
}

func modeOf(g store.Group, setting string) proto.Mode {
	if m, ok := g.Modes[setting]; ok && m != "" {
		return m
	}
	if g.Mode != "" {
		return g.Mode
	}
	return proto.ModeEnforce
}

// Source names used by Explain.
const (
	SourceDevice  = "device"
	SourceDefault = "default"
	SourceGroup   = "group:"
)

// Effective merges a device's groups and its own override into the desired
// settings: for each setting, the device's override wins, then the group
// that precedes the others, then the default (cameraDisabled false,
// everything else unmanaged). A setting's mode is the device's Modes entry
// when there is one, else the mode of the layer that gave the value.
// groups may be in any order.
func Effective(groups []store.Group, override store.Layer) (proto.Settings, []string, map[string]proto.SettingExplanation) {
	gs := slices.Clone(groups)
	SortGroups(gs)
	values := proto.SettingValues{}
	explain := map[string]proto.SettingExplanation{}
	for _, name := range proto.SettingNames {
		if v, ok := override.Values[name]; ok {
			explain[name] = proto.SettingExplanation{Value: v, Mode: proto.ModeEnforce, Source: SourceDevice}
		} else {
			for _, g := range gs {
				if v, ok := g.Values[name]; ok {
					e := proto.SettingExplanation{Value: v, Mode: modeOf(g, name), Source: SourceGroup + g.ID}
					if e.Mode == proto.ModeGuided {
						e.Deadline = deadline(g.Layer)
					}
					explain[name] = e
					break
				}
			}
		}
		if _, ok := explain[name]; !ok && name == proto.SettingCameraDisabled {
			explain[name] = proto.SettingExplanation{Value: json.RawMessage("false"), Mode: proto.ModeEnforce, Source: SourceDefault}
		}
		e, ok := explain[name]
		if !ok {
			continue
		}
		if m, ok := override.Modes[name]; ok && m != "" {
			e.Mode, e.Deadline = m, ""
			if m == proto.ModeGuided {
				e.Deadline = deadline(override)
			}
			explain[name] = e
		}
		values[name] = e.Value
	}
	s, err := values.ToSettings()
	if err != nil {
		panic("policy: canonical setting values do not decode: " + err.Error())
	}
	var monitor []string
	for _, name := range proto.SettingNames {
		if e, ok := explain[name]; ok && e.Mode == proto.ModeMonitor {
			monitor = append(monitor, name)
		}
	}
	return s, monitor, explain
}

// Recompute sets d.Policy to the effective policy of its groups and
// override, bumping the version by exactly one when settings or modes
// changed. It reports whether they did.
func Recompute(d *store.Device, groups []store.Group) bool {
	s, monitor, explain := Effective(groups, d.Override)
	guided := Guided(explain)
	if s.Equal(d.Policy.Settings) && slices.Equal(monitor, d.Policy.Monitor) && sameStrings(guided, d.Policy.Guided) {
		return false
	}
	d.Policy.Settings, d.Policy.Monitor, d.Policy.Guided = s, monitor, guided
	d.Policy.Version++
	return true
}

func sameStrings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Guided is the policy's guided map from an explanation: each guided
// setting's deadline; nil when none is guided.
func Guided(explain map[string]proto.SettingExplanation) map[string]string {
	var out map[string]string
	for name, e := range explain {
		if e.Mode == proto.ModeGuided {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = e.Deadline
		}
	}
	return out
}

// Derive returns a device's compliance state and failing settings, as the
// API shows them.
func Derive(d store.Device) (proto.ComplianceState, []proto.SettingFailure) {
	var r *proto.ComplianceReport
	if d.Report != nil {
		r = &d.Report.ComplianceReport
	}
	return proto.EvaluateFailing(d.Policy, r)
}
