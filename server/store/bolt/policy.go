package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

var (
	bucketGroups     = []byte("groups")      // group id -> JSON store.Group
	bucketGroupNames = []byte("group_names") // group name -> group id
	bucketHistory    = []byte("history")     // device id -> bucket: big-endian seq -> JSON proto.Transition
	bucketMeta       = []byte("meta")        // keySummary -> JSON summary
	keySummary       = []byte("summary")
)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock used to time transitions caused by edits; the
// default is time.Now. Reports and enrollments carry their own times.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithNoSync skips the fsync after each commit. It loses durability on a
// crash: for benchmarks and throw-away simulations only, never serving.
func WithNoSync() Option { return func(s *Store) { s.db.NoSync = true } }

// summary is the fleet's counters, kept in the meta bucket and updated in
// every transaction that changes a device.
type summary struct {
	Counts map[proto.ComplianceState]int64 `json:"counts"`
	Drift  map[string]int64                `json:"drift"`
}

// add counts n devices in state, failing the settings named failing.
func (s *summary) add(state proto.ComplianceState, failing []string, n int64) {
	s.Counts[state] += n
	for _, f := range failing {
		s.Drift[f] += n
		if s.Drift[f] == 0 {
			delete(s.Drift, f)
		}
	}
}

func newSummary() *summary {
	return &summary{Counts: map[proto.ComplianceState]int64{}, Drift: map[string]int64{}}
}

func loadSummary(tx *bbolt.Tx) (*summary, error) {
	v := tx.Bucket(bucketMeta).Get(keySummary)
	sum := newSummary()
	if v == nil {
		return nil, nil
	}
	if err := json.Unmarshal(v, sum); err != nil {
		return nil, fmt.Errorf("decoding summary: %w", err)
	}
	if sum.Counts == nil {
		sum.Counts = map[proto.ComplianceState]int64{}
	}
	if sum.Drift == nil {
		sum.Drift = map[string]int64{}
	}
	return sum, nil
}

func saveSummary(tx *bbolt.Tx, sum *summary) error {
	v, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(keySummary, v)
}

// initSummary builds the counters by one scan when the database has none
// (a database from before they existed).
func (s *Store) initSummary() error {
	return s.updateTx(func(tx *bbolt.Tx) error {
		sum, err := loadSummary(tx)
		if err != nil || sum != nil {
			return err
		}
		sum = newSummary()
		err = tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			d, err := decodeDevice(tx, k, v)
			if err != nil {
				return err
			}
			st, failing := policy.Derive(d)
			sum.add(st, headOf(d, st, failing).failing, 1)
			return nil
		})
		if err != nil {
			return err
		}
		return saveSummary(tx, sum)
	})
}

// writer is one write transaction that keeps history, counters and the
// transitions to announce in step with every device it writes.
type writer struct {
	tx     *bbolt.Tx
	sum    *summary
	groups map[string]store.Group // loaded on first use
}

func (w *writer) summary() (*summary, error) {
	if w.sum == nil {
		sum, err := loadSummary(w.tx)
		if err != nil {
			return nil, err
		}
		if sum == nil {
			sum = newSummary()
		}
		w.sum = sum
	}
	return w.sum, nil
}

// put writes after, the new state of a device that was before (nil when
// it is new), counting and recording a change of derived state with cause
// at time at. The state before is read from the device's head, so after is
// the only evaluation. The last report is not rewritten (a write through
// put does not change it; a new device has none). It returns what it wrote.
func (w *writer) put(before *store.Device, after store.Device, cause proto.EventCause, at time.Time) (store.Change, error) {
	var prev *head
	if before != nil {
		h, err := getHead(w.tx, before.ID)
		if err != nil {
			return store.Change{}, err
		}
		prev = &h
	}
	to, failing := policy.Derive(after)
	c, next, err := w.change(before, prev, after, to, failing, cause, at)
	if err != nil {
		return c, err
	}
	if prev == nil || !next.equal(*prev) {
		if err := putHead(w.tx, after.ID, next); err != nil {
			return c, err
		}
	}
	if before == nil && after.Report != nil {
		enc, err := encodeReport(after.Report)
		if err != nil {
			return c, err
		}
		if err := putReport(w.tx, after.ID, after.Report, enc); err != nil {
			return c, err
		}
	}
	return c, putRecord(w.tx, c.Device)
}

