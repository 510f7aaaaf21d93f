package store

import (
	"context"
	"errors"
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
