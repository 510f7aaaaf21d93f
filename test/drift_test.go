package test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// replaceFile writes path the way an editor does: a new file renamed over
// the old one.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".edit"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// enrolled waits for the agent's identity and its device to be COMPLIANT.
func enrolled(t *testing.T, srv *serverProc, a *agentProc) string {
	t.Helper()
	var id string
	testkit.Eventually(t, 30*time.Second, "the agent enrolled", func() bool {
		id, _ = a.identity()
		return id != ""
	})
	testkit.Eventually(t, 30*time.Second, "the device COMPLIANT", func() bool {
		return srv.status(id).State == proto.StateCompliant
	})
	return id
}

// converged waits for the device to be COMPLIANT at version and device to
// hold; it returns the status.
func converged(t *testing.T, srv *serverProc, id string, version int64, what string, device func() bool) proto.DeviceStatus {
	t.Helper()
	var st proto.DeviceStatus
	testkit.Eventually(t, 30*time.Second, what, func() bool {
		st = srv.status(id)
		return device() && st.State == proto.StateCompliant && st.AppliedVersion == version
	})
	return st
}

// fixedByWatcher waits until the drift is undone on the device and the
// server holds a newer COMPLIANT report than before, and logs how long it
// took from the drift. The agent's interval is an hour and nothing rings
// its doorbell, so only its file watcher can do this.
func fixedByWatcher(t *testing.T, srv *serverProc, id string, before proto.DeviceStatus, drifted time.Time, device func() bool) {
	t.Helper()
	var fixed, reported time.Duration
	testkit.Eventually(t, 30*time.Second, "the drift re-enforced and reported", func() bool {
		if fixed == 0 && device() {
			fixed = time.Since(drifted)
		}
		st := srv.status(id)
		if fixed != 0 && st.State == proto.StateCompliant && st.LastReportAt != nil && st.LastReportAt.After(*before.LastReportAt) {
			reported = time.Since(drifted)
			if st.AppliedVersion != before.AppliedVersion {
				t.Fatalf("applied version %d after drift, want %d", st.AppliedVersion, before.AppliedVersion)
			}
			return true
		}
		return false
	})
	t.Logf("drift-to-fixed: device fixed %v, server shows the fresh COMPLIANT report %v after the drift (20ms polling)", fixed, reported)
}

// TestDriftFileEnforcer: a hand edit of the device file is undone and
// reported by the agent's watcher, with no doorbell and no periodic sync.
func TestDriftFileEnforcer(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	a := startAgent(t, "agent", srv, t.TempDir())
	id := enrolled(t, srv, a)
	a.waitLog("watching for drift", 30*time.Second)

	// An operator edit converges through the doorbell.
	p := srv.setCamera(id, true)
	camera := func(want bool) func() bool {
		return func() bool { v, ok := a.deviceState()["cameraDisabled"].(bool); return ok && v == want }
	}
	before := converged(t, srv, id, p.Version, "the edit converged", camera(true))

	for i := range 2 {
		// Someone turns the camera back on by hand.
		drifted := time.Now()
		replaceFile(t, a.devicePath, `{"cameraDisabled": false, "note": "hand edit"}`+"\n")
		fixedByWatcher(t, srv, id, before, drifted, camera(true))
		if a.deviceState()["note"] != "hand edit" {
			t.Errorf("drift %d: the agent dropped a key it does not manage: %v", i+1, a.deviceState())
		}
		before = srv.status(id)
	}
	a.waitLog("watched file changed; syncing", time.Second)
	a.stop()
}

// TestDriftLinuxEnforcer runs the real agent with --enforcer linux:ROOT on a
// temp tree: the operator's edit writes the modprobe blacklist, removing it
// by hand is undone by the watcher, and allowing the camera removes it.
func TestDriftLinuxEnforcer(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	root := t.TempDir()
	a := startAgent(t, "agent", srv, t.TempDir(), "--enforcer", "linux:"+root)
	id := enrolled(t, srv, a)
	a.waitLog("watching for drift", 30*time.Second)

	blacklist := filepath.Join(root, "etc/modprobe.d/doorbell-camera.conf")
	disabled := func() bool {
		b, err := os.ReadFile(blacklist)
		return err == nil && strings.Contains(string(b), "\ninstall uvcvideo /bin/false\n")
	}
	absent := func() bool {
		_, err := os.Stat(blacklist)
		return errors.Is(err, os.ErrNotExist)
	}
	if !absent() {
		t.Fatal("the camera blacklist exists before any policy disabled the camera")
	}

	p := srv.setCamera(id, true)
	before := converged(t, srv, id, p.Version, "the blacklist written", disabled)

	// Someone deletes the blacklist by hand.
	drifted := time.Now()
	if err := os.Remove(blacklist); err != nil {
		t.Fatal(err)
	}
	fixedByWatcher(t, srv, id, before, drifted, disabled)

	// Someone edits it so only the blacklist line remains (an explicit
	// modprobe would load the camera again).
	before = srv.status(id)
	drifted = time.Now()
	replaceFile(t, blacklist, "blacklist uvcvideo\n")
	fixedByWatcher(t, srv, id, before, drifted, disabled)

	p = srv.setCamera(id, false)
	converged(t, srv, id, p.Version, "the blacklist removed", absent)
	a.stop()
}
