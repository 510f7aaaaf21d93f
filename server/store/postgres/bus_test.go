package postgres_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/cluster"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// receiver records what a bus hands it.
type receiver struct {
	mu      sync.Mutex
	msgs    []cluster.Message
	resyncs []time.Time
}

func (r *receiver) Receive(msgs []cluster.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msgs...)
}

func (r *receiver) Resync(since time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resyncs = append(r.resyncs, since)
}

func (r *receiver) snapshot() ([]cluster.Message, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cluster.Message(nil), r.msgs...), append([]time.Time(nil), r.resyncs...)
}

func TestPack(t *testing.T) {
	var msgs []cluster.Message
	for i := range 2000 {
		msgs = append(msgs, cluster.Message{Kind: cluster.KindRing, DeviceID: fmt.Sprintf("device-%036d", i), Version: int64(i)})
	}
	payloads, err := postgres.Pack("replica-a", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(payloads) < 2 {
		t.Fatalf("2000 rings fit %d payload(s); want several", len(payloads))
	}
	for i, p := range payloads {
		if len(p) >= 8000 || len(p) > postgres.MaxPayload {
			t.Errorf("payload %d is %d bytes, over NOTIFY's limit", i, len(p))
		}
	}
	if _, err := postgres.Pack("a", []cluster.Message{{Kind: cluster.KindRevoke, DeviceID: string(make([]byte, 9000))}}); err == nil {
		t.Error("a message larger than a payload was packed")
	}
}

// TestBus: what one replica publishes reaches the other, in order, in
// batches over NOTIFY's limit; a replica does not hear itself; a lost
// listener reconnects and asks for a resync from before the loss.
func TestBus(t *testing.T) {
	url := migrated(t)
	sa, sb := open(t, url), open(t, url)
	a, b := sa.NewBus("a", nil), sb.NewBus("b", nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ra, rb := &receiver{}, &receiver{}
	wg.Go(func() { a.Run(ctx, ra) })
	wg.Go(func() { b.Run(ctx, rb) })
	defer func() { cancel(); wg.Wait() }()
	waitListening(t, sa, "a")
	waitListening(t, sa, "b")

	const n = 1500
	var msgs []cluster.Message
	for i := range n {
		msgs = append(msgs, cluster.Message{Kind: cluster.KindRing, DeviceID: fmt.Sprintf("d%05d", i), Version: int64(i + 1)})
	}
	msgs = append(msgs, cluster.Message{Kind: cluster.KindEvent, DeviceID: "d00001", Cause: proto.CauseReport}, cluster.Message{Kind: cluster.KindRevoke, DeviceID: "d00002"},
		cluster.Message{Kind: cluster.KindRevokeOperator, Name: "ci \"bot\"", TokenHash: []byte{0, 1, 0xfe, 0xff}},
		cluster.Message{Kind: cluster.KindStreams, Streams: true}, cluster.Message{Kind: cluster.KindStreams, Streams: false})
	if err := a.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "b to receive every message", func() bool { got, _ := rb.snapshot(); return len(got) >= len(msgs) })
	got, _ := rb.snapshot()
	if len(got) != len(msgs) {
		t.Fatalf("b received %d messages, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		msgs[i].Origin = "a" // filled in by the receiving bus
		if !reflect.DeepEqual(got[i], msgs[i]) {
			t.Fatalf("message %d = %+v, want %+v", i, got[i], msgs[i])
		}
	}
	if own, _ := ra.snapshot(); len(own) != 0 {
		t.Errorf("a heard %d of its own messages", len(own))
	}

	// Cut b's listening connection: it comes back and asks to resync from
	// before the cut.
	cut := time.Now()
	if _, err := sa.Pool().Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'doorbell-bus b'"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "b to resync", func() bool { _, rs := rb.snapshot(); return len(rs) > 0 })
	if _, rs := rb.snapshot(); !rs[0].Before(cut) {
		t.Errorf("resync since %v, want before the cut at %v", rs[0], cut)
	}
	waitListening(t, sa, "b")
	if err := a.Publish(ctx, cluster.Message{Kind: cluster.KindRevoke, DeviceID: "after"}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "b to hear after reconnecting", func() bool {
		got, _ := rb.snapshot()
		return got[len(got)-1].DeviceID == "after"
	})
}

func waitListening(t *testing.T, s *postgres.Store, origin string) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, origin+" to listen", func() bool {
		var n int
		s.Pool().QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'", "doorbell-bus "+origin).Scan(&n)
		return n == 1
	})
}

