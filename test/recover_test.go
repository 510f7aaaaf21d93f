package test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// TestRecoveredDeviceIsReported: a device that comes back into line with no
// policy edit is reported again, so the server shows it COMPLIANT. The
// agent's interval is an hour and nothing rings the doorbell: only its
// file watcher syncs, gets a 304, and must still report because what it
// observes changed. This case: a locked device fixed and unlocked by hand.
func TestRecoveredDeviceIsReported(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	a := startAgent(t, "locked", srv, t.TempDir())
	id := enrolled(t, srv, a)
	a.waitLog("watching for drift", 30*time.Second)
	if err := os.WriteFile(a.devicePath, []byte(`{"cameraDisabled": false, "locked": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := srv.setCamera(id, true)
	st := srv.waitState(id, proto.StateNonCompliant, p.Version)
	if len(st.Failing) != 1 || st.Failing[0].Reason != proto.ReasonEnforcementFailed {
		t.Fatalf("failing = %+v, want cameraDisabled ENFORCEMENT_FAILED", st.Failing)
	}
	// Someone fixes the device by hand and unlocks it.
	replaceFile(t, a.devicePath, `{"cameraDisabled": true}`+"\n")
	st = srv.waitState(id, proto.StateCompliant, p.Version)
	if st.DesiredVersion != p.Version {
		t.Fatalf("desired version %d, want %d: no edit was made", st.DesiredVersion, p.Version)
	}
	a.stop()
}

// TestRecoveredMonitoredDeviceIsReported: as TestRecoveredDeviceIsReported,
// for a monitored setting that drifts back to the desired value.
func TestRecoveredMonitoredDeviceIsReported(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	a := startAgent(t, "monitored", srv, t.TempDir())
	id := enrolled(t, srv, a)
	a.waitLog("watching for drift", 30*time.Second)
	var p proto.DevicePolicy
	if code, b := srv.call("PUT", "/devices/"+id+"/policy", srv.admin, `{"cameraDisabled": true, "modes": {"cameraDisabled": "monitor"}}`, &p); code != 200 {
		t.Fatalf("edit: %d %s", code, b)
	}
	st := srv.waitState(id, proto.StateNonCompliant, p.Version)
	if len(st.Failing) != 1 || !st.Failing[0].Monitored || st.Failing[0].Reason != proto.ReasonMismatch {
		t.Fatalf("failing = %+v, want monitored cameraDisabled MISMATCH", st.Failing)
	}
	if got := a.deviceState()["cameraDisabled"]; got != false {
		t.Fatalf("monitor mode changed the device: cameraDisabled=%v", got)
	}
	// The setting drifts back to the desired value on its own.
	replaceFile(t, a.devicePath, fmt.Sprintf(`{"cameraDisabled": %v}`+"\n", true))
	st = srv.waitState(id, proto.StateCompliant, p.Version)
	if st.DesiredVersion != p.Version {
		t.Fatalf("desired version %d, want %d: no edit was made", st.DesiredVersion, p.Version)
	}
	a.stop()
}
