package store

import (
	"context"
	"time"
)

// EscalationStore remembers which escalation steps fired, so each fires
// once per stretch of non-compliance.
type EscalationStore interface {
	// MarkEscalated records that step (e.g. "<groupId>:notify") fired
	// for the device's non-compliance that started at since. It reports
	// true only for the first call with this device, step and since, in
	// one transaction, so concurrent evaluators fire a step once; with
	// true it also records the audit entry of ctx (WithAudit).
	MarkEscalated(ctx context.Context, deviceID, step string, since time.Time) (first bool, err error)
}
