package agent

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

func (s *fakeServer) handleInventory(w http.ResponseWriter, r *http.Request, id string, d *fakeDevice) int {
	if r.Header.Get("Content-Encoding") != "gzip" {
		writeError(w, 400, "bad_request", "want gzip")
		return 400
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		writeError(w, 400, "bad_request", err.Error())
		return 400
	}
	var up proto.InventoryUpload
	if err := json.NewDecoder(zr).Decode(&up); err != nil || up.Validate() != nil {
		writeError(w, 400, "bad_request", "invalid upload")
		return 400
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d.uploads = append(d.uploads, up)
	if d.inventory == nil {
		d.inventory = map[string]string{}
	}
	for _, sec := range up.Present() {
		d.inventory[sec] = up.Hashes[sec]
	}
	if len(up.Present()) == len(up.Hashes) {
		d.wantInventory = false
	}
	ack := proto.InventoryAck{Missing: []string{}}
	for _, sec := range proto.InventorySections {
		if h, ok := up.Hashes[sec]; ok && d.inventory[sec] != h {
			ack.Missing = append(ack.Missing, sec)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ack)
	return 200
}

func (s *fakeServer) uploads(id string) []proto.InventoryUpload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.devices[id].uploads)
}

// mutableCollector returns whatever inventory the test sets.
type mutableCollector struct {
	mu  sync.Mutex
	inv proto.Inventory
}

func (c *mutableCollector) Collect(ctx context.Context) (proto.Inventory, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, _ := json.Marshal(c.inv) // a deep copy
	return proto.ParseInventory(b)
}

func (c *mutableCollector) set(f func(*proto.Inventory)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.inv)
}

func testInventory() proto.Inventory {
	return proto.Inventory{
		System:   &proto.InventorySystem{Hostname: "h1", OSID: "debian", OSVersion: "12", Kernel: "6.1.0-18-amd64"},
		Hardware: &proto.InventoryHardware{Vendor: "ACME", CPUCount: 2},
		Packages: &proto.InventoryPackages{Format: proto.FormatDeb, Packages: []proto.InventoryPackage{{Name: "openssl", Version: "3.0.11-1"}}},
	}
}

// pass runs one inventory pass now (as the inventory loop would).
func (h *testHarness) pass(t *testing.T) InventoryResult {
	t.Helper()
	return h.agent.InventoryPass(t.Context())
}

// loopMode makes h's agent hand due passes to the inventory loop, as it
// does under Run, without starting Run: the test runs the passes itself.
func (h *testHarness) loopMode() *testHarness {
	h.agent.running.Store(true)
	return h
}

// kicked reports (and consumes) a pending request for an inventory pass.
func (h *testHarness) kicked() bool {
	select {
	case <-h.agent.invKick:
		return true
	default:
		return false
	}
}

