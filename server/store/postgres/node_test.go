package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/cluster"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// replica is one cluster.Node with recorders in place of its broker, bell
// and live streams.
type replica struct {
	node *cluster.Node
	mu   sync.Mutex
	rung []bridge.Ring
	cut  []string
	evs  []string
	stop func()
}

func (r *replica) Disconnect(id string) { r.mu.Lock(); r.cut = append(r.cut, id); r.mu.Unlock() }

func (r *replica) seen() (rung []bridge.Ring, cut, evs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rung), slices.Clone(r.cut), slices.Clone(r.evs)
}

func startReplica(t *testing.T, s *postgres.Store, id string) *replica {
	r := &replica{}
	r.node = cluster.NewNode(cluster.Config{
		ID: id, Bus: s.NewBus(id, nil), Presence: s, Local: r,
		Ring:         func(rs ...bridge.Ring) { r.mu.Lock(); r.rung = append(r.rung, rs...); r.mu.Unlock() },
		ChangedSince: s.PolicyChangedSince,
		Missing:      s.MissingDevices,
		OnEvent: func(d string, c proto.EventCause) {
			r.mu.Lock()
			r.evs = append(r.evs, d+" "+string(c))
			r.mu.Unlock()
		},
		OnRevokeOperator: func(name string, hash []byte) {
			r.mu.Lock()
			r.evs = append(r.evs, fmt.Sprintf("operator %s %x", name, hash))
			r.mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.node.Run(ctx, s.NewBus(id, nil).Run); close(done) }()
	r.stop = func() { cancel(); <-done }
	t.Cleanup(r.stop)
	waitListening(t, s, id)
	return r
}

// TestNodes: two replicas' nodes on one database. A ring, an event and a
// revocation made on one reach the device's replica; presence recorded by
// one is seen by the other and goes when that replica stops.
func TestNodes(t *testing.T) {
	url := migrated(t)
	sa, sb := open(t, url), open(t, url)
	a, b := startReplica(t, sa, "a"), startReplica(t, sb, "b")
	// Both have live streams open, so device events cross both ways.
	a.node.StreamsChanged(1)
	b.node.StreamsChanged(1)
	testkit.Eventually(t, 20*time.Second, "each to learn that the other streams", func() bool { return a.node.StreamsElsewhere() && b.node.StreamsElsewhere() })

	b.node.PresenceChanged("d1", true)
	testkit.Eventually(t, 20*time.Second, "a to see d1 connected to b", func() bool { return a.node.Connected("d1") })
	if a.node.Connected("d2") {
		t.Error("a unknown device shows connected")
	}
	testkit.Eventually(t, 20*time.Second, "a's streams to hear d1 connect", func() bool {
		_, _, evs := a.seen()
		return slices.Contains(evs, "d1 connect")
	})

	// An edit on a rings d1 on b; d2 is nobody's.
	a.node.Bell().Ring(bridge.Ring{DeviceID: "d1", Version: 7}, bridge.Ring{DeviceID: "d2", Version: 3})
	testkit.Eventually(t, 20*time.Second, "b to ring d1", func() bool { rung, _, _ := b.seen(); return len(rung) > 0 })
	if rung, _, _ := b.seen(); len(rung) != 1 || rung[0] != (bridge.Ring{DeviceID: "d1", Version: 7}) {
		t.Errorf("b rang %+v, want only d1 at version 7 (d2 is not connected to b)", rung)
	}
	// A command for d1 sent on a: b rings it with a command doorbell.
	a.node.Bell().Ring(bridge.Ring{DeviceID: "d1", Command: true})
	testkit.Eventually(t, 20*time.Second, "b to ring d1's command", func() bool { rung, _, _ := b.seen(); return len(rung) > 1 })
	if rung, _, _ := b.seen(); len(rung) != 2 || rung[1] != (bridge.Ring{DeviceID: "d1", Command: true}) {
		t.Errorf("b rang %+v, want d1's command ring second", rung)
	}
	a.node.DeviceChanged("d1", proto.CauseEdit)
	testkit.Eventually(t, 20*time.Second, "b's streams to hear the edit", func() bool { _, _, evs := b.seen(); return slices.Contains(evs, "d1 edit") })
	a.node.Disconnect("d1")
	testkit.Eventually(t, 20*time.Second, "b to close d1's session", func() bool { _, cut, _ := b.seen(); return slices.Contains(cut, "d1") })
	if _, cut, _ := a.seen(); !slices.Contains(cut, "d1") {
		t.Error("the revoking replica did not close its own session of d1")
	}

	b.stop()
	if a.node.Connected("d1") {
		t.Error("d1 still shows connected after its replica stopped")
	}
}

// TestNodeResync: an edit whose ring a replica missed around an outage of
// its listening connection is rung once the listener is back.
func TestNodeResync(t *testing.T) {
	url := migrated(t)
	sa, sb := open(t, url), open(t, url)
	ctx := context.Background()
	if _, err := sa.CreateDevice(ctx, storetest.NewDevice("d1")); err != nil {
		t.Fatal(err)
	}
	if _, err := sa.CreateDevice(ctx, storetest.NewDevice("d2")); err != nil {
		t.Fatal(err)
	}
	b := startReplica(t, sb, "b")
	b.node.PresenceChanged("d1", true)
	b.node.PresenceChanged("d2", true)
	// An edit whose ring b never hears and a deletion whose revocation it
	// never hears (nobody publishes them here: as if they went out while
	// b's connection was already dead), then b's listening connection
	// drops.
	if _, _, err := sa.UpdateOverride(ctx, "d1", setCamera(true)); err != nil {
		t.Fatal(err)
	}
	if err := sa.DeleteDevice(ctx, "d2"); err != nil {
		t.Fatal(err)
	}
	if rung, _, _ := b.seen(); len(rung) != 0 {
		t.Fatalf("b rang %v before any outage", rung)
	}
	if _, err := sa.Pool().Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'doorbell-bus b'"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "b to re-ring d1 after listening again", func() bool {
		rung, _, _ := b.seen()
		return slices.Contains(rung, bridge.Ring{DeviceID: "d1", Version: 2})
	})
	if _, cut, _ := b.seen(); !slices.Equal(cut, []string{"d2"}) {
		t.Errorf("b closed the sessions of %v after the outage, want only the deleted d2", cut)
	}
}

