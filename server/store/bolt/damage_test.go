package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

// fleetFile writes a database with n devices and returns its bytes.
func fleetFile(t *testing.T, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "doorbell.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := s.CreateDevice(context.Background(), storetest.NewDevice(fmt.Sprintf("dev-%05d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// usedBytes is how much of an intact database file its header says is in
// use (bbolt grows the file ahead of that).
func usedBytes(t *testing.T, b []byte) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "intact.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	db.View(func(tx *bbolt.Tx) error { n = tx.Size(); return nil })
	return int(n)
}

// TestDamagedDatabaseRefused: an empty, truncated or corrupted database
// file is refused with an error that says what happened and how to
// restore, never served as an empty fleet and never a crash (issue 17,
// finding 7). The file is left as it was.
func TestDamagedDatabaseRefused(t *testing.T) {
	good := fleetFile(t, 500)
	const page = 4096
	used := usedBytes(t, good)
	t.Logf("a 500-device database: %d bytes, %d pages, %d in use", len(good), len(good)/page, used/page)
	rng := rand.New(rand.NewPCG(1, 2))
	corrupted := bytes.Clone(good)
	for i := 2 * page; i < len(corrupted)/2; i++ { // keep the meta pages
		corrupted[i] = byte(rng.Uint32())
	}
	zeroed := bytes.Clone(good)
	clear(zeroed[2*page:])
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty (0 bytes)"},
		{"truncated to half", good[:len(good)/2], "damaged"},
		{"truncated to one page", good[:page], "damaged"},
		{"truncated mid-page", good[:used*3/4-100], "damaged"}, // within the pages in use
		{"pages overwritten with garbage", corrupted, "damaged"},
		{"pages zeroed", zeroed, "damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "doorbell.db")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := bolt.Open(path)
			if err == nil {
				s.Close()
				t.Fatal("a damaged database was opened")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, bolt.ErrDamaged) {
				t.Errorf("error does not match ErrDamaged")
			}
			for _, want := range []string{tt.want, path, "doorbell backup", "OPERATIONS.md"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q", want)
				}
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tt.data) {
				t.Errorf("the damaged file was changed (%d bytes, was %d)", len(after), len(tt.data))
			}
		})
	}
	t.Run("intact file still opens", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "doorbell.db")
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := bolt.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Device(context.Background(), "dev-00499"); err != nil {
			t.Errorf("device of the intact file: %v", err)
		}
	})
}

// TestSecondOpenSaysLocked: a second server on the same data directory is
// told another process holds the database (issue 17, finding 10).
func TestSecondOpenSaysLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doorbell.db")
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = bolt.Open(path)
	if err == nil {
		t.Fatal("opened a database another store holds")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, bolt.ErrLocked) || !strings.Contains(err.Error(), "another doorbell") {
		t.Errorf("error = %v; want ErrLocked naming another doorbell", err)
	}
}
