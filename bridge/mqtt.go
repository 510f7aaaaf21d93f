package bridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Publisher is what the MQTT bell needs from the broker; *broker.Broker
// satisfies it.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// MQTTBell rings doorbells over MQTT: a QoS 1, non-retained proto.Doorbell on
// each device's proto.PolicyChangedTopic, or, for a command ring, a
// proto.CommandDoorbell on the same topic. Rings of one kind for one device
// that pile up before delivery coalesce into one publish (of the highest
// version, for policy rings).
type MQTTBell struct {
	pub Publisher
	log *slog.Logger

	mu      sync.Mutex
	pending map[ringKey]int64 // device and kind -> newest version not yet published
	wake    chan struct{}     // capacity 1: "pending is not empty"

	rung   atomic.Uint64
	failed atomic.Uint64
}

var _ Bell = (*MQTTBell)(nil)

// NewMQTTBell returns an MQTT bell publishing through pub. A nil logger
// discards logs.
func NewMQTTBell(pub Publisher, logger *slog.Logger) *MQTTBell {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &MQTTBell{
		pub:     pub,
		log:     logger.With("component", "mqtt-bell"),
		pending: map[ringKey]int64{},
		wake:    make(chan struct{}, 1),
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
	if !queued {
		return
	}
	select {
	case b.wake <- struct{}{}:
	default: // the worker is already due to look
	}
}

// Run publishes queued doorbells until ctx is done, then returns nil. Rings
// still queued then are dropped: the agents' periodic sync covers them. A
// failed publish is logged and dropped for the same reason. Call Run once.
func (b *MQTTBell) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		}

		b.mu.Lock()
		batch := b.pending
		b.pending = make(map[ringKey]int64, len(batch))
		b.mu.Unlock()

		for k, version := range batch {
			if ctx.Err() != nil {
				return nil
			}
			b.publish(k, version)
		}
	}
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
