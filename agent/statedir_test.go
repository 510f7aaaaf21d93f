package agent

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// TestUnwritableStateDirDoesNotEnroll: an agent whose state dir cannot be
// written does not enroll at all (each enrollment would leave an orphan
// device and spend a use of the token), and says why (issue 17,
// finding 8). Nothing can be created under /proc/self, even by root (the
// tests run as root, to whom file modes mean nothing), and reading there
// finds no identity, as on a fresh device.
func TestUnwritableStateDirDoesNotEnroll(t *testing.T) {
	srv := newFakeServer(t)
	h := newHarness(t, srv, "/proc/self/doorbell-test-state", nil)
	for range 3 {
		r := h.sync(t)
		if r.Err == nil {
			t.Fatal("sync succeeded with an unwritable state dir")
		}
		if !strings.Contains(r.Err.Error(), "not writable") {
			t.Errorf("error %q does not say the state dir is not writable", r.Err)
		}
	}
	if n := srv.count("enroll"); n != 0 {
		t.Errorf("%d enrollments with an unwritable state dir, want 0", n)
	}
}

// flakyIDStore fails its first saves, as a disk that fills up right after
// the writability check would.
type flakyIDStore struct {
	*FileIDStore
	mu    sync.Mutex
	fails int
	saves int
}

func (s *flakyIDStore) Save(id Identity) error {
	s.mu.Lock()
	s.saves++
	fail := s.fails > 0
	s.fails--
	s.mu.Unlock()
	if fail {
		return errors.New("no space left on device")
	}
	return s.FileIDStore.Save(id)
}

// TestIdentityKeptWhenSaveFails: when saving the new identity fails after
// enrolling, the agent keeps it in memory, works with it, retries the save
// on the next syncs, and never enrolls again.
func TestIdentityKeptWhenSaveFails(t *testing.T) {
	srv := newFakeServer(t)
	dir := t.TempDir()
	st := &flakyIDStore{FileIDStore: NewFileIDStore(dir), fails: 2}
	h := newHarness(t, srv, dir, func(c *Config) { c.IDStore = st })
	var ids []string
	for range 3 {
		r := h.sync(t)
		if r.Err != nil {
			t.Logf("sync: %v", r.Err)
		}
		ids = append(ids, r.DeviceID)
	}
	if n := srv.count("enroll"); n != 1 {
		t.Errorf("%d enrollments, want 1", n)
	}
	if ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Errorf("device ids across syncs = %v, want one id", ids)
	}
	saved, ok, err := NewFileIDStore(dir).Load()
	if err != nil || !ok || saved.DeviceID != ids[0] {
		t.Errorf("saved identity = %v %v %v, want %s once a save succeeded", saved.DeviceID, ok, err, ids[0])
	}
	if len(srv.reports(ids[0])) == 0 {
		t.Error("the device never reported while its identity was unsaved")
	}
}
