package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// The inventory layout. A device's sections are separate keys, so a
// partial upload decodes and re-indexes only the sections it replaces; each
// fact comes from exactly one section, so a section's facts are diffed on
// their own. The indexes are nested buckets, one per fact (or package name)
// holding one per value (or format+version) whose keys are device ids, and
// count buckets maintained in the same transaction.
var (
	bucketInventory   = []byte("inventory")    // id\x00 -> JSON invMeta; id\x00<section> -> section JSON
	bucketInvDevices  = []byte("inv_devices")  // id -> empty: devices with an inventory
	bucketInvFacts    = []byte("inv_facts")    // fact / value / id -> empty
	bucketInvFactN    = []byte("inv_factn")    // fact / value -> uint64 count
	bucketInvPackages = []byte("inv_packages") // name / format\x00version / id -> empty
	bucketInvPackageN = []byte("inv_packagen") // name / format\x00version -> uint64 count
	bucketInvTrigrams = []byte("inv_trigrams") // fact / trigram / value -> empty, for trigramFacts
)

var inventoryBuckets = [][]byte{bucketInventory, bucketInvDevices, bucketInvFacts, bucketInvFactN, bucketInvPackages, bucketInvPackageN}

// trigramFacts are the facts whose distinct values are indexed by their
// lower-case byte trigrams, so a substring search (?hostname~=) reads the
// values holding the substring's trigrams rather than every value.
var trigramFacts = map[string]bool{proto.FactHostname: true}

func createInventoryBuckets(tx *bbolt.Tx) error {
	for _, b := range inventoryBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	if tx.Bucket(bucketInvTrigrams) != nil {
		return nil
	}
	// A database from before the trigram index: built once from the
	// values the fact index holds.
	if _, err := tx.CreateBucket(bucketInvTrigrams); err != nil {
		return err
	}
	for fact := range trigramFacts {
		g := tx.Bucket(bucketInvFactN).Bucket([]byte(fact))
		if g == nil {
			continue
		}
		if err := g.ForEach(func(v, _ []byte) error { return trigramIndex(tx, fact, string(v), true) }); err != nil {
			return err
		}
	}
	return nil
}