// putReport writes e.after, which is e.before (read without its report,
// whose head is prev) with a new last report (encoded as enc) evaluated in
// e: the report and its replay record under their own keys, the record
// only when more than the report changed (sync interval, failing since),
// the head only when the state or the failing settings changed.
func (w *writer) putReport(e reportEval, prev head, enc []byte, at time.Time) (store.Change, error) {
	before, after := &e.before, e.after
	c, next, err := w.change(before, &prev, after, e.to, e.failing, proto.CauseReport, at)
	if err != nil {
		return c, err
	}
	if err := putReport(w.tx, after.ID, after.Report, enc); err != nil {
		return c, err
	}
	if !next.equal(prev) {
		if err := putHead(w.tx, after.ID, next); err != nil {
			return c, err
		}
	}
	d := c.Device
	if d.SyncIntervalSeconds != before.SyncIntervalSeconds || !d.NonCompliantSince.Equal(before.NonCompliantSince) ||
		!maps.EqualFunc(d.FailingSince, before.FailingSince, time.Time.Equal) {
		return c, putRecord(w.tx, d)
	}
	return c, nil
}

// change records the move of a device from before, whose head is prev
// (both nil when the device is new), to after, whose derived state (the
// write's one evaluation) is to with failing: the summary counters,
// NonCompliantSince/FailingSince, and a transition in the history when
// the state changed. It returns the change and after's head; the caller
// writes what changed.
func (w *writer) change(before *store.Device, prev *head, after store.Device, to proto.ComplianceState, failing []proto.SettingFailure, cause proto.EventCause, at time.Time) (store.Change, head, error) {
	var (
		from        proto.ComplianceState
		fromFailing []string
	)
	if prev != nil {
		from, fromFailing = prev.state, prev.failing
	}
	if before != nil {
		// The revision as committed: a report does not rewrite the record
		// that before was read from, so the record's may be behind.
		b := *before
		if rev, ok := getRev(w.tx, b.ID); ok {
			b.Rev = rev
		}
		before = &b
	}
	c := policy.ApplyDerived(before, &after, from, to, failing, cause, at).Change
	if err := putRev(w.tx, after.ID, c.Device.Rev); err != nil {
		return c, head{}, err
	}
	next := headOf(after, to, failing)
	// The counters change only with the state or the failing settings: a
	// report that changes neither (the common one) leaves them alone.
	if prev == nil || from != to || !slices.Equal(fromFailing, next.failing) {
		sum, err := w.summary()
		if err != nil {
			return store.Change{}, next, err
		}
		if prev != nil {
			sum.add(from, fromFailing, -1)
		}
		sum.add(to, next.failing, 1)
	}
	for _, t := range c.Transitions {
		if err := appendHistory(w.tx, t); err != nil {
			return c, next, err
		}
	}
	return c, next, nil
}

