package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// WithCommandHook calls f, after the transaction committed, with every
// command change it made. f must not block (hand off to a queue).
func WithCommandHook(f func(...store.CommandChange)) Option {
	return func(s *Store) { s.onCommand = f }
}

// Every command operation runs with its device's row locked (FOR NO KEY
// UPDATE), the lock DeleteDevice, reports and edits take too: a device's
// commands change one transaction at a time, as in bbolt's single writer.

func scanCommand(r pgx.Row) (proto.Command, error) {
	var doc []byte
	var c proto.Command
	if err := r.Scan(&doc); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return c, store.ErrNotFound
		}
		return c, err
	}
	if err := json.Unmarshal(doc, &c); err != nil {
		return c, fmt.Errorf("decoding command: %w", err)
	}
	return c, nil
}

func (w *writer) getCommand(id string, lock bool) (proto.Command, error) {
	sql := "SELECT doc FROM commands WHERE id = $1"
	if lock {
		sql += " FOR UPDATE"
	}
	return scanCommand(w.tx.QueryRow(w.ctx, sql, id))
}

func (w *writer) commands(sql string, args ...any) ([]proto.Command, error) {
	rows, err := w.tx.Query(w.ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []proto.Command
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// openCommands returns the device's unfinished commands, oldest first,
// locked.
func (w *writer) openCommands(deviceID string) ([]proto.Command, error) {
	return w.commands("SELECT doc FROM commands WHERE device_id = $1 AND open ORDER BY seq FOR UPDATE", deviceID)
}

func (w *writer) insertCommand(c proto.Command) error {
	doc, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding command %s: %w", c.CommandID, err)
	}
	var key *string
	if c.IdempotencyKey != "" {
		key = &c.IdempotencyKey
	}
	if _, err := w.tx.Exec(w.ctx, `INSERT INTO commands (id, device_id, state, open, expires_at, idem_key, doc)
		VALUES ($1, $2, $3, true, $4, $5, $6)`, c.CommandID, c.DeviceID, string(c.State), c.ExpiresAt, key, doc); err != nil {
		if uniqueViolation(err) == "commands_pkey" {
			return store.ErrExists
		}
		return err
	}
	w.cmdChanges = append(w.cmdChanges, store.CommandChange{Command: c})
	return nil
}

// moveCommand changes c's state at at, leaving the unfinished ones when
// the new state is final.
func (w *writer) moveCommand(c *proto.Command, state proto.CommandState, at time.Time) error {
	from := c.State
	policy.ApplyCommandState(c, state, at)
	doc, err := json.Marshal(*c)
	if err != nil {
		return fmt.Errorf("encoding command %s: %w", c.CommandID, err)
	}
	if _, err := w.tx.Exec(w.ctx, "UPDATE commands SET state = $2, open = $3, doc = $4 WHERE id = $1",
		c.CommandID, string(state), !state.Final(), doc); err != nil {
		return err
	}
	w.cmdChanges = append(w.cmdChanges, store.CommandChange{Command: *c, From: from})
	return nil
}

// cancelOpen cancels every unfinished command of the device.
func (w *writer) cancelOpenCommands(deviceID string, at time.Time) error {
	open, err := w.openCommands(deviceID)
	if err != nil {
		return err
	}
	for i := range open {
		if err := w.moveCommand(&open[i], proto.CommandCancelled, at); err != nil {
			return err
		}
	}
	return nil
}

// auditCommands queues ctx's audit entry when the transaction changed a
// command (as bbolt: nothing changed, nothing audited).
func (w *writer) auditCommands() error {
	if len(w.cmdChanges) == 0 {
		return nil
	}
	return w.writeAudit(w.ctx)
}

// CreateCommands implements store.CommandStore.
func (s *Store) CreateCommands(ctx context.Context, cmds []proto.Command) ([]proto.Command, error) {
	out := make([]proto.Command, len(cmds))
	ids := make([]string, 0, len(cmds))
	for _, c := range cmds {
		ids = append(ids, c.DeviceID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	err := s.tx(ctx, func(w *writer) error {
		rows, err := lockDevices(ctx, w.tx, ids)
		if err != nil {
			return err
		}
		var unknown []string
		for _, c := range cmds {
			if _, ok := rows[c.DeviceID]; !ok {
				unknown = append(unknown, c.DeviceID)
			}
		}
		if len(unknown) > 0 {
			return store.UnknownDevices(unknown)
		}
		for i, c := range cmds {
			if c.IdempotencyKey != "" {
				first, err := scanCommand(w.tx.QueryRow(ctx, "SELECT doc FROM commands WHERE device_id = $1 AND idem_key = $2", c.DeviceID, c.IdempotencyKey))
				if err == nil {
					out[i] = first
					continue
				}
				if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			if c.CommandID == "" {
				return store.ErrExists
			}
			var taken bool
			if err := w.tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM commands WHERE id = $1)", c.CommandID).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return store.ErrExists
			}
			cancels, err := policy.AdmitCommand(&c, func() ([]proto.Command, error) { return w.openCommands(c.DeviceID) })
			if err != nil {
				return err
			}
			if cancels {
				if err := w.cancelOpenCommands(c.DeviceID, c.CreatedAt); err != nil {
					return err
				}
			}
			if err := w.insertCommand(c); err != nil {
				return err
			}
			out[i] = c
		}
		return w.auditCommands()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Command implements store.CommandStore.
func (s *Store) Command(ctx context.Context, id string) (proto.Command, error) {
	return scanCommand(s.pool.QueryRow(ctx, "SELECT doc FROM commands WHERE id = $1", id))
}

// DeviceCommands implements store.CommandStore.
func (s *Store) DeviceCommands(ctx context.Context, deviceID, after string, limit int, state proto.CommandState) (cmds []proto.Command, more bool, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1)", deviceID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return store.ErrNotFound
		}
		var before *int64
		if after != "" {
			var dev string
			var seq int64
			if err := tx.QueryRow(ctx, "SELECT device_id, seq FROM commands WHERE id = $1", after).Scan(&dev, &seq); err != nil {
				if errors.Is(err, pgx.ErrNoRows) {
					return store.ErrNotFound
				}
				return err
			}
			if dev != deviceID {
				return store.ErrNotFound
			}
			before = &seq
		}
		w := &writer{tx: tx, ctx: ctx}
		cmds, err = w.commands(`SELECT doc FROM commands WHERE device_id = $1
			AND ($2::bigint IS NULL OR seq < $2) AND ($3 = '' OR state = $3)
			ORDER BY seq DESC LIMIT $4`, deviceID, before, string(state), limit+1)
		if err != nil {
			return err
		}
		if len(cmds) > limit {
			cmds, more = cmds[:limit], true
		}
		return nil
	})
	return cmds, more, err
}

// HasOpenCommands implements store.CommandStore.
func (s *Store) HasOpenCommands(ctx context.Context, deviceID string) (open bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM commands WHERE device_id = $1 AND open)`, deviceID).Scan(&open)
	return open, err
}

// DeliverCommands implements store.CommandStore.
func (s *Store) DeliverCommands(ctx context.Context, deviceID string, now time.Time, limit int) ([]proto.Command, error) {
	// Every sync of every device asks; most have nothing open. One read
	// answers them without a write transaction.
	var exists, open bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1),
		EXISTS (SELECT 1 FROM commands WHERE device_id = $1 AND open)`, deviceID).Scan(&exists, &open); err != nil {
		return nil, err
	}
	if !exists {
		return nil, store.ErrNotFound
	}
	if !open {
		return nil, nil
	}
	var out []proto.Command
	err := s.tx(ctx, func(w *writer) error {
		out = nil
		if _, err := getDevice(ctx, w.tx, deviceID, true); err != nil {
			return err
		}
		open, err := w.openCommands(deviceID)
		if err != nil {
			return err
		}
		for i := range open {
			c := &open[i]
			if !now.Before(c.ExpiresAt) {
				if err := w.moveCommand(c, proto.CommandExpired, now); err != nil {
					return err
				}
				continue
			}
			if len(out) == limit {
				continue // still expire the rest that are due
			}
			if c.State != proto.CommandDelivered {
				if err := w.moveCommand(c, proto.CommandDelivered, now); err != nil {
					return err
				}
			}
			out = append(out, *c)
		}
		return w.auditCommands()
	})
	return out, err
}

