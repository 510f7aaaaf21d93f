package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

var (
	bucketOperators       = []byte("operators")         // name -> JSON store.OperatorToken
	bucketOperatorHashes  = []byte("operator_hashes")   // sha256(token) -> name
	bucketEnrollTokens    = []byte("enroll_tokens")     // id -> JSON store.EnrollmentToken
	bucketEnrollTokenHash = []byte("enroll_token_hash") // sha256(token) -> id
	bucketAudit           = []byte("audit")             // 8-byte big-endian sequence -> JSON proto.AuditEntry
)

// AuditRetention is how many audit entries the store keeps; appending one
// more deletes the oldest.
const AuditRetention = 100_000

var trustBuckets = [][]byte{bucketOperators, bucketOperatorHashes, bucketEnrollTokens, bucketEnrollTokenHash, bucketAudit}

func createTrustBuckets(tx *bbolt.Tx) error {
	for _, b := range trustBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// writeAudit appends the audit entry carried by ctx, if any, in tx, and
// trims the log to AuditRetention entries.
func (s *Store) writeAudit(ctx context.Context, tx *bbolt.Tx) error {
	e, ok := store.AuditFrom(ctx)
	if !ok {
		return nil
	}
	b := tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	e.ID = strconv.FormatUint(seq, 10)
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding audit entry: %w", err)
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return err
	}
	if keep := s.retention(); seq > keep {
		oldest := seqKey(seq - keep)
		c := b.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, oldest) <= 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) retention() uint64 {
	if s.auditRetention == 0 {
		return AuditRetention
	}
	return s.auditRetention
}

// DeleteDevice implements store.RevocationStore.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	var cancelled []store.CommandChange
	err := s.update(func(w *writer) error {
		d, err := getDevice(w.tx, id)
		if err != nil {
			return err
		}
		if err := w.remove(d); err != nil {
			return err
		}
		// Its unfinished commands can never run: cancel them with it.
		cw := &cmdTx{tx: w.tx}
		if err := cw.cancelOpen(id, "", s.now()); err != nil {
			return err
		}
		cancelled = cw.changes
		if err := deleteInventory(w.tx, id); err != nil {
			return err
		}
		return s.writeAudit(ctx, w.tx)
	})
	if err == nil && len(cancelled) > 0 && s.onCommand != nil {
		s.onCommand(cancelled...)
	}
	return err
}

// CreateOperatorToken implements store.OperatorTokenStore.
func (s *Store) CreateOperatorToken(ctx context.Context, t store.OperatorToken) error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		ops, hashes := tx.Bucket(bucketOperators), tx.Bucket(bucketOperatorHashes)
		if t.Name == "" || len(t.Hash) == 0 || ops.Get([]byte(t.Name)) != nil || hashes.Get(t.Hash) != nil {
			return store.ErrExists
		}
		v, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encoding operator token: %w", err)
		}
		if err := ops.Put([]byte(t.Name), v); err != nil {
			return err
		}
		if err := hashes.Put(t.Hash, []byte(t.Name)); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx)
	})
}

func getOperator(tx *bbolt.Tx, name []byte) (store.OperatorToken, error) {
	var t store.OperatorToken
	v := tx.Bucket(bucketOperators).Get(name)
	if v == nil {
		return t, store.ErrNotFound
	}
	if err := json.Unmarshal(v, &t); err != nil {
		return t, fmt.Errorf("decoding operator token %s: %w", name, err)
	}
	return t, nil
}

// OperatorTokenByHash implements store.OperatorTokenStore.
func (s *Store) OperatorTokenByHash(_ context.Context, h []byte) (t store.OperatorToken, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		name := tx.Bucket(bucketOperatorHashes).Get(h)
		if name == nil {
			return store.ErrNotFound
		}
		t, err = getOperator(tx, name)
		return err
	})
	return t, err
}

// OperatorTokens implements store.OperatorTokenStore.
func (s *Store) OperatorTokens(_ context.Context) ([]store.OperatorToken, error) {
	var out []store.OperatorToken
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketOperators).ForEach(func(k, v []byte) error {
			var t store.OperatorToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decoding operator token %s: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// DeleteOperatorToken implements store.OperatorTokenStore.
func (s *Store) DeleteOperatorToken(ctx context.Context, name string) error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		t, err := getOperator(tx, []byte(name))
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketOperatorHashes).Delete(t.Hash); err != nil {
			return err
		}
		if err := tx.Bucket(bucketOperators).Delete([]byte(name)); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx)
	})
}