// trigrams returns the distinct byte trigrams of s in lower case.
func trigrams(s string) []string {
	s = strings.ToLower(s)
	var out []string
	for i := 0; i+3 <= len(s); i++ {
		if t := s[i : i+3]; !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// trigramIndex adds (add) or removes value of fact in the trigram index.
func trigramIndex(tx *bbolt.Tx, fact, value string, add bool) error {
	if !trigramFacts[fact] {
		return nil
	}
	root := tx.Bucket(bucketInvTrigrams)
	if add {
		f, err := root.CreateBucketIfNotExists([]byte(fact))
		if err != nil {
			return err
		}
		for _, t := range trigrams(value) {
			tb, err := f.CreateBucketIfNotExists([]byte(t))
			if err != nil {
				return err
			}
			if err := tb.Put([]byte(value), present); err != nil {
				return err
			}
		}
		return nil
	}
	f := root.Bucket([]byte(fact))
	if f == nil {
		return nil
	}
	for _, t := range trigrams(value) {
		tb := f.Bucket([]byte(t))
		if tb == nil {
			continue
		}
		if err := tb.Delete([]byte(value)); err != nil {
			return err
		}
		if k, _ := tb.Cursor().First(); k == nil {
			if err := f.DeleteBucket([]byte(t)); err != nil {
				return err
			}
		}
	}
	return nil
}

// trigramValues returns the values of fact that hold every trigram of
// sub (a superset of those containing sub), and false when the index
// cannot answer (fact not indexed, sub shorter than a trigram).
func trigramValues(tx *bbolt.Tx, fact, sub string) ([][]byte, bool) {
	ts := trigrams(sub)
	if !trigramFacts[fact] || len(ts) == 0 {
		return nil, false
	}
	f := tx.Bucket(bucketInvTrigrams).Bucket([]byte(fact))
	if f == nil {
		return nil, true
	}
	bs := make([]*bbolt.Bucket, len(ts))
	for i, t := range ts {
		if bs[i] = f.Bucket([]byte(t)); bs[i] == nil {
			return nil, true
		}
	}
	var out [][]byte
	c := bs[0].Cursor()
outer:
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		for _, b := range bs[1:] {
			if b.Get(k) == nil {
				continue outer
			}
		}
		out = append(out, k)
	}
	return out, true
}

type invMeta struct {
	CollectedAt time.Time                             `json:"collectedAt,omitzero"`
	UpdatedAt   time.Time                             `json:"updatedAt,omitzero"`
	Sections    map[string]proto.InventorySectionMeta `json:"sections"`
}

// present is the value of an index key: bbolt tells an empty value from a
// missing key only by Get's nil, so the value is one byte.
var present = []byte{1}

func invKey(id, section string) []byte { return []byte(id + "\x00" + section) }

// SaveInventory implements store.InventoryStore. Uploads from many devices
// share one transaction and one fsync (group commit).
func (s *Store) SaveInventory(_ context.Context, id string, up proto.InventoryUpload, at time.Time) (missing []string, err error) {
	err = s.w.do(func(tx *bbolt.Tx) error {
		missing = nil
		if tx.Bucket(bucketDevices).Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		missing, err = saveInventory(tx, id, up, at)
		return err
	})
	return missing, err
}

func saveInventory(tx *bbolt.Tx, id string, up proto.InventoryUpload, at time.Time) ([]string, error) {
	inv := tx.Bucket(bucketInventory)
	meta := invMeta{Sections: map[string]proto.InventorySectionMeta{}}
	if v := inv.Get(invKey(id, "")); v != nil {
		if err := json.Unmarshal(v, &meta); err != nil {
			return nil, fmt.Errorf("decoding inventory of %s: %w", id, err)
		}
	}
	for _, sec := range up.Present() {
		newJSON := up.Section(sec)
		old, err := loadSection(tx, id, sec)
		if err != nil {
			return nil, err
		}
		if err := reindex(tx, id, old, up.Inventory.Only([]string{sec})); err != nil {
			return nil, err
		}
		if err := inv.Put(invKey(id, sec), newJSON); err != nil {
			return nil, err
		}
		m := meta.Sections[sec]
		if m.Hash != up.Hashes[sec] || m.ChangedAt.IsZero() {
			m.ChangedAt = at
		}
		m.Hash, m.ReceivedAt = up.Hashes[sec], at
		meta.Sections[sec] = m
	}
	var missing []string
	for _, sec := range proto.InventorySections {
		h, ok := up.Hashes[sec]
		if ok && meta.Sections[sec].Hash != h {
			missing = append(missing, sec)
		}
	}
	if len(up.Present()) > 0 {
		meta.UpdatedAt = at
		if !up.CollectedAt.IsZero() {
			meta.CollectedAt = up.CollectedAt.UTC()
		}
	} else if meta.UpdatedAt.IsZero() {
		// A probe from a device the server has nothing of: nothing to keep.
		return missing, nil
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	if err := inv.Put(invKey(id, ""), b); err != nil {
		return nil, err
	}
	return missing, tx.Bucket(bucketInvDevices).Put([]byte(id), present)
}

// loadSection returns the stored section sec of device id as an Inventory
// holding only it (empty when absent).
func loadSection(tx *bbolt.Tx, id, sec string) (proto.Inventory, error) {
	var inv proto.Inventory
	v := tx.Bucket(bucketInventory).Get(invKey(id, sec))
	if v == nil {
		return inv, nil
	}
	// The section's JSON under its own key is the Inventory's field.
	buf := make([]byte, 0, len(v)+len(sec)+8)
	buf = append(append(append(append(buf, `{"`...), sec...), `":`...), v...)
	buf = append(buf, '}')
	if err := json.Unmarshal(buf, &inv); err != nil {
		return inv, fmt.Errorf("decoding inventory section %s of %s: %w", sec, id, err)
	}
	return inv, nil
}

// reindex moves device id's index entries from what old holds to what new
// holds; both carry the same single section (or none).
func reindex(tx *bbolt.Tx, id string, old, new proto.Inventory) error {
	of, nf := old.Facts(), new.Facts()
	for fact, vals := range of {
		for _, v := range vals {
			if !slices.Contains(nf[fact], v) {
				if err := unindex(tx, bucketInvFacts, bucketInvFactN, fact, v, id); err != nil {
					return err
				}
			}
		}
	}
	for fact, vals := range nf {
		for _, v := range vals {
			if !slices.Contains(of[fact], v) {
				if err := index(tx, bucketInvFacts, bucketInvFactN, fact, v, id); err != nil {
					return err
				}
			}
		}
	}
	op, np := packageSet(old), packageSet(new)
	for k := range op {
		if _, ok := np[k]; !ok {
			if err := unindex(tx, bucketInvPackages, bucketInvPackageN, k[0], k[1], id); err != nil {
				return err
			}
		}
	}
	for k := range np {
		if _, ok := op[k]; !ok {
			if err := index(tx, bucketInvPackages, bucketInvPackageN, k[0], k[1], id); err != nil {
				return err
			}
		}
	}
	return nil
}

// packageSet returns the (name, format\x00version) pairs of inv's packages.
func packageSet(inv proto.Inventory) map[[2]string]struct{} {
	out := map[[2]string]struct{}{}
	if p := inv.Packages; p != nil {
		for _, x := range p.Packages {
			out[[2]string{x.Name, p.Format + "\x00" + x.Version}] = struct{}{}
		}
	}
	return out
}

func index(tx *bbolt.Tx, ids, counts []byte, group, value, id string) error {
	g, err := tx.Bucket(ids).CreateBucketIfNotExists([]byte(group))
	if err != nil {
		return err
	}
	vb := g.Bucket([]byte(value))
	if vb == nil {
		if vb, err = g.CreateBucket([]byte(value)); err != nil {
			return err
		}
		if bytes.Equal(ids, bucketInvFacts) {
			if err := trigramIndex(tx, group, value, true); err != nil {
				return err
			}
		}
	}
	if vb.Get([]byte(id)) != nil {
		return nil
	}
	if err := vb.Put([]byte(id), present); err != nil {
		return err
	}
	return addCount(tx, counts, group, value, 1)
}

func unindex(tx *bbolt.Tx, ids, counts []byte, group, value, id string) error {
	g := tx.Bucket(ids).Bucket([]byte(group))
	if g == nil {
		return nil
	}
	vb := g.Bucket([]byte(value))
	if vb == nil || vb.Get([]byte(id)) == nil {
		return nil
	}
	if err := vb.Delete([]byte(id)); err != nil {
		return err
	}
	if k, _ := vb.Cursor().First(); k == nil {
		if err := g.DeleteBucket([]byte(value)); err != nil {
			return err
		}
		if bytes.Equal(ids, bucketInvFacts) {
			if err := trigramIndex(tx, group, value, false); err != nil {
				return err
			}
		}
		if k, _ := g.Cursor().First(); k == nil {
			if err := tx.Bucket(ids).DeleteBucket([]byte(group)); err != nil {
				return err
			}
		}
	}
	return addCount(tx, counts, group, value, -1)
}

func addCount(tx *bbolt.Tx, counts []byte, group, value string, delta int64) error {
	g, err := tx.Bucket(counts).CreateBucketIfNotExists([]byte(group))
	if err != nil {
		return err
	}
	var n int64
	if v := g.Get([]byte(value)); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	if n <= 0 {
		if err := g.Delete([]byte(value)); err != nil {
			return err
		}
		if k, _ := g.Cursor().First(); k == nil {
			return tx.Bucket(counts).DeleteBucket([]byte(group))
		}
		return nil
	}
	return g.Put([]byte(value), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// deleteInventory removes device id's inventory and index entries; it is
// part of deleting the device.
func deleteInventory(tx *bbolt.Tx, id string) error {
	for _, sec := range proto.InventorySections {
		old, err := loadSection(tx, id, sec)
		if err != nil {
			return err
		}
		if err := reindex(tx, id, old, proto.Inventory{}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketInventory).Delete(invKey(id, sec)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketInventory).Delete(invKey(id, "")); err != nil {
		return err
	}
	return tx.Bucket(bucketInvDevices).Delete([]byte(id))
}

// Inventory implements store.InventoryStore.
func (s *Store) Inventory(_ context.Context, id string) (out proto.DeviceInventory, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketDevices).Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		out, err = readInventory(tx, id)
		return err
	})
	return out, err
}

// readInventory returns device id's stored inventory (empty when none).
func readInventory(tx *bbolt.Tx, id string) (proto.DeviceInventory, error) {
	out := proto.DeviceInventory{DeviceID: id, Sections: map[string]proto.InventorySectionMeta{}}
	v := tx.Bucket(bucketInventory).Get(invKey(id, ""))
	if v == nil {
		return out, nil
	}
	var meta invMeta
	if err := json.Unmarshal(v, &meta); err != nil {
		return out, fmt.Errorf("decoding inventory of %s: %w", id, err)
	}
	out.CollectedAt, out.UpdatedAt, out.Sections = meta.CollectedAt, meta.UpdatedAt, meta.Sections
	for _, sec := range proto.InventorySections {
		part, err := loadSection(tx, id, sec)
		if err != nil {
			return out, err
		}
		out.Inventory.Merge(part)
	}
	return out, nil
}

// PackageVersions implements store.InventoryStore.
func (s *Store) PackageVersions(_ context.Context, name string) (out []proto.PackageVersionCount, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		g := tx.Bucket(bucketInvPackageN).Bucket([]byte(name))
		if g == nil {
			return nil
		}
		return g.ForEach(func(k, v []byte) error {
			format, version, _ := strings.Cut(string(k), "\x00")
			out = append(out, proto.PackageVersionCount{Format: format, Version: version, Devices: int(binary.BigEndian.Uint64(v))})
			return nil
		})
	})
	return out, err
}

