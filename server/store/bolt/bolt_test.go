package bolt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

func TestConformance(t *testing.T) {
	open := func(t *testing.T, path string) store.Store {
		s, err := bolt.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	paths := map[store.Store]string{}
	storetest.Run(t,
		func(t *testing.T) store.Store {
			p := filepath.Join(t.TempDir(), "doorbell.db")
			s := open(t, p)
			paths[s] = p
			return s
		},
		func(t *testing.T, s store.Store) store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, paths[s])
		})
}

func TestAuditRetention(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bolt.SetAuditRetention(s, 3)
	ctx := context.Background()
	if _, err := s.CreateDevice(ctx, storetest.NewDevice("a1")); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		actx := store.WithAudit(ctx, proto.AuditEntry{Actor: "admin", Action: "policy.update", Target: "a1"})
		if _, _, err := s.UpdateOverride(actx, "a1", func(store.Layer) store.Layer {
			return store.Layer{Values: proto.SettingValues{"cameraDisabled": json.RawMessage(strconv.FormatBool(i%2 == 0))}}
		}); err != nil {
			t.Fatal(err)
		}
	}
	es, more, err := s.AuditEntries(ctx, "", 100)
	if err != nil || more {
		t.Fatal(err, more)
	}
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	if fmt.Sprint(ids) != "[3 4 5]" {
		t.Errorf("kept entries %v, want the newest 3: [3 4 5]", ids)
	}
}
