package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// A device is kept under three keys, so that the hot paths read and write
// only what they need:
//
//   - devices: the record (JSON store.Device) without its last report;
//   - reports: the last report (JSON store.Report), rewritten alone by a
//     report that changes nothing else;
//   - heads: a small binary head (secret hash, certificate flag, desired
//     policy version, derived state and failing settings as last written),
//     which authenticates a request, answers a policy poll that carries the
//     current ETag, and tells a write the state before it without
//     evaluating the record again.
//
// Every write of a device's policy, report or state goes through
// writer.put or writer.putReport, which keep the three in step in one
// transaction; writes that change none of them (FCM token, last seen) only
// rewrite the record.
var (
	bucketReports = []byte("reports") // device id -> JSON store.Report
	bucketHeads   = []byte("heads")   // device id -> head (encodeHead)
)

// head is what the hot paths read of a device without decoding its record.
type head struct {
	secretHash    []byte
	clientCert    bool
	policyVersion int64
	state         proto.ComplianceState
	failing       []string // the failing settings' names, in Derive's order
}

const headFormat = 1

// encodeHead lays h out as: format byte, flags byte, policy version (8
// bytes, big-endian), then the secret hash, the state and each failing
// setting's name, each preceded by its length as a uvarint.
func encodeHead(h head) []byte {
	n := 10 + 2*binary.MaxVarintLen16 + len(h.secretHash) + len(h.state)
	for _, f := range h.failing {
		n += binary.MaxVarintLen16 + len(f)
	}
	b := make([]byte, 10, n)
	b[0] = headFormat
	if h.clientCert {
		b[1] = 1
	}
	binary.BigEndian.PutUint64(b[2:10], uint64(h.policyVersion))
	b = binary.AppendUvarint(b, uint64(len(h.secretHash)))
	b = append(b, h.secretHash...)
	b = binary.AppendUvarint(b, uint64(len(h.state)))
	b = append(b, h.state...)
	for _, f := range h.failing {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

var errBadHead = errors.New("malformed device head")

// decodeHead reads what encodeHead wrote. full false stops after the
// secret hash (what authentication needs). The hash is copied out of b,
// which bbolt owns.
func decodeHead(b []byte, full bool) (head, error) {
	var h head
	if len(b) < 10 || b[0] != headFormat {
		return h, errBadHead
	}
	h.clientCert = b[1]&1 != 0
	h.policyVersion = int64(binary.BigEndian.Uint64(b[2:10]))
	rest := b[10:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return nil, false
		}
		f := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return f, true
	}
	hash, ok := field()
	if !ok {
		return h, errBadHead
	}
	h.secretHash = slices.Clone(hash)
	if !full {
		return h, nil
	}
	st, ok := field()
	if !ok {
		return h, errBadHead
	}
	h.state = proto.ComplianceState(st)
	for len(rest) > 0 {
		f, ok := field()
		if !ok {
			return h, errBadHead
		}
		h.failing = append(h.failing, string(f))
	}
	return h, nil
}

// headOf is the head of d, whose derived state is state with failing.
func headOf(d store.Device, state proto.ComplianceState, failing []proto.SettingFailure) head {
	h := head{secretHash: d.SecretHash, clientCert: d.ClientCert, policyVersion: d.Policy.Version, state: state}
	for _, f := range failing {
		h.failing = append(h.failing, f.Setting)
	}
	return h
}

func (h head) equal(o head) bool {
	return h.clientCert == o.clientCert && h.policyVersion == o.policyVersion && h.state == o.state &&
		string(h.secretHash) == string(o.secretHash) && slices.Equal(h.failing, o.failing)
}

func getHead(tx *bbolt.Tx, id string) (head, error) {
	v := tx.Bucket(bucketHeads).Get([]byte(id))
	if v == nil {
		return head{}, store.ErrNotFound
	}
	h, err := decodeHead(v, true)
	if err != nil {
		return h, fmt.Errorf("decoding head of device %s: %w", id, err)
	}
	return h, nil
}

func putHead(tx *bbolt.Tx, id string, h head) error {
	return tx.Bucket(bucketHeads).Put([]byte(id), encodeHead(h))
}

// decodeDevice decodes the record v of device id and attaches its last
// report.
func decodeDevice(tx *bbolt.Tx, id, v []byte) (store.Device, error) {
	var d store.Device
	if err := json.Unmarshal(v, &d); err != nil {
		return d, fmt.Errorf("decoding device %s: %w", id, err)
	}
	if rv := tx.Bucket(bucketReports).Get(id); rv != nil {
		d.Report = new(store.Report)
		if err := json.Unmarshal(rv, d.Report); err != nil {
			return d, fmt.Errorf("decoding report of device %s: %w", id, err)
		}
	}
	return d, nil
}

// putRecord writes d's record without its report (kept under its own key).
func putRecord(tx *bbolt.Tx, d store.Device) error {
	d.Report = nil
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding device %s: %w", d.ID, err)
	}
	return tx.Bucket(bucketDevices).Put([]byte(d.ID), v)
}

func putReport(tx *bbolt.Tx, id string, r *store.Report) error {
	b := tx.Bucket(bucketReports)
	if r == nil {
		return b.Delete([]byte(id))
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding report of device %s: %w", id, err)
	}
	return b.Put([]byte(id), v)
}

// lastReplay is what the replay check needs of the last report: decoding
// only these fields skips allocating its settings, failures and the rest.
type lastReplay struct {
	ReportedAt time.Time `json:"reportedAt,omitzero"`
	Nonce      string    `json:"nonce,omitempty"`
	SeenNonces []string  `json:"seenNonces,omitempty"`
}

func getReplay(tx *bbolt.Tx, id string) (*store.Report, error) {
	v := tx.Bucket(bucketReports).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var l lastReplay
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, fmt.Errorf("decoding report of device %s: %w", id, err)
	}
	r := &store.Report{SeenNonces: l.SeenNonces}
	r.ReportedAt, r.Nonce = l.ReportedAt, l.Nonce
	return r, nil
}

// migrateHeads moves a database written before heads existed to the
// layout above, once, at open: every report out of its record and every
// head written.
func migrateHeads(tx *bbolt.Tx) error {
	if tx.Bucket(bucketHeads) != nil {
		return nil
	}
	if _, err := tx.CreateBucket(bucketHeads); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketReports); err != nil {
		return err
	}
	var devs []store.Device
	err := tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
		var d store.Device
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decoding device %s: %w", k, err)
		}
		devs = append(devs, d)
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range devs {
		st, failing := store.Derive(d)
		if err := putReport(tx, d.ID, d.Report); err != nil {
			return err
		}
		if err := putRecord(tx, d); err != nil {
			return err
		}
		if err := putHead(tx, d.ID, headOf(d, st, failing)); err != nil {
			return err
		}
	}
	return nil
}
