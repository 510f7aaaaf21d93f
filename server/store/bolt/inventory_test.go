package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