func TestInventoryUploads(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	col := &mutableCollector{inv: testInventory()}
	h := newHarness(t, srv, dir, func(c *Config) { c.Inventory = col }).loopMode()
	all := []string{proto.SectionSystem, proto.SectionHardware, proto.SectionPackages}

	// Enrollment: the sync asks for a pass, which sends everything in one
	// upload.
	if r := h.sync(t); r.Err != nil || !h.kicked() {
		t.Fatalf("first sync: %+v; want an inventory pass asked for", r)
	}
	r := h.pass(t)
	if r.Err != nil || !r.Full || !reflect.DeepEqual(r.Sent, all) {
		t.Fatalf("first pass: %+v; want all sections sent", r)
	}
	id := r.DeviceID
	if ups := srv.uploads(id); len(ups) != 1 || !reflect.DeepEqual(ups[0].Present(), all) || !reflect.DeepEqual(ups[0].Hashes, testInventory().Hashes()) {
		t.Fatalf("uploads after enrollment: %+v", ups)
	}

	// A sync with nothing due asks for no pass; an unchanged pass makes no
	// upload at all.
	if r := h.sync(t); r.Err != nil || h.kicked() {
		t.Fatalf("second sync: %+v, or it asked for a pass with nothing due", r)
	}
	r = h.pass(t)
	if r.Err != nil || len(r.Sent) != 0 || r.Probed || r.Full || srv.count("inventory") != 1 {
		t.Fatalf("unchanged inventory: %+v, %d inventory calls; want none more", r, srv.count("inventory"))
	}

	// One section changed: it alone is sent, with every hash.
	col.set(func(inv *proto.Inventory) { inv.Packages.Packages[0].Version = "3.0.13-1" })
	r = h.pass(t)
	if !reflect.DeepEqual(r.Sent, []string{proto.SectionPackages}) {
		t.Fatalf("changed packages: sent %v", r.Sent)
	}
	ups := srv.uploads(id)
	last := ups[len(ups)-1]
	if !reflect.DeepEqual(last.Present(), []string{proto.SectionPackages}) || len(last.Hashes) != 3 || last.Packages.Packages[0].Version != "3.0.13-1" {
		t.Fatalf("the partial upload: sections %v, %d hashes", last.Present(), len(last.Hashes))
	}

	// A day later: the sync asks for a pass, which sends everything, even
	// unchanged.
	h.clock.Advance(proto.InventoryFullResendAge)
	if h.sync(t); !h.kicked() {
		t.Fatal("a sync a day after the last full upload asked for no pass")
	}
	if r = h.pass(t); !r.Full || !reflect.DeepEqual(r.Sent, all) {
		t.Fatalf("after a day: sent %v, want all", r.Sent)
	}
	if r = h.pass(t); len(r.Sent) != 0 {
		t.Fatalf("right after the daily upload: sent %v", r.Sent)
	}

	// On request (the refresh_inventory doorbell): everything.
	h.agent.OnPush(map[string]string{"type": proto.DoorbellRefreshInventory})
	if !h.kicked() {
		t.Fatal("the refresh doorbell asked for no pass")
	}
	if r = h.pass(t); !reflect.DeepEqual(r.Sent, all) {
		t.Fatalf("after a refresh doorbell: sent %v, want all", r.Sent)
	}
	calls := srv.count("inventory")

	// A restarted agent asks with hashes alone; the server holds them all,
	// so nothing else is sent.
	h2 := newHarness(t, srv, dir, func(c *Config) { c.Inventory = col }).loopMode()
	if h2.sync(t); !h2.kicked() {
		t.Fatal("a restarted agent's first sync asked for no pass")
	}
	r = h2.pass(t)
	if !r.Probed || len(r.Sent) != 0 || srv.count("inventory") != calls+1 {
		t.Fatalf("restart: %+v; want one probe and no sections", r)
	}
	if p := srv.uploads(id)[calls]; len(p.Present()) != 0 || len(p.Hashes) != 3 {
		t.Fatalf("the probe carried sections %v", p.Present())
	}
	// The server lost a section: the next restart's probe learns it and
	// sends it alone.
	srv.mu.Lock()
	delete(srv.devices[id].inventory, proto.SectionHardware)
	srv.mu.Unlock()
	h3 := newHarness(t, srv, dir, func(c *Config) { c.Inventory = col }).loopMode()
	h3.sync(t)
	if r = h3.pass(t); !r.Probed || !reflect.DeepEqual(r.Sent, []string{proto.SectionHardware}) {
		t.Fatalf("restart after the server lost hardware: %+v", r)
	}
}

// A server without the inventory route (an old one) costs the agent an
// error in the pass, never the sync or its identity; a refusal (4xx) waits
// for the inventory timer, a failure that may pass is retried after the
// next good sync.
func TestInventoryOldServer(t *testing.T) {
	srv := newFakeServer(t)
	srv.failOnce("inventory", http.StatusNotFound)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Inventory = &mutableCollector{inv: testInventory()} }).loopMode()
	h.sync(t)
	r := h.pass(t)
	if r.Err == nil || len(r.Sent) != 0 {
		t.Fatalf("pass against a server without inventory: %+v", r)
	}
	if srv.count("enroll") != 1 {
		t.Fatal("a 404 on the inventory route made the agent enroll again")
	}
	h.kicked()
	if r := h.sync(t); r.Err != nil || h.kicked() {
		t.Fatalf("sync after a refused inventory: %+v, or it asked for a pass", r)
	}
	// Still owed: the next pass (the timer's) sends it all.
	if r = h.pass(t); r.Err != nil || len(r.Sent) != 3 {
		t.Fatalf("next pass: %+v", r)
	}
	// A 503 is retried after the next good sync.
	h.clock.Advance(proto.InventoryFullResendAge)
	srv.failOnce("inventory", http.StatusServiceUnavailable)
	if r = h.pass(t); r.Err == nil {
		t.Fatalf("pass during a 503: %+v", r)
	}
	if h.sync(t); !h.kicked() {
		t.Fatal("the sync after a 503 asked for no pass")
	}
	if r = h.pass(t); r.Err != nil || !r.Full || len(r.Sent) != 3 {
		t.Fatalf("retried pass: %+v; want the owed full upload", r)
	}
}

