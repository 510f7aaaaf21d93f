package test

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// cli runs an operator command of the real binary against srv with token.
func cli(t *testing.T, srv *serverProc, token string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, append(args, "--server", srv.url, "--token", token, "--ca-file", srv.caFile)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCLIEndToEnd drives the operator CLI against a real TLS server:
// tokens with roles, a viewer refused an edit, `watch` showing a real
// agent's state changes live, and a revoked token refused.
func TestCLIEndToEnd(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")

	out, err := cli(t, srv, srv.admin, "tokens", "create", "ci-viewer", "--role", "viewer", "--json")
	if err != nil {
		t.Fatalf("tokens create: %v\n%s", err, out)
	}
	var viewer struct{ Name, Role, Token string }
	if err := json.Unmarshal([]byte(out), &viewer); err != nil || viewer.Token == "" || viewer.Role != "viewer" {
		t.Fatalf("tokens create --json printed %q (%v)", out, err)
	}
	if out, err := cli(t, srv, srv.admin, "tokens", "ls"); err != nil || !strings.Contains(out, "ci-viewer") || strings.Contains(out, viewer.Token) {
		t.Fatalf("tokens ls: %v\n%s", err, out)
	}

	// `watch` as the viewer, then a real agent enrolls and converges.
	w := exec.Command(binary, "watch", "--json", "--server", srv.url, "--token", viewer.Token, "--ca-file", srv.caFile)
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	events := make(chan proto.DeviceEvent, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e proto.DeviceEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.DeviceID != "" {
				events <- e
			}
		}
		close(events)
	}()
	// Enroll only once the server has the stream open.
	if l := srv.waitLog("live stream opened", 30*time.Second); l["operator"] != "ci-viewer" {
		t.Fatalf("live stream opened by %v, want ci-viewer", l["operator"])
	}
	a := startAgent(t, "agent", srv, t.TempDir())
	var id string
	testkit.Eventually(t, 30*time.Second, "agent enrolled", func() bool { id, _ = a.identity(); return id != "" })
	seen := map[proto.ComplianceState]bool{}
	deadline := time.After(30 * time.Second)
	for !seen[proto.StateCompliant] {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("watch exited")
			}
			if e.DeviceID == id {
				seen[e.State] = true
			}
		case <-deadline:
			t.Fatalf("watch showed states %v for the agent, want COMPLIANT", seen)
		}
	}

	// The viewer may read but not edit; the admin may.
	if out, err := cli(t, srv, viewer.Token, "devices", "ls"); err != nil || !strings.Contains(out, id) {
		t.Fatalf("viewer devices ls: %v\n%s", err, out)
	}
	if out, err := cli(t, srv, viewer.Token, "policy", "set", id, "--camera-disabled=true"); err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("viewer policy set succeeded or gave no reason: %v\n%s", err, out)
	}
	if st := srv.status(id); st.DesiredVersion != 1 {
		t.Fatalf("a refused edit changed the policy: %+v", st)
	}
	if out, err := cli(t, srv, srv.admin, "policy", "set", id, "--camera-disabled=true"); err != nil {
		t.Fatalf("admin policy set: %v\n%s", err, out)
	}
	testkit.Eventually(t, 30*time.Second, "agent COMPLIANT at version 2", func() bool {
		st := srv.status(id)
		return st.State == proto.StateCompliant && st.AppliedVersion == 2
	})

	// A revoked token stops working at once.
	if out, err := cli(t, srv, srv.admin, "tokens", "rm", "ci-viewer"); err != nil {
		t.Fatalf("tokens rm: %v\n%s", err, out)
	}
	if out, err := cli(t, srv, viewer.Token, "devices", "ls"); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("a revoked token still lists devices: %v\n%s", err, out)
	}
}
