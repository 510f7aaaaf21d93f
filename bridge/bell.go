// Package bridge rings device doorbells: over MQTT through the embedded broker
// and over Firebase Cloud Messaging. A ring only wakes an agent; it is best
// effort and never fails the edit that caused it.
package bridge

import "context"

// Ring asks one device to sync because its desired policy is now Version,
// or, when Command is set, to fetch its commands. FCMToken is the device's
// registered FCM token, empty when it has none.
//
// A policy ring and a command ring for the same device never replace each
// other: each kind coalesces only with its own kind, and on FCM each has its
// own collapse key.
type Ring struct {
	DeviceID string
	Version  int64
	FCMToken string
	// Command makes this a command doorbell ({"type":"command_pending"});
	// Version is then unused.
	Command bool
}

// ringKey identifies what coalesces: one device's rings of one kind.
type ringKey struct {
	deviceID string
	command  bool
}

func keyOf(r Ring) ringKey { return ringKey{r.DeviceID, r.Command} }

// Bell delivers doorbells. Ring must not block on delivery: it queues the
// rings and returns, and delivery happens off the caller's path.
type Bell interface {
	Ring(rings ...Ring)
	// Run delivers queued rings until ctx is done, then returns.
	Run(ctx context.Context) error
}
