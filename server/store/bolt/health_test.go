package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestFullDiskReported: when the file cannot grow (here the process's file
// size limit stands in for a full disk), writes fail with ErrStorageFull,
// Health reports it until a write succeeds again, and every acknowledged
// write survives (issue 17, finding 10). Not parallel: it lowers the file
// size limit of the whole test process.
func TestFullDiskReported(t *testing.T) {
	signal.Ignore(syscall.SIGXFSZ) // the write returns EFBIG instead
	path := filepath.Join(t.TempDir(), "doorbell.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.CreateDevice(ctx, storetest.NewDevice("first")); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("Health = %v before any failure", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	full := old
	full.Cur = uint64(fi.Size())
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &full); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Errorf("restoring the file size limit: %v", err)
			}
		}
	}
	defer restore()

	var acked []string
	var writeErr error
	for i := range 5000 {
		id := fmt.Sprintf("dev-%04d", i)
		if _, writeErr = s.CreateDevice(ctx, storetest.NewDevice(id)); writeErr != nil {
			break
		}
		acked = append(acked, id)
	}
	restore()
	t.Logf("%d writes acknowledged before the file could not grow; error: %v", len(acked), writeErr)
	if writeErr == nil {
		t.Fatal("no write failed with the file unable to grow")
	}
	if !errors.Is(writeErr, store.ErrStorageFull) {
		t.Errorf("write error does not match ErrStorageFull")
	}
	if h := s.Health(); !errors.Is(h, store.ErrStorageFull) {
		t.Errorf("Health = %v after a failed write; want ErrStorageFull", h)
	} else {
		t.Logf("Health: %v", h)
	}
	if _, err := s.CreateDevice(ctx, storetest.NewDevice("after")); err != nil {
		t.Fatalf("write after the disk has room again: %v", err)
	}
	if h := s.Health(); h != nil {
		t.Errorf("Health = %v after a successful write", h)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, id := range append(acked, "first", "after") {
		if _, err := s2.Device(ctx, id); err != nil {
			t.Errorf("acknowledged device %s lost: %v", id, err)
		}
	}
}
