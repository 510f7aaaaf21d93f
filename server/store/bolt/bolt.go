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
	bucketDevices = []byte("devices") // device id -> JSON store.Device without its Report (head.go)
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
	// beforeReportWrite, set by tests, runs between a report's evaluation
	// and its write transaction.
	beforeReportWrite func()
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
		for _, b := range [][]byte{bucketDevices, bucketSecrets, bucketGroups, bucketGroupNames, bucketHistory, bucketMeta, bucketReports, bucketReplay, bucketRevs, bucketSeen} {
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
		if err := createTrustBuckets(tx); err != nil {
			return err
		}
		return migrateHeads(tx)
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

// getDevice reads device id with its last report.
func getDevice(tx *bbolt.Tx, id string) (store.Device, error) {
	v := tx.Bucket(bucketDevices).Get([]byte(id))
	if v == nil {
		return store.Device{}, store.ErrNotFound
	}
	return decodeDevice(tx, []byte(id), v)
}

// getRecord reads device id's record without its last report, for a write
// that changes neither (putRecord then keeps the report as it is).
func getRecord(tx *bbolt.Tx, id string) (store.Device, error) {
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

// DeviceAuth implements store.DeviceStore: it reads the device's head only.
func (s *Store) DeviceAuth(_ context.Context, id string) (a store.DeviceAuth, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketHeads).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		h, err := decodeHead(v, false)
		if err != nil {
			return fmt.Errorf("decoding head of device %s: %w", id, err)
		}
		a = store.DeviceAuth{ID: id, SecretHash: h.secretHash, ClientCert: h.clientCert, PolicyVersion: h.policyVersion}
		return nil
	})
	return a, err
}

// DevicePolicy implements store.DeviceStore: it decodes the policy of the
// record only.
func (s *Store) DevicePolicy(_ context.Context, id string) (p proto.DevicePolicy, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketDevices).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		var d struct {
			Policy proto.DevicePolicy `json:"policy"`
		}
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decoding device %s: %w", id, err)
		}
		p = d.Policy
		return nil
	})
	return p, err
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
			d, err := decodeDevice(tx, k, v)
			if err != nil {
				return err
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
// transaction and one fsync (group commit), so what runs inside it is
// serial: it is kept small. Before it, in a read transaction, the report
// is encoded, the device's record (without its report) is read and
// decoded once and the report evaluated once against its policy. Inside
// it, the report checks the device's head (version, state before) and the
// replay record of the last report, confirms the record is byte for byte
// the one it evaluated against (else, after a concurrent edit, it decodes
// and evaluates again), and writes the report and its replay record; the
// record and the head are rewritten only when the state, the failing
// settings or the sync interval changed.
func (s *Store) SaveReport(_ context.Context, id string, r store.Report) (c store.Change, err error) {
	enc, err := encodeReport(&r)
	if err != nil {
		return c, fmt.Errorf("encoding report: %w", err)
	}
	var raw []byte
	var ev reportEval
	err = s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketDevices).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		raw = bytes.Clone(v)
		return nil
	})
	if err != nil {
		return c, err
	}
	if ev, err = evalReport(id, raw, &r); err != nil {
		return c, err
	}
	if s.beforeReportWrite != nil {
		s.beforeReportWrite()
	}
	err = s.batch(func(w *writer) error {
		h, err := getHead(w.tx, id)
		if err != nil {
			return err
		}
		if r.AppliedPolicyVersion > h.policyVersion {
			return store.ErrVersionAhead
		}
		last, err := getReplay(w.tx, id)
		if err != nil {
			return err
		}
		if err := policy.CheckReplay(last, &r); err != nil {
			return err
		}
		cur := ev
		if v := w.tx.Bucket(bucketDevices).Get([]byte(id)); v == nil {
			return store.ErrNotFound
		} else if !bytes.Equal(v, raw) {
			if cur, err = evalReport(id, v, &r); err != nil {
				return err
			}
		}
		c, err = w.putReport(cur, h, enc, r.ReceivedAt)
		return err
	})
	return c, err
}

// reportEval is a device's record as read, the record with a new report
// r, and r evaluated against it.
type reportEval struct {
	before, after store.Device
	to            proto.ComplianceState
	failing       []proto.SettingFailure
}

// evalReport decodes the record v of device id (without its last report)
// and evaluates r against its policy.
func evalReport(id string, v []byte, r *store.Report) (reportEval, error) {
	var e reportEval
	if err := json.Unmarshal(v, &e.before); err != nil {
		return e, fmt.Errorf("decoding device %s: %w", id, err)
	}
	e.after = e.before
	e.after.Report = r
	if r.SyncIntervalSeconds > 0 {
		e.after.SyncIntervalSeconds = r.SyncIntervalSeconds
	}
	e.to, e.failing = policy.Derive(e.after)
	return e, nil
}

// SetFCMToken implements store.TokenStore.
func (s *Store) SetFCMToken(_ context.Context, id, token string) error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		d, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if d.FCMToken == token {
			return nil
		}
		d.FCMToken = token
		return putRecord(tx, d)
	})
}

// DeleteFCMToken implements store.TokenStore.
func (s *Store) DeleteFCMToken(_ context.Context, id, token string) error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		d, err := getRecord(tx, id)
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
		return putRecord(tx, d)
	})
}
