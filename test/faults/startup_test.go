package faults

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedDatabaseRefusedByServe: serve on an empty, truncated or
// corrupted doorbell.db exits with an error that says what happened and
// points at the restore procedure: no empty fleet, no stack trace, and the
// file untouched (issue 17, finding 7).
func TestDamagedDatabaseRefusedByServe(t *testing.T) {
	good := t.TempDir()
	s := startServer(t, good)
	s.enroll(200)
	s.kill()
	db, err := os.ReadFile(filepath.Join(good, "doorbell.db"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := append([]byte(nil), db...)
	for i := 2 * 4096; i < len(corrupt)*3/4; i += 7 {
		corrupt[i] ^= 0x5a
	}
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty (0 bytes)"},
		{"truncated", db[:len(db)/2], "damaged"},
		{"corrupted", corrupt, "damaged"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"admin-token", "enroll-token"} {
				b, _ := os.ReadFile(filepath.Join(good, f))
				os.WriteFile(filepath.Join(dir, f), b, 0o600)
			}
			path := filepath.Join(dir, "doorbell.db")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s := launch(t, dir)
			select {
			case <-s.exited:
			case <-time.After(startTimeout):
				t.Fatal("serve did not exit on a damaged database")
			}
			out := strings.Join(s.logLines(), "\n")
			t.Logf("serve exited (%v):\n%.600s", s.exitErr, out)
			if s.exitErr == nil {
				t.Error("serve exited 0")
			}
			for _, want := range []string{tt.want, "OPERATIONS.md", "doorbell backup"} {
				if !strings.Contains(out, want) {
					t.Errorf("output does not say %q", want)
				}
			}
			for _, bad := range []string{"goroutine ", "panic:", "fault address", "SIGSEGV", "SIGBUS"} {
				if strings.Contains(out, bad) {
					t.Errorf("output has a crash (%q)", bad)
				}
			}
			if after, _ := os.ReadFile(path); string(after) != string(tt.data) {
				t.Error("the damaged file was changed")
			}
		})
	}
}

// TestSecondServerOnSameDataDir: a second server on a data dir another one
// serves says another doorbell holds the database (issue 17, finding 10),
// and the first keeps serving.
func TestSecondServerOnSameDataDir(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, dir)
	second := launch(t, dir)
	select {
	case <-second.exited:
	case <-time.After(startTimeout):
		t.Fatal("the second server did not exit")
	}
	out := strings.Join(second.logLines(), "\n")
	t.Logf("second server: %.400s", out)
	if !strings.Contains(out, "another doorbell") {
		t.Error("the second server does not say another doorbell holds the database")
	}
	if !first.serves() {
		t.Error("the first server stopped serving")
	}
}
