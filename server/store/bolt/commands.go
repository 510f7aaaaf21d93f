package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

var (
	bucketCommands       = []byte("commands")        // command id -> JSON storedCommand
	bucketDeviceCommands = []byte("device_commands") // device id, 0, big-endian seq -> command id (every command)
	bucketOpenCommands   = []byte("open_commands")   // device id, 0, big-endian seq -> command id (unfinished only)
	bucketCommandExpiry  = []byte("command_expiry")  // big-endian unix nanos of expiry, command id -> nil (unfinished only)
	bucketCommandKeys    = []byte("command_keys")    // device id, 0, idempotency key -> command id
)

var commandBuckets = [][]byte{bucketCommands, bucketDeviceCommands, bucketOpenCommands, bucketCommandExpiry, bucketCommandKeys}

func createCommandBuckets(tx *bbolt.Tx) error {
	for _, b := range commandBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// WithCommandHook calls f, after the transaction committed, with every
// command change it made. f must not block (hand off to a queue).
func WithCommandHook(f func(...store.CommandChange)) Option {
	return func(s *Store) { s.onCommand = f }
}

// storedCommand is a command and its position in its device's list.
type storedCommand struct {
	proto.Command
	Seq uint64 `json:"seq"`
}

func deviceKey(deviceID string, suffix []byte) []byte {
	k := make([]byte, 0, len(deviceID)+1+len(suffix))
	k = append(k, deviceID...)
	k = append(k, 0)
	return append(k, suffix...)
}

func expiryKey(c proto.Command) []byte {
	k := make([]byte, 8, 8+len(c.CommandID))
	binary.BigEndian.PutUint64(k, uint64(c.ExpiresAt.UnixNano()))
	return append(k, c.CommandID...)
}

// cmdTx is one write transaction over commands, collecting the changes to
// announce.
type cmdTx struct {
	tx      *bbolt.Tx
	changes []store.CommandChange
}

func (w *cmdTx) get(id string) (storedCommand, error) {
	var c storedCommand
	v := w.tx.Bucket(bucketCommands).Get([]byte(id))
	if v == nil {
		return c, store.ErrNotFound
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("decoding command %s: %w", id, err)
	}
	return c, nil
}

func getCommand(tx *bbolt.Tx, id string) (storedCommand, error) {
	return (&cmdTx{tx: tx}).get(id)
}

func (w *cmdTx) put(c storedCommand) error {
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encoding command %s: %w", c.CommandID, err)
	}
	return w.tx.Bucket(bucketCommands).Put([]byte(c.CommandID), v)
}

// insert stores a new PENDING command and its indexes.
func (w *cmdTx) insert(c proto.Command) error {
	seq, err := w.tx.Bucket(bucketDeviceCommands).NextSequence()
	if err != nil {
		return err
	}
	sc := storedCommand{Command: c, Seq: seq}
	k := deviceKey(c.DeviceID, seqKey(seq))
	if err := w.tx.Bucket(bucketDeviceCommands).Put(k, []byte(c.CommandID)); err != nil {
		return err
	}
	if err := w.tx.Bucket(bucketOpenCommands).Put(k, []byte(c.CommandID)); err != nil {
		return err
	}
	if err := w.tx.Bucket(bucketCommandExpiry).Put(expiryKey(c), nil); err != nil {
		return err
	}
	if c.IdempotencyKey != "" {
		if err := w.tx.Bucket(bucketCommandKeys).Put(deviceKey(c.DeviceID, []byte(c.IdempotencyKey)), []byte(c.CommandID)); err != nil {
			return err
		}
	}
	w.changes = append(w.changes, store.CommandChange{Command: c})
	return w.put(sc)
}

// move changes c's state at at, dropping it from the unfinished indexes
// when the new state is final.
func (w *cmdTx) move(c *storedCommand, state proto.CommandState, at time.Time) error {
	from := c.State
	policy.ApplyCommandState(&c.Command, state, at)
	if state.Final() {
		if err := w.tx.Bucket(bucketOpenCommands).Delete(deviceKey(c.DeviceID, seqKey(c.Seq))); err != nil {
			return err
		}
		if err := w.tx.Bucket(bucketCommandExpiry).Delete(expiryKey(c.Command)); err != nil {
			return err
		}
	}
	w.changes = append(w.changes, store.CommandChange{Command: c.Command, From: from})
	return w.put(*c)
}