func getEnrollToken(tx *bbolt.Tx, id []byte) (store.EnrollmentToken, error) {
	var t store.EnrollmentToken
	v := tx.Bucket(bucketEnrollTokens).Get(id)
	if v == nil {
		return t, store.ErrNotFound
	}
	if err := json.Unmarshal(v, &t); err != nil {
		return t, fmt.Errorf("decoding enrollment token %s: %w", id, err)
	}
	return t, nil
}

func putEnrollToken(tx *bbolt.Tx, t store.EnrollmentToken) error {
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encoding enrollment token %s: %w", t.ID, err)
	}
	return tx.Bucket(bucketEnrollTokens).Put([]byte(t.ID), v)
}

// CreateEnrollmentToken implements store.EnrollmentTokenStore.
func (s *Store) CreateEnrollmentToken(ctx context.Context, t store.EnrollmentToken) error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		hashes := tx.Bucket(bucketEnrollTokenHash)
		if t.ID == "" || len(t.Hash) == 0 || tx.Bucket(bucketEnrollTokens).Get([]byte(t.ID)) != nil || hashes.Get(t.Hash) != nil {
			return store.ErrExists
		}
		if err := hashes.Put(t.Hash, []byte(t.ID)); err != nil {
			return err
		}
		if err := putEnrollToken(tx, t); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx)
	})
}

// EnrollmentTokens implements store.EnrollmentTokenStore.
func (s *Store) EnrollmentTokens(_ context.Context) ([]store.EnrollmentToken, error) {
	var out []store.EnrollmentToken
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEnrollTokens).ForEach(func(k, v []byte) error {
			var t store.EnrollmentToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decoding enrollment token %s: %w", k, err)
			}
			if !t.Revoked {
				out = append(out, t)
			}
			return nil
		})
	})
	return out, err
}

func enrollTokenByHash(tx *bbolt.Tx, h []byte) (store.EnrollmentToken, error) {
	id := tx.Bucket(bucketEnrollTokenHash).Get(h)
	if id == nil {
		return store.EnrollmentToken{}, store.ErrNotFound
	}
	return getEnrollToken(tx, id)
}

// EnrollmentTokenByHash implements store.EnrollmentTokenStore.
func (s *Store) EnrollmentTokenByHash(_ context.Context, h []byte) (t store.EnrollmentToken, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		t, err = enrollTokenByHash(tx, h)
		return err
	})
	return t, err
}

// RevokeEnrollmentToken implements store.EnrollmentTokenStore. The record
// stays as a tombstone so a later use is refused as revoked.
func (s *Store) RevokeEnrollmentToken(ctx context.Context, id string) error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		t, err := getEnrollToken(tx, []byte(id))
		if err != nil {
			return err
		}
		if t.Revoked {
			return store.ErrNotFound
		}
		t.Revoked = true
		if err := putEnrollToken(tx, t); err != nil {
			return err
		}
		return s.writeAudit(ctx, tx)
	})
}

// EnrollWithToken implements store.EnrollmentTokenStore.
func (s *Store) EnrollWithToken(_ context.Context, h []byte, now time.Time, d store.Device) (c store.Change, err error) {
	err = s.update(func(w *writer) error {
		t, err := enrollTokenByHash(w.tx, h)
		if err != nil {
			return err
		}
		if err := t.Check(now); err != nil {
			return err
		}
		t.Uses++
		if err := putEnrollToken(w.tx, t); err != nil {
			return err
		}
		c, err = createDevice(w, d)
		return err
	})
	return c, err
}

// AuditEntries implements store.AuditStore.
func (s *Store) AuditEntries(_ context.Context, after string, limit int) (entries []proto.AuditEntry, more bool, err error) {
	var start uint64
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("audit cursor %q: %w", after, err)
		}
		start = n
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(seqKey(start + 1)); k != nil; k, v = c.Next() {
			if len(entries) == limit {
				more = true
				return nil
			}
			var e proto.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decoding audit entry: %w", err)
			}
			entries = append(entries, e)
		}
		return nil
	})
	return entries, more, err
}
