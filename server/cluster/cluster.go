// Package cluster lets several doorbell replicas serve one fleet from one
// shared database: a device holds its MQTT session with one replica, and
// an edit handled by any replica must ring it there. Replicas tell each
// other over a Bus (PostgreSQL LISTEN/NOTIFY in server/store/postgres)
// and share presence (which replica holds which device's session) through
// a PresenceStore with replica heartbeats.
//
// A lone replica (bbolt) needs none of this; the daemon wires it only
// when the store is shared.
package cluster

import (
	"context"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Kind says what a Message asks of the replicas that receive it.
type Kind string

// Message kinds.
const (
	// KindRing: DeviceID's desired policy is now Version; the replica
	// holding its session rings it.
	KindRing Kind = "r"
	// KindEvent: DeviceID changed (Cause); every replica tells its live
	// /events streams.
	KindEvent Kind = "e"
	// KindRevoke: DeviceID was deleted; the replica holding its session
	// closes it.
	KindRevoke Kind = "x"
	// KindCommand: DeviceID has a new command; the replica holding its
	// session rings it with a command doorbell.
	KindCommand Kind = "c"
	// KindRevokeOperator: the operator token Name (TokenHash) was
	// deleted; every replica closes its live streams and MQTT sessions.
	KindRevokeOperator Kind = "o"
	// KindStreams: the sending replica has live /events streams open
	// (Streams) or none any more; the others send it device events only
	// while some replica has.
	KindStreams Kind = "s"
)

// Message is one instruction between replicas.
type Message struct {
	Kind     Kind
	DeviceID string
	Version  int64            // KindRing
	Cause    proto.EventCause // KindEvent
	// Name and TokenHash (SHA-256) name a revoked operator token
	// (KindRevokeOperator).
	Name      string
	TokenHash []byte
	// Streams: KindStreams.
	Streams bool
	// Origin is the replica that published the message, filled in by the
	// receiving bus.
	Origin string
}

// Bus carries messages from one replica to all the others. Publish is
// called after the change it announces has committed, never from inside
// a store transaction; it does not deliver to the publishing replica.
type Bus interface {
	Publish(ctx context.Context, msgs ...Message) error
}

// Receiver is what a replica does with what the bus brings.
type Receiver interface {
	// Receive handles messages published by other replicas.
	Receive(msgs []Message)
	// Resync is called when the bus reconnected after a loss: messages
	// published since about `since` may never arrive, so the receiver
	// re-rings its devices whose policy changed since then.
	Resync(since time.Time)
}

// PresenceStore keeps which replica holds which device's session, and
// which replicas have live streams open.
type PresenceStore interface {
	// Heartbeat records that replica is alive (and registers it), and
	// whether it has live /events streams open.
	Heartbeat(ctx context.Context, replica string, streams bool) error
	// Streaming returns the live replicas (heartbeat within ttl) that
	// have live /events streams open.
	Streaming(ctx context.Context, ttl time.Duration) ([]string, error)
	// SetPresence records the devices that connected to (connected true)
	// or disconnected from replica. A disconnect removes the record only
	// if the device is still recorded on replica.
	SetPresence(ctx context.Context, replica string, deviceIDs []string, connected bool) error
	// Connected reports whether a live replica (heartbeat within ttl)
	// holds the device's session.
	Connected(ctx context.Context, deviceID string, ttl time.Duration) (bool, error)
	// Forget removes replica and its presence (a clean shutdown), and the
	// records of replicas silent for longer than ttl.
	Forget(ctx context.Context, replica string, ttl time.Duration) error
}