// An MQTT refresh_inventory doorbell asks for a full upload, like the FCM
// one, without a sync.
func TestInventoryRefreshDoorbell(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Inventory = &mutableCollector{inv: testInventory()} }).loopMode()
	h.sync(t)
	h.pass(t)
	h.kicked()
	h.agent.handleDoorbell([]byte(`{"type":"refresh_inventory"}`))
	if !h.kicked() {
		t.Fatal("the doorbell asked for no inventory pass")
	}
	if r := h.pass(t); len(r.Sent) != 3 || !r.Full {
		t.Fatalf("after the doorbell: %+v", r)
	}
}

// The server asks for the whole inventory through its policy answer (an
// older server's refresh); the agent sends it once, then only changes
// again.
func TestInventoryRequestedByServer(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Inventory = &mutableCollector{inv: testInventory()} }).loopMode()
	id := h.sync(t).DeviceID
	h.pass(t)
	h.kicked()
	srv.mu.Lock()
	srv.devices[id].wantInventory = true
	srv.mu.Unlock()
	if h.sync(t); !h.kicked() {
		t.Fatal("the server's request asked for no pass")
	}
	if r := h.pass(t); len(r.Sent) != 3 {
		t.Fatalf("asked by the server: sent %v, want all 3 sections", r.Sent)
	}
	if h.sync(t); h.kicked() {
		t.Fatal("a pass asked for after the requested upload")
	}
}

// The refresh_inventory command is carried out by the agent itself, with
// its collector: the whole inventory is uploaded, then ACKNOWLEDGED. An
// agent without a collector answers unsupported.
func TestInventoryRefreshCommand(t *testing.T) {
	srv := newFakeServer(t)
	srv.enableCommands()
	col := &countingCollector{Collector: &mutableCollector{inv: testInventory()}}
	h, id := enrolled(t, srv, t.TempDir(), func(c *Config) { c.Inventory = col })
	h.pass(t)
	before := len(srv.uploads(id))
	srv.queueCommand(id, cmd("r1", proto.CommandRefreshInventory))
	if r := h.sync(t); r.Commands != 1 {
		t.Fatalf("sync ran %d commands", r.Commands)
	}
	ups := srv.uploads(id)
	if len(ups) != before+1 || len(ups[before].Present()) != 3 {
		t.Fatalf("uploads after the command: %d, the last with %v; want one full upload", len(ups)-before, ups[len(ups)-1].Present())
	}
	res := srv.commandResults(id)
	if got := resultStates(res); got != "r1:ACKNOWLEDGED:" || !strings.Contains(res[0].Result.Output, "3 sections") {
		t.Fatalf("results %s %+v", got, res)
	}

	srv2 := newFakeServer(t)
	srv2.enableCommands()
	h2, id2 := enrolled(t, srv2, t.TempDir(), func(c *Config) { c.Executor = h.dev })
	srv2.queueCommand(id2, cmd("r2", proto.CommandRefreshInventory))
	h2.sync(t)
	if got := resultStates(srv2.commandResults(id2)); got != "r2:ERROR:unsupported" {
		t.Fatalf("without a collector: %s", got)
	}
}

// countingCollector counts collections and, with gate set, blocks each
// one until the test sends on gate (entered tells it one started).
type countingCollector struct {
	Collector
	n       atomic.Int32
	gate    chan struct{}
	entered chan struct{}
}

