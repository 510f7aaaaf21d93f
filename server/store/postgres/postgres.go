// Package postgres is the PostgreSQL implementation of store.Store, for
// fleets that outgrow one process: several doorbell replicas share one
// database. It passes the same conformance suite (storetest) as bolt.
//
// bbolt runs one writer at a time; here transactions run side by side at
// READ COMMITTED, and each read-modify-write says how it stays correct:
//   - a device is read FOR NO KEY UPDATE before it is changed (reports and
//     their replay checks, edits, FCM tokens), so two writers of one
//     device take turns and the second sees the first's result;
//   - an enrollment token's row is locked before its use is counted;
//   - group structure edits (create, update, members, delete) take one
//     transaction-scoped advisory lock, so they see each other's groups;
//     they lock the devices they recompute in id order, in batches;
//   - names and hashes are unique by constraint, the final word on a race;
//   - fleet counters are sharded rows (a hash of the device id), updated
//     only when a device's derived state or drift changes.
//
// Every transaction takes its locks in one order (enrollment token,
// devices by id, counters by key, the audit counter), so none deadlock;
// one that fails with a serialization or deadlock error is retried anyway.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// AuditRetention is how many audit entries the store keeps.
const AuditRetention = 100_000

// counterShards is how many rows each fleet counter is spread over.
const counterShards = 32

// batchSize bounds the rows one statement of a big group edit carries.
var batchSize = 1000

// Store is a PostgreSQL-backed store.Store.
type Store struct {
	pool           *pgxpool.Pool
	now            func() time.Time
	onTransition   func(...proto.Transition)
	onCommand      func(...store.CommandChange)
	health         health
	auditRetention int64
}

var _ store.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used to time transitions caused by edits; the
// default is time.Now.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithTransitionHook calls f, after the transaction committed, with every
// state transition it recorded. f must not block.
func WithTransitionHook(f func(...proto.Transition)) Option {
	return func(s *Store) { s.onTransition = f }
}

// WithAuditRetention changes how many audit entries are kept (tests).
func WithAuditRetention(n int64) Option { return func(s *Store) { s.auditRetention = n } }

// DefaultMaxConns is the pool size when the URL does not set
// pool_max_conns: enough for reports from many devices at once.
const DefaultMaxConns = 16

// Open connects to the database at url (a postgres:// URL or key=value
// string), applies pending migrations, and returns the store.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	s := &Store{pool: pool, now: time.Now, auditRetention: AuditRetention}
	for _, o := range opts {
		o(s)
	}
	if err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Pool is the store's connection pool, for the other parts of a replica
// that keep shared state in the same database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// migrateLock is the advisory lock key replicas take while migrating, so
// two starting together apply each migration once.
const migrateLock = 0x646f6f7262656c6c // "doorbell"

// Migrate applies the embedded migrations not yet applied, in name order,
// each in its own transaction, under a session advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLock)); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(migrateLock))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", version).Scan(&done); err != nil {
			return err
		}
		if done {
			continue
		}
		sql, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", version)
			return err
		})
		if err != nil {
			return fmt.Errorf("applying migration %s: %w", version, err)
		}
	}
	return nil
}

// retryable reports whether err is a conflict a retry resolves.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// uniqueViolation returns the constraint a unique violation names, or "".
func uniqueViolation(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName
	}
	return ""
}

// tx runs f in a transaction, retrying on serialization failures and
// deadlocks, then hands the transitions it recorded to the hook.
func (s *Store) tx(ctx context.Context, f func(*writer) error) error {
	for attempt := 0; ; attempt++ {
		var w *writer
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			w = &writer{s: s, tx: tx, ctx: ctx}
			if err := f(w); err != nil {
				return err
			}
			return w.flush()
		})
		if err != nil && retryable(err) && attempt < 10 {
			continue
		}
		err = s.noteWrite(err)
		if err == nil && len(w.transitions) > 0 && s.onTransition != nil {
			s.onTransition(w.transitions...)
		}
		if err == nil && len(w.cmdChanges) > 0 && s.onCommand != nil {
			s.onCommand(w.cmdChanges...)
		}
		return err
	}
}

