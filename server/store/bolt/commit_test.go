package bolt

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// TestGroupCommitIsolatesFailures sends many concurrent reports, some of
// them refused (a version ahead of the policy), so they share group commits
// with the accepted ones: each caller must get its own answer, and every
// accepted report (and no refused one) must be stored.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	const n = 200
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("dev-%03d", i)
		if _, err := s.CreateDevice(ctx, store.Device{ID: ids[i], SecretHash: []byte(ids[i]), Policy: proto.DevicePolicy{Version: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(i int) bool { return i%5 == 0 }
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v := int64(1)
			if refused(i) {
				v = 2 // ahead of the desired version 1
			}
			_, errs[i] = s.SaveReport(ctx, ids[i], store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: v}})
		})
	}
	wg.Wait()
	for i := range n {
		d, err := s.Device(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if refused(i) {
			if !errors.Is(errs[i], store.ErrVersionAhead) {
				t.Errorf("%s: got %v, want ErrVersionAhead", ids[i], errs[i])
			}
			if d.Report != nil {
				t.Errorf("%s: refused report was stored: %+v", ids[i], d.Report)
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("%s: %v", ids[i], errs[i])
		}
		if d.Report == nil || d.Report.AppliedPolicyVersion != 1 {
			t.Errorf("%s: accepted report not stored: %+v", ids[i], d.Report)
		}
	}
}

// TestGroupCommitPanicIsAnError turns a panicking write into that caller's
// error, leaving the store usable.
func TestGroupCommitPanicIsAnError(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.w.do(func(*bbolt.Tx) error { panic("boom") })
	if err == nil {
		t.Fatal("a panicking write returned nil")
	}
	if _, err := s.CreateDevice(t.Context(), store.Device{ID: "d", SecretHash: []byte("h")}); err != nil {
		t.Fatalf("store unusable after a panic: %v", err)
	}
}
