package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/service"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestChangeStreamOrder: reports and edits of one device race from many
// goroutines against a real bbolt file (whose group commit wakes the
// writers of one batch in any order). Every committed change is published
// exactly once, and the changes a subscriber takes as the device's state
// (not Late) come in commit order: it never sees an older state after a
// newer one.
func TestChangeStreamOrder(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := service.New(st, service.Config{})
	var mu sync.Mutex
	var got []service.Change
	svc.Subscribe(func(ch service.Change) {
		mu.Lock()
		got = append(got, ch)
		mu.Unlock()
	})
	ctx := context.Background()
	d := storetest.NewDevice("dev-1")
	if err := svc.Enroll(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if w%2 == 0 {
					if err := svc.Report(ctx, store.AuthOf(d), proto.ComplianceReport{AppliedPolicyVersion: 1}); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				n := w*each + i
				_, err := svc.EditOverride(ctx, d.ID, func(l store.Layer) store.Layer {
					l.Values = proto.SettingValues{proto.SettingPasswordMinLength: json.RawMessage(fmt.Sprint(4 + n%2))}
					return l
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	final, err := svc.Device(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[int64]int{}
	var last int64
	late := 0
	for _, ch := range got {
		seen[ch.Device.Rev]++
		if ch.Late {
			late++
			if ch.Device.Rev >= last {
				t.Errorf("rev %d marked late after rev %d", ch.Device.Rev, last)
			}
			continue
		}
		if ch.Device.Rev <= last {
			t.Errorf("state of rev %d published after rev %d", ch.Device.Rev, last)
		}
		last = ch.Device.Rev
	}
	if last != final.Rev {
		t.Errorf("newest state published is rev %d, the store has rev %d", last, final.Rev)
	}
	for rev := int64(1); rev <= final.Rev; rev++ {
		if seen[rev] != 1 {
			t.Errorf("rev %d published %d times, want once", rev, seen[rev])
		}
	}
	t.Logf("%d changes published (final rev %d), %d came late", len(got), final.Rev, late)
}