func shardOf(id string) int16 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int16(h.Sum32() % counterShards)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// row is a device as read for a change, with its history count.
type row struct {
	d     store.Device
	histN int64
}

// devCols are the columns scanDevice reads, in its order.
const devCols = "id, doc, hist_n, last_seen_at"

// scanDevice decodes a device row. LastSeenAt lives in its own column
// (MarkSeen updates it without rewriting the record): the later of the
// column and the record's copy is the device's.
func scanDevice(r pgx.Row) (row, error) {
	var id string
	var doc []byte
	var seen *time.Time
	var out row
	if err := r.Scan(&id, &doc, &out.histN, &seen); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return out, store.ErrNotFound
		}
		return out, err
	}
	if err := json.Unmarshal(doc, &out.d); err != nil {
		return out, fmt.Errorf("decoding device %s: %w", id, err)
	}
	if seen != nil && seen.After(out.d.LastSeenAt) {
		out.d.LastSeenAt = seen.UTC()
	}
	return out, nil
}

func getDevice(ctx context.Context, q querier, id string, lock bool) (row, error) {
	sql := "SELECT " + devCols + " FROM devices WHERE id = $1"
	if lock {
		sql += " FOR NO KEY UPDATE"
	}
	return scanDevice(q.QueryRow(ctx, sql, id))
}

