package bolt

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// Dump returns everything the store holds, read in one transaction. It
// holds the whole fleet in memory: DumpParts streams it.
func (s *Store) Dump(ctx context.Context) (store.Dump, error) {
	var all store.Dump
	err := s.DumpParts(ctx, 1<<30, func(p store.Dump) error {
		all = p
		return nil
	})
	if all.History == nil {
		all.History = map[string][]proto.Transition{}
	}
	return all, err
}

// dumper cuts a dump into parts of at most size items (a device and each
// of its transitions, a group, a token, an audit entry, an inventory, a
// command, a revision, an escalation step) and hands each to yield.
type dumper struct {
	size, n int
	part    store.Dump
	yield   func(store.Dump) error
}

// added counts n items just added to the part and yields it when full.
func (p *dumper) added(n int) error {
	p.n += n
	if p.n >= p.size {
		return p.flush()
	}
	return nil
}

func (p *dumper) flush() error {
	if p.n == 0 {
		return nil
	}
	part := p.part
	p.part, p.n = store.Dump{}, 0
	return p.yield(part)
}

// DumpParts reads everything the store holds in one read transaction and
// hands it to yield in parts of at most size items (a device and its
// transitions count 1 + their number; a device with more transitions than
// size makes a part of its own), in the order a store must load them:
// devices with their history, groups, tokens, the audit log,
// inventories, commands (each device's in creation order), revisions,
// escalations. Only one part is in memory at a time. yield must not keep
// the part after it returns; an error from it stops the dump.
func (s *Store) DumpParts(_ context.Context, size int, yield func(store.Dump) error) error {
	p := &dumper{size: max(size, 1), yield: yield}
	d := &p.part
	err := s.db.View(func(tx *bbolt.Tx) error {
		each := func(bucket []byte, fn func(k, v []byte) error) error {
			return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
				if v == nil { // a nested bucket
					return nil
				}
				return fn(k, v)
			})
		}
		if err := each(bucketDevices, func(k, v []byte) error {
			dev, err := decodeDevice(tx, k, v)
			if err != nil {
				return err
			}
			d.Devices = append(d.Devices, dev)
			var hist []proto.Transition
			if hb := tx.Bucket(bucketHistory).Bucket(k); hb != nil {
				if err := hb.ForEach(func(_, hv []byte) error {
					var t proto.Transition
					if err := json.Unmarshal(hv, &t); err != nil {
						return fmt.Errorf("decoding history of %s: %w", k, err)
					}
					t.DeviceID = string(k)
					hist = append(hist, t)
					return nil
				}); err != nil {
					return err
				}
			}
			if len(hist) > 0 {
				if d.History == nil {
					d.History = map[string][]proto.Transition{}
				}
				d.History[string(k)] = hist
			}
			return p.added(1 + len(hist))
		}); err != nil {
			return err
		}
		if err := each(bucketGroups, func(k, v []byte) error {
			var g store.Group
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("decoding group %s: %w", k, err)
			}
			d.Groups = append(d.Groups, g)
			return p.added(1)
		}); err != nil {
			return err
		}
		if err := each(bucketOperators, func(k, v []byte) error {
			var t store.OperatorToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decoding operator token %s: %w", k, err)
			}
			d.OperatorTokens = append(d.OperatorTokens, t)
			return p.added(1)
		}); err != nil {
			return err
		}
		if err := each(bucketEnrollTokens, func(k, v []byte) error {
			var t store.EnrollmentToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decoding enrollment token %s: %w", k, err)
			}
			d.EnrollmentTokens = append(d.EnrollmentTokens, t)
			return p.added(1)
		}); err != nil {
			return err
		}
		if err := each(bucketAudit, func(k, v []byte) error {
			var e proto.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decoding audit entry: %w", err)
			}
			d.Audit = append(d.Audit, e)
			return p.added(1)
		}); err != nil {
			return err
		}
		if err := dumpLater(tx, p); err != nil {
			return err
		}
		return p.flush()
	})
	return err
}

// dumpLater adds the buckets added after the first schema (commands,
// revisions, escalations, inventories), each absent from an older file.
func dumpLater(tx *bbolt.Tx, p *dumper) error {
	d := &p.part
	if b := tx.Bucket(bucketInvDevices); b != nil {
		if err := b.ForEach(func(id, _ []byte) error {
			inv, err := readInventory(tx, string(id))
			if err != nil {
				return err
			}
			d.Inventories = append(d.Inventories, inv)
			return p.added(1)
		}); err != nil {
			return err
		}
	}
	if b := tx.Bucket(bucketDeviceCommands); b != nil {
		if err := b.ForEach(func(_, id []byte) error {
			sc, err := getCommand(tx, string(id))
			if err != nil {
				return err
			}
			d.Commands = append(d.Commands, sc.Command)
			return p.added(1)
		}); err != nil {
			return err
		}
	}
	if root := tx.Bucket(bucketRevisions); root != nil {
		if err := root.ForEach(func(k, v []byte) error {
			b := root.Bucket(k)
			if v != nil || b == nil {
				return nil
			}
			kind, id, ok := strings.Cut(string(k), ":")
			if !ok {
				return fmt.Errorf("revision bucket %q", k)
			}
			lr := store.LayerRevisions{Kind: store.RevisionKind(kind), ID: id}
			if err := b.ForEach(func(_, rv []byte) error {
				var r store.Revision
				if err := json.Unmarshal(rv, &r); err != nil {
					return fmt.Errorf("decoding revision %s: %w", k, err)
				}
				lr.Revisions = append(lr.Revisions, r)
				return nil
			}); err != nil {
				return err
			}
			d.Revisions = append(d.Revisions, lr)
			return p.added(max(1, len(lr.Revisions)))
		}); err != nil {
			return err
		}
	}
	if root := tx.Bucket(bucketEscalations); root != nil {
		return root.ForEach(func(k, v []byte) error {
			b := root.Bucket(k)
			if v != nil || b == nil {
				return nil
			}
			steps := map[string]string{}
			if err := b.ForEach(func(step, since []byte) error {
				steps[string(step)] = string(since)
				return nil
			}); err != nil {
				return err
			}
			if d.Escalations == nil {
				d.Escalations = map[string]map[string]string{}
			}
			d.Escalations[string(k)] = steps
			return p.added(max(1, len(steps)))
		})
	}
	return nil
}
