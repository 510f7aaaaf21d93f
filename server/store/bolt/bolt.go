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
	"github.com/doorbell-mdm/doorbell/server/store"
)

var (
	bucketDevices = []byte("devices") // device id -> JSON store.Device
	bucketSecrets = []byte("secrets") // sha256(secret) -> device id
)

// Store is a bbolt-backed store.Store.
type Store struct {
	db *bbolt.DB
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the database file at path.
func Open(path string) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	// Reports from many devices arrive at once; Batch folds concurrent
	// writers into one fsync. 2ms keeps a lone edit fast.
	db.MaxBatchDelay = 2 * time.Millisecond
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketDevices, bucketSecrets} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("creating buckets: %w", err)
	}
	return &Store{db: db}, nil
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
func (s *Store) CreateDevice(_ context.Context, d store.Device) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketDevices).Get([]byte(d.ID)) != nil {
			return store.ErrExists
		}
		secrets := tx.Bucket(bucketSecrets)
		if len(d.SecretHash) == 0 || secrets.Get(d.SecretHash) != nil {
			return store.ErrExists
		}
		if err := secrets.Put(d.SecretHash, []byte(d.ID)); err != nil {
			return err
		}
		return putDevice(tx, d)
	})
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

// UpdatePolicy implements store.PolicyStore.
func (s *Store) UpdatePolicy(_ context.Context, id string, change func(proto.Settings) proto.Settings) (d store.Device, changed bool, err error) {
	err = s.db.Update(func(tx *bbolt.Tx) error {
		d, err = getDevice(tx, id)
		if err != nil {
			return err
		}
		next := change(d.Policy.Settings)
		if next.Equal(d.Policy.Settings) {
			changed = false
			return nil
		}
		d.Policy.Settings = next
		d.Policy.Version++
		d.PolicyChangedAt = time.Now().UTC()
		changed = true
		return putDevice(tx, d)
	})
	return d, changed, err
}

// SaveReport implements store.ReportStore. Concurrent reports share one
// transaction and one fsync through bbolt's Batch.
func (s *Store) SaveReport(_ context.Context, id string, r store.Report) error {
	return s.db.Batch(func(tx *bbolt.Tx) error {
		d, err := getDevice(tx, id)
		if err != nil {
			return err
		}
		if r.AppliedPolicyVersion > d.Policy.Version {
			return store.ErrVersionAhead
		}
		d.Report = &r
		return putDevice(tx, d)
	})
}

// SetFCMToken implements store.TokenStore.
func (s *Store) SetFCMToken(_ context.Context, id, token string) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
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
	return s.db.Update(func(tx *bbolt.Tx) error {
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
