package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// writer is one transaction that keeps history, counters and the
// transitions to announce in step with every device it writes. Device
// updates, history rows and counter deltas are queued and written by
// flush in batched statements.
type writer struct {
	s   *Store
	tx  pgx.Tx
	ctx context.Context

	updates     map[string]pendingDevice
	order       []string // ids of updates, in first-write order
	histIDs     []string
	histNs      []int64
	histDocs    [][]byte
	deltas      map[counterKey]int64
	transitions []proto.Transition
	cmdChanges  []store.CommandChange
	groups      map[string]store.Group // loaded on first use
	audit       *proto.AuditEntry      // written last by flush
}

type pendingDevice struct {
	d     store.Device
	histN int64
}

type counterKey struct {
	shard int16
	kind  string // "s" state, "d" drifting setting
	key   string
}

func (w *writer) count(id string, state proto.ComplianceState, failing []proto.SettingFailure, n int64) {
	if w.deltas == nil {
		w.deltas = map[counterKey]int64{}
	}
	sh := shardOf(id)
	w.deltas[counterKey{sh, "s", string(state)}] += n
	for _, f := range failing {
		w.deltas[counterKey{sh, "d", f.Setting}] += n
	}
}

// account counts after (and uncounts before, when not nil) and records a
// transition when the derived state changed; it sets PolicyChangedAt on a
// version bump and returns what the write does, with the device's new
// history count.
func (w *writer) account(before *store.Device, histN int64, after *store.Device, cause proto.EventCause, at time.Time) (store.Change, int64, error) {
	pw := policy.Apply(before, after, cause, at)
	if before != nil {
		w.count(before.ID, pw.From, pw.FromFailing, -1)
	}
	c := pw.Change
	w.count(after.ID, c.State, c.Failing, 1)
	for _, t := range c.Transitions {
		rec := t
		rec.DeviceID = ""
		v, err := json.Marshal(rec)
		if err != nil {
			return c, 0, err
		}
		histN++
		w.histIDs = append(w.histIDs, after.ID)
		w.histNs = append(w.histNs, histN)
		w.histDocs = append(w.histDocs, v)
		w.transitions = append(w.transitions, t)
	}
	return c, histN, nil
}

// put queues after, the new state of a device that was before, counting
// and recording a change of derived state with cause at time at. It
// returns what it wrote.
func (w *writer) put(before *store.Device, histN int64, after store.Device, cause proto.EventCause, at time.Time) (store.Change, error) {
	c, n, err := w.account(before, histN, &after, cause, at)
	if err != nil {
		return c, err
	}
	return c, w.write(after, n)
}

// write queues the device record as is.
func (w *writer) write(d store.Device, histN int64) error {
	if w.updates == nil {
		w.updates = map[string]pendingDevice{}
	}
	if _, ok := w.updates[d.ID]; !ok {
		w.order = append(w.order, d.ID)
	}
	w.updates[d.ID] = pendingDevice{d, histN}
	return nil
}

// create inserts a new device, counted and with its first transition.
func (w *writer) create(d store.Device) (store.Change, error) {
	if len(d.SecretHash) == 0 {
		return store.Change{}, store.ErrExists
	}
	c, n, err := w.account(nil, 0, &d, proto.CauseEnroll, d.EnrolledAt)
	if err != nil {
		return c, err
	}
	doc, err := json.Marshal(d)
	if err != nil {
		return c, fmt.Errorf("encoding device %s: %w", d.ID, err)
	}
	var seen *time.Time
	if !d.LastSeenAt.IsZero() {
		seen = &d.LastSeenAt
	}
	// ON CONFLICT DO NOTHING keeps the transaction usable: a taken id or
	// secret is an answer, not an aborted transaction.
	tag, err := w.tx.Exec(w.ctx, `INSERT INTO devices (id, secret_hash, state, hist_n, last_seen_at, doc, non_compliant_since) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT DO NOTHING`, d.ID, d.SecretHash, string(c.State), n, seen, doc, nonCompliantSince(d))
	if err != nil {
		return c, err
	}
	if tag.RowsAffected() == 0 {
		return c, store.ErrExists
	}
	return c, nil
}

// nonCompliantSince is the non_compliant_since column of d: NULL while
// it is not failing.
func nonCompliantSince(d store.Device) *time.Time {
	if d.NonCompliantSince.IsZero() {
		return nil
	}
	t := d.NonCompliantSince.UTC()
	return &t
}

