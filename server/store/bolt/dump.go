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

// Dump returns everything the store holds, read in one transaction.
func (s *Store) Dump(_ context.Context) (store.Dump, error) {
	d := store.Dump{History: map[string][]proto.Transition{}}
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
			if hb := tx.Bucket(bucketHistory).Bucket(k); hb != nil {
				return hb.ForEach(func(_, hv []byte) error {
					var t proto.Transition
					if err := json.Unmarshal(hv, &t); err != nil {
						return fmt.Errorf("decoding history of %s: %w", k, err)
					}
					t.DeviceID = string(k)
					d.History[string(k)] = append(d.History[string(k)], t)
					return nil
				})
			}
			return nil
		}); err != nil {
			return err
		}
		if err := each(bucketGroups, func(k, v []byte) error {
			var g store.Group
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("decoding group %s: %w", k, err)
			}
			d.Groups = append(d.Groups, g)
			return nil
		}); err != nil {
			return err
		}
		if err := each(bucketOperators, func(k, v []byte) error {
			var t store.OperatorToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decoding operator token %s: %w", k, err)
			}
			d.OperatorTokens = append(d.OperatorTokens, t)
			return nil
		}); err != nil {
			return err
		}
		if err := each(bucketEnrollTokens, func(k, v []byte) error {
			var t store.EnrollmentToken
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decoding enrollment token %s: %w", k, err)
			}
			d.EnrollmentTokens = append(d.EnrollmentTokens, t)
			return nil
		}); err != nil {
			return err
		}
		if err := each(bucketAudit, func(k, v []byte) error {
			var e proto.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decoding audit entry: %w", err)
			}
			d.Audit = append(d.Audit, e)
			return nil
		}); err != nil {
			return err
		}
		return dumpLater(tx, &d)
	})
	return d, err
}

// dumpLater adds the buckets added after the first schema (commands,
// revisions, escalations, inventories), each absent from an older file.
func dumpLater(tx *bbolt.Tx, d *store.Dump) error {
	if b := tx.Bucket(bucketInvDevices); b != nil {
		if err := b.ForEach(func(id, _ []byte) error {
			inv, err := readInventory(tx, string(id))
			if err != nil {
				return err
			}
			d.Inventories = append(d.Inventories, inv)
			return nil
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
			return nil
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
			return nil
		}); err != nil {
			return err
		}
	}
	if root := tx.Bucket(bucketEscalations); root != nil {
		d.Escalations = map[string]map[string]string{}
		return root.ForEach(func(k, v []byte) error {
			b := root.Bucket(k)
			if v != nil || b == nil {
				return nil
			}
			steps := map[string]string{}
			d.Escalations[string(k)] = steps
			return b.ForEach(func(step, since []byte) error {
				steps[string(step)] = string(since)
				return nil
			})
		})
	}
	return nil
}