// TestPresence: a device shows connected while a live replica holds it;
// a replica that stops its heartbeat takes its devices' presence with it.
func TestPresence(t *testing.T) {
	s := open(t, migrated(t))
	ctx := context.Background()
	const ttl = time.Minute
	for _, r := range []string{"a", "b"} {
		if err := s.Heartbeat(ctx, r, false); err != nil {
			t.Fatal(err)
		}
	}
	streaming := func() []string {
		t.Helper()
		ids, err := s.Streaming(ctx, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := streaming(); len(got) != 0 {
		t.Fatalf("streaming replicas %v before any stream opened", got)
	}
	if err := s.Heartbeat(ctx, "b", true); err != nil {
		t.Fatal(err)
	}
	if got := streaming(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("streaming replicas %v, want [b]", got)
	}
	if err := s.SetPresence(ctx, "a", []string{"d1", "d2"}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPresence(ctx, "b", []string{"d3"}, true); err != nil {
		t.Fatal(err)
	}
	connected := func(id string) bool {
		t.Helper()
		ok, err := s.Connected(ctx, id, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !connected("d1") || !connected("d3") || connected("d4") {
		t.Fatalf("presence d1=%v d3=%v d4=%v, want true true false", connected("d1"), connected("d3"), connected("d4"))
	}
	// d2 moved to b, then a's late disconnect must not remove it.
	if err := s.SetPresence(ctx, "b", []string{"d2"}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPresence(ctx, "a", []string{"d2"}, false); err != nil {
		t.Fatal(err)
	}
	if !connected("d2") {
		t.Error("a stale disconnect from the old replica removed the device's new session")
	}
	// b dies: no heartbeat for longer than ttl.
	if _, err := s.Pool().Exec(ctx, "UPDATE replicas SET heartbeat = now() - interval '2 minutes' WHERE id = 'b'"); err != nil {
		t.Fatal(err)
	}
	if connected("d2") || connected("d3") || !connected("d1") {
		t.Errorf("after b died: d1=%v d2=%v d3=%v, want true false false", connected("d1"), connected("d2"), connected("d3"))
	}
	if got := streaming(); len(got) != 0 {
		t.Errorf("streaming replicas %v after b died, want none", got)
	}
	if err := s.Forget(ctx, "a", ttl); err != nil {
		t.Fatal(err)
	}
	var rows int
	s.Pool().QueryRow(ctx, "SELECT count(*) FROM presence").Scan(&rows)
	if rows != 0 || connected("d1") {
		t.Errorf("after forgetting a and the dead b: %d presence rows, d1=%v", rows, connected("d1"))
	}
}

// TestPolicyChangedSince finds the devices to re-ring after a bus outage.
func TestPolicyChangedSince(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clock := now
	s := open(t, migrated(t), postgres.WithClock(func() time.Time { return clock }))
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
	}
	s.UpdateOverride(ctx, "a", flipCamera)
	clock = now.Add(time.Hour)
	s.UpdateOverride(ctx, "b", flipCamera)
	s.UpdateOverride(ctx, "b", flipCamera)
	got, err := s.PolicyChangedSince(ctx, []string{"a", "b", "c"}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DeviceID != "b" || got[0].Version != 3 {
		t.Errorf("changed since = %+v, want b at version 3", got)
	}
}
