package bridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Publisher is what the MQTT bell needs from the broker; *broker.Broker
// satisfies it.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
	// Connected reports whether the device has a session here.
	Connected(deviceID string) bool
}

// Pace bounds how many doorbells an MQTT bell has outstanding: rung to a
// connected device that has not answered yet (Answered: its first request
// after the ring). A fleet-wide edit then brings its devices to the server
// at the pace they are served instead of all in the same second, where the
// ones over the server's HTTP connection cap would be turned away. A ring
// stops counting after Wait even without an answer (the device's request
// may have gone to another replica, or it is busy enforcing).
type Pace struct {
	Window int           // rings outstanding at most; 0: no limit
	Wait   time.Duration // how long a ring counts without an answer
	Now    func() time.Time
	// After is time.After; tests give their own.
	After func(time.Duration) <-chan time.Time
}

// MQTTBell rings doorbells over MQTT: a QoS 1, non-retained proto.Doorbell on
// each device's proto.PolicyChangedTopic, or, for a command ring, a
// proto.CommandDoorbell on the same topic. Rings of one kind for one device
// that pile up before delivery coalesce into one publish (of the highest
// version, for policy rings).
type MQTTBell struct {
	pub Publisher
	log *slog.Logger

	pace Pace

	mu          sync.Mutex
	pending     map[ringKey]int64    // device and kind -> newest version not yet published
	outstanding map[string]time.Time // device rung (connected) -> until when it counts
	wake        chan struct{}        // capacity 1: "pending is not empty" or "a slot freed"

	rung   atomic.Uint64
	failed atomic.Uint64
}

var _ Bell = (*MQTTBell)(nil)

// NewMQTTBell returns an MQTT bell publishing through pub at pace (the
// zero Pace: no limit). A nil logger discards logs.
func NewMQTTBell(pub Publisher, pace Pace, logger *slog.Logger) *MQTTBell {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if pace.Now == nil {
		pace.Now = time.Now
	}
	if pace.After == nil {
		pace.After = time.After
	}
	return &MQTTBell{
		pub:         pub,
		pace:        pace,
		log:         logger.With("component", "mqtt-bell"),
		pending:     map[ringKey]int64{},
		outstanding: map[string]time.Time{},
		wake:        make(chan struct{}, 1),
	}
}

// Answered tells the bell that the device made a request: a ring to it no
// longer counts against the pace's window.
func (b *MQTTBell) Answered(deviceID string) {
	b.mu.Lock()
	_, ok := b.outstanding[deviceID]
	delete(b.outstanding, deviceID)
	b.mu.Unlock()
	if ok {
		b.poke()
	}
}

func (b *MQTTBell) poke() {
	select {
	case b.wake <- struct{}{}:
	default: // the worker is already due to look
	}
}

// Ring queues a doorbell for each ring's device and returns at once. Rings
// without a device id are ignored. FCMToken is not used.
func (b *MQTTBell) Ring(rings ...Ring) {
	queued := false
	b.mu.Lock()
	for _, r := range rings {
		if r.DeviceID == "" {
			continue
		}
		if v, ok := b.pending[keyOf(r)]; !ok || r.Version > v {
			b.pending[keyOf(r)] = r.Version
		}
		queued = true
	}
	b.mu.Unlock()
	if queued {
		b.poke()
	}
}

// Run publishes queued doorbells until ctx is done, then returns nil. Rings
// still queued then are dropped: the agents' periodic sync covers them. A
// failed publish is logged and dropped for the same reason. Call Run once.
func (b *MQTTBell) Run(ctx context.Context) error {
	var expire <-chan time.Time // the oldest outstanding ring stops counting
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		case <-expire:
		}
		batch, next := b.take()
		expire = nil
		if next > 0 {
			expire = b.pace.After(next)
		}
		for k, version := range batch {
			if ctx.Err() != nil {
				return nil
			}
			b.publish(k, version)
		}
		if len(batch) > 0 {
			b.poke() // look again: more may fit now
		}
	}
}

// take removes from pending what the window allows now, marking the rings
// to connected devices outstanding. next > 0 says that rings are held back
// and when the oldest outstanding one stops counting.
func (b *MQTTBell) take() (batch map[ringKey]int64, next time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pace.Window <= 0 {
		batch, b.pending = b.pending, make(map[ringKey]int64, len(b.pending))
		return batch, 0
	}
	now := b.pace.Now()
	for id, until := range b.outstanding {
		if !now.Before(until) {
			delete(b.outstanding, id)
		}
	}
	batch = map[ringKey]int64{}
	for k, v := range b.pending {
		connected := b.pub.Connected(k.deviceID)
		if connected && len(b.outstanding) >= b.pace.Window {
			break
		}
		delete(b.pending, k)
		batch[k] = v
		if connected {
			b.outstanding[k.deviceID] = now.Add(b.pace.Wait)
		}
	}
	if len(b.pending) == 0 {
		return batch, 0
	}
	oldest := time.Time{}
	for _, until := range b.outstanding {
		if oldest.IsZero() || until.Before(oldest) {
			oldest = until
		}
	}
	return batch, max(oldest.Sub(now), time.Millisecond)
}

func (b *MQTTBell) publish(k ringKey, version int64) {
	var bell any = proto.Doorbell{Type: proto.DoorbellType, Version: version}
	if k.command {
		bell = proto.CommandDoorbell{Type: proto.CommandDoorbellType}
	}
	payload, err := json.Marshal(bell)
	if err == nil {
		err = b.pub.Publish(proto.PolicyChangedTopic(k.deviceID), payload, false, 1)
	}
	if err != nil {
		b.failed.Add(1)
		b.log.Warn("mqtt doorbell failed; the periodic sync will catch up",
			"device", k.deviceID, "version", version, "command", k.command, "error", err)
		return
	}
	b.rung.Add(1)
}

// MQTTStats counts an MQTT bell's publishes since it was created.
type MQTTStats struct {
	Rung   uint64 // doorbells published
	Failed uint64 // doorbells whose publish failed and was dropped
}

// Stats returns the bell's counters.
func (b *MQTTBell) Stats() MQTTStats {
	return MQTTStats{Rung: b.rung.Load(), Failed: b.failed.Load()}
}
