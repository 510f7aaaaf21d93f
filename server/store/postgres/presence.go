package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/server/cluster"
)

var _ cluster.PresenceStore = (*Store)(nil)

// Heartbeat implements cluster.PresenceStore.
func (s *Store) Heartbeat(ctx context.Context, replica string, streams bool) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO replicas (id, streams) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET heartbeat = now(), streams = excluded.streams`, replica, streams)
	return err
}

// Streaming implements cluster.PresenceStore.
func (s *Store) Streaming(ctx context.Context, ttl time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT id FROM replicas WHERE streams AND heartbeat > now() - $1::interval", ttl)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// SetPresence implements cluster.PresenceStore, in batches.
func (s *Store) SetPresence(ctx context.Context, replica string, ids []string, connected bool) error {
	for start := 0; start < len(ids); start += batchSize {
		chunk := ids[start:min(start+batchSize, len(ids))]
		var err error
		if connected {
			_, err = s.pool.Exec(ctx, `INSERT INTO presence (device_id, replica) SELECT unnest($1::text[]), $2
				ON CONFLICT (device_id) DO UPDATE SET replica = excluded.replica, since = now()`, chunk, replica)
		} else {
			_, err = s.pool.Exec(ctx, "DELETE FROM presence WHERE device_id = ANY($1) AND replica = $2", chunk, replica)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Connected implements cluster.PresenceStore.
func (s *Store) Connected(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM presence p JOIN replicas r ON r.id = p.replica
		WHERE p.device_id = $1 AND r.heartbeat > now() - $2::interval)`, id, ttl).Scan(&ok)
	return ok, err
}

// Forget implements cluster.PresenceStore.
func (s *Store) Forget(ctx context.Context, replica string, ttl time.Duration) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM presence WHERE replica IN
			(SELECT id FROM replicas WHERE id = $1 OR heartbeat < now() - $2::interval)`, replica, ttl); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM replicas WHERE id = $1 OR heartbeat < now() - $2::interval", replica, ttl)
		return err
	})
}

// PolicyChangedSince returns, among ids, the devices whose desired policy
// changed at or after since, with their versions: what a replica re-rings
// after its bus was down.
func (s *Store) PolicyChangedSince(ctx context.Context, ids []string, since time.Time) ([]bridge.Ring, error) {
	var out []bridge.Ring
	for start := 0; start < len(ids); start += batchSize {
		chunk := ids[start:min(start+batchSize, len(ids))]
		rows, err := s.pool.Query(ctx, `SELECT id, (doc->'policy'->>'version')::bigint, coalesce(doc->>'fcmToken', '')
			FROM devices WHERE id = ANY($1) AND (doc->>'policyChangedAt')::timestamptz >= $2`, chunk, since)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c bridge.Ring
			if err := rows.Scan(&c.DeviceID, &c.Version, &c.FCMToken); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, c)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MissingDevices returns, among ids, those no device in the store has:
// deleted since a replica last heard the bus.
func (s *Store) MissingDevices(ctx context.Context, ids []string) ([]string, error) {
	var out []string
	for start := 0; start < len(ids); start += batchSize {
		chunk := ids[start:min(start+batchSize, len(ids))]
		rows, err := s.pool.Query(ctx, `SELECT x FROM unnest($1::text[]) AS x
			WHERE NOT EXISTS (SELECT 1 FROM devices WHERE id = x)`, chunk)
		if err != nil {
			return nil, err
		}
		missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		out = append(out, missing...)
	}
	return out, nil
}

// ErrNoSharedValue is returned by SharedValue for a name never set.
var ErrNoSharedValue = errors.New("no shared value")

// SharedValue returns the value every replica shares under name.
func (s *Store) SharedValue(ctx context.Context, name string) ([]byte, time.Time, error) {
	var v []byte
	var at time.Time
	err := s.pool.QueryRow(ctx, "SELECT value, updated_at FROM shared_state WHERE name = $1", name).Scan(&v, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, at, ErrNoSharedValue
	}
	return v, at, err
}

// InitSharedValue stores value under name unless one is there already,
// and returns the value in force: the first replica to start decides.
// created says whether value was stored.
func (s *Store) InitSharedValue(ctx context.Context, name string, value []byte) (stored []byte, created bool, err error) {
	tag, err := s.pool.Exec(ctx, "INSERT INTO shared_state (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", name, value)
	if err != nil {
		return nil, false, err
	}
	if tag.RowsAffected() == 1 {
		return value, true, nil
	}
	stored, _, err = s.SharedValue(ctx, name)
	return stored, false, err
}

// SetSharedValue replaces the value under name.
func (s *Store) SetSharedValue(ctx context.Context, name string, value []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO shared_state (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = now()`, name, value)
	return err
}
