package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// ErrNotEmpty is returned by Load into a database that holds devices,
// groups or tokens already.
var ErrNotEmpty = errors.New("the database already holds a fleet")

// Load copies d into an empty database in one transaction, deriving the
// fleet counters from the devices. Versions, history, memberships, token
// uses and audit ids are kept as they were.
func (s *Store) Load(ctx context.Context, d store.Dump) error {
	return s.LoadParts(ctx, func(yield func(store.Dump) error) error { return yield(d) })
}

// LoadParts is Load for a fleet delivered in parts, as bolt's DumpParts
// reads it: parts calls yield with each part in turn (devices before what
// refers to them), and each part is written before the next is read, so
// memory holds one part at a time. Everything is one transaction; if it
// must be retried (a serialization failure), parts is called again.
func (s *Store) LoadParts(ctx context.Context, parts func(yield func(store.Dump) error) error) error {
	return s.tx(ctx, func(w *writer) error {
		var used bool
		if err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices) OR EXISTS (SELECT 1 FROM groups)
			OR EXISTS (SELECT 1 FROM operator_tokens) OR EXISTS (SELECT 1 FROM enrollment_tokens)`).Scan(&used); err != nil {
			return err
		}
		if used {
			return ErrNotEmpty
		}
		var last int64
		if err := parts(func(d store.Dump) error { return w.loadPart(d, &last) }); err != nil {
			return err
		}
		_, err := w.tx.Exec(ctx, "UPDATE audit_seq SET n = greatest(n, $1)", last)
		return err
	})
}

// loadPart writes one part of a dump; last is the highest audit id so far.
func (w *writer) loadPart(d store.Dump, last *int64) error {
	ctx := w.ctx
	for start := 0; start < len(d.Devices); start += batchSize {
		chunk := d.Devices[start:min(start+batchSize, len(d.Devices))]
		ids := make([]string, len(chunk))
		hashes := make([][]byte, len(chunk))
		states := make([]string, len(chunk))
		ns := make([]int64, len(chunk))
		docs := make([][]byte, len(chunk))
		since := make([]*time.Time, len(chunk))
		var hIDs []string
		var hNs []int64
		var hDocs [][]byte
		for i, dev := range chunk {
			doc, err := json.Marshal(dev)
			if err != nil {
				return err
			}
			st, failing := policy.Derive(dev)
			w.count(dev.ID, st, failing, 1)
			hist := d.History[dev.ID]
			ids[i], hashes[i], states[i], ns[i], docs[i], since[i] = dev.ID, dev.SecretHash, string(st), int64(len(hist)), doc, nonCompliantSince(dev)
			for k, t := range hist {
				t.DeviceID = ""
				v, err := json.Marshal(t)
				if err != nil {
					return err
				}
				hIDs, hNs, hDocs = append(hIDs, dev.ID), append(hNs, int64(k+1)), append(hDocs, v)
			}
		}
		if _, err := w.tx.Exec(ctx, `INSERT INTO devices (id, secret_hash, state, hist_n, doc, non_compliant_since)
			SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bigint[], $5::json[], $6::timestamptz[])`, ids, hashes, states, ns, docs, since); err != nil {
			return fmt.Errorf("copying devices: %w", err)
		}
		if _, err := w.tx.Exec(ctx, `INSERT INTO history (device_id, n, doc)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::json[])`, hIDs, hNs, hDocs); err != nil {
			return fmt.Errorf("copying history: %w", err)
		}
	}
	for _, g := range d.Groups {
		doc, err := groupDoc(g)
		if err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "INSERT INTO groups (id, name, doc) VALUES ($1, $2, $3)", g.ID, g.Name, doc); err != nil {
			return fmt.Errorf("copying group %s: %w", g.ID, err)
		}
		if err := w.setMembership(g.ID, g.Members, true); err != nil {
			return fmt.Errorf("copying members of group %s: %w", g.ID, err)
		}
	}
	for _, t := range d.OperatorTokens {
		v, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "INSERT INTO operator_tokens (name, hash, doc) VALUES ($1, $2, $3)", t.Name, t.Hash, v); err != nil {
			return fmt.Errorf("copying operator token %s: %w", t.Name, err)
		}
	}
	for _, t := range d.EnrollmentTokens {
		v, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, "INSERT INTO enrollment_tokens (id, hash, doc) VALUES ($1, $2, $3)", t.ID, t.Hash, v); err != nil {
			return fmt.Errorf("copying enrollment token %s: %w", t.ID, err)
		}
	}
	for start := 0; start < len(d.Audit); start += batchSize {
		chunk := d.Audit[start:min(start+batchSize, len(d.Audit))]
		ids := make([]int64, len(chunk))
		docs := make([][]byte, len(chunk))
		for i, e := range chunk {
			id, err := strconv.ParseInt(e.ID, 10, 64)
			if err != nil {
				return fmt.Errorf("audit entry id %q: %w", e.ID, err)
			}
			if docs[i], err = json.Marshal(e); err != nil {
				return err
			}
			ids[i] = id
			*last = max(*last, id)
		}
		if _, err := w.tx.Exec(ctx, "INSERT INTO audit (id, doc) SELECT * FROM unnest($1::bigint[], $2::json[])", ids, docs); err != nil {
			return fmt.Errorf("copying the audit log: %w", err)
		}
	}
	return w.loadLater(d)
}

// loadLater copies commands (in creation order, so seq keeps each
// device's order), revisions, escalations and inventories.
func (w *writer) loadLater(d store.Dump) error {
	for _, inv := range d.Inventories {
		if err := w.loadInventory(inv); err != nil {
			return fmt.Errorf("copying the inventory of %s: %w", inv.DeviceID, err)
		}
	}
	for _, c := range d.Commands {
		doc, err := json.Marshal(c)
		if err != nil {
			return err
		}
		var key *string
		if c.IdempotencyKey != "" {
			key = &c.IdempotencyKey
		}
		if _, err := w.tx.Exec(w.ctx, `INSERT INTO commands (id, device_id, state, open, expires_at, idem_key, doc)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, c.CommandID, c.DeviceID, string(c.State), !c.State.Final(), c.ExpiresAt, key, doc); err != nil {
			return fmt.Errorf("copying command %s: %w", c.CommandID, err)
		}
	}
	for _, lr := range d.Revisions {
		for _, r := range lr.Revisions {
			doc, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if _, err := w.tx.Exec(w.ctx, "INSERT INTO revisions (kind, layer_id, n, doc) VALUES ($1, $2, $3, $4)", string(lr.Kind), lr.ID, r.N, doc); err != nil {
				return fmt.Errorf("copying revision %d of %s %s: %w", r.N, lr.Kind, lr.ID, err)
			}
		}
	}
	for dev, steps := range d.Escalations {
		for step, since := range steps {
			if _, err := w.tx.Exec(w.ctx, "INSERT INTO escalations (device_id, step, since) VALUES ($1, $2, $3)", dev, step, since); err != nil {
				return fmt.Errorf("copying escalation %s of %s: %w", step, dev, err)
			}
		}
	}
	return nil
}
