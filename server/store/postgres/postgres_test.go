package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/doorbell-mdm/doorbell/server/store/postgres/pgtest"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, url string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// migrated returns a new database with the schema in place, copied from a
// template migrated once.
func migrated(t *testing.T) string {
	return pgtest.NewDatabaseFrom(t, "doorbell_schema", func(url string) error {
		s, err := postgres.Open(context.Background(), url)
		if err == nil {
			s.Close()
		}
		return err
	})
}

func TestConformance(t *testing.T) {
	urls := map[store.Store]string{}
	storetest.Run(t,
		func(t *testing.T) store.Store {
			url := migrated(t)
			s := open(t, url)
			urls[s] = url
			return s
		},
		func(t *testing.T, s store.Store) store.Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, urls[s])
		})
}
