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
}
