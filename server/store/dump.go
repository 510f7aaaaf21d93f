package store

import "github.com/doorbell-mdm/doorbell/proto"

// Dump is everything a store holds, for copying a fleet from one backend
// to another (doorbell migrate). Counters are not part of it: the
// receiving store derives them from the devices.
type Dump struct {
	Devices []Device
	// History holds each device's transitions, oldest first.
	History          map[string][]proto.Transition
	Groups           []Group
	OperatorTokens   []OperatorToken
	EnrollmentTokens []EnrollmentToken // revoked ones included
	Audit            []proto.AuditEntry
	// Commands holds every command, each device's in the order it was
	// created.
	Commands []proto.Command
	// Revisions holds each layer's kept revisions, oldest first.
	Revisions []LayerRevisions
	// Escalations holds the steps fired: device id -> step -> the
	// nonCompliantSince it fired for (RFC 3339).
	Escalations map[string]map[string]string
	// Inventories holds the stored inventory of each device that sent one,
	// in device id order; the receiving store rebuilds its indexes.
	Inventories []proto.DeviceInventory
}

// LayerRevisions is one group's or device's revisions.
type LayerRevisions struct {
	Kind      RevisionKind
	ID        string
	Revisions []Revision
}