// remove deletes d, its secret index, its history and its group
// memberships, and takes its state out of the summary.
func (w *writer) remove(d store.Device) error {
	sum, err := w.summary()
	if err != nil {
		return err
	}
	h, err := getHead(w.tx, d.ID)
	if err != nil {
		return err
	}
	sum.add(h.state, h.failing, -1)
	for _, gid := range d.Groups {
		g, err := getGroup(w.tx, gid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		g.Members = slices.DeleteFunc(g.Members, func(id string) bool { return id == d.ID })
		if err := putGroup(w.tx, g); err != nil {
			return err
		}
	}
	w.groups = nil
	if w.tx.Bucket(bucketHistory).Bucket([]byte(d.ID)) != nil {
		if err := w.tx.Bucket(bucketHistory).DeleteBucket([]byte(d.ID)); err != nil {
			return err
		}
	}
	if err := w.tx.Bucket(bucketSecrets).Delete(d.SecretHash); err != nil {
		return err
	}
	for _, b := range [][]byte{bucketHeads, bucketReports, bucketReplay, bucketRevs, bucketSeen, bucketDevices} {
		if err := w.tx.Bucket(b).Delete([]byte(d.ID)); err != nil {
			return err
		}
	}
	return nil
}

func appendHistory(tx *bbolt.Tx, t proto.Transition) error {
	b, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(t.DeviceID))
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	rec := t
	rec.DeviceID = ""
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return err
	}
	if seq > store.HistoryLimit {
		return b.Delete(seqKey(seq - store.HistoryLimit))
	}
	return nil
}

func seqKey(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

func (w *writer) finish() error {
	if w.sum == nil {
		return nil
	}
	return saveSummary(w.tx, w.sum)
}

func (s *Store) run(do func(func(*bbolt.Tx) error) error, f func(*writer) error) error {
	return do(func(tx *bbolt.Tx) error {
		w := &writer{tx: tx}
		if err := f(w); err != nil {
			return err
		}
		return w.finish()
	})
}

// update runs f in one write transaction.
func (s *Store) update(f func(*writer) error) error { return s.run(s.updateTx, f) }

// updateAudited runs f in one write transaction that also records the audit
// entry ctx carries (store.WithAudit), if any, once f succeeded.
func (s *Store) updateAudited(ctx context.Context, f func(*writer) error) error {
	return s.update(func(w *writer) error {
		if err := f(w); err != nil {
			return err
		}
		return s.writeAudit(ctx, w.tx)
	})
}

// batch runs f in a transaction shared with concurrent callers (the group
// commit); f may run more than once.
// The functions of one group share one writer (s.bw), so the summary
// counters are decoded and written once per transaction, not once per
// write.
func (s *Store) batch(f func(*writer) error) error {
	return s.noteWrite(s.w.do(func(tx *bbolt.Tx) error {
		w := s.bw
		if w == nil || w.tx != tx {
			return fmt.Errorf("store: group write outside its transaction")
		}
		return f(w)
	}))
}

func getGroup(tx *bbolt.Tx, id string) (store.Group, error) {
	var g store.Group
	v := tx.Bucket(bucketGroups).Get([]byte(id))
	if v == nil {
		return g, store.ErrNotFound
	}
	if err := json.Unmarshal(v, &g); err != nil {
		return g, fmt.Errorf("decoding group %s: %w", id, err)
	}
	return g, nil
}

func putGroup(tx *bbolt.Tx, g store.Group) error {
	v, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("encoding group %s: %w", g.ID, err)
	}
	return tx.Bucket(bucketGroups).Put([]byte(g.ID), v)
}

// allGroups loads every group once per transaction.
func (w *writer) allGroups() (map[string]store.Group, error) {
	if w.groups != nil {
		return w.groups, nil
	}
	w.groups = map[string]store.Group{}
	err := w.tx.Bucket(bucketGroups).ForEach(func(k, v []byte) error {
		var g store.Group
		if err := json.Unmarshal(v, &g); err != nil {
			return fmt.Errorf("decoding group %s: %w", k, err)
		}
		w.groups[g.ID] = g
		return nil
	})
	return w.groups, err
}

func (w *writer) groupsOf(d store.Device) ([]store.Group, error) {
	if len(d.Groups) == 0 {
		return nil, nil
	}
	all, err := w.allGroups()
	return policy.GroupsOf(d, all), err
}

