package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Defaults of a Node's timing.
const (
	DefaultHeartbeat = 5 * time.Second
	// DefaultTTL is how long a replica may miss heartbeats before its
	// devices stop showing connected.
	DefaultTTL = 30 * time.Second
)

// Local is this replica's broker: the sessions it holds.
type Local interface {
	Disconnect(deviceID string)
}

// Config is what a Node works with.
type Config struct {
	// ID names this replica (unique per process).
	ID       string
	Bus      Bus
	Presence PresenceStore
	Local    Local
	// Ring rings devices connected to this replica (the MQTT bell).
	Ring func(...bridge.Ring)
	// ChangedSince returns, among ids, devices whose policy changed since
	// a time, for the resync after a bus outage.
	ChangedSince func(ctx context.Context, ids []string, since time.Time) ([]bridge.Ring, error)
	// Missing returns, among ids, the devices no longer in the store, so
	// that the resync after a bus outage closes the sessions of devices
	// deleted meanwhile; nil skips that.
	Missing func(ctx context.Context, ids []string) ([]string, error)
	// OnEvent tells this replica's live streams of another replica's
	// device event; nil ignores them.
	OnEvent func(deviceID string, cause proto.EventCause)
	// OnRevokeOperator closes this replica's live streams and MQTT
	// sessions of an operator token another replica deleted; nil ignores
	// them.
	OnRevokeOperator func(name string, tokenHash []byte)
	// Heartbeat and TTL: 0 = the defaults.
	Heartbeat, TTL time.Duration
	Logger         *slog.Logger
}

// Node is one replica's part of the cluster: it forwards its rings,
// events and revocations to the others and acts on theirs, and keeps its
// devices' presence in the shared store.
type Node struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	local    map[string]bool  // devices connected here
	presence map[string]bool  // presence changes not yet written
	rings    map[string]int64 // rings not yet published, by device
	cmdRings map[string]bool  // command rings not yet published
	events   map[string]proto.EventCause
	revokes  map[string]bool
	opRevoke []Message
	wake     chan struct{}

	// Live streams: whether this replica has any open (streams), whether
	// the others still have to be told (streamsDirty), and what this
	// replica knows of the others' (remote, by replica; known once read
	// from the store: until then it assumes someone streams).
	streams      bool
	streamsDirty bool
	remote       map[string]remoteStreams
	known        bool
}

// remoteStreams is what a replica last said of its live streams, and when
// this replica learnt it.
type remoteStreams struct {
	open bool
	at   time.Time
}

