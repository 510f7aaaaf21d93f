package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// groupLock is the transaction-scoped advisory lock every group structure
// edit takes: group edits are operator actions, and taking turns means
// each recomputes its members against the others' committed groups (a
// device edit needs no such lock: it holds its device's row, which a
// group edit must take too before it recomputes that device).
const groupLock = 0x67726f757073 // "groups"

func (w *writer) lockGroups() error {
	_, err := w.tx.Exec(w.ctx, "SELECT pg_advisory_xact_lock($1)", int64(groupLock))
	return err
}

func groupDoc(g store.Group) ([]byte, error) {
	g.Members = nil
	v, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encoding group %s: %w", g.ID, err)
	}
	return v, nil
}

func getGroup(ctx context.Context, q querier, id string, lock bool) (store.Group, error) {
	sql := "SELECT doc FROM groups WHERE id = $1"
	if lock {
		sql += " FOR UPDATE"
	}
	var doc []byte
	var g store.Group
	err := q.QueryRow(ctx, sql, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return g, store.ErrNotFound
	}
	if err != nil {
		return g, err
	}
	if err := json.Unmarshal(doc, &g); err != nil {
		return g, fmt.Errorf("decoding group %s: %w", id, err)
	}
	g.Members, err = members(ctx, q, id)
	return g, err
}

func members(ctx context.Context, q querier, gid string) ([]string, error) {
	rows, err := q.Query(ctx, "SELECT device_id FROM group_members WHERE group_id = $1 ORDER BY device_id", gid)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if len(out) == 0 {
		out = nil
	}
	return out, err
}