func (c *countingCollector) Collect(ctx context.Context) (proto.Inventory, error) {
	c.n.Add(1)
	if c.gate != nil {
		c.entered <- struct{}{}
		select {
		case <-c.gate:
		case <-ctx.Done():
			return proto.Inventory{}, ctx.Err()
		}
	}
	return c.Collector.Collect(ctx)
}

// The inventory runs off the sync path, on its own timer (injected
// clock): at enrollment, then every InventoryInterval; a slow collection
// never holds up a sync (a doorbell is handled while it runs); syncs
// themselves never collect.
func TestInventoryLoop(t *testing.T) {
	srv := newFakeServer(t)
	inner := &mutableCollector{inv: testInventory()}
	col := &countingCollector{Collector: inner, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	passes := make(chan InventoryResult, 10)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.Inventory = col
		c.InventoryInterval = 10 * time.Minute
		c.OnInventory = func(r InventoryResult) { passes <- r }
	})
	h.runAgent(t)
	first := recv(t, h.results, "the first sync")
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	// The enrollment's pass is collecting (held at the gate); a sync runs
	// to its end meanwhile.
	recv(t, col.entered, "the enrollment's collection")
	if err := h.agent.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, h.results, "a sync during the collection"); r.Err != nil {
		t.Fatal(r.Err)
	}
	col.gate <- struct{}{}
	if r := recv(t, passes, "the enrollment's pass"); !r.Full || len(r.Sent) != 3 {
		t.Fatalf("enrollment pass: %+v", r)
	}
	if n := col.n.Load(); n != 1 {
		t.Fatalf("%d collections after two syncs and one pass; syncs must not collect", n)
	}

	// A changed section is found by the timer's pass, and sent alone.
	inner.set(func(inv *proto.Inventory) { inv.Hardware.CPUCount = 8 })
	h.clock.waitTimer(t, 9*time.Minute, 11*time.Minute) // the loop's first timer
	h.clock.waitTimer(t, 9*time.Minute, 11*time.Minute) // the one after the pass
	h.clock.Advance(11 * time.Minute)
	recv(t, col.entered, "the timer's collection")
	col.gate <- struct{}{}
	if r := recv(t, passes, "the timer's pass"); r.Full || !reflect.DeepEqual(r.Sent, []string{proto.SectionHardware}) {
		t.Fatalf("timer pass: %+v; want hardware alone", r)
	}
	// Unchanged at the next tick: collected, nothing sent.
	h.clock.waitTimer(t, 9*time.Minute, 11*time.Minute)
	h.clock.Advance(11 * time.Minute)
	recv(t, col.entered, "the next timer's collection")
	col.gate <- struct{}{}
	if r := recv(t, passes, "the next timer's pass"); r.Err != nil || len(r.Sent) != 0 {
		t.Fatalf("unchanged pass: %+v", r)
	}
	if n := srv.count("inventory"); n != 2 {
		t.Fatalf("%d inventory uploads, want 2", n)
	}
}

// Without Run (a phone's one-shot sync from a push or a WorkManager job)
// there is no inventory loop: a due pass runs at the end of the sync, and
// an undue one does not.
func TestInventoryWithoutRun(t *testing.T) {
	srv := newFakeServer(t)
	col := &countingCollector{Collector: &mutableCollector{inv: testInventory()}}
	passes := make(chan InventoryResult, 10)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.Inventory = col
		c.OnInventory = func(r InventoryResult) { passes <- r }
	})
	h.sync(t)
	if r := recv(t, passes, "the enrollment's pass"); !r.Full || len(r.Sent) != 3 {
		t.Fatalf("enrollment pass: %+v", r)
	}
	h.sync(t)
	if n := col.n.Load(); n != 1 {
		t.Fatalf("%d collections; a sync with nothing due must not collect", n)
	}
	h.agent.OnPush(map[string]string{"type": proto.DoorbellRefreshInventory})
	h.sync(t)
	if r := recv(t, passes, "the requested pass"); !r.Full || len(r.Sent) != 3 {
		t.Fatalf("requested pass: %+v", r)
	}
}
