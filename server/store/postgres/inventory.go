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
	"github.com/doorbell-mdm/doorbell/server/store"
)

// SaveInventory implements store.InventoryStore. The device row is locked
// first, as every other write of a device does; the sections it carries are
// upserted and the device's fact and package rows of those sections alone
// are moved from the stored copies to the new ones (each fact comes from
// one section), row by row: a package upgrade changes one row, a new
// hostname touches no package row.
func (s *Store) SaveInventory(ctx context.Context, id string, up proto.InventoryUpload, at time.Time) (missing []string, err error) {
	at = at.UTC()
	err = s.tx(ctx, func(w *writer) error {
		missing = nil
		if _, err := getDevice(ctx, w.tx, id, true); err != nil {
			return err
		}
		tx := w.tx
		meta := map[string]proto.InventorySectionMeta{}
		rows, err := tx.Query(ctx, "SELECT section, hash, changed_at, received_at FROM inventory_sections WHERE device_id = $1", id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var sec string
			var m proto.InventorySectionMeta
			if err := rows.Scan(&sec, &m.Hash, &m.ChangedAt, &m.ReceivedAt); err != nil {
				rows.Close()
				return err
			}
			meta[sec] = m
		}
		if err := rows.Err(); err != nil {
			return err
		}
		present := up.Present()
		old, err := loadSections(ctx, tx, id, present)
		if err != nil {
			return err
		}
		for _, sec := range present {
			m, ok := meta[sec]
			if !ok || m.Hash != up.Hashes[sec] || m.ChangedAt.IsZero() {
				m.ChangedAt = at
			}
			m.Hash, m.ReceivedAt = up.Hashes[sec], at
			meta[sec] = m
			if _, err := tx.Exec(ctx, `INSERT INTO inventory_sections (device_id, section, hash, data, changed_at, received_at)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (device_id, section) DO UPDATE SET hash = EXCLUDED.hash, data = EXCLUDED.data,
					changed_at = EXCLUDED.changed_at, received_at = EXCLUDED.received_at`,
				id, sec, m.Hash, []byte(up.Section(sec)), m.ChangedAt, m.ReceivedAt); err != nil {
				return err
			}
		}
		for _, sec := range proto.InventorySections {
			if h, ok := up.Hashes[sec]; ok && meta[sec].Hash != h {
				missing = append(missing, sec)
			}
		}
		if len(present) == 0 {
			// A probe: nothing to store (and nothing to keep when the
			// server has nothing of the device).
			return nil
		}
		var collected *time.Time
		if !up.CollectedAt.IsZero() {
			c := up.CollectedAt.UTC()
			collected = &c
		}
		if _, err := tx.Exec(ctx, `INSERT INTO inventory_devices (device_id, collected_at, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (device_id) DO UPDATE SET updated_at = EXCLUDED.updated_at,
				collected_at = COALESCE(EXCLUDED.collected_at, inventory_devices.collected_at)`, id, collected, at); err != nil {
			return err
		}
		return reindexSections(ctx, tx, id, old, up.Inventory.Only(present))
	})
	return missing, err
}

// reindexSections moves device id's fact and package rows from what old
// holds to what new holds; both carry the same sections.
func reindexSections(ctx context.Context, tx pgx.Tx, id string, old, new proto.Inventory) error {
	var delF, delV, addF, addV []string
	of, nf := factPairs(old), factPairs(new)
	for k := range of {
		if !nf[k] {
			delF, delV = append(delF, k[0]), append(delV, k[1])
		}
	}
	for k := range nf {
		if !of[k] {
			addF, addV = append(addF, k[0]), append(addV, k[1])
		}
	}
	if len(delF) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM inventory_facts WHERE device_id = $1
			AND (fact, value) IN (SELECT f, v FROM unnest($2::text[], $3::text[]) AS t (f, v))`, id, delF, delV); err != nil {
			return err
		}
	}
	if len(addF) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO inventory_facts (device_id, fact, value)
			SELECT $1, f, v FROM unnest($2::text[], $3::text[]) AS t (f, v)`, id, addF, addV); err != nil {
			return err
		}
	}
	if new.Packages == nil && old.Packages == nil {
		return nil
	}
	var delN, delFmt, delVer, addN, addFmt, addVer []string
	op, np := packageRows(old), packageRows(new)
	for k := range op {
		if !np[k] {
			delN, delFmt, delVer = append(delN, k[0]), append(delFmt, k[1]), append(delVer, k[2])
		}
	}
	for k := range np {
		if !op[k] {
			addN, addFmt, addVer = append(addN, k[0]), append(addFmt, k[1]), append(addVer, k[2])
		}
	}
	if len(delN) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM inventory_packages WHERE device_id = $1
			AND (name, format, version) IN (SELECT n, f, v FROM unnest($2::text[], $3::text[], $4::text[]) AS t (n, f, v))`,
			id, delN, delFmt, delVer); err != nil {
			return err
		}
	}
	if len(addN) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO inventory_packages (device_id, name, format, version)
			SELECT $1, n, f, v FROM unnest($2::text[], $3::text[], $4::text[]) AS t (n, f, v)`, id, addN, addFmt, addVer); err != nil {
			return err
		}
	}
	return nil
}