// lockMembers locks the devices of ids (sorted) and returns them, or
// ErrUnknownDevice naming the missing ones.
func (w *writer) lockMembers(ids []string) (map[string]row, error) {
	rows, err := lockDevices(w.ctx, w.tx, ids)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, id := range ids {
		if _, ok := rows[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nil, store.UnknownDevices(unknown)
	}
	return rows, nil
}

// setMembership adds (add true) or removes the pairs (gid, id) for ids,
// in batches.
func (w *writer) setMembership(gid string, ids []string, add bool) error {
	for start := 0; start < len(ids); start += batchSize {
		chunk := ids[start:min(start+batchSize, len(ids))]
		var err error
		if add {
			_, err = w.tx.Exec(w.ctx, `INSERT INTO group_members (group_id, device_id)
				SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, gid, chunk)
		} else {
			_, err = w.tx.Exec(w.ctx, "DELETE FROM group_members WHERE group_id = $1 AND device_id = ANY($2)", gid, chunk)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// recompute re-derives the effective policy of each device in ids (locked
// in rows) after a group change (w.groups already reflects it), setting
// membership of group gid to member(id) when gid is not empty.
func (w *writer) recompute(rows map[string]row, ids []string, gid string, member func(string) bool, at time.Time) ([]store.Change, error) {
	var changes []store.Change
	for _, id := range ids {
		r, ok := rows[id]
		if !ok {
			return nil, fmt.Errorf("group member %s: %w", id, store.ErrNotFound)
		}
		d := r.d
		before := d
		all, err := w.allGroups()
		if err != nil {
			return nil, err
		}
		changed, write := policy.Regroup(&d, all, gid, member)
		if !write {
			continue
		}
		c, err := w.put(&before, r.histN, d, proto.CauseGroup, at)
		if err != nil {
			return nil, err
		}
		if changed {
			changes = append(changes, c)
		}
	}
	return changes, nil
}

// CreateGroup implements store.GroupStore.
func (s *Store) CreateGroup(ctx context.Context, g store.Group) (changes []store.Change, err error) {
	g.Members = policy.NormalizeMembers(g.Members)
	err = s.tx(ctx, func(w *writer) error {
		if err := w.lockGroups(); err != nil {
			return err
		}
		var idTaken, nameTaken bool
		if err := w.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM groups WHERE id = $1), EXISTS (SELECT 1 FROM groups WHERE name = $2)", g.ID, g.Name).Scan(&idTaken, &nameTaken); err != nil {
			return err
		}
		switch {
		case idTaken:
			return store.ErrExists
		case nameTaken:
			return store.ErrNameTaken
		}
		rows, err := w.lockMembers(g.Members)
		if err != nil {
			return err
		}
		doc, err := groupDoc(g)
		if err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "INSERT INTO groups (id, name, doc) VALUES ($1, $2, $3)", g.ID, g.Name, doc); err != nil {
			return groupConflict(err)
		}
		if err := w.setMembership(g.ID, g.Members, true); err != nil {
			return err
		}
		all, err := w.allGroups()
		if err != nil {
			return err
		}
		all[g.ID] = g
		changes, err = w.recompute(rows, g.Members, g.ID, func(string) bool { return true }, s.now())
		if err != nil {
			return err
		}
		if err := w.addRevision(store.RevisionGroup, g.ID, g.Layer, g.Mode, s.now()); err != nil {
			return err
		}
		return w.writeAudit(ctx)
	})
	return changes, err
}

// groupConflict maps a unique violation on groups to the store's errors.
func groupConflict(err error) error {
	switch uniqueViolation(err) {
	case "groups_pkey":
		return store.ErrExists
	case "groups_name_key":
		return store.ErrNameTaken
	}
	return err
}

// Group implements store.GroupStore.
func (s *Store) Group(ctx context.Context, id string) (store.Group, error) {
	return getGroup(ctx, s.pool, id, false)
}

// Groups implements store.GroupStore.
func (s *Store) Groups(ctx context.Context) ([]store.Group, error) {
	var out []store.Group
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One snapshot for groups and members.
		if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT id, doc FROM groups")
		if err != nil {
			return err
		}
		byID := map[string]int{}
		for rows.Next() {
			var id string
			var doc []byte
			if err := rows.Scan(&id, &doc); err != nil {
				rows.Close()
				return err
			}
			var g store.Group
			if err := json.Unmarshal(doc, &g); err != nil {
				rows.Close()
				return fmt.Errorf("decoding group %s: %w", id, err)
			}
			byID[id] = len(out)
			out = append(out, g)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, "SELECT group_id, device_id FROM group_members ORDER BY group_id, device_id")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var gid, did string
			if err := rows.Scan(&gid, &did); err != nil {
				return err
			}
			if i, ok := byID[gid]; ok {
				out[i].Members = append(out[i].Members, did)
			}
		}
		return rows.Err()
	})
	policy.SortGroups(out)
	return out, err
}

// UpdateGroup implements store.GroupStore.
func (s *Store) UpdateGroup(ctx context.Context, id string, change func(store.Group) (store.Group, error)) (g store.Group, changes []store.Change, err error) {
	err = s.tx(ctx, func(w *writer) error {
		if err := w.lockGroups(); err != nil {
			return err
		}
		cur, err := getGroup(ctx, w.tx, id, true)
		if err != nil {
			return err
		}
		if g, err = policy.ChangeGroup(cur, change); err != nil {
			return err
		}
		if g.Name != cur.Name {
			var taken bool
			if err := w.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM groups WHERE name = $1)", g.Name).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return store.ErrNameTaken
			}
		}
		rows, err := w.lockMembers(g.Members)
		if err != nil {
			return err
		}
		doc, err := groupDoc(g)
		if err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "UPDATE groups SET name = $2, doc = $3 WHERE id = $1", g.ID, g.Name, doc); err != nil {
			return groupConflict(err)
		}
		all, err := w.allGroups()
		if err != nil {
			return err
		}
		all[g.ID] = g
		changes, err = w.recompute(rows, g.Members, "", nil, s.now())
		if err != nil {
			return err
		}
		if err := w.addRevision(store.RevisionGroup, g.ID, g.Layer, g.Mode, s.now()); err != nil {
			return err
		}
		return w.writeAudit(ctx)
	})
	return g, changes, err
}

// SetGroupMembers implements store.GroupStore.
func (s *Store) SetGroupMembers(ctx context.Context, id string, deviceIDs []string) (g store.Group, changes []store.Change, err error) {
	next := policy.NormalizeMembers(deviceIDs)
	err = s.tx(ctx, func(w *writer) error {
		if err := w.lockGroups(); err != nil {
			return err
		}
		g, err = getGroup(ctx, w.tx, id, true)
		if err != nil {
			return err
		}
		affected := policy.NormalizeMembers(append(slices.Clone(g.Members), next...))
		rows, err := w.lockMembers(affected)
		if err != nil {
			return err
		}
		in := make(map[string]bool, len(next))
		for _, m := range next {
			in[m] = true
		}
		var gone, added []string
		for _, m := range g.Members {
			if !in[m] {
				gone = append(gone, m)
			}
		}
		was := make(map[string]bool, len(g.Members))
		for _, m := range g.Members {
			was[m] = true
		}
		for _, m := range next {
			if !was[m] {
				added = append(added, m)
			}
		}
		if err := w.setMembership(id, gone, false); err != nil {
			return err
		}
		if err := w.setMembership(id, added, true); err != nil {
			return err
		}
		g.Members = next
		if len(g.Members) == 0 {
			g.Members = nil
		}
		changes, err = w.recompute(rows, affected, id, func(m string) bool { return in[m] }, s.now())
		if err != nil {
			return err
		}
		return w.writeAudit(ctx)
	})
	return g, changes, err
}

// DeleteGroup implements store.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, id string) (changes []store.Change, err error) {
	err = s.tx(ctx, func(w *writer) error {
		if err := w.lockGroups(); err != nil {
			return err
		}
		g, err := getGroup(ctx, w.tx, id, true)
		if err != nil {
			return err
		}
		rows, err := w.lockMembers(g.Members)
		if err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "DELETE FROM groups WHERE id = $1", id); err != nil {
			return err
		}
		all, err := w.allGroups()
		if err != nil {
			return err
		}
		delete(all, id)
		changes, err = w.recompute(rows, g.Members, id, func(string) bool { return false }, s.now())
		if err != nil {
			return err
		}
		return w.writeAudit(ctx)
	})
	return changes, err
}

// UpdateOverride implements store.OverrideStore.
func (s *Store) UpdateOverride(ctx context.Context, id string, change func(store.Layer) store.Layer) (c store.Change, changed bool, err error) {
	err = s.tx(ctx, func(w *writer) error {
		cur, err := getDevice(ctx, w.tx, id, true)
		if err != nil {
			return err
		}
		d := cur.d
		before := d
		gs, err := w.groupsOf(d)
		if err != nil {
			return err
		}
		var write bool
		if changed, write = policy.EditOverride(&d, gs, change); !write {
			c = policy.Current(d)
			return nil
		}
		if c, err = w.put(&before, cur.histN, d, proto.CauseEdit, s.now()); err != nil {
			return err
		}
		if err := w.addRevision(store.RevisionDevice, d.ID, d.Override, "", s.now()); err != nil {
			return err
		}
		return w.writeAudit(ctx)
	})
	return c, changed, err
}

// History implements store.HistoryStore.
func (s *Store) History(ctx context.Context, id string) ([]proto.Transition, error) {
	out := []proto.Transition{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)", id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return store.ErrNotFound
		}
		rows, err := tx.Query(ctx, "SELECT doc FROM history WHERE device_id = $1 ORDER BY n", id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var doc []byte
			if err := rows.Scan(&doc); err != nil {
				return err
			}
			var t proto.Transition
			if err := json.Unmarshal(doc, &t); err != nil {
				return fmt.Errorf("decoding history of %s: %w", id, err)
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Summary implements store.HistoryStore: the shards of each counter added
// up (a few hundred rows, whatever the fleet's size).
func (s *Store) Summary(ctx context.Context) (proto.ComplianceSummary, error) {
	out := proto.ComplianceSummary{Counts: map[proto.ComplianceState]int64{}, DriftingSettings: []proto.DriftingSetting{}}
	for _, st := range proto.States {
		out.Counts[st] = 0
	}
	rows, err := s.pool.Query(ctx, `SELECT kind::text, key, sum(n)::bigint FROM fleet_counters GROUP BY kind, key`)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var kind, key string
		var n int64
		if err := rows.Scan(&kind, &key, &n); err != nil {
			return out, err
		}
		switch {
		case kind == "s":
			if _, ok := out.Counts[proto.ComplianceState(key)]; ok {
				out.Counts[proto.ComplianceState(key)] = n
			}
		case kind == "d" && n > 0:
			out.DriftingSettings = append(out.DriftingSettings, proto.DriftingSetting{Setting: key, Devices: n})
		}
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	sort.Slice(out.DriftingSettings, func(i, j int) bool {
		a, b := out.DriftingSettings[i], out.DriftingSettings[j]
		if a.Devices != b.Devices {
			return a.Devices > b.Devices
		}
		return a.Setting < b.Setting
	})
	return out, nil
}
