package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// TestBackupWhileWriting: a backup taken while writes go on is a database
// that opens and holds every write acknowledged before it began.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s, err := bolt.Open(filepath.Join(dir, "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 100 {
		if _, err := s.CreateDevice(ctx, storetest.NewDevice(fmt.Sprintf("before-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // writes go on during the backup
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.CreateDevice(ctx, storetest.NewDevice(fmt.Sprintf("during-%05d", i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %d bytes", n)
	restored := filepath.Join(t.TempDir(), "doorbell.db")
	if err := os.WriteFile(restored, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := bolt.Open(restored)
	if err != nil {
		t.Fatalf("opening the backup: %v", err)
	}
	defer r.Close()
	for i := range 100 {
		if _, err := r.Device(ctx, fmt.Sprintf("before-%03d", i)); err != nil {
			t.Errorf("backup lacks a device acknowledged before it: %v", err)
		}
	}

	// Offline: refused while the store holds the file, fine once closed.
	if _, err := bolt.BackupFile(filepath.Join(dir, "doorbell.db"), &bytes.Buffer{}); err == nil {
		t.Error("offline backup of a database a server holds succeeded")
	} else {
		t.Logf("offline backup while held: %v", err)
	}
}
