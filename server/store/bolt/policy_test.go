package bolt_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestGroupChangeReturnsTransitions: a group edit returns, per changed
// device, what it committed, with the transitions it recorded.
func TestGroupChangeReturnsTransitions(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s, err := bolt.Open(filepath.Join(t.TempDir(), "db"),
		bolt.WithClock(func() time.Time { return at }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
		c, err := s.SaveReport(ctx, id, store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1}, ReceivedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if c.State != proto.StateCompliant || len(c.Transitions) != 1 || c.Device.Report == nil {
			t.Fatalf("report committed %+v, want COMPLIANT with one transition", c)
		}
	}
	// A refused change returns nothing.
	if ch, err := s.CreateGroup(ctx, store.Group{ID: "g", Name: "g", Members: []string{"a", "ghost"}}); err == nil || len(ch) != 0 {
		t.Fatalf("unknown member: changes %+v, err %v", ch, err)
	}
	changes, err := s.CreateGroup(ctx, store.Group{ID: "g", Name: "g", Layer: store.Layer{Values: proto.SettingValues{"cameraDisabled": json.RawMessage("true")}}, Members: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []proto.Transition
	for _, c := range changes {
		got = append(got, c.Transitions...)
	}
	if len(got) != 2 {
		t.Fatalf("group edit announced %d transitions, want 2 in one call", len(got))
	}
	for _, tr := range got {
		if tr.From != proto.StateCompliant || tr.To != proto.StateStale || tr.Cause != proto.CauseGroup || !tr.At.Equal(at) || tr.DeviceID == "" {
			t.Errorf("transition = %+v, want COMPLIANT -> STALE by group at the store's clock", tr)
		}
	}
}

// TestSummaryBuiltForOldDatabase opens a database written before the
// counters existed and finds them built from the devices.
func TestSummaryBuiltForOldDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(id)); err != nil {
			t.Fatal(err)
		}
	}
	s.SaveReport(ctx, "a", store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 1}})
	s.Close()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("summary")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sum, err := s.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Counts[proto.StateUnknown] != 1 || sum.Counts[proto.StateCompliant] != 1 {
		t.Errorf("rebuilt counts = %v, want 1 UNKNOWN and 1 COMPLIANT", sum.Counts)
	}
}

// seed writes n devices directly in batches of one transaction each, fast.
func seed(b *testing.B, s *bolt.Store, n int) []string {
	b.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev%06d", i)
	}
	// CreateDevice is one fsync each; run them in parallel so bbolt
	// does not dominate the setup with 100k fsyncs in a row.
	const workers = 64
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			for i := w; i < n; i += workers {
				d := storetest.NewDevice(ids[i])
				h := sha256.Sum256([]byte(ids[i]))
				d.SecretHash = h[:]
				if _, err := s.CreateDevice(ctx, d); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// BenchmarkSummary100k measures GET /compliance/summary's store call with
// 100,000 devices: it reads maintained counters, no scan.
func BenchmarkSummary100k(b *testing.B) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "db"), bolt.WithNoSync())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	seed(b, s, 100_000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		sum, err := s.Summary(ctx)
		if err != nil || sum.Counts[proto.StateUnknown] != 100_000 {
			b.Fatalf("summary = %+v, %v", sum, err)
		}
	}
}

// BenchmarkGroupEdit10k measures one group policy edit that changes 10,000
// member devices: one transaction (with its fsync) and one ring.
func BenchmarkGroupEdit10k(b *testing.B) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := seed(b, s, 10_000)
	ctx := context.Background()
	if _, err := s.CreateGroup(ctx, store.Group{ID: "g", Name: "all", Members: ids}); err != nil {
		b.Fatal(err)
	}
	camera := false
	b.ResetTimer()
	for b.Loop() {
		camera = !camera
		_, changes, err := s.UpdateGroup(ctx, "g", func(g store.Group) (store.Group, error) {
			g.Values = proto.SettingValues{"cameraDisabled": json.RawMessage(fmt.Sprint(camera))}
			return g, nil
		})
		if err != nil || len(changes) != len(ids) {
			b.Fatalf("changed %d, err %v", len(changes), err)
		}
	}
}

// TestConcurrentReportsKeepSummary: reports that share group commits (and
// so one writer and one summary per transaction), some changing the
// device's state and some not, leave the counters equal to a recount of
// the devices, and a refused report in a group changes nothing.
func TestConcurrentReportsKeepSummary(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	const n = 60
	for i := range n {
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(fmt.Sprintf("d%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, n*4)
	for round := range 4 {
		done := make(chan struct{})
		for i := range n {
			go func() {
				defer func() { done <- struct{}{} }()
				// Device i: compliant in rounds where (i+round) is even,
				// its camera wrong otherwise; every 7th also sends a
				// report ahead of its version, which is refused.
				r := proto.ComplianceReport{AppliedPolicyVersion: 1}
				if (i+round)%2 == 1 {
					r.CameraDisabled = true // the policy wants it enabled: MISMATCH
				}
				if i%7 == 0 {
					if _, err := s.SaveReport(ctx, fmt.Sprintf("d%02d", i), store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 99}, ReceivedAt: time.Now()}); err == nil {
						errs <- fmt.Errorf("a report ahead of the version was accepted")
					}
				}
				if _, err := s.SaveReport(ctx, fmt.Sprintf("d%02d", i), store.Report{ComplianceReport: r, ReceivedAt: time.Now()}); err != nil {
					errs <- err
				}
			}()
		}
		for range n {
			<-done
		}
		close(done)
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		want := map[proto.ComplianceState]int64{}
		drift := map[string]int64{}
		devs, _, err := s.Devices(ctx, "", 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range devs {
			st, failing := policy.Derive(d)
			want[st]++
			for _, f := range failing {
				drift[f.Setting]++
			}
		}
		sum, err := s.Summary(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range proto.States {
			if sum.Counts[st] != want[st] {
				t.Errorf("round %d: summary counts %s = %d, recount %d", round, st, sum.Counts[st], want[st])
			}
		}
		if want[proto.StateCompliant] != n/2 || want[proto.StateNonCompliant] != n/2 {
			t.Errorf("round %d: recount %v, want half compliant, half not", round, want)
		}
		got := map[string]int64{}
		for _, d := range sum.DriftingSettings {
			got[d.Setting] = d.Devices
		}
		if fmt.Sprint(got) != fmt.Sprint(drift) {
			t.Errorf("round %d: drifting settings %v, recount %v", round, got, drift)
		}
	}
}

// BenchmarkMarkSeen10k measures one flush of the last-seen times of 10,000
// devices (what the server writes after a fleet synced): one transaction,
// with its fsync.
func BenchmarkMarkSeen10k(b *testing.B) {
	s, err := bolt.Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ids := seed(b, s, 10_000)
	ctx := context.Background()
	seen := make(map[string]time.Time, len(ids))
	at := time.Now()
	b.ResetTimer()
	for b.Loop() {
		at = at.Add(time.Second)
		for _, id := range ids {
			seen[id] = at
		}
		if err := s.MarkSeen(ctx, seen); err != nil {
			b.Fatal(err)
		}
	}
}
