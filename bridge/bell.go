// Package bridge rings device doorbells: over MQTT through the embedded broker
// and over Firebase Cloud Messaging. A ring only wakes an agent; it is best
// effort and never fails the edit that caused it.
package bridge

import "context"

// Ring asks one device to sync because its desired policy is now Version.
// FCMToken is the device's registered FCM token, empty when it has none.
type Ring struct {
	DeviceID string
	Version  int64
	FCMToken string
}

// Bell delivers doorbells. Ring must not block on delivery: it queues the
// rings and returns, and delivery happens off the caller's path.
type Bell interface {
	Ring(rings ...Ring)
	// Run delivers queued rings until ctx is done, then returns.
	Run(ctx context.Context) error
}