// lockCommandDevice locks the device of command id (when it still exists)
// and then the command.
func (w *writer) lockCommandDevice(id string) (proto.Command, error) {
	c, err := w.getCommand(id, false)
	if err != nil {
		return c, err
	}
	if _, err := getDevice(w.ctx, w.tx, c.DeviceID, true); err != nil && !errors.Is(err, store.ErrNotFound) {
		return c, err
	}
	return w.getCommand(id, true)
}

// SetCommandResult implements store.CommandStore.
func (s *Store) SetCommandResult(ctx context.Context, deviceID, commandID string, r proto.CommandResult, now time.Time) (c proto.Command, err error) {
	err = s.tx(ctx, func(w *writer) error {
		cur, err := w.lockCommandDevice(commandID)
		if err != nil {
			return err
		}
		if cur.DeviceID != deviceID {
			return store.ErrNotFound
		}
		if !cur.State.Executable() {
			return fmt.Errorf("command %s is %s: %w", commandID, cur.State, store.ErrCommandState)
		}
		if !now.Before(cur.ExpiresAt) {
			return fmt.Errorf("command %s expired at %s: %w", commandID, cur.ExpiresAt.UTC().Format(time.RFC3339), store.ErrCommandState)
		}
		res := r
		cur.Result = &res
		if err := w.moveCommand(&cur, r.State, now); err != nil {
			return err
		}
		c = cur
		return w.auditCommands()
	})
	return c, err
}

