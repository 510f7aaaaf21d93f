package test

import (
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"strconv"
	"testing"
)

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestSimSmoke runs the real `doorbell sim` against a real server with a
// small fleet in every mode and checks its JSON: the fields of each
// scenario, the counts, and every device COMPLIANT at the end. Timings are
// measured, never asserted.
func TestSimSmoke(t *testing.T) {
	fcmAddr := freePort(t)
	// The simulator measures the plain loopback path (see sim.Config), and
	// enrolls a whole fleet from one address.
	s := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--tls", "off",
		"--enroll-rate", "-1", "--device-rate", "-1",
		"--fcm-project", "sim", "--fcm-endpoint", "http://"+fcmAddr+"/v1")
	const devices = 20
	pid := strconv.Itoa(s.cmd.Process.Pid)

	cases := []struct {
		mode, scenario string
		extra          []string
		want           []string // fields that must be present and positive
	}{
		{"mqtt", "enroll", nil, []string{"p50Ms", "p99Ms", "maxMs", "allCompliantMs", "requestsPerSec"}},
		{"mqtt", "edit-one", []string{"--edits", "10"}, []string{"p50Ms", "p90Ms", "p99Ms", "maxMs", "edits"}},
		{"mqtt", "edit-all", nil, []string{"allCompliantMs", "requestsPerSec", "edits"}},
		{"mqtt", "idle", []string{"--server-pid", pid, "--settle", "100ms"}, []string{"serverPid"}},
		{"mqtt", "reports", []string{"--duration", "1s"}, []string{"reportsPerSec"}},
		{"fcm", "edit-one", []string{"--edits", "5", "--fcm-listen", fcmAddr}, []string{"p50Ms", "maxMs", "edits"}},
		{"fcm", "edit-all", []string{"--fcm-listen", fcmAddr}, []string{"allCompliantMs", "requestsPerSec", "edits"}},
		{"poll", "edit-all", []string{"--interval", "2s"}, []string{"allCompliantMs", "requestsPerSec", "edits"}},
	}
	for _, c := range cases {
		t.Run(c.mode+"/"+c.scenario, func(t *testing.T) {
			args := append([]string{"sim", "--server", s.url, "--enroll-token", s.enroll, "--admin-token", s.admin,
				"--devices", strconv.Itoa(devices), "--mode", c.mode, "--scenario", c.scenario, "--json", "--quiet"}, c.extra...)
			cmd := exec.Command(binary, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("doorbell %v: %v\n%s", args, err, stderr.Bytes())
			}
			var m map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.Bytes())
			}
			if m["scenario"] != c.scenario || m["mode"] != c.mode || m["devices"] != float64(devices) {
				t.Errorf("scenario, mode, devices = %v, %v, %v; want %s, %s, %d", m["scenario"], m["mode"], m["devices"], c.scenario, c.mode, devices)
			}
			if m["compliant"] != float64(devices) {
				t.Errorf("compliant = %v, want all %d devices", m["compliant"], devices)
			}
			for _, f := range c.want {
				if v, ok := m[f].(float64); !ok || v <= 0 {
					t.Errorf("%s = %v, want a positive number; output %s", f, m[f], stdout.Bytes())
				}
			}
			if c.scenario == "edit-one" || c.scenario == "enroll" {
				if !(m["p50Ms"].(float64) <= m["p99Ms"].(float64) && m["p99Ms"].(float64) <= m["maxMs"].(float64)) {
					t.Errorf("percentiles out of order: %s", stdout.Bytes())
				}
			}
			if c.scenario == "edit-all" && (m["edits"] != float64(devices) || m["editPath"] != "group") {
				t.Errorf("edit-all: edits %v, editPath %v; want %d through one group", m["edits"], m["editPath"], devices)
			}
			if c.scenario == "idle" && m["serverPid"] != float64(s.cmd.Process.Pid) {
				t.Errorf("serverPid = %v, want %d", m["serverPid"], s.cmd.Process.Pid)
			}
		})
	}
}