// NewNode returns a node; call Run.
func NewNode(cfg Config) *Node {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Node{
		cfg: cfg, log: cfg.Logger.With("component", "cluster", "replica", cfg.ID),
		local: map[string]bool{}, presence: map[string]bool{},
		rings: map[string]int64{}, cmdRings: map[string]bool{}, events: map[string]proto.EventCause{}, revokes: map[string]bool{},
		remote: map[string]remoteStreams{},
		wake:   make(chan struct{}, 1),
	}
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run heartbeats, writes presence, publishes what is queued and listens
// to the bus until ctx is done; then it removes this replica's presence.
func (n *Node) Run(ctx context.Context, listen func(context.Context, Receiver) error) {
	n.heartbeat(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { listen(ctx, n) })
	wg.Go(func() {
		t := time.NewTicker(n.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n.heartbeat(ctx)
			// Any replica sweeps the records of dead ones.
			if err := n.cfg.Presence.Forget(ctx, "", 2*n.cfg.TTL); err != nil && ctx.Err() == nil {
				n.log.Warn("sweeping dead replicas", "err", err)
			}
		}
	})
	for {
		select {
		case <-ctx.Done():
		case <-n.wake:
		}
		n.flush(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.cfg.Presence.Forget(stop, n.cfg.ID, 2*n.cfg.TTL); err != nil {
		n.log.Warn("removing this replica's presence", "err", err)
	}
}

// heartbeat records that this replica is alive and whether it streams,
// then reads which other replicas stream.
func (n *Node) heartbeat(ctx context.Context) {
	n.mu.Lock()
	streams := n.streams
	n.mu.Unlock()
	if err := n.cfg.Presence.Heartbeat(ctx, n.cfg.ID, streams); err != nil && ctx.Err() == nil {
		n.log.Warn("heartbeat failed", "err", err)
	}
	start := time.Now()
	ids, err := n.cfg.Presence.Streaming(ctx, n.cfg.TTL)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("reading which replicas have live streams", "err", err)
		}
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	open := map[string]bool{}
	for _, id := range ids {
		if id != n.cfg.ID {
			open[id] = true
		}
	}
	// What the bus said after this read started is newer than the read.
	for id, r := range n.remote {
		if r.at.Before(start) && !open[id] {
			delete(n.remote, id)
		}
	}
	for id := range open {
		if r, ok := n.remote[id]; !ok || r.at.Before(start) {
			n.remote[id] = remoteStreams{open: true, at: start}
		}
	}
	n.known = true
}

// StreamsElsewhere reports whether another replica has live /events
// streams open (true until this replica first read the others' state), so
// that device events are sent over the bus only when someone reads them.
func (n *Node) StreamsElsewhere() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.streamsElsewhere()
}

func (n *Node) streamsElsewhere() bool {
	if !n.known {
		return true
	}
	for _, r := range n.remote {
		if r.open {
			return true
		}
	}
	return false
}

// StreamsChanged tells the node how many live /events streams this replica
// has open; the other replicas learn when that goes from none to some and
// back.
func (n *Node) StreamsChanged(open int) {
	n.mu.Lock()
	if (open > 0) != n.streams {
		n.streams = open > 0
		n.streamsDirty = true
	}
	n.mu.Unlock()
	n.poke()
}

// RevokeOperator tells the other replicas that operator token name was
// deleted here (after the deletion committed), so that they close its live
// streams and MQTT sessions.
func (n *Node) RevokeOperator(name string, tokenHash []byte) {
	n.mu.Lock()
	n.opRevoke = append(n.opRevoke, Message{Kind: KindRevokeOperator, Name: name, TokenHash: tokenHash})
	n.mu.Unlock()
	n.poke()
}

// flush writes queued presence and publishes queued messages.
func (n *Node) flush(ctx context.Context) {
	n.mu.Lock()
	opRevoke := n.opRevoke
	n.opRevoke = nil
	streams, streamsDirty := n.streams, n.streamsDirty
	n.streamsDirty = false
	presence, rings, events, revokes := n.presence, n.rings, n.events, n.revokes
	n.presence, n.rings, n.events, n.revokes = map[string]bool{}, map[string]int64{}, map[string]proto.EventCause{}, map[string]bool{}
	cmdRings := n.cmdRings
	n.cmdRings = map[string]bool{}
	n.mu.Unlock()
	var on, off []string
	for id, c := range presence {
		if c {
			on = append(on, id)
		} else {
			off = append(off, id)
		}
	}
	if err := n.cfg.Presence.SetPresence(ctx, n.cfg.ID, on, true); err != nil {
		n.log.Warn("recording presence", "err", err)
	}
	if err := n.cfg.Presence.SetPresence(ctx, n.cfg.ID, off, false); err != nil {
		n.log.Warn("recording presence", "err", err)
	}
	msgs := make([]Message, 0, len(opRevoke)+len(rings)+len(cmdRings)+len(events)+len(revokes)+1)
	if streamsDirty {
		// Stored first, so a replica that reads the table after missing
		// the message still learns it.
		if err := n.cfg.Presence.Heartbeat(ctx, n.cfg.ID, streams); err != nil {
			n.log.Warn("recording live streams", "err", err)
		}
		msgs = append(msgs, Message{Kind: KindStreams, Streams: streams})
	}
	msgs = append(msgs, opRevoke...)
	for id := range revokes {
		msgs = append(msgs, Message{Kind: KindRevoke, DeviceID: id})
	}
	for id, v := range rings {
		msgs = append(msgs, Message{Kind: KindRing, DeviceID: id, Version: v})
	}
	for id := range cmdRings {
		msgs = append(msgs, Message{Kind: KindCommand, DeviceID: id})
	}
	for id, c := range events {
		msgs = append(msgs, Message{Kind: KindEvent, DeviceID: id, Cause: c})
	}
	if len(msgs) == 0 {
		return
	}
	if err := n.cfg.Bus.Publish(ctx, msgs...); err != nil {
		// Agents' periodic sync covers lost rings; streams resync on reload.
		n.log.Warn("publishing to the other replicas", "err", err, "messages", len(msgs))
	}
}

// PresenceChanged records that a device connected to or disconnected from
// this replica, and tells the other replicas' live streams.
func (n *Node) PresenceChanged(deviceID string, connected bool) {
	n.mu.Lock()
	if connected {
		n.local[deviceID] = true
	} else {
		delete(n.local, deviceID)
	}
	n.presence[deviceID] = connected
	if n.streamsElsewhere() {
		if connected {
			n.events[deviceID] = proto.CauseConnect
		} else {
			n.events[deviceID] = proto.CauseDisconnect
		}
	}
	n.mu.Unlock()
	n.poke()
}

// Connected reports whether the device holds a session with this replica
// or with another live one.
func (n *Node) Connected(deviceID string) bool {
	n.mu.Lock()
	ok := n.local[deviceID]
	n.mu.Unlock()
	if ok {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ok, err := n.cfg.Presence.Connected(ctx, deviceID, n.cfg.TTL)
	if err != nil {
		n.log.Warn("reading presence", "device", deviceID, "err", err)
	}
	return ok
}

// LocalDevices returns the devices connected to this replica.
func (n *Node) LocalDevices() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.local))
	for id := range n.local {
		out = append(out, id)
	}
	return out
}

