package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// A device is kept under three keys, so that the hot paths read and write
// only what they need:
//
//   - devices: the record (JSON store.Device) without its last report;
//   - reports: the last report (JSON store.Report without SeenNonces),
//     encoded before the write transaction and rewritten alone by a report
//     that changes nothing else;
//   - replay: what the replay check needs of the last report (its
//     ReportedAt and SeenNonces, binary), so the check decodes no JSON;
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
	bucketReports = []byte("reports") // device id -> JSON store.Report without SeenNonces
	bucketReplay  = []byte("replay")  // device id -> encodeReplay of the last report
	bucketHeads   = []byte("heads")   // device id -> head (encodeHead)
	bucketRevs    = []byte("revs")    // device id -> uvarint Device.Rev, written by every write of the device
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

// getRev is device id's revision as last committed (Device.Rev); ok is
// false when no write since the revisions were kept under their own key
// recorded one (the record's own Rev then holds).
func getRev(tx *bbolt.Tx, id string) (rev int64, ok bool) {
	b := tx.Bucket(bucketRevs) // absent in a file opened read-only before any write made it
	if b == nil {
		return 0, false
	}
	v := b.Get([]byte(id))
	if v == nil {
		return 0, false
	}
	r, n := binary.Uvarint(v)
	return int64(r), n > 0
}

func putRev(tx *bbolt.Tx, id string, rev int64) error {
	return tx.Bucket(bucketRevs).Put([]byte(id), binary.AppendUvarint(nil, uint64(rev)))
}

// decodeDevice decodes the record v of device id and attaches its last
// report (with its SeenNonces from the replay record), its revision and
// when it was last seen.
func decodeDevice(tx *bbolt.Tx, id, v []byte) (store.Device, error) {
	var d store.Device
	if err := json.Unmarshal(v, &d); err != nil {
		return d, fmt.Errorf("decoding device %s: %w", id, err)
	}
	if rev, ok := getRev(tx, string(id)); ok {
		d.Rev = rev
	}
	if at, ok := getSeen(tx, string(id)); ok && at.After(d.LastSeenAt) {
		d.LastSeenAt = at
	}
	if rv := tx.Bucket(bucketReports).Get(id); rv != nil {
		d.Report = new(store.Report)
		if err := json.Unmarshal(rv, d.Report); err != nil {
			return d, fmt.Errorf("decoding report of device %s: %w", id, err)
		}
		last, err := getReplay(tx, string(id))
		if err != nil {
			return d, err
		}
		if last != nil {
			d.Report.SeenNonces = last.SeenNonces
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

// encodeReport is the JSON kept under reports: r without SeenNonces, which
// the replay record keeps.
func encodeReport(r *store.Report) ([]byte, error) {
	if r.SeenNonces == nil { // as SaveReport is called
		return json.Marshal(r)
	}
	rep := *r
	rep.SeenNonces = nil
	return json.Marshal(&rep)
}

// putReport writes the last report r of device id: enc (encodeReport of r,
// made outside the transaction when it can be) and its replay record.
func putReport(tx *bbolt.Tx, id string, r *store.Report, enc []byte) error {
	if err := tx.Bucket(bucketReports).Put([]byte(id), enc); err != nil {
		return err
	}
	return tx.Bucket(bucketReplay).Put([]byte(id), encodeReplay(r))
}

// encodeReplay lays out r's ReportedAt (time.MarshalBinary, after its
// length byte) and each of its SeenNonces (after its length as a uvarint).
func encodeReplay(r *store.Report) []byte {
	at, _ := r.ReportedAt.MarshalBinary() // fails only for offsets no parsed time has
	n := 1 + len(at)
	for _, x := range r.SeenNonces {
		n += binary.MaxVarintLen16 + len(x)
	}
	b := make([]byte, 0, n)
	b = append(b, byte(len(at)))
	b = append(b, at...)
	for _, x := range r.SeenNonces {
		b = binary.AppendUvarint(b, uint64(len(x)))
		b = append(b, x...)
	}
	return b
}

// decodeReplay reads what encodeReplay wrote into a Report holding only
// ReportedAt, Nonce (the last of SeenNonces) and SeenNonces.
func decodeReplay(b []byte) (*store.Report, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return nil, errors.New("malformed replay record")
	}
	r := &store.Report{}
	if err := r.ReportedAt.UnmarshalBinary(b[1 : 1+b[0]]); err != nil {
		return nil, fmt.Errorf("malformed replay record: %w", err)
	}
	rest := b[1+b[0]:]
	for len(rest) > 0 {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return nil, errors.New("malformed replay record")
		}
		r.SeenNonces = append(r.SeenNonces, string(rest[k:k+int(n)]))
		rest = rest[k+int(n):]
	}
	if len(r.SeenNonces) > 0 {
		r.Nonce = r.SeenNonces[len(r.SeenNonces)-1]
	}
	return r, nil
}

// getReplay is what the replay check needs of device id's last report, nil
// when it never reported.
func getReplay(tx *bbolt.Tx, id string) (*store.Report, error) {
	v := tx.Bucket(bucketReplay).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	r, err := decodeReplay(v)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
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
		st, failing := policy.Derive(d)
		if d.Report != nil {
			enc, err := encodeReport(d.Report)
			if err != nil {
				return err
			}
			if err := putReport(tx, d.ID, d.Report, enc); err != nil {
				return err
			}
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
