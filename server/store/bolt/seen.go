package bolt

import (
	"context"
	"encoding/binary"
	"time"

	"go.etcd.io/bbolt"
)

// bucketSeen keeps each device's LastSeenAt under its own small key
// (device id -> 8-byte big-endian Unix nanoseconds), so the flush of the
// devices seen in the last interval writes a few bytes per device instead
// of decoding and rewriting every record. decodeDevice attaches it; a
// record written before the key existed keeps its own LastSeenAt, and the
// later of the two wins.
var bucketSeen = []byte("seen")

// MarkSeen implements store.SeenStore.
func (s *Store) MarkSeen(_ context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		devices, b := tx.Bucket(bucketDevices), tx.Bucket(bucketSeen)
		for id, at := range seen {
			if devices.Get([]byte(id)) == nil {
				continue // deleted meanwhile
			}
			if last, ok := getSeen(tx, id); ok && !at.After(last) {
				continue
			}
			if err := b.Put([]byte(id), binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))); err != nil {
				return err
			}
		}
		return nil
	})
}

// getSeen is device id's LastSeenAt as MarkSeen last wrote it.
func getSeen(tx *bbolt.Tx, id string) (time.Time, bool) {
	b := tx.Bucket(bucketSeen) // absent in a file opened read-only before any write made it
	if b == nil {
		return time.Time{}, false
	}
	v := b.Get([]byte(id))
	if len(v) != 8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), true
}
