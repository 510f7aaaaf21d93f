package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// startWatch runs watchFiles on paths until the test ends and returns the
// channel of changed paths, once the watches are in place.
func startWatch(t *testing.T, paths ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	changes := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- watchFiles(ctx, paths, 10*time.Millisecond, realClock{},
			func() { close(ready) },
			func(p string) { changes <- p })
	}()
	t.Cleanup(func() {
		cancel()
		if err := recv(t, done, "watchFiles to return"); err != nil {
			t.Errorf("watchFiles: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("watchFiles: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("watchFiles never became ready")
	}
	return changes
}

func TestWatchFiles(t *testing.T) {
	dir := t.TempDir()
	// The target's directories do not exist yet.
	target := filepath.Join(dir, "etc", "ssh", "sshd_config.d", "50-doorbell.conf")
	changes := startWatch(t, target)

	// Directories appear, then the file: each step moves the watch deeper
	// and the file's creation is seen.
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	recv(t, changes, "a change when the directories appear")
	if err := os.WriteFile(target, []byte("PasswordAuthentication no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	drain := func() {
		for {
			select {
			case <-changes:
			default:
				return
			}
		}
	}
	// Wait until the creation itself is seen (the mkdir's changes may
	// still be in flight).
	for recv(t, changes, "the file's creation") != target {
	}
	drain()

	tests := []struct {
		name string
		edit func(t *testing.T)
	}{
		{"written in place", func(t *testing.T) {
			if err := os.WriteFile(target, []byte("PasswordAuthentication yes\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by rename, as editors and enforcers do", func(t *testing.T) {
			if err := writeFileAtomic(target, []byte("PasswordAuthentication no\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed", func(t *testing.T) {
			if err := os.Remove(target); err != nil {
				t.Fatal(err)
			}
		}},
		{"created again", func(t *testing.T) {
			if err := os.WriteFile(target, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A file beside the target is not watched: the first change
			// reported must name the target, not it.
			if err := os.WriteFile(filepath.Join(filepath.Dir(target), "10-other.conf"), []byte(tt.name), 0o644); err != nil {
				t.Fatal(err)
			}
			tt.edit(t)
			if got := recv(t, changes, "a change"); got != target {
				t.Fatalf("change reported for %s, want %s", got, target)
			}
			drain()
		})
	}

	// The directory itself goes and comes back: the watch follows it.
	if err := os.RemoveAll(filepath.Dir(target)); err != nil {
		t.Fatal(err)
	}
	recv(t, changes, "a change when the directory goes")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The file may be written before the new directory is watched: the
	// directory's creation then stands for it.
	recv(t, changes, "a change when the directory and the file come back")
	drain()
	if err := os.WriteFile(target, []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	for recv(t, changes, "a write in the new directory") != target {
	}
}

// TestAgentFixesDriftThroughWatcher runs the agent with a file enforcer: a
// hand edit of the file is re-enforced and reported without any timer
// (the periodic interval is an hour), and the agent's own rewrite costs
// exactly one skipped sync rather than a loop.
func TestAgentFixesDriftThroughWatcher(t *testing.T) {
	srv := newFakeServer(t)
	path := filepath.Join(t.TempDir(), "device.json")
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.Enforcer = NewFileEnforcer(path)
		c.Clock = realClock{}
	})
	h.runAgent(t)

	first := recv(t, h.results, "the first sync")
	if first.Err != nil || first.Skipped || !first.Compliant {
		t.Fatalf("first sync = %+v", first)
	}
	id := first.DeviceID
	srv.setPolicy(id, proto.Settings{CameraDisabled: true})
	h.agent.Trigger()
	testkit.Eventually(t, waitTimeout, "the watcher", func() bool { return strings.Contains(h.logs.String(), "watching for drift") })

	nextEnforced := func(what string) SyncResult {
		t.Helper()
		for {
			r := recv(t, h.results, what)
			if r.Err != nil {
				t.Fatalf("sync failed: %v", r.Err)
			}
			if !r.Skipped {
				return r
			}
		}
	}
	if r := nextEnforced("the sync of version 2"); r.PolicyVersion != 2 || !r.Compliant {
		t.Fatalf("sync = %+v, want version 2 compliant", r)
	}

	for i := range 3 {
		reports := len(srv.reports(id))
		// Drift: the camera comes back on behind the agent's back.
		start := time.Now()
		if err := writeFileAtomic(path, []byte(`{"cameraDisabled": false}`), 0o644); err != nil {
			t.Fatal(err)
		}
		r := nextEnforced("the drift to be fixed")
		t.Logf("drift %d fixed and reported in %v", i+1, time.Since(start))
		if r.PolicyVersion != 2 || !r.Compliant {
			t.Fatalf("sync after drift = %+v, want version 2 compliant", r)
		}
		got, err := NewFileEnforcer(path).Observe(t.Context())
		if err != nil || !got.CameraDisabled {
			t.Fatalf("device after the fix = %+v, %v; want the camera disabled", got, err)
		}
		rs := srv.reports(id)
		if len(rs) != reports+1 || !rs[len(rs)-1].CameraDisabled {
			t.Fatalf("reports after drift %d: %d, last %+v; want exactly one more, camera disabled", i+1, len(rs)-reports, rs[len(rs)-1])
		}
		// The agent's own rewrite wakes the watcher once: that sync finds
		// the device matching and skips (only the 304), and nothing else
		// is enforced until the next drift.
		if r := recv(t, h.results, "the sync woken by the agent's own write"); !r.Skipped {
			t.Fatalf("sync after the agent's own write = %+v, want skipped", r)
		}
	}
	if n := len(srv.reports(id)); n != 5 {
		t.Errorf("%d reports, want 5 (two syncs and three drifts)", n)
	}
}
