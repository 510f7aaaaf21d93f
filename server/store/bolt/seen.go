package bolt

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/server/store"
)

// MarkSeen implements store.SeenStore.
func (s *Store) MarkSeen(_ context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		for id, at := range seen {
			d, err := getRecord(tx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !at.After(d.LastSeenAt) {
				continue
			}
			d.LastSeenAt = at.UTC()
			if err := putRecord(tx, d); err != nil {
				return err
			}
		}
		return nil
	})
}
