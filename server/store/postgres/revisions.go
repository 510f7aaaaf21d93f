package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// addRevision records the layer's new state as its next revision when it
// differs from the last one, in w's transaction, dropping those past
// store.RevisionLimit. The caller holds the layer's lock (the groups lock
// or the device row).
func (w *writer) addRevision(kind store.RevisionKind, id string, l store.Layer, mode proto.Mode, at time.Time) error {
	var prev store.Revision
	var doc []byte
	err := w.tx.QueryRow(w.ctx, "SELECT doc FROM revisions WHERE kind = $1 AND layer_id = $2 ORDER BY n DESC LIMIT 1", string(kind), id).Scan(&doc)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(doc, &prev); err != nil {
			return fmt.Errorf("decoding revision %s %s: %w", kind, id, err)
		}
	}
	r, ok := policy.NextRevision(w.ctx, prev, l, mode, at)
	if !ok {
		return nil
	}
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := w.tx.Exec(w.ctx, "INSERT INTO revisions (kind, layer_id, n, doc) VALUES ($1, $2, $3, $4)", string(kind), id, r.N, v); err != nil {
		return err
	}
	_, err = w.tx.Exec(w.ctx, "DELETE FROM revisions WHERE kind = $1 AND layer_id = $2 AND n <= $3", string(kind), id, r.N-store.RevisionLimit)
	return err
}

// Revisions implements store.RevisionStore.
func (s *Store) Revisions(ctx context.Context, kind store.RevisionKind, id string) ([]store.Revision, error) {
	rows, err := s.pool.Query(ctx, "SELECT doc FROM revisions WHERE kind = $1 AND layer_id = $2 ORDER BY n DESC", string(kind), id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Revision
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var r store.Revision
		if err := json.Unmarshal(doc, &r); err != nil {
			return nil, fmt.Errorf("decoding revision %s %s: %w", kind, id, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Revision implements store.RevisionStore.
func (s *Store) Revision(ctx context.Context, kind store.RevisionKind, id string, n int64) (r store.Revision, err error) {
	if n <= 0 {
		return r, store.ErrNotFound
	}
	var doc []byte
	err = s.pool.QueryRow(ctx, "SELECT doc FROM revisions WHERE kind = $1 AND layer_id = $2 AND n = $3", string(kind), id, n).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, store.ErrNotFound
	}
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(doc, &r)
}

// MarkEscalated implements store.EscalationStore.
func (s *Store) MarkEscalated(ctx context.Context, deviceID, step string, since time.Time) (first bool, err error) {
	v := since.UTC().Format(time.RFC3339Nano)
	err = s.tx(ctx, func(w *writer) error {
		// One statement decides: a new step, or one fired for an earlier
		// since, is written; the same since again changes nothing.
		tag, err := w.tx.Exec(ctx, `INSERT INTO escalations (device_id, step, since) VALUES ($1, $2, $3)
			ON CONFLICT (device_id, step) DO UPDATE SET since = excluded.since
			WHERE escalations.since <> excluded.since`, deviceID, step, v)
		if err != nil {
			return err
		}
		first = tag.RowsAffected() == 1
		if !first {
			return nil
		}
		return w.writeAudit(ctx)
	})
	return first, err
}