// CancelCommand implements store.CommandStore.
func (s *Store) CancelCommand(ctx context.Context, id string, now time.Time) (c proto.Command, err error) {
	err = s.tx(ctx, func(w *writer) error {
		cur, err := w.lockCommandDevice(id)
		if err != nil {
			return err
		}
		if cur.State != proto.CommandPending && cur.State != proto.CommandNotNow {
			return fmt.Errorf("command %s is %s: %w", id, cur.State, store.ErrCommandState)
		}
		if err := w.moveCommand(&cur, proto.CommandCancelled, now); err != nil {
			return err
		}
		c = cur
		return w.auditCommands()
	})
	return c, err
}

// expireBatch bounds the commands one ExpireCommands transaction expires.
const expireBatch = 1000

// ExpireCommands implements store.CommandStore, a batch per transaction.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.tx(ctx, func(w *writer) error {
			n = 0
			var devs []string
			rows, err := w.tx.Query(ctx, `SELECT DISTINCT device_id FROM
				(SELECT device_id FROM commands WHERE open AND expires_at <= $1 ORDER BY expires_at LIMIT $2) d
				ORDER BY device_id`, now, expireBatch)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				devs = append(devs, id)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if len(devs) == 0 {
				return nil
			}
			if _, err := lockDevices(ctx, w.tx, devs); err != nil {
				return err
			}
			due, err := w.commands(`SELECT doc FROM commands WHERE device_id = ANY($1) AND open AND expires_at <= $2
				ORDER BY expires_at, id LIMIT $3 FOR UPDATE`, devs, now, expireBatch)
			if err != nil {
				return err
			}
			for i := range due {
				if err := w.moveCommand(&due[i], proto.CommandExpired, now); err != nil {
					return err
				}
				n++
			}
			return w.auditCommands()
		})
		total += n
		if err != nil || n < expireBatch {
			return total, err
		}
	}
}
