// Package bolt is the embedded bbolt implementation of store.Store: one file
// in the data directory, every write durable before it returns.
package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

var (
	bucketDevices = []byte("devices") // device id -> JSON store.Device
	bucketSecrets = []byte("secrets") // sha256(secret) -> device id
)

// Store is a bbolt-backed store.Store.
type Store struct {
	db        *bbolt.DB
	now       func() time.Time
	onCommand func(...store.CommandChange)
	// auditRetention overrides AuditRetention in tests; 0 = AuditRetention.
	auditRetention uint64
	w              *committer // group commit for the writes many clients make at once
	health         health     // the last write's outcome
	// bw is the writer shared by the functions of the group commit's
	// current transaction (set by its begin, written by its finish); only
	// touched inside that transaction, which bbolt serialises.
	bw *writer
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the database file at path. An existing file is
// read through first: an empty, truncated or corrupted one is refused with
// an error matching ErrDamaged that says how to restore a backup, and a
// file another process holds with one matching ErrLocked.
func Open(path string, opts ...Option) (*Store, error) {
	// The freelist is not written at every commit (it is rebuilt by a scan
	// at open, quick for a device database) and is kept as a map: fewer
	// pages written and synced per commit, as etcd runs bbolt.
	db, err := openChecked(path, &bbolt.Options{Timeout: lockTimeout, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketDevices, bucketSecrets, bucketGroups, bucketGroupNames, bucketHistory, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := createCommandBuckets(tx); err != nil {
			return err
		}
		if err := createInventoryBuckets(tx); err != nil {
			return err
		}
		return createTrustBuckets(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("creating buckets: %w", err)
	}
	s := &Store{db: db, now: time.Now, w: &committer{db: db}}
	s.w.begin = func(tx *bbolt.Tx) { s.bw = &writer{tx: tx} }
	s.w.finish = func(tx *bbolt.Tx) error {
		w := s.bw
		s.bw = nil
		if w == nil || w.tx != tx {
			return nil
		}
		return w.finish()
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.initSummary(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database file.
func (s *Store) Close() error { return s.db.Close() }

func getDevice(tx *bbolt.Tx, id string) (store.Device, error) {
	var d store.Device
	v := tx.Bucket(bucketDevices).Get([]byte(id))
	if v == nil {
		return d, store.ErrNotFound
	}
	if err := json.Unmarshal(v, &d); err != nil {
		return d, fmt.Errorf("decoding device %s: %w", id, err)
	}
	return d, nil
}

func putDevice(tx *bbolt.Tx, d store.Device) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding device %s: %w", d.ID, err)
	}
	return tx.Bucket(bucketDevices).Put([]byte(d.ID), v)
}

// CreateDevice implements store.DeviceStore.
func (s *Store) CreateDevice(_ context.Context, d store.Device) (c store.Change, err error) {
	// Concurrent enrollments share one transaction and one fsync; f may
	// run twice.
	err = s.batch(func(w *writer) (err error) { c, err = createDevice(w, d); return err })
	return c, err
}

// createDevice stores a new device through w, so its first state counts in
// the summary and starts its history.
func createDevice(w *writer, d store.Device) (store.Change, error) {
	tx := w.tx
	if tx.Bucket(bucketDevices).Get([]byte(d.ID)) != nil {
		return store.Change{}, store.ErrExists
	}
	secrets := tx.Bucket(bucketSecrets)
	if len(d.SecretHash) == 0 || secrets.Get(d.SecretHash) != nil {
		return store.Change{}, store.ErrExists
	}
	if err := secrets.Put(d.SecretHash, []byte(d.ID)); err != nil {
		return store.Change{}, err
	}
	return w.put(nil, d, proto.CauseEnroll, d.EnrolledAt)
}

// Device implements store.DeviceStore.
func (s *Store) Device(_ context.Context, id string) (d store.Device, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		d, err = getDevice(tx, id)
		return err
	})
	return d, err
}

// DeviceBySecretHash implements store.DeviceStore.
func (s *Store) DeviceBySecretHash(_ context.Context, h []byte) (d store.Device, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		id := tx.Bucket(bucketSecrets).Get(h)
		if id == nil {
			return store.ErrNotFound
		}
		d, err = getDevice(tx, string(id))
		return err
	})
	return d, err
}

// Devices implements store.DeviceStore.
func (s *Store) Devices(_ context.Context, after string, limit int, match func(store.Device) bool) (devs []store.Device, more bool, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDevices).Cursor()
		k, v := c.First()
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && bytes.Equal(k, []byte(after)) {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			var d store.Device
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decoding device %s: %w", k, err)
			}
			if match != nil && !match(d) {
				continue
			}
			if len(devs) == limit {
				more = true
				return nil
			}
			devs = append(devs, d)
		}
		return nil
	})
	return devs, more, err
}

// DevicesInState implements store.StateLister by filtering a scan: bbolt
// keeps no index on the derived state.
func (s *Store) DevicesInState(ctx context.Context, state proto.ComplianceState, after string, limit int) ([]store.Device, bool, error) {
	return s.Devices(ctx, after, limit, func(d store.Device) bool {
		st, _ := policy.Derive(d)
		return st == state
	})
}

// DevicesFailingBefore implements store.FailingLister by filtering a
// scan, like DevicesInState.
func (s *Store) DevicesFailingBefore(ctx context.Context, t time.Time, after string, limit int) ([]store.Device, bool, error) {
	return s.Devices(ctx, after, limit, func(d store.Device) bool { return policy.FailingBefore(d, t) })
}

// SaveReport implements store.ReportStore. Concurrent reports share one
// transaction and one fsync (group commit).
func (s *Store) SaveReport(_ context.Context, id string, r store.Report) (c store.Change, err error) {
	err = s.batch(func(w *writer) error {
		d, err := getDevice(w.tx, id)
		if err != nil {
			return err
		}
		before := d
		if err := policy.AcceptReport(&d, r); err != nil {
			return err
		}
		c, err = w.put(&before, d, proto.CauseReport, r.ReceivedAt)
		return err
	})
	return c, err
}

// SetFCMToken implements store.TokenStore.
func (s *Store) SetFCMToken(_ context.Context, id, token string) error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		d, err := getDevice(tx, id)
		if err != nil {
			return err
		}
		if d.FCMToken == token {
			return nil
		}
		d.FCMToken = token
		return putDevice(tx, d)
	})
}

// DeleteFCMToken implements store.TokenStore.
func (s *Store) DeleteFCMToken(_ context.Context, id, token string) error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		d, err := getDevice(tx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.FCMToken != token {
			return nil
		}
		d.FCMToken = ""
		return putDevice(tx, d)
	})
}
