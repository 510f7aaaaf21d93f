package daemon

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// TestLogsNameTheirComponentAndNoSecret runs a daemon with JSON logs
// through enrollment, an edit, a report and refused credentials, and checks
// that every record names its component and that no token or secret
// appears in any of them.
func TestLogsNameTheirComponentAndNoSecret(t *testing.T) {
	var buf testkit.LockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, url := startDaemon(t, DaemonConfig{Logger: logger})

	var enr proto.EnrollResponse
	send(t, "POST", url+"/enroll", enrollToken, `{"model":"m"}`, &enr)
	send(t, "PUT", url+"/devices/"+enr.DeviceID+"/policy", adminToken, `{"cameraDisabled":true}`, nil)
	send(t, "POST", url+"/devices/"+enr.DeviceID+"/report", enr.DeviceSecret, `{"appliedPolicyVersion":2,"cameraDisabled":true}`, nil)
	send(t, "GET", url+"/devices", "wrong-"+adminToken, "", nil)
	send(t, "GET", url+"/metrics", adminToken, "", nil)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("expected the daemon to log at start, got %q", lines)
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON record: %q", line)
		}
		if c, _ := rec["component"].(string); c == "" {
			t.Errorf("record without a component: %s", line)
		}
		for _, secret := range []string{adminToken, enrollToken, enr.DeviceSecret} {
			if strings.Contains(line, secret) {
				t.Errorf("a secret was logged: %s", line)
			}
		}
	}
}