// FactValues implements store.InventoryStore.
func (s *Store) FactValues(_ context.Context, fact string) (out []proto.FactValueCount, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		g := tx.Bucket(bucketInvFactN).Bucket([]byte(fact))
		if g == nil {
			return nil
		}
		return g.ForEach(func(k, v []byte) error {
			out = append(out, proto.FactValueCount{Value: string(k), Devices: int(binary.BigEndian.Uint64(v))})
			return nil
		})
	})
	return out, err
}

// cond is one query condition resolved against the index: the id buckets
// of the values it accepts and how many devices they hold together.
type cond struct {
	buckets []*bbolt.Bucket
	n       int
}

func (c cond) has(id []byte) bool {
	for _, b := range c.buckets {
		if b.Get(id) != nil {
			return true
		}
	}
	return false
}

// resolve finds the value buckets of group (a fact or a package name)
// whose value accept takes (every value when accept is nil). contains,
// when not empty, is a lower-case substring every accepted value holds:
// for a fact in the trigram index, accept then runs only on the values
// the index yields.
func resolve(tx *bbolt.Tx, ids, counts []byte, group string, accept func(string) bool, equal, contains string) cond {
	var c cond
	g, n := tx.Bucket(ids).Bucket([]byte(group)), tx.Bucket(counts).Bucket([]byte(group))
	if g == nil || n == nil {
		return c
	}
	take := func(v []byte, count []byte) {
		if b := g.Bucket(v); b != nil {
			c.buckets = append(c.buckets, b)
			c.n += int(binary.BigEndian.Uint64(count))
		}
	}
	if accept == nil && equal != "" {
		if count := n.Get([]byte(equal)); count != nil {
			take([]byte(equal), count)
		}
		return c
	}
	if contains != "" && accept != nil && bytes.Equal(ids, bucketInvFacts) {
		if vals, ok := trigramValues(tx, group, contains); ok {
			for _, v := range vals {
				if count := n.Get(v); count != nil && accept(string(v)) {
					take(v, count)
				}
			}
			return c
		}
	}
	cur := n.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if accept == nil || accept(string(k)) {
			take(k, v)
		}
	}
	return c
}