// lockDevices reads and locks the devices of ids (sorted, unique) in id
// order, batch by batch; missing ones are absent from the map.
func lockDevices(ctx context.Context, tx pgx.Tx, ids []string) (map[string]row, error) {
	out := make(map[string]row, len(ids))
	for start := 0; start < len(ids); start += batchSize {
		chunk := ids[start:min(start+batchSize, len(ids))]
		rows, err := tx.Query(ctx, "SELECT "+devCols+" FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", chunk)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			r, err := scanDevice(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[r.d.ID] = r
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CreateDevice implements store.DeviceStore.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) (c store.Change, err error) {
	err = s.tx(ctx, func(w *writer) error {
		c, err = w.create(d)
		return err
	})
	return c, err
}

// Device implements store.DeviceStore.
func (s *Store) Device(ctx context.Context, id string) (store.Device, error) {
	r, err := getDevice(ctx, s.pool, id, false)
	return r.d, err
}

// DeviceAuth implements store.DeviceStore: the secret hash column and two
// fields of the record, without decoding it in Go.
func (s *Store) DeviceAuth(ctx context.Context, id string) (store.DeviceAuth, error) {
	a := store.DeviceAuth{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT secret_hash, coalesce((doc->>'clientCert')::boolean, false),
		(doc->'policy'->>'version')::bigint FROM devices WHERE id = $1`, id).Scan(&a.SecretHash, &a.ClientCert, &a.PolicyVersion)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.DeviceAuth{}, store.ErrNotFound
	}
	return a, err
}

// DevicePolicy implements store.DeviceStore.
func (s *Store) DevicePolicy(ctx context.Context, id string) (proto.DevicePolicy, error) {
	var p proto.DevicePolicy
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT doc->'policy' FROM devices WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, store.ErrNotFound
	}
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(doc, &p); err != nil {
		return p, fmt.Errorf("decoding policy of device %s: %w", id, err)
	}
	return p, nil
}

// DeviceBySecretHash implements store.DeviceStore.
func (s *Store) DeviceBySecretHash(ctx context.Context, h []byte) (store.Device, error) {
	r, err := scanDevice(s.pool.QueryRow(ctx, "SELECT "+devCols+" FROM devices WHERE secret_hash = $1", h))
	return r.d, err
}

// Devices implements store.DeviceStore. A match filter runs in Go over
// pages read in id order; DevicesInState filters in SQL.
func (s *Store) Devices(ctx context.Context, after string, limit int, match func(store.Device) bool) (devs []store.Device, more bool, err error) {
	page := limit + 1
	if match != nil {
		page = max(page, 500)
	}
	for {
		batch, err := s.page(ctx, "SELECT "+devCols+" FROM devices WHERE id > $1 ORDER BY id LIMIT $2", after, page)
		if err != nil {
			return nil, false, err
		}
		for _, d := range batch {
			if match != nil && !match(d) {
				continue
			}
			if len(devs) == limit {
				return devs, true, nil
			}
			devs = append(devs, d)
		}
		if len(batch) < page {
			return devs, false, nil
		}
		after = batch[len(batch)-1].ID
	}
}

// DevicesInState implements store.StateLister: an index range over
// (state, id).
func (s *Store) DevicesInState(ctx context.Context, state proto.ComplianceState, after string, limit int) ([]store.Device, bool, error) {
	devs, err := s.page(ctx, "SELECT "+devCols+" FROM devices WHERE state = $3 AND id > $1 ORDER BY id LIMIT $2", after, limit+1, string(state))
	if err != nil {
		return nil, false, err
	}
	if len(devs) > limit {
		return devs[:limit], true, nil
	}
	return devs, false, nil
}

// DevicesFailingBefore implements store.FailingLister: a comparison on
// the non_compliant_since column (indexed where set).
func (s *Store) DevicesFailingBefore(ctx context.Context, t time.Time, after string, limit int) ([]store.Device, bool, error) {
	devs, err := s.page(ctx, "SELECT "+devCols+" FROM devices WHERE non_compliant_since < $3 AND id > $1 ORDER BY id LIMIT $2", after, limit+1, t.UTC())
	if err != nil {
		return nil, false, err
	}
	if len(devs) > limit {
		return devs[:limit], true, nil
	}
	return devs, false, nil
}

func (s *Store) page(ctx context.Context, sql string, args ...any) ([]store.Device, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		r, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r.d)
	}
	return out, rows.Err()
}

// SaveReport implements store.ReportStore. The device row is locked before
// the replay checks, so two copies of one report take turns and the second
// sees the first's nonce.
func (s *Store) SaveReport(ctx context.Context, id string, r store.Report) (c store.Change, err error) {
	err = s.tx(ctx, func(w *writer) error {
		cur, err := getDevice(ctx, w.tx, id, true)
		if err != nil {
			return err
		}
		d := cur.d
		before := d
		if err := policy.AcceptReport(&d, r); err != nil {
			return err
		}
		c, err = w.put(&before, cur.histN, d, proto.CauseReport, r.ReceivedAt)
		return err
	})
	return c, err
}

// MarkSeen implements store.SeenStore: one batched update of the
// last_seen_at column, rows locked in id order first (the CTE is
// referenced, so it runs) like every other multi-device write.
func (s *Store) MarkSeen(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return s.tx(ctx, func(w *writer) error {
		for start := 0; start < len(ids); start += batchSize {
			chunk := ids[start:min(start+batchSize, len(ids))]
			ats := make([]time.Time, len(chunk))
			for i, id := range chunk {
				ats[i] = seen[id].UTC()
			}
			if _, err := w.tx.Exec(ctx, `WITH l AS (SELECT id FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE)
				UPDATE devices d SET last_seen_at = u.at
				FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
				WHERE d.id = u.id AND d.id IN (SELECT id FROM l) AND (d.last_seen_at IS NULL OR d.last_seen_at < u.at)`, chunk, ats); err != nil {
				return err
			}
		}
		return nil
	})
}

// SetFCMToken implements store.TokenStore.
func (s *Store) SetFCMToken(ctx context.Context, id, token string) error {
	return s.tx(ctx, func(w *writer) error {
		cur, err := getDevice(ctx, w.tx, id, true)
		if err != nil || cur.d.FCMToken == token {
			return err
		}
		cur.d.FCMToken = token
		return w.write(cur.d, cur.histN)
	})
}

// DeleteFCMToken implements store.TokenStore.
func (s *Store) DeleteFCMToken(ctx context.Context, id, token string) error {
	return s.tx(ctx, func(w *writer) error {
		cur, err := getDevice(ctx, w.tx, id, true)
		if errors.Is(err, store.ErrNotFound) || (err == nil && cur.d.FCMToken != token) {
			return nil
		}
		if err != nil {
			return err
		}
		cur.d.FCMToken = ""
		return w.write(cur.d, cur.histN)
	})
}

// itoa formats an audit id.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