// recompute re-derives the effective policy of each device in ids after
// a group change (w.groups already reflects it), setting membership of
// group gid to member(id) when gid is not empty.
func (w *writer) recompute(ids []string, gid string, member func(string) bool, at time.Time) ([]store.Change, error) {
	changes := make([]store.Change, 0, len(ids)) // a Change holds a whole Device: growing the slice copies them
	for _, id := range ids {
		d, err := getDevice(w.tx, id)
		if err != nil {
			return nil, fmt.Errorf("group member %s: %w", id, err)
		}
		before := d
		all, err := w.allGroups()
		if err != nil {
			return nil, err
		}
		changed, write := policy.Regroup(&d, all, gid, member)
		if !write {
			continue
		}
		c, err := w.put(&before, d, proto.CauseGroup, at)
		if err != nil {
			return nil, err
		}
		if changed {
			changes = append(changes, c)
		}
	}
	return changes, nil
}

func (w *writer) checkDevices(ids []string) error {
	var unknown []string
	b := w.tx.Bucket(bucketDevices)
	for _, id := range ids {
		if b.Get([]byte(id)) == nil {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return store.UnknownDevices(unknown)
	}
	return nil
}

// CreateGroup implements store.GroupStore.
func (s *Store) CreateGroup(ctx context.Context, g store.Group) (changes []store.Change, err error) {
	g.Members = policy.NormalizeMembers(g.Members)
	err = s.updateAudited(ctx, func(w *writer) error {
		if w.tx.Bucket(bucketGroups).Get([]byte(g.ID)) != nil {
			return store.ErrExists
		}
		if w.tx.Bucket(bucketGroupNames).Get([]byte(g.Name)) != nil {
			return store.ErrNameTaken
		}
		if err := w.checkDevices(g.Members); err != nil {
			return err
		}
		if err := w.tx.Bucket(bucketGroupNames).Put([]byte(g.Name), []byte(g.ID)); err != nil {
			return err
		}
		if err := putGroup(w.tx, g); err != nil {
			return err
		}
		if err := w.addRevision(ctx, store.RevisionGroup, g.ID, g.Layer, g.Mode, s.now()); err != nil {
			return err
		}
		all, err := w.allGroups()
		if err != nil {
			return err
		}
		all[g.ID] = g
		changes, err = w.recompute(g.Members, g.ID, func(string) bool { return true }, s.now())
		return err
	})
	return changes, err
}

// Group implements store.GroupStore.
func (s *Store) Group(_ context.Context, id string) (g store.Group, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		g, err = getGroup(tx, id)
		return err
	})
	return g, err
}

// Groups implements store.GroupStore.
func (s *Store) Groups(_ context.Context) ([]store.Group, error) {
	var out []store.Group
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketGroups).ForEach(func(k, v []byte) error {
			var g store.Group
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("decoding group %s: %w", k, err)
			}
			out = append(out, g)
			return nil
		})
	})
	policy.SortGroups(out)
	return out, err
}

// UpdateGroup implements store.GroupStore.
func (s *Store) UpdateGroup(ctx context.Context, id string, change func(store.Group) (store.Group, error)) (g store.Group, changes []store.Change, err error) {
	err = s.updateAudited(ctx, func(w *writer) error {
		cur, err := getGroup(w.tx, id)
		if err != nil {
			return err
		}
		if g, err = policy.ChangeGroup(cur, change); err != nil {
			return err
		}
		if g.Name != cur.Name {
			names := w.tx.Bucket(bucketGroupNames)
			if names.Get([]byte(g.Name)) != nil {
				return store.ErrNameTaken
			}
			if err := names.Delete([]byte(cur.Name)); err != nil {
				return err
			}
			if err := names.Put([]byte(g.Name), []byte(g.ID)); err != nil {
				return err
			}
		}
		if err := putGroup(w.tx, g); err != nil {
			return err
		}
		if err := w.addRevision(ctx, store.RevisionGroup, g.ID, g.Layer, g.Mode, s.now()); err != nil {
			return err
		}
		all, err := w.allGroups()
		if err != nil {
			return err
		}
		all[g.ID] = g
		changes, err = w.recompute(g.Members, "", nil, s.now())
		return err
	})
	return g, changes, err
}

