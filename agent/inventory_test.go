package agent

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"sync"
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

func TestInventoryUploads(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	col := &mutableCollector{inv: testInventory()}
	h := newHarness(t, srv, dir, func(c *Config) { c.Inventory = col })
	all := []string{proto.SectionSystem, proto.SectionHardware, proto.SectionPackages}

	// Enrollment: everything, in one upload.
	r := h.sync(t)
	if r.Err != nil || r.InventoryErr != nil || !reflect.DeepEqual(r.InventorySent, all) {
		t.Fatalf("first sync: %+v; want all sections sent", r)
	}
	id := r.DeviceID
	if ups := srv.uploads(id); len(ups) != 1 || !reflect.DeepEqual(ups[0].Present(), all) || !reflect.DeepEqual(ups[0].Hashes, testInventory().Hashes()) {
		t.Fatalf("uploads after enrollment: %+v", ups)
	}

	// Unchanged: no upload at all.
	r = h.sync(t)
	if r.Err != nil || len(r.InventorySent) != 0 || r.InventoryProbed || srv.count("inventory") != 1 {
		t.Fatalf("unchanged inventory: %+v, %d inventory calls; want none more", r, srv.count("inventory"))
	}

	// One section changed: it alone is sent, with every hash.
	col.set(func(inv *proto.Inventory) { inv.Packages.Packages[0].Version = "3.0.13-1" })
	r = h.sync(t)
	if !reflect.DeepEqual(r.InventorySent, []string{proto.SectionPackages}) {
		t.Fatalf("changed packages: sent %v", r.InventorySent)
	}
	ups := srv.uploads(id)
	last := ups[len(ups)-1]
	if !reflect.DeepEqual(last.Present(), []string{proto.SectionPackages}) || len(last.Hashes) != 3 || last.Packages.Packages[0].Version != "3.0.13-1" {
		t.Fatalf("the partial upload: sections %v, %d hashes", last.Present(), len(last.Hashes))
	}

	// A day later: everything again, even unchanged.
	h.clock.Advance(proto.InventoryFullResendAge)
	if r = h.sync(t); !reflect.DeepEqual(r.InventorySent, all) {
		t.Fatalf("after a day: sent %v, want all", r.InventorySent)
	}
	if r = h.sync(t); len(r.InventorySent) != 0 {
		t.Fatalf("right after the daily upload: sent %v", r.InventorySent)
	}

	// On request (the refresh_inventory doorbell): everything.
	h.agent.OnPush(map[string]string{"type": proto.DoorbellRefreshInventory})
	if r = h.sync(t); !reflect.DeepEqual(r.InventorySent, all) {
		t.Fatalf("after a refresh doorbell: sent %v, want all", r.InventorySent)
	}
	calls := srv.count("inventory")

	// A restarted agent asks with hashes alone; the server holds them all,
	// so nothing else is sent.
	h2 := newHarness(t, srv, dir, func(c *Config) { c.Inventory = col })
	r = h2.sync(t)
	if !r.InventoryProbed || len(r.InventorySent) != 0 || srv.count("inventory") != calls+1 {
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
	h3 := newHarness(t, srv, dir, func(c *Config) { c.Inventory = col })
	if r = h3.sync(t); !r.InventoryProbed || !reflect.DeepEqual(r.InventorySent, []string{proto.SectionHardware}) {
		t.Fatalf("restart after the server lost hardware: %+v", r)
	}
}

// A server without the inventory route (an old one) costs the agent an
// error in the result, never the sync or its identity.
func TestInventoryOldServer(t *testing.T) {
	srv := newFakeServer(t)
	srv.failOnce("inventory", http.StatusNotFound)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Inventory = &mutableCollector{inv: testInventory()} })
	r := h.sync(t)
	if r.Err != nil || r.InventoryErr == nil || len(r.InventorySent) != 0 {
		t.Fatalf("sync against a server without inventory: %+v", r)
	}
	if srv.count("enroll") != 1 {
		t.Fatal("a 404 on the inventory route made the agent enroll again")
	}
	// Still owed: the next sync sends it all.
	if r = h.sync(t); r.InventoryErr != nil || len(r.InventorySent) != 3 {
		t.Fatalf("next sync: %+v", r)
	}
}

// An MQTT refresh_inventory doorbell asks for a full upload and wakes the
// agent, like the FCM one.
func TestInventoryRefreshDoorbell(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Inventory = &mutableCollector{inv: testInventory()} })
	h.sync(t)
	h.agent.handleDoorbell([]byte(`{"type":"refresh_inventory"}`))
	select {
	case <-h.agent.trigger:
	case <-time.After(waitTimeout):
		t.Fatal("the doorbell did not trigger a sync")
	}
	if r := h.sync(t); len(r.InventorySent) != 3 {
		t.Fatalf("after the doorbell: sent %v", r.InventorySent)
	}
}

// The server asks for the whole inventory through its policy answer (an
// operator's refresh); the agent sends it once, then only changes again.
func TestInventoryRequestedByServer(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.Inventory = &mutableCollector{inv: testInventory()} })
	id := h.sync(t).DeviceID
	if r := h.sync(t); len(r.InventorySent) != 0 {
		t.Fatalf("unchanged: sent %v", r.InventorySent)
	}
	srv.mu.Lock()
	srv.devices[id].wantInventory = true
	srv.mu.Unlock()
	if r := h.sync(t); len(r.InventorySent) != 3 {
		t.Fatalf("asked by the server: sent %v, want all 3 sections", r.InventorySent)
	}
	if r := h.sync(t); len(r.InventorySent) != 0 {
		t.Fatalf("after the requested upload: sent %v", r.InventorySent)
	}
}