// factPairs returns inv's (fact, value) pairs.
func factPairs(inv proto.Inventory) map[[2]string]bool {
	out := map[[2]string]bool{}
	for fact, vals := range inv.Facts() {
		for _, v := range vals {
			out[[2]string{fact, v}] = true
		}
	}
	return out
}

// packageRows returns inv's (name, format, version) rows.
func packageRows(inv proto.Inventory) map[[3]string]bool {
	out := map[[3]string]bool{}
	if p := inv.Packages; p != nil {
		for _, x := range p.Packages {
			out[[3]string{x.Name, p.Format, x.Version}] = true
		}
	}
	return out
}

// loadInventory copies a dumped inventory, its times kept, and indexes it.
func (w *writer) loadInventory(d proto.DeviceInventory) error {
	var collected *time.Time
	if !d.CollectedAt.IsZero() {
		c := d.CollectedAt.UTC()
		collected = &c
	}
	if _, err := w.tx.Exec(w.ctx, "INSERT INTO inventory_devices (device_id, collected_at, updated_at) VALUES ($1, $2, $3)",
		d.DeviceID, collected, d.UpdatedAt.UTC()); err != nil {
		return err
	}
	for _, sec := range d.Inventory.Present() {
		m := d.Sections[sec]
		if _, err := w.tx.Exec(w.ctx, `INSERT INTO inventory_sections (device_id, section, hash, data, changed_at, received_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, d.DeviceID, sec, m.Hash, []byte(d.Inventory.Section(sec)), m.ChangedAt.UTC(), m.ReceivedAt.UTC()); err != nil {
			return err
		}
	}
	return reindexSections(w.ctx, w.tx, d.DeviceID, proto.Inventory{}, d.Inventory)
}

// loadInventory merges the stored sections of device id.
func loadInventory(ctx context.Context, q querier, id string) (proto.Inventory, error) {
	return loadSections(ctx, q, id, proto.InventorySections)
}

// loadSections merges the stored sections of device id named in sections.
func loadSections(ctx context.Context, q querier, id string, sections []string) (proto.Inventory, error) {
	var inv proto.Inventory
	if len(sections) == 0 {
		return inv, nil
	}
	rows, err := q.Query(ctx, "SELECT section, data FROM inventory_sections WHERE device_id = $1 AND section = ANY($2) ORDER BY section", id, sections)
	if err != nil {
		return inv, err
	}
	defer rows.Close()
	for rows.Next() {
		var sec string
		var data []byte
		if err := rows.Scan(&sec, &data); err != nil {
			return inv, err
		}
		// The section's JSON is the Inventory's field of that name.
		buf := make([]byte, 0, len(data)+len(sec)+8)
		buf = append(append(append(append(buf, `{"`...), sec...), `":`...), data...)
		buf = append(buf, '}')
		var part proto.Inventory
		if err := json.Unmarshal(buf, &part); err != nil {
			return inv, fmt.Errorf("decoding inventory section %s of %s: %w", sec, id, err)
		}
		inv.Merge(part)
	}
	return inv, rows.Err()
}

// Inventory implements store.InventoryStore.
func (s *Store) Inventory(ctx context.Context, id string) (out proto.DeviceInventory, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)", id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return store.ErrNotFound
		}
		out = proto.DeviceInventory{DeviceID: id, Sections: map[string]proto.InventorySectionMeta{}}
		var collected *time.Time
		var updated time.Time
		err := tx.QueryRow(ctx, "SELECT collected_at, updated_at FROM inventory_devices WHERE device_id = $1", id).Scan(&collected, &updated)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		out.UpdatedAt = updated.UTC()
		if collected != nil {
			out.CollectedAt = collected.UTC()
		}
		rows, err := tx.Query(ctx, "SELECT section, hash, changed_at, received_at FROM inventory_sections WHERE device_id = $1", id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var sec string
			var m proto.InventorySectionMeta
			if err := rows.Scan(&sec, &m.Hash, &m.ChangedAt, &m.ReceivedAt); err != nil {
				rows.Close()
				return err
			}
			m.ChangedAt, m.ReceivedAt = m.ChangedAt.UTC(), m.ReceivedAt.UTC()
			out.Sections[sec] = m
		}
		if err := rows.Err(); err != nil {
			return err
		}
		out.Inventory, err = loadInventory(ctx, tx, id)
		return err
	})
	return out, err
}

// PackageVersions implements store.InventoryStore.
func (s *Store) PackageVersions(ctx context.Context, name string) (out []proto.PackageVersionCount, err error) {
	rows, err := s.pool.Query(ctx, `SELECT format, version, count(*) FROM inventory_packages WHERE name = $1
		GROUP BY format, version ORDER BY format, version`, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c proto.PackageVersionCount
		var n int64
		if err := rows.Scan(&c.Format, &c.Version, &n); err != nil {
			return nil, err
		}
		c.Devices = int(n)
		out = append(out, c)
	}
	return out, rows.Err()
}

// FactValues implements store.InventoryStore.
func (s *Store) FactValues(ctx context.Context, fact string) (out []proto.FactValueCount, err error) {
	rows, err := s.pool.Query(ctx, `SELECT value, count(*) FROM inventory_facts WHERE fact = $1
		GROUP BY value ORDER BY value`, fact)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c proto.FactValueCount
		var n int64
		if err := rows.Scan(&c.Value, &n); err != nil {
			return nil, err
		}
		c.Devices = int(n)
		out = append(out, c)
	}
	return out, rows.Err()
}

// FindDevices implements store.InventoryStore. Each predicate runs once per
// distinct value (or format and version) in Go; the accepted values become
// EXISTS conditions that the (fact, value, device_id) and (name, version,
// device_id) indexes answer.
func (s *Store) FindDevices(ctx context.Context, q store.InventoryQuery, after string, limit int) (ids []string, more bool, err error) {
	if limit < 0 {
		limit = 0
	}
	args := []any{after}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var where []string
	for _, f := range q.Facts {
		switch {
		case f.Match != nil:
			vals, err := s.distinct(ctx, "SELECT DISTINCT value FROM inventory_facts WHERE fact = $1", f.Fact)
			if err != nil {
				return nil, false, err
			}
			var ok []string
			for _, v := range vals {
				if f.Match(v[0]) {
					ok = append(ok, v[0])
				}
			}
			if len(ok) == 0 {
				return nil, false, nil
			}
			where = append(where, "EXISTS (SELECT 1 FROM inventory_facts f WHERE f.fact = "+arg(f.Fact)+" AND f.value = ANY("+arg(ok)+"::text[]) AND f.device_id = i.device_id)")
		case f.Equal != "":
			where = append(where, "EXISTS (SELECT 1 FROM inventory_facts f WHERE f.fact = "+arg(f.Fact)+" AND f.value = "+arg(f.Equal)+" AND f.device_id = i.device_id)")
		default:
			where = append(where, "EXISTS (SELECT 1 FROM inventory_facts f WHERE f.fact = "+arg(f.Fact)+" AND f.device_id = i.device_id)")
		}
	}
	for _, p := range q.Packages {
		if p.Match == nil {
			where = append(where, "EXISTS (SELECT 1 FROM inventory_packages p WHERE p.name = "+arg(p.Name)+" AND p.device_id = i.device_id)")
			continue
		}
		vals, err := s.distinct(ctx, "SELECT DISTINCT format, version FROM inventory_packages WHERE name = $1", p.Name)
		if err != nil {
			return nil, false, err
		}
		var formats, versions []string
		for _, v := range vals {
			if p.Match(v[0], v[1]) {
				formats, versions = append(formats, v[0]), append(versions, v[1])
			}
		}
		if len(formats) == 0 {
			return nil, false, nil
		}
		where = append(where, "EXISTS (SELECT 1 FROM inventory_packages p WHERE p.name = "+arg(p.Name)+
			" AND (p.format, p.version) IN (SELECT * FROM unnest("+arg(formats)+"::text[], "+arg(versions)+"::text[])) AND p.device_id = i.device_id)")
	}
	sql := "SELECT i.device_id FROM inventory_devices i WHERE i.device_id > $1"
	for _, w := range where {
		sql += " AND " + w
	}
	sql += " ORDER BY i.device_id LIMIT " + arg(limit+1)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, false, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(ids) > limit {
		ids, more = ids[:limit], true
	}
	return ids, more, nil
}

// distinct returns the rows of a query of one or two text columns.
func (s *Store) distinct(ctx context.Context, sql string, key string) ([][2]string, error) {
	rows, err := s.pool.Query(ctx, sql, key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var v [2]string
		dst := []any{&v[0], &v[1]}[:len(rows.FieldDescriptions())]
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
