package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// bucketRevisions holds a nested bucket per layer ("group:<id>",
// "device:<id>"): big-endian revision number -> JSON store.Revision.
var bucketRevisions = []byte("revisions")

func revisionBucket(kind store.RevisionKind, id string) []byte {
	return []byte(string(kind) + ":" + id)
}

// addRevision records the layer's new state as its next revision when it
// differs from the last one, in w's transaction, dropping the oldest past
// store.RevisionLimit.
func (w *writer) addRevision(ctx context.Context, kind store.RevisionKind, id string, l store.Layer, mode proto.Mode, at time.Time) error {
	root, err := w.tx.CreateBucketIfNotExists(bucketRevisions)
	if err != nil {
		return err
	}
	b, err := root.CreateBucketIfNotExists(revisionBucket(kind, id))
	if err != nil {
		return err
	}
	var prev store.Revision
	if k, v := b.Cursor().Last(); k != nil {
		if err := json.Unmarshal(v, &prev); err != nil {
			return fmt.Errorf("decoding revision %s %s: %w", kind, id, err)
		}
	}
	r, ok := policy.NextRevision(ctx, prev, l, mode, at)
	if !ok {
		return nil
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := b.Put(u64(uint64(r.N)), v); err != nil {
		return err
	}
	// Keep the newest RevisionLimit: numbers only grow, so what is older
	// is at the front (no count of the bucket, which walks its pages).
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k)+store.RevisionLimit <= uint64(r.N); k, _ = c.First() {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func u64(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

// Revisions implements store.RevisionStore.
func (s *Store) Revisions(_ context.Context, kind store.RevisionKind, id string) ([]store.Revision, error) {
	var out []store.Revision
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := layerRevisions(tx, kind, id)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var r store.Revision
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding revision %s %s: %w", kind, id, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Revision implements store.RevisionStore.
func (s *Store) Revision(_ context.Context, kind store.RevisionKind, id string, n int64) (r store.Revision, err error) {
	if n <= 0 {
		return r, store.ErrNotFound
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		b := layerRevisions(tx, kind, id)
		if b == nil {
			return store.ErrNotFound
		}
		v := b.Get(u64(uint64(n)))
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

func layerRevisions(tx *bbolt.Tx, kind store.RevisionKind, id string) *bbolt.Bucket {
	root := tx.Bucket(bucketRevisions)
	if root == nil {
		return nil
	}
	return root.Bucket(revisionBucket(kind, id))
}
