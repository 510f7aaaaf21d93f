package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// DeleteDevice implements store.RevocationStore. Memberships and history
// go with the row (foreign keys and an explicit delete).
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	return s.tx(ctx, func(w *writer) error {
		cur, err := getDevice(ctx, w.tx, id, true)
		if err != nil {
			return err
		}
		st, failing := policy.Derive(cur.d)
		w.count(id, st, failing, -1)
		if _, err := w.tx.Exec(ctx, "DELETE FROM history WHERE device_id = $1", id); err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "DELETE FROM devices WHERE id = $1", id); err != nil {
			return err
		}
		// Its unfinished commands can never run: cancel them with it.
		if err := w.cancelOpenCommands(id, s.now()); err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "DELETE FROM escalations WHERE device_id = $1", id); err != nil {
			return err
		}
		return w.writeAudit(ctx)
	})
}

// CreateOperatorToken implements store.OperatorTokenStore.
func (s *Store) CreateOperatorToken(ctx context.Context, t store.OperatorToken) error {
	if t.Name == "" || len(t.Hash) == 0 {
		return store.ErrExists
	}
	return s.tx(ctx, func(w *writer) error {
		v, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encoding operator token: %w", err)
		}
		tag, err := w.tx.Exec(ctx, "INSERT INTO operator_tokens (name, hash, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", t.Name, t.Hash, v)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrExists
		}
		return w.writeAudit(ctx)
	})
}

func scanOperator(r pgx.Row) (store.OperatorToken, error) {
	var doc []byte
	var t store.OperatorToken
	if err := r.Scan(&doc); errors.Is(err, pgx.ErrNoRows) {
		return t, store.ErrNotFound
	} else if err != nil {
		return t, err
	}
	if err := json.Unmarshal(doc, &t); err != nil {
		return t, fmt.Errorf("decoding operator token: %w", err)
	}
	return t, nil
}

// OperatorTokenByHash implements store.OperatorTokenStore.
func (s *Store) OperatorTokenByHash(ctx context.Context, h []byte) (store.OperatorToken, error) {
	return scanOperator(s.pool.QueryRow(ctx, "SELECT doc FROM operator_tokens WHERE hash = $1", h))
}

// OperatorTokens implements store.OperatorTokenStore.
func (s *Store) OperatorTokens(ctx context.Context) ([]store.OperatorToken, error) {
	rows, err := s.pool.Query(ctx, "SELECT doc FROM operator_tokens ORDER BY name")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.OperatorToken, error) { return scanOperator(r) })
}

// DeleteOperatorToken implements store.OperatorTokenStore.
func (s *Store) DeleteOperatorToken(ctx context.Context, name string) error {
	return s.tx(ctx, func(w *writer) error {
		tag, err := w.tx.Exec(ctx, "DELETE FROM operator_tokens WHERE name = $1", name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return w.writeAudit(ctx)
	})
}

func scanEnrollToken(r pgx.Row) (store.EnrollmentToken, error) {
	var doc []byte
	var t store.EnrollmentToken
	if err := r.Scan(&doc); errors.Is(err, pgx.ErrNoRows) {
		return t, store.ErrNotFound
	} else if err != nil {
		return t, err
	}
	if err := json.Unmarshal(doc, &t); err != nil {
		return t, fmt.Errorf("decoding enrollment token: %w", err)
	}
	return t, nil
}

func (w *writer) putEnrollToken(t store.EnrollmentToken) error {
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encoding enrollment token %s: %w", t.ID, err)
	}
	_, err = w.tx.Exec(w.ctx, "UPDATE enrollment_tokens SET doc = $2 WHERE id = $1", t.ID, v)
	return err
}

// CreateEnrollmentToken implements store.EnrollmentTokenStore.
func (s *Store) CreateEnrollmentToken(ctx context.Context, t store.EnrollmentToken) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return store.ErrExists
	}
	return s.tx(ctx, func(w *writer) error {
		v, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encoding enrollment token: %w", err)
		}
		tag, err := w.tx.Exec(ctx, "INSERT INTO enrollment_tokens (id, hash, doc) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", t.ID, t.Hash, v)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrExists
		}
		return w.writeAudit(ctx)
	})
}

// EnrollmentTokens implements store.EnrollmentTokenStore.
func (s *Store) EnrollmentTokens(ctx context.Context) ([]store.EnrollmentToken, error) {
	rows, err := s.pool.Query(ctx, "SELECT doc FROM enrollment_tokens ORDER BY id")
	if err != nil {
		return nil, err
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.EnrollmentToken, error) { return scanEnrollToken(r) })
	if err != nil {
		return nil, err
	}
	var out []store.EnrollmentToken
	for _, t := range all {
		if !t.Revoked {
			out = append(out, t)
		}
	}
	return out, nil
}

// EnrollmentTokenByHash implements store.EnrollmentTokenStore.
func (s *Store) EnrollmentTokenByHash(ctx context.Context, h []byte) (store.EnrollmentToken, error) {
	return scanEnrollToken(s.pool.QueryRow(ctx, "SELECT doc FROM enrollment_tokens WHERE hash = $1", h))
}

// RevokeEnrollmentToken implements store.EnrollmentTokenStore. The row
// stays as a tombstone so a later use is refused as revoked.
func (s *Store) RevokeEnrollmentToken(ctx context.Context, id string) error {
	return s.tx(ctx, func(w *writer) error {
		t, err := scanEnrollToken(w.tx.QueryRow(ctx, "SELECT doc FROM enrollment_tokens WHERE id = $1 FOR UPDATE", id))
		if err != nil {
			return err
		}
		if t.Revoked {
			return store.ErrNotFound
		}
		t.Revoked = true
		if err := w.putEnrollToken(t); err != nil {
			return err
		}
		return w.writeAudit(ctx)
	})
}

// EnrollWithToken implements store.EnrollmentTokenStore. The token's row
// is locked before the check, so concurrent enrollments count uses one at
// a time and never pass MaxUses.
func (s *Store) EnrollWithToken(ctx context.Context, h []byte, now time.Time, d store.Device) (c store.Change, err error) {
	err = s.tx(ctx, func(w *writer) error {
		t, err := scanEnrollToken(w.tx.QueryRow(ctx, "SELECT doc FROM enrollment_tokens WHERE hash = $1 FOR UPDATE", h))
		if err != nil {
			return err
		}
		if err := t.Check(now); err != nil {
			return err
		}
		t.Uses++
		if err := w.putEnrollToken(t); err != nil {
			return err
		}
		c, err = w.create(d)
		return err
	})
	return c, err
}

// AuditEntries implements store.AuditStore.
func (s *Store) AuditEntries(ctx context.Context, after string, limit int) (entries []proto.AuditEntry, more bool, err error) {
	var start int64
	if after != "" {
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("audit cursor %q: %w", after, err)
		}
		start = n
	}
	rows, err := s.pool.Query(ctx, "SELECT doc FROM audit WHERE id > $1 ORDER BY id LIMIT $2", start, limit+1)
	if err != nil {
		return nil, false, err
	}
	entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (proto.AuditEntry, error) {
		var doc []byte
		var e proto.AuditEntry
		if err := r.Scan(&doc); err != nil {
			return e, err
		}
		return e, json.Unmarshal(doc, &e)
	})
	if err != nil {
		return nil, false, err
	}
	if len(entries) > limit {
		return entries[:limit], true, nil
	}
	return entries, false, nil
}