// open returns the device's unfinished commands, oldest first.
func (w *cmdTx) open(deviceID string) ([]storedCommand, error) {
	var out []storedCommand
	prefix := deviceKey(deviceID, nil)
	c := w.tx.Bucket(bucketOpenCommands).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		sc, err := w.get(string(v))
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// cancelOpen cancels every unfinished command of the device except keep.
func (w *cmdTx) cancelOpen(deviceID, keep string, at time.Time) error {
	open, err := w.open(deviceID)
	if err != nil {
		return err
	}
	for i := range open {
		if open[i].CommandID == keep {
			continue
		}
		if err := w.move(&open[i], proto.CommandCancelled, at); err != nil {
			return err
		}
	}
	return nil
}

// commandUpdate runs f in one write transaction with the audit entry of
// ctx, announcing the command changes it made after the commit.
func (s *Store) commandUpdate(ctx context.Context, f func(*cmdTx) error) error {
	var changes []store.CommandChange
	err := s.db.Update(func(tx *bbolt.Tx) error {
		w := &cmdTx{tx: tx}
		if err := f(w); err != nil {
			return err
		}
		if len(w.changes) == 0 {
			return nil
		}
		changes = w.changes
		return s.writeAudit(ctx, tx)
	})
	if err == nil && len(changes) > 0 && s.onCommand != nil {
		s.onCommand(changes...)
	}
	return err
}

// CreateCommands implements store.CommandStore.
func (s *Store) CreateCommands(ctx context.Context, cmds []proto.Command) ([]proto.Command, error) {
	out := make([]proto.Command, len(cmds))
	err := s.commandUpdate(ctx, func(w *cmdTx) error {
		var unknown []string
		for _, c := range cmds {
			if w.tx.Bucket(bucketDevices).Get([]byte(c.DeviceID)) == nil {
				unknown = append(unknown, c.DeviceID)
			}
		}
		if len(unknown) > 0 {
			return store.UnknownDevices(unknown)
		}
		for i, c := range cmds {
			if c.IdempotencyKey != "" {
				if id := w.tx.Bucket(bucketCommandKeys).Get(deviceKey(c.DeviceID, []byte(c.IdempotencyKey))); id != nil {
					first, err := w.get(string(id))
					if err != nil {
						return err
					}
					out[i] = first.Command
					continue
				}
			}
			if c.CommandID == "" || w.tx.Bucket(bucketCommands).Get([]byte(c.CommandID)) != nil {
				return store.ErrExists
			}
			cancels, err := policy.AdmitCommand(&c, func() ([]proto.Command, error) {
				open, err := w.open(c.DeviceID)
				cmds := make([]proto.Command, len(open))
				for i, o := range open {
					cmds[i] = o.Command
				}
				return cmds, err
			})
			if err != nil {
				return err
			}
			if cancels {
				if err := w.cancelOpen(c.DeviceID, "", c.CreatedAt); err != nil {
					return err
				}
			}
			if err := w.insert(c); err != nil {
				return err
			}
			out[i] = c
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Command implements store.CommandStore.
func (s *Store) Command(_ context.Context, id string) (c proto.Command, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		sc, err := getCommand(tx, id)
		c = sc.Command
		return err
	})
	return c, err
}

// DeviceCommands implements store.CommandStore.
func (s *Store) DeviceCommands(_ context.Context, deviceID, after string, limit int, state proto.CommandState) (cmds []proto.Command, more bool, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketDevices).Get([]byte(deviceID)) == nil {
			return store.ErrNotFound
		}
		prefix := deviceKey(deviceID, nil)
		c := tx.Bucket(bucketDeviceCommands).Cursor()
		var k, v []byte
		if after != "" {
			sc, err := getCommand(tx, after)
			if err != nil {
				return err
			}
			if sc.DeviceID != deviceID {
				return store.ErrNotFound
			}
			k, v = c.Seek(deviceKey(deviceID, seqKey(sc.Seq)))
			k, v = c.Prev()
		} else {
			// The last key of the prefix: seek past it and step back.
			k, v = c.Seek(deviceKey(deviceID, bytes.Repeat([]byte{0xff}, 8)))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			sc, err := getCommand(tx, string(v))
			if err != nil {
				return err
			}
			if state != "" && sc.State != state {
				continue
			}
			if len(cmds) == limit {
				more = true
				return nil
			}
			cmds = append(cmds, sc.Command)
		}
		return nil
	})
	return cmds, more, err
}

