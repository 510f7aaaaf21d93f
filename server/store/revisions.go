package store

import (
	"context"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// ToProto is the revision as the API shows it.
func (r Revision) ToProto() proto.Revision {
	p := proto.Revision{N: r.N, At: r.At, Actor: r.Actor, Action: r.Action, Policy: r.Layer.Values, Modes: r.Layer.Modes, Mode: r.Mode, Deadline: r.Layer.Deadline, Changes: r.Changes}
	if p.Policy == nil {
		p.Policy = proto.SettingValues{}
	}
	if p.Changes == nil {
		p.Changes = []proto.RevisionChange{}
	}
	return p
}

// RevisionKind says whose policy layer a revision belongs to.
type RevisionKind string

// The layers that keep revisions.
const (
	RevisionGroup  RevisionKind = "group"
	RevisionDevice RevisionKind = "device"
)

// RevisionLimit is how many revisions are kept per layer; older ones are
// dropped as new ones are recorded (their numbers are never reused).
const RevisionLimit = 100

// Revision is one stored state of a group's policy (its settings, modes
// and mode) or of a device's own layer, recorded by the change that made
// it, in the same transaction.
type Revision struct {
	// N numbers a layer's revisions from 1; it only grows.
	N  int64     `json:"n"`
	At time.Time `json:"at"`
	// Actor and Action come from the change's audit entry (WithAudit);
	// empty when the change carried none.
	Actor  string `json:"actor,omitempty"`
	Action string `json:"action,omitempty"`
	// Layer is the whole layer after the change; Mode the group's mode
	// (groups only).
	Layer Layer      `json:"layer"`
	Mode  proto.Mode `json:"mode,omitempty"`
	// Changes is what differs from the previous revision, in setting
	// name order.
	Changes []RevisionChange `json:"changes"`
}

// RevisionChange is one setting (or mode) that a revision changed, as the
// API shows it.
type RevisionChange = proto.RevisionChange

// RevisionStore reads the revisions that GroupStore and OverrideStore
// record with every change of a group's policy or a device's own layer.
type RevisionStore interface {
	// Revisions returns the kept revisions of one layer, newest first. An
	// unknown layer (or one never changed) has none; it is not an error.
	Revisions(ctx context.Context, kind RevisionKind, id string) ([]Revision, error)
	// Revision returns revision n of a layer, or ErrNotFound (also for a
	// revision dropped past RevisionLimit).
	Revision(ctx context.Context, kind RevisionKind, id string, n int64) (Revision, error)
}