// flush writes the queued devices, history and counter deltas, sending
// every statement in one round trip (a pipeline in the transaction).
func (w *writer) flush() error {
	b := &pgx.Batch{}
	for start := 0; start < len(w.order); start += batchSize {
		chunk := w.order[start:min(start+batchSize, len(w.order))]
		docs := make([][]byte, len(chunk))
		states := make([]string, len(chunk))
		ns := make([]int64, len(chunk))
		since := make([]*time.Time, len(chunk))
		for i, id := range chunk {
			p := w.updates[id]
			v, err := json.Marshal(p.d)
			if err != nil {
				return fmt.Errorf("encoding device %s: %w", id, err)
			}
			st, _ := policy.Derive(p.d)
			docs[i], states[i], ns[i], since[i] = v, string(st), p.histN, nonCompliantSince(p.d)
		}
		b.Queue(`UPDATE devices d SET doc = u.doc, state = u.state, hist_n = u.n, non_compliant_since = u.since
			FROM unnest($1::text[], $2::json[], $3::text[], $4::bigint[], $5::timestamptz[]) AS u(id, doc, state, n, since)
			WHERE d.id = u.id`, chunk, docs, states, ns, since)
	}
	for start := 0; start < len(w.histIDs); start += batchSize {
		end := min(start+batchSize, len(w.histIDs))
		ids, ns, docs := w.histIDs[start:end], w.histNs[start:end], w.histDocs[start:end]
		b.Queue(`INSERT INTO history (device_id, n, doc)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::json[])`, ids, ns, docs)
		old := make([]int64, len(ns))
		for i, n := range ns {
			old[i] = n - store.HistoryLimit
		}
		b.Queue(`DELETE FROM history h USING unnest($1::text[], $2::bigint[]) AS o(id, n)
			WHERE h.device_id = o.id AND h.n = o.n`, ids, old)
	}
	w.queueCounters(b)
	if b.Len() > 0 {
		if err := w.tx.SendBatch(w.ctx, b).Close(); err != nil {
			return err
		}
	}
	return w.flushAudit()
}

// queueCounters queues the non-zero deltas in key order (the lock order
// every transaction follows).
func (w *writer) queueCounters(b *pgx.Batch) {
	keys := make([]counterKey, 0, len(w.deltas))
	for k, n := range w.deltas {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.shard != b.shard {
			return a.shard < b.shard
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.key < b.key
	})
	shards := make([]int16, len(keys))
	kinds := make([]string, len(keys))
	names := make([]string, len(keys))
	ns := make([]int64, len(keys))
	for i, k := range keys {
		shards[i], kinds[i], names[i], ns[i] = k.shard, k.kind, k.key, w.deltas[k]
	}
	b.Queue(`INSERT INTO fleet_counters (shard, kind, key, n)
		SELECT * FROM unnest($1::smallint[], $2::"char"[], $3::text[], $4::bigint[])
		ON CONFLICT (shard, kind, key) DO UPDATE SET n = fleet_counters.n + excluded.n`, shards, kinds, names, ns)
}

// allGroups loads every group once per transaction (members not needed:
// devices carry their group ids).
func (w *writer) allGroups() (map[string]store.Group, error) {
	if w.groups != nil {
		return w.groups, nil
	}
	rows, err := w.tx.Query(w.ctx, "SELECT id, doc FROM groups")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	w.groups = map[string]store.Group{}
	for rows.Next() {
		var id string
		var doc []byte
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, err
		}
		var g store.Group
		if err := json.Unmarshal(doc, &g); err != nil {
			return nil, fmt.Errorf("decoding group %s: %w", id, err)
		}
		w.groups[id] = g
	}
	return w.groups, rows.Err()
}

func (w *writer) groupsOf(d store.Device) ([]store.Group, error) {
	if len(d.Groups) == 0 {
		return nil, nil // most edits: no group to read
	}
	all, err := w.allGroups()
	return policy.GroupsOf(d, all), err
}

// writeAudit queues the audit entry carried by ctx, if any; flush appends
// it last.
func (w *writer) writeAudit(ctx context.Context) error {
	if e, ok := store.AuditFrom(ctx); ok {
		w.audit = &e
	}
	return nil
}

// flushAudit appends the queued entry, taking the next id from the audit
// counter, and trims the log to the retention.
func (w *writer) flushAudit() error {
	if w.audit == nil {
		return nil
	}
	e := *w.audit
	var n int64
	if err := w.tx.QueryRow(w.ctx, "UPDATE audit_seq SET n = n + 1 RETURNING n").Scan(&n); err != nil {
		return err
	}
	e.ID = itoa(n)
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding audit entry: %w", err)
	}
	if _, err := w.tx.Exec(w.ctx, "INSERT INTO audit (id, doc) VALUES ($1, $2)", n, v); err != nil {
		return err
	}
	if keep := w.s.auditRetention; n > keep {
		_, err = w.tx.Exec(w.ctx, "DELETE FROM audit WHERE id <= $1", n-keep)
	}
	return err
}
