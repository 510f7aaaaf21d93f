package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"
)

// bucketEscalations: device id -> nested bucket: step -> the
// nonCompliantSince (RFC 3339) it last fired for.
var bucketEscalations = []byte("escalations")

// MarkEscalated implements store.EscalationStore.
func (s *Store) MarkEscalated(ctx context.Context, deviceID, step string, since time.Time) (first bool, err error) {
	v := []byte(since.UTC().Format(time.RFC3339Nano))
	err = s.db.Update(func(tx *bbolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketEscalations)
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists([]byte(deviceID))
		if err != nil {
			return err
		}
		if string(b.Get([]byte(step))) == string(v) {
			return nil
		}
		first = true
		if err := b.Put([]byte(step), v); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx)
	})
	return first, err
}
