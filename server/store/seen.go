package store

import (
	"context"
	"time"
)

// SeenStore records when devices were last seen. The service batches
// sightings in memory and flushes them in one call every few seconds, so
// a poll costs no write.
type SeenStore interface {
	// MarkSeen sets each device's LastSeenAt to its time in seen, unless
	// the stored one is later, all in one transaction. Unknown devices
	// (deleted since) are skipped, not an error. It changes no derived
	// state and records no history.
	MarkSeen(ctx context.Context, seen map[string]time.Time) error
}
