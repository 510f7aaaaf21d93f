package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/storetest"
)

func serveArgs(dir string) []string {
	return []string{"serve", "--data", dir, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--tls", "off"}
}

// TestServeRefusesLostDatabase: a data dir a server used before (it holds
// the generated tokens) without its database, or with an empty one, is
// refused with a message pointing at backup and restore, not served as an
// empty fleet (issue 17, finding 7).
func TestServeRefusesLostDatabase(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"database missing", func(t *testing.T, dir string) {}, "refusing to start an empty fleet"},
		{"database empty", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "doorbell.db"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "empty (0 bytes)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "admin-token"), []byte("x\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, dir)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errb strings.Builder
			err := run(ctx, serveArgs(dir), &out, &errb)
			if err == nil {
				t.Fatal("serve started on a data dir that lost its database")
			}
			t.Logf("serve: %v", err)
			for _, want := range []string{tt.want, "OPERATIONS.md"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q", want)
				}
			}
			if fi, err := os.Stat(filepath.Join(dir, "doorbell.db")); err == nil && fi.Size() != 0 {
				t.Errorf("serve wrote a new database (%d bytes)", fi.Size())
			}
		})
	}
}

// TestBackupOffline: doorbell backup copies a stopped server's database
// into a file that opens with every device, and refuses while a server
// holds the database.
func TestBackupOffline(t *testing.T) {
	dir := t.TempDir()
	s, err := bolt.Open(filepath.Join(dir, "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(context.Background(), storetest.NewDevice("dev-1")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "backup.db")
	if _, _, err := cli(t, "backup", "--data", dir, "--out", out); err == nil || !strings.Contains(err.Error(), "another doorbell") {
		t.Errorf("backup while the database is held: %v; want an error naming another doorbell", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := cli(t, "backup", "--data", dir, "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(stdout))
	r, err := bolt.Open(out)
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	defer r.Close()
	if _, err := r.Device(context.Background(), "dev-1"); err != nil {
		t.Errorf("the backup lacks dev-1: %v", err)
	}
}

// TestBackupOnline: doorbell backup copies a running server's database
// through GET /backup (admin only) while it serves.
func TestBackupOnline(t *testing.T) {
	f := startFleet(t, 3)
	out := filepath.Join(t.TempDir(), "online.db")
	stdout, _, err := cli(t, "backup", "--server", f.url, "--token", f.admin, "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(stdout))
	r, err := bolt.Open(out)
	if err != nil {
		t.Fatalf("the online backup does not open: %v", err)
	}
	defer r.Close()
	for _, d := range f.devices {
		if _, err := r.Device(context.Background(), d.DeviceID); err != nil {
			t.Errorf("the backup lacks %s: %v", d.DeviceID, err)
		}
	}
	if _, _, err := cli(t, "backup", "--server", f.url, "--token", "wrong", "--out", out+".2"); err == nil {
		t.Error("a backup with a wrong token succeeded")
	}
}