// FindDevices implements store.InventoryStore. The condition holding the
// fewest devices (by the counts) supplies the candidates; the others are
// checked per candidate with one lookup per accepted value.
func (s *Store) FindDevices(_ context.Context, q store.InventoryQuery, after string, limit int) (ids []string, more bool, err error) {
	err = s.db.View(func(tx *bbolt.Tx) error {
		var conds []cond
		for _, f := range q.Facts {
			conds = append(conds, resolve(tx, bucketInvFacts, bucketInvFactN, f.Fact, f.Match, f.Equal, f.Contains))
		}
		for _, p := range q.Packages {
			var accept func(string) bool
			if p.Match != nil {
				m := p.Match
				accept = func(k string) bool {
					format, version, _ := strings.Cut(k, "\x00")
					return m(format, version)
				}
			}
			conds = append(conds, resolve(tx, bucketInvPackages, bucketInvPackageN, p.Name, accept, "", ""))
		}
		if len(conds) == 0 {
			c := tx.Bucket(bucketInvDevices).Cursor()
			k, _ := c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, _ = c.Next()
			}
			for ; k != nil; k, _ = c.Next() {
				if len(ids) == limit {
					more = true
					return nil
				}
				ids = append(ids, string(k))
			}
			return nil
		}
		sort.SliceStable(conds, func(i, j int) bool { return conds[i].n < conds[j].n })
		first, rest := conds[0], conds[1:]
		err := candidates(first.buckets, after, func(id []byte) bool {
			for _, c := range rest {
				if !c.has(id) {
					return true
				}
			}
			if len(ids) == limit {
				more = true
				return false
			}
			ids = append(ids, string(id))
			return true
		})
		if err != nil {
			return err
		}
		return nil
	})
	return ids, more, err
}