// DeviceChanged tells the other replicas' live streams of a change made
// here (after it committed), while any of them has a stream open: with
// none open, a report costs the bus nothing.
func (n *Node) DeviceChanged(deviceID string, cause proto.EventCause) {
	n.mu.Lock()
	if !n.streamsElsewhere() {
		n.mu.Unlock()
		return
	}
	n.events[deviceID] = cause
	n.mu.Unlock()
	n.poke()
}

// Disconnect closes the device's session wherever it is (revocation).
func (n *Node) Disconnect(deviceID string) {
	n.cfg.Local.Disconnect(deviceID)
	n.mu.Lock()
	n.revokes[deviceID] = true
	n.mu.Unlock()
	n.poke()
}

// Bell returns a bell that forwards rings to the other replicas; ring
// this replica's own devices with the MQTT bell besides.
func (n *Node) Bell() bridge.Bell { return nodeBell{n} }

type nodeBell struct{ n *Node }

func (b nodeBell) Ring(rings ...bridge.Ring) {
	b.n.mu.Lock()
	for _, r := range rings {
		if r.DeviceID == "" {
			continue
		}
		if r.Command {
			b.n.cmdRings[r.DeviceID] = true
			continue
		}
		if v, ok := b.n.rings[r.DeviceID]; !ok || r.Version > v {
			b.n.rings[r.DeviceID] = r.Version
		}
	}
	b.n.mu.Unlock()
	b.n.poke()
}

func (b nodeBell) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Receive implements Receiver.
func (n *Node) Receive(msgs []Message) {
	var rings []bridge.Ring
	n.mu.Lock()
	for _, m := range msgs {
		if m.Kind == KindRing && n.local[m.DeviceID] {
			rings = append(rings, bridge.Ring{DeviceID: m.DeviceID, Version: m.Version})
		}
		if m.Kind == KindCommand && n.local[m.DeviceID] {
			rings = append(rings, bridge.Ring{DeviceID: m.DeviceID, Command: true})
		}
		if m.Kind == KindStreams && m.Origin != "" && m.Origin != n.cfg.ID {
			n.remote[m.Origin] = remoteStreams{open: m.Streams, at: time.Now()}
		}
	}
	n.mu.Unlock()
	if len(rings) > 0 {
		n.cfg.Ring(rings...)
	}
	for _, m := range msgs {
		switch m.Kind {
		case KindEvent:
			if n.cfg.OnEvent != nil {
				n.cfg.OnEvent(m.DeviceID, m.Cause)
			}
		case KindRevoke:
			n.cfg.Local.Disconnect(m.DeviceID)
		case KindRevokeOperator:
			if n.cfg.OnRevokeOperator != nil {
				n.cfg.OnRevokeOperator(m.Name, m.TokenHash)
			}
		}
	}
}

// Resync implements Receiver: it re-rings this replica's devices whose
// policy changed since the bus was last known to deliver, and closes the
// sessions of its devices deleted meanwhile (whose revocation it missed).
func (n *Node) Resync(since time.Time) {
	ids := n.LocalDevices()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n.cfg.Missing != nil {
		gone, err := n.cfg.Missing(ctx, ids)
		if err != nil {
			n.log.Warn("resync after a bus outage: finding deleted devices", "err", err)
		}
		for _, id := range gone {
			n.cfg.Local.Disconnect(id)
		}
		if len(gone) > 0 {
			n.log.Info("closed the sessions of devices deleted during a bus outage", "devices", len(gone))
		}
	}
	rings, err := n.cfg.ChangedSince(ctx, ids, since)
	if err != nil {
		n.log.Warn("resync after a bus outage; the periodic sync will catch up", "err", err)
		return
	}
	n.log.Info("re-ringing after a bus outage", "devices", len(rings), "since", since)
	if len(rings) > 0 {
		n.cfg.Ring(rings...)
	}
}