// TestNodeStreams: device events cross the bus only while another replica
// has a live stream open; rings cross whatever the streams; a replica that
// starts learns of the others' streams from the store; an operator token's
// revocation crosses.
func TestNodeStreams(t *testing.T) {
	url := migrated(t)
	sa, sb, sc := open(t, url), open(t, url), open(t, url)
	a, b := startReplica(t, sa, "a"), startReplica(t, sb, "b")
	if a.node.StreamsElsewhere() || b.node.StreamsElsewhere() {
		t.Fatal("a replica believes another streams before any stream opened")
	}
	b.node.PresenceChanged("d1", true)
	testkit.Eventually(t, 20*time.Second, "a to see d1 connected to b", func() bool { return a.node.Connected("d1") })

	// Nobody streams: a's report and edit events stay home; the edit's
	// ring, published after them, crosses.
	a.node.DeviceChanged("d1", proto.CauseReport)
	a.node.DeviceChanged("d1", proto.CauseEdit)
	a.node.Bell().Ring(bridge.Ring{DeviceID: "d1", Version: 2})
	testkit.Eventually(t, 20*time.Second, "b to ring d1", func() bool { rung, _, _ := b.seen(); return len(rung) == 1 })
	if _, _, evs := a.seen(); len(evs) != 0 {
		t.Errorf("a heard events %v though it streams nothing and b's presence needs no stream", evs)
	}
	if _, _, evs := b.seen(); len(evs) != 0 {
		t.Fatalf("b heard events %v with no stream open anywhere", evs)
	}

	// b opens a stream: a learns at once (over the bus) and sends.
	b.node.StreamsChanged(1)
	testkit.Eventually(t, 20*time.Second, "a to learn that b streams", a.node.StreamsElsewhere)
	if b.node.StreamsElsewhere() {
		t.Error("b counts its own stream as another replica's")
	}
	a.node.DeviceChanged("d1", proto.CauseReport)
	testkit.Eventually(t, 20*time.Second, "b's stream to hear a's report", func() bool { _, _, evs := b.seen(); return slices.Contains(evs, "d1 report") })

	// A replica starting now learns of b's stream from the store.
	c := startReplica(t, sc, "c")
	if !c.node.StreamsElsewhere() {
		t.Error("a replica that started while b streams does not know it")
	}

	// b's last stream closes: the others stop sending.
	b.node.StreamsChanged(0)
	testkit.Eventually(t, 20*time.Second, "a to learn that b stopped streaming", func() bool { return !a.node.StreamsElsewhere() })
	testkit.Eventually(t, 20*time.Second, "c to learn that b stopped streaming", func() bool { return !c.node.StreamsElsewhere() })

	// An operator token deleted on a: b and c close its sessions.
	a.node.RevokeOperator("ci", []byte{0xab, 0xcd})
	for _, r := range []*replica{b, c} {
		testkit.Eventually(t, 20*time.Second, "the operator revocation to cross", func() bool {
			_, _, evs := r.seen()
			return slices.Contains(evs, "operator ci abcd")
		})
	}
	if _, _, evs := a.seen(); len(evs) != 0 {
		t.Errorf("a heard its own revocation back: %v", evs)
	}
}