// mergeMax is the most id buckets candidates merges cursor by cursor; a
// condition matching more values (a substring over hostnames) collects and
// sorts its ids instead.
var mergeMax = 64

// candidates calls yield with every id above after in any of buckets, once
// each, in id order, until yield returns false. With few buckets it merges
// their cursors, so a page stops reading at its last id.
func candidates(buckets []*bbolt.Bucket, after string, yield func(id []byte) bool) error {
	seek := func(c *bbolt.Cursor) []byte {
		k, _ := c.Seek([]byte(after))
		if k != nil && string(k) == after {
			k, _ = c.Next()
		}
		return k
	}
	if len(buckets) > mergeMax {
		var all [][]byte
		for _, b := range buckets {
			c := b.Cursor()
			for k := seek(c); k != nil; k, _ = c.Next() {
				all = append(all, k)
			}
		}
		slices.SortFunc(all, bytes.Compare)
		for i, k := range all {
			if i > 0 && bytes.Equal(k, all[i-1]) {
				continue
			}
			if !yield(k) {
				return nil
			}
		}
		return nil
	}
	curs := make([]*bbolt.Cursor, len(buckets))
	heads := make([][]byte, len(buckets))
	for i, b := range buckets {
		curs[i] = b.Cursor()
		heads[i] = seek(curs[i])
	}
	for {
		min := -1
		for i, h := range heads {
			if h != nil && (min < 0 || bytes.Compare(h, heads[min]) < 0) {
				min = i
			}
		}
		if min < 0 {
			return nil
		}
		k := heads[min]
		if !yield(k) {
			return nil
		}
		for i, h := range heads { // the same id in another bucket is passed too
			if h != nil && bytes.Equal(h, k) {
				heads[i], _ = curs[i].Next()
			}
		}
	}
}