// HasOpenCommands implements store.CommandStore.
func (s *Store) HasOpenCommands(_ context.Context, deviceID string) (open bool, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		open = hasOpenCommands(tx, deviceID)
		return nil
	})
	return open, err
}

func hasOpenCommands(tx *bbolt.Tx, deviceID string) bool {
	prefix := deviceKey(deviceID, nil)
	k, _ := tx.Bucket(bucketOpenCommands).Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// DeliverCommands implements store.CommandStore.
func (s *Store) DeliverCommands(ctx context.Context, deviceID string, now time.Time, limit int) ([]proto.Command, error) {
	// Every sync of every device asks; most have nothing open. A read
	// answers them without a write transaction (and its fsync).
	open := false
	err := s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketDevices).Get([]byte(deviceID)) == nil {
			return store.ErrNotFound
		}
		open = hasOpenCommands(tx, deviceID)
		return nil
	})
	if err != nil || !open {
		return nil, err
	}
	var out []proto.Command
	err = s.commandUpdate(ctx, func(w *cmdTx) error {
		out = nil
		if w.tx.Bucket(bucketDevices).Get([]byte(deviceID)) == nil {
			return store.ErrNotFound
		}
		open, err := w.open(deviceID)
		if err != nil {
			return err
		}
		for i := range open {
			c := &open[i]
			if !now.Before(c.ExpiresAt) {
				if err := w.move(c, proto.CommandExpired, now); err != nil {
					return err
				}
				continue
			}
			if len(out) == limit {
				continue // still expire the rest that are due
			}
			if c.State != proto.CommandDelivered {
				if err := w.move(c, proto.CommandDelivered, now); err != nil {
					return err
				}
			}
			out = append(out, c.Command)
		}
		return nil
	})
	return out, err
}

// SetCommandResult implements store.CommandStore.
func (s *Store) SetCommandResult(ctx context.Context, deviceID, commandID string, r proto.CommandResult, now time.Time) (c proto.Command, err error) {
	err = s.commandUpdate(ctx, func(w *cmdTx) error {
		sc, err := w.get(commandID)
		if err != nil {
			return err
		}
		if sc.DeviceID != deviceID {
			return store.ErrNotFound
		}
		if !sc.State.Executable() {
			return fmt.Errorf("command %s is %s: %w", commandID, sc.State, store.ErrCommandState)
		}
		if !now.Before(sc.ExpiresAt) {
			return fmt.Errorf("command %s expired at %s: %w", commandID, sc.ExpiresAt.UTC().Format(time.RFC3339), store.ErrCommandState)
		}
		res := r
		sc.Result = &res
		if err := w.move(&sc, r.State, now); err != nil {
			return err
		}
		c = sc.Command
		return nil
	})
	return c, err
}

// CancelCommand implements store.CommandStore.
func (s *Store) CancelCommand(ctx context.Context, id string, now time.Time) (c proto.Command, err error) {
	err = s.commandUpdate(ctx, func(w *cmdTx) error {
		sc, err := w.get(id)
		if err != nil {
			return err
		}
		if sc.State != proto.CommandPending && sc.State != proto.CommandNotNow {
			return fmt.Errorf("command %s is %s: %w", id, sc.State, store.ErrCommandState)
		}
		if err := w.move(&sc, proto.CommandCancelled, now); err != nil {
			return err
		}
		c = sc.Command
		return nil
	})
	return c, err
}

// ExpireCommands implements store.CommandStore. It expires at most
// expireBatch commands per transaction, so a large backlog never holds the
// write lock long.
func (s *Store) ExpireCommands(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.commandUpdate(ctx, func(w *cmdTx) error {
			n = 0
			limit := make([]byte, 8)
			binary.BigEndian.PutUint64(limit, uint64(now.UnixNano()))
			c := w.tx.Bucket(bucketCommandExpiry).Cursor()
			var due []string
			for k, _ := c.First(); k != nil && len(due) < expireBatch && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
				due = append(due, string(k[8:]))
			}
			for _, id := range due {
				sc, err := w.get(id)
				if err != nil {
					return err
				}
				if err := w.move(&sc, proto.CommandExpired, now); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		total += n
		if err != nil || n < expireBatch {
			return total, err
		}
	}
}

const expireBatch = 1000
