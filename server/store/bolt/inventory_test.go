package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// Both ways of walking many value buckets (merging cursors, or collecting
// and sorting) give the same pages.
func TestFindDevicesMergeAndSort(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 30 {
		id := fmt.Sprintf("d%02d", i)
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
		inv := storetest.FixtureInventory(fmt.Sprintf("h%d", i%7), "debian", "12", "6.1", proto.FormatDeb, "a=1")
		if _, err := s.SaveInventory(ctx, id, storetest.Full(inv), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	q := store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactHostname, Match: func(v string) bool { return !strings.HasSuffix(v, "3") }}}}
	pages := func() string {
		var out []string
		after := ""
		for {
			ids, more, err := s.FindDevices(ctx, q, after, 4)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join(ids, ","))
			if !more {
				return strings.Join(out, " | ")
			}
			after = ids[len(ids)-1]
		}
	}
	merged := pages()
	defer func(m int) { mergeMax = m }(mergeMax)
	mergeMax = 0
	sorted := pages()
	if merged != sorted || strings.Contains(merged, "d03") || !strings.Contains(merged, "d29") {
		t.Fatalf("merged pages %q, sorted pages %q", merged, sorted)
	}
}

// The hostname trigram index answers substring searches exactly as a scan
// of every value does, through renames and deletions, and is built for a
// database written before it existed.
func TestInventoryHostnameTrigrams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hosts := []string{"Kiosk-Lobby-01", "kiosk-lobby-02", "till-0123", "till-1234", "ab", "lobby", "LOBBY-kiosk", "café-lobby"}
	save := func(id, host string) {
		t.Helper()
		inv := storetest.FixtureInventory(host, "debian", "12", "6.1", proto.FormatDeb, "a=1")
		if _, err := s.SaveInventory(ctx, id, storetest.Full(inv), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range hosts {
		id := fmt.Sprintf("d%02d", i)
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
		save(id, h)
	}
	// A second device on one hostname, then renamed away: the value stays
	// indexed while a device has it.
	if _, err := s.CreateDevice(ctx, storetest.NewDevice("d99")); err != nil {
		t.Fatal(err)
	}
	save("d99", "till-1234")
	save("d03", "till-9999")                           // a rename
	if err := s.DeleteDevice(ctx, "d05"); err != nil { // "lobby" goes
		t.Fatal(err)
	}
	subs := []string{"lobby", "kiosk", "123", "1234", "999", "ab", "b", "é-l", "lobby-0", "nothing", "ill-"}
	check := func(s *Store) {
		t.Helper()
		for _, sub := range subs {
			m := func(v string) bool { return strings.Contains(strings.ToLower(v), sub) }
			indexed, _, err := s.FindDevices(ctx, store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactHostname, Contains: sub, Match: m}}}, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			scanned, _, _ := s.FindDevices(ctx, store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactHostname, Match: m}}}, "", 100)
			if fmt.Sprint(indexed) != fmt.Sprint(scanned) {
				t.Errorf("hostname~=%s: indexed %v, scanned %v", sub, indexed, scanned)
			}
		}
	}
	check(s)
	if ids, _, _ := s.FindDevices(ctx, store.InventoryQuery{Facts: []store.FactCond{{Fact: proto.FactHostname, Contains: "1234",
		Match: func(v string) bool { return strings.Contains(v, "1234") }}}}, "", 100); fmt.Sprint(ids) != "[d99]" {
		t.Fatalf("hostname~=1234 after the rename: %v", ids)
	}
	// The index holds no value no device has.
	s.db.View(func(tx *bbolt.Tx) error {
		if vals, _ := trigramValues(tx, proto.FactHostname, "lob"); len(vals) != 4 {
			t.Errorf("values with 'lob': %q, want the 4 that remain", vals)
		}
		if vals, _ := trigramValues(tx, proto.FactHostname, "999"); len(vals) != 1 {
			t.Errorf("values with '999': %q", vals)
		}
		return nil
	})
	// A database from before the index: the bucket is built at Open.
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketInvTrigrams) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
}