// SetGroupMembers implements store.GroupStore.
func (s *Store) SetGroupMembers(ctx context.Context, id string, deviceIDs []string) (g store.Group, changes []store.Change, err error) {
	members := policy.NormalizeMembers(deviceIDs)
	err = s.updateAudited(ctx, func(w *writer) error {
		g, err = getGroup(w.tx, id)
		if err != nil {
			return err
		}
		if err := w.checkDevices(members); err != nil {
			return err
		}
		affected := policy.NormalizeMembers(append(slices.Clone(g.Members), members...))
		in := map[string]bool{}
		for _, m := range members {
			in[m] = true
		}
		g.Members = members
		if err := putGroup(w.tx, g); err != nil {
			return err
		}
		changes, err = w.recompute(affected, g.ID, func(id string) bool { return in[id] }, s.now())
		return err
	})
	return g, changes, err
}

// DeleteGroup implements store.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, id string) (changes []store.Change, err error) {
	err = s.updateAudited(ctx, func(w *writer) error {
		g, err := getGroup(w.tx, id)
		if err != nil {
			return err
		}
		if err := w.tx.Bucket(bucketGroups).Delete([]byte(id)); err != nil {
			return err
		}
		if err := w.tx.Bucket(bucketGroupNames).Delete([]byte(g.Name)); err != nil {
			return err
		}
		all, err := w.allGroups()
		if err != nil {
			return err
		}
		delete(all, id)
		changes, err = w.recompute(g.Members, g.ID, func(string) bool { return false }, s.now())
		return err
	})
	return changes, err
}

// UpdateOverride implements store.OverrideStore.
func (s *Store) UpdateOverride(ctx context.Context, id string, change func(store.Layer) store.Layer) (c store.Change, changed bool, err error) {
	// An edit to many devices at once shares fsyncs; f recomputes all it
	// sets, so it may run twice.
	err = s.batch(func(w *writer) error {
		d, err := getDevice(w.tx, id)
		if err != nil {
			return err
		}
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
		if c, err = w.put(&before, d, proto.CauseEdit, s.now()); err != nil {
			return err
		}
		if err := w.addRevision(ctx, store.RevisionDevice, d.ID, d.Override, "", s.now()); err != nil {
			return err
		}
		return s.writeAudit(ctx, w.tx)
	})
	return c, changed, err
}

// History implements store.HistoryStore.
func (s *Store) History(_ context.Context, id string) ([]proto.Transition, error) {
	out := []proto.Transition{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketDevices).Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		b := tx.Bucket(bucketHistory).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var t proto.Transition
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decoding history of %s: %w", id, err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Summary implements store.HistoryStore.
func (s *Store) Summary(_ context.Context) (proto.ComplianceSummary, error) {
	out := proto.ComplianceSummary{Counts: map[proto.ComplianceState]int64{}, DriftingSettings: []proto.DriftingSetting{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		sum, err := loadSummary(tx)
		if err != nil {
			return err
		}
		if sum == nil {
			return errors.New("summary missing")
		}
		for _, st := range proto.States {
			out.Counts[st] = sum.Counts[st]
		}
		for name, n := range sum.Drift {
			if n > 0 {
				out.DriftingSettings = append(out.DriftingSettings, proto.DriftingSetting{Setting: name, Devices: n})
			}
		}
		return nil
	})
	sort.Slice(out.DriftingSettings, func(i, j int) bool {
		a, b := out.DriftingSettings[i], out.DriftingSettings[j]
		if a.Devices != b.Devices {
			return a.Devices > b.Devices
		}
		return a.Setting < b.Setting
	})
	return out, err
}
