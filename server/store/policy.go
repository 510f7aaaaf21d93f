package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
)

// ErrUnknownDevice is returned (wrapped, naming the ids) when a group's
// member list names a device that does not exist. Nothing is stored.
var ErrUnknownDevice = errors.New("unknown device")

// ErrNameTaken is returned when a group's name is already used by another
// group. Nothing is stored.
var ErrNameTaken = errors.New("group name already taken")

// HistoryLimit is how many transitions are kept per device; older ones are
// dropped as new ones are recorded.
const HistoryLimit = 100

// Layer is a partial policy: a group's settings or a device's own
// overrides. Values holds canonical values (proto.ParseSetting); Modes the
// remediation mode of some settings.
type Layer struct {
	Values proto.SettingValues   `json:"values,omitempty"`
	Modes  map[string]proto.Mode `json:"modes,omitempty"`
	// Deadline is the deadline (a Go duration) of the settings this
	// layer puts in guided mode.
	Deadline string `json:"deadline,omitempty"`
}

// DefaultGuidedDeadline is the deadline of a guided setting whose layer
// names none.
const DefaultGuidedDeadline = "72h"

func (l Layer) deadline() string {
	if l.Deadline != "" {
		return l.Deadline
	}
	return DefaultGuidedDeadline
}

// Group is a named policy layer applied to its members.
type Group struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Priority int    `json:"priority"`
	Layer
	// Mode is the mode of every setting of the group that Layer.Modes does
	// not name; "" means enforce.
	Mode proto.Mode `json:"mode,omitempty"`
	// Members are device ids, sorted.
	Members []string `json:"members,omitempty"`
	// Escalation is what happens to members that stay NON_COMPLIANT; nil
	// for nothing.
	Escalation *proto.Escalation `json:"escalation,omitempty"`
}

// Precedes reports whether g wins over o when both set a setting: the
// higher priority wins; on equal priority the name that sorts first (byte
// order), then the lower id.
func (g Group) Precedes(o Group) bool {
	if g.Priority != o.Priority {
		return g.Priority > o.Priority
	}
	if g.Name != o.Name {
		return g.Name < o.Name
	}
	return g.ID < o.ID
}

// SortGroups sorts groups in precedence order, winner first.
func SortGroups(groups []Group) {
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].Precedes(groups[j]) })
}

func (g Group) modeOf(setting string) proto.Mode {
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
func Effective(groups []Group, override Layer) (proto.Settings, []string, map[string]proto.SettingExplanation) {
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
					e := proto.SettingExplanation{Value: v, Mode: g.modeOf(name), Source: SourceGroup + g.ID}
					if e.Mode == proto.ModeGuided {
						e.Deadline = g.deadline()
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
				e.Deadline = override.deadline()
			}
			explain[name] = e
		}
		values[name] = e.Value
	}
	s, err := values.ToSettings()
	if err != nil {
		panic("store: canonical setting values do not decode: " + err.Error())
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
func Recompute(d *Device, groups []Group) bool {
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
func Derive(d Device) (proto.ComplianceState, []proto.SettingFailure) {
	var r *proto.ComplianceReport
	if d.Report != nil {
		r = &d.Report.ComplianceReport
	}
	return proto.EvaluateFailing(d.Policy, r)
}

// OverrideStore changes a device's own policy layer.
type OverrideStore interface {
	// UpdateOverride replaces the device's override with change(current)
	// and recomputes its effective policy, bumping the version by exactly
	// one when that changed (changed true), all in one transaction. A
	// version bump sets PolicyChangedAt. A change also records the audit
	// entry of ctx (WithAudit) in the same transaction. It returns what it
	// committed (the device as stored), or ErrNotFound.
	UpdateOverride(ctx context.Context, id string, change func(Layer) Layer) (c Change, changed bool, err error)
}

// GroupStore holds groups and their members. Every method that can alter
// devices' effective policies recomputes them in the same transaction,
// bumps each changed device's version by exactly one, records history with
// cause "group", and returns what it committed for each device whose
// effective policy changed, for one batched ring.
type GroupStore interface {
	// CreateGroup stores a new group (with its members, if any). It
	// returns ErrExists when the id is taken, ErrNameTaken when the name
	// is, and ErrUnknownDevice when a member does not exist.
	CreateGroup(ctx context.Context, g Group) ([]Change, error)
	// Group returns one group, or ErrNotFound.
	Group(ctx context.Context, id string) (Group, error)
	// Groups returns every group in precedence order (winner first).
	Groups(ctx context.Context) ([]Group, error)
	// UpdateGroup replaces the group's name, priority, layer and mode
	// with change(current) (id and members are kept). change may refuse
	// with an error, which is returned as is. It returns ErrNotFound or
	// ErrNameTaken.
	UpdateGroup(ctx context.Context, id string, change func(Group) (Group, error)) (Group, []Change, error)
	// SetGroupMembers replaces the group's members. It returns ErrNotFound
	// for an unknown group and ErrUnknownDevice for an unknown device.
	SetGroupMembers(ctx context.Context, id string, deviceIDs []string) (Group, []Change, error)
	// DeleteGroup removes the group, or returns ErrNotFound.
	DeleteGroup(ctx context.Context, id string) ([]Change, error)
}

// HistoryStore answers for derived state over time and across the fleet.
type HistoryStore interface {
	// History returns the device's newest transitions (at most
	// HistoryLimit), oldest first, or ErrNotFound.
	History(ctx context.Context, id string) ([]proto.Transition, error)
	// Summary returns the fleet's state counts and drifting settings,
	// maintained as devices change (no scan).
	Summary(ctx context.Context) (proto.ComplianceSummary, error)
}

// UnknownDevices wraps ErrUnknownDevice with the ids that are unknown.
func UnknownDevices(ids []string) error {
	return &unknownDevicesError{ids: ids}
}

type unknownDevicesError struct{ ids []string }

func (e *unknownDevicesError) Error() string {
	return "unknown device: " + strings.Join(e.ids, ", ")
}
func (e *unknownDevicesError) Unwrap() error { return ErrUnknownDevice }
