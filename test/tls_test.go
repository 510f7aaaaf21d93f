package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// runAgentOnce runs `doorbell agent --once` to the end and returns its
// combined output and error.
func runAgentOnce(t *testing.T, stateDir string, args ...string) (string, error) {
	t.Helper()
	args = append([]string{"agent", "--once", "--state", stateDir, "--enforcer", "file:" + filepath.Join(stateDir, "device.json")}, args...)
	out, err := exec.Command(binary, args...).CombinedOutput()
	return string(out), err
}

// TestTLSBinary: the real binary is TLS by default; it keeps its CA across
// restarts, announces the pin and the enrollment string, refuses nothing to
// an agent with the right pin, and an agent with the wrong pin refuses to
// talk to it.
func TestTLSBinary(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "127.0.0.1:0", "127.0.0.1:0")
	if srv.pin == "" || !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("the server does not run TLS by default: url %s pin %q", srv.url, srv.pin)
	}
	ca, err := os.ReadFile(filepath.Join(dataDir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca-key.pem", "server-key.pem"} {
		if st, err := os.Stat(filepath.Join(dataDir, "tls", f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, st.Mode(), err)
		}
	}
	var enrollURL string
	testkit.Eventually(t, 10*time.Second, "the enrollment string on stdout", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for _, line := range strings.Split(srv.out.String(), "\n") {
			if i := strings.Index(line, proto.EnrollURLScheme+"://enroll?"); i >= 0 {
				enrollURL = line[i:]
				return true
			}
		}
		return false
	})
	u, err := url.Parse(enrollURL)
	if err != nil || u.Query().Get("pin") != srv.pin || u.Query().Get("server") != srv.url {
		t.Fatalf("enrollment string %q does not carry server %s and pin %s", enrollURL, srv.url, srv.pin)
	}
	if u.Query().Get("token") != "" {
		t.Fatal("the enrollment string carries a token the operator set by flag")
	}
	srv.mu.Lock()
	for _, l := range srv.logs {
		if strings.Contains(fmt.Sprint(l), srv.enroll) {
			t.Error("the enrollment token was logged")
		}
	}
	srv.mu.Unlock()

	// A wrong pin: a clear refusal, and nothing enrolled.
	wrong := "sha256/" + strings.Repeat("B", 43) + "="
	out, err := runAgentOnce(t, t.TempDir(), "--server", srv.url, "--server-pin", wrong, "--enroll-token", srv.enroll)
	if err == nil || !strings.Contains(out, "does not match the pinned key") {
		t.Fatalf("agent with a wrong pin: err %v, output %s", err, out)
	}
	if n := len(srv.devices()); n != 0 {
		t.Fatalf("%d devices enrolled through a wrong pin", n)
	}

	// The enrollment string (with the token added) is all an agent needs.
	state := t.TempDir()
	out, err = runAgentOnce(t, state, "--enroll-url", enrollURL+"&token="+url.QueryEscape(srv.enroll))
	if err != nil {
		t.Fatalf("agent with the enrollment string: %v\n%s", err, out)
	}
	var id struct{ DeviceID, CertPEM, CAPEM string }
	readJSON(t, filepath.Join(state, "identity.json"), &id)
	if id.CertPEM == "" || !bytes.Equal([]byte(id.CAPEM), ca) {
		t.Fatal("the agent kept no certificate or not the server's CA")
	}
	if st := srv.status(id.DeviceID); st.State != proto.StateCompliant {
		t.Fatalf("device is %s, want COMPLIANT", st.State)
	}

	// A restart keeps the CA and the server certificate; the agent, with
	// no pin or CA given any more, trusts the CA it pinned at enrollment.
	serverPEM, _ := os.ReadFile(filepath.Join(dataDir, "tls", "server.pem"))
	pin := srv.pin
	srv.stop()
	srv = startServer(t, dataDir, "127.0.0.1:0", "127.0.0.1:0")
	ca2, _ := os.ReadFile(filepath.Join(dataDir, "tls", "ca.pem"))
	serverPEM2, _ := os.ReadFile(filepath.Join(dataDir, "tls", "server.pem"))
	if !bytes.Equal(ca, ca2) || !bytes.Equal(serverPEM, serverPEM2) || srv.pin != pin {
		t.Fatal("a restart replaced the CA or a server certificate that was not due")
	}
	if out, err := runAgentOnce(t, state, "--server", srv.url); err != nil {
		t.Fatalf("agent after the restart, with the pinned CA only: %v\n%s", err, out)
	}
	if n := len(srv.devices()); n != 1 {
		t.Fatalf("%d devices, want 1 (the agent re-enrolled)", n)
	}
}

// TestPlainWhenAsked: --tls off serves plain HTTP and MQTT (make run on
// loopback), and the harness follows.
func TestPlainWhenAsked(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--tls", "off")
	if srv.pin != "" || !strings.HasPrefix(srv.url, "http://") {
		t.Fatalf("--tls off still serves TLS: %s", srv.url)
	}
	a := startAgent(t, "agent", srv, t.TempDir())
	testkit.Eventually(t, 30*time.Second, "the agent enrolled and COMPLIANT", func() bool {
		id, _ := a.identity()
		return id != "" && srv.status(id).State == proto.StateCompliant
	})
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
