package bolt_test

import (
	"path/filepath"
	"testing"

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
