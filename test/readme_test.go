package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// readmeBlock returns the first ```sh block of README.md after the line
// starting with marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n"+marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	j := strings.Index(s[i:], "```sh\n")
	if j < 0 {
		t.Fatalf("no sh block after %q", marker)
	}
	body := s[i+j+len("```sh\n"):]
	k := strings.Index(body, "\n```")
	if k < 0 {
		t.Fatal("unterminated sh block")
	}
	return body[:k+1]
}

// TestReadmeGroupExample runs the README's group policy example as written
// (only the server URL and the agents' directories are this test's) with
// bash, curl and jq against a fresh `doorbell serve` and two real agents,
// and checks what it did through the API.
func TestReadmeGroupExample(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing; `make deps` installs curl and jq: %v", tool, err)
		}
	}
	script := readmeBlock(t, "A worked example")
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--tls", "off")
	dir1, dir2, tmp := t.TempDir(), t.TempDir(), t.TempDir()
	a1 := startAgent(t, "agent1", srv, dir1)
	a2 := startAgent(t, "agent2", srv, dir2)
	for _, a := range []*agentProc{a1, a2} {
		// Enrolled, reported and its enrollment inventory uploaded (which
		// runs beside the syncs, off their path): the example's steps,
		// typed one after another by a person, start on a settled agent.
		testkit.Eventually(t, 60*time.Second, "the agent enrolled, reported and sent its inventory", func() bool {
			id, _ := a.identity()
			if id == "" || srv.status(id).State != proto.StateCompliant {
				return false
			}
			var inv proto.DeviceInventory
			code, _ := srv.call("GET", "/devices/"+id+"/inventory", srv.admin, "", &inv)
			return code == 200 && len(inv.Sections) > 0
		})
	}
	script = strings.NewReplacer("http://127.0.0.1:8080", srv.url, "/tmp/agent1", dir1, "/tmp/agent2", dir2,
		"/tmp/lobby.json", filepath.Join(tmp, "lobby.json")).Replace(script)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "ADMIN="+srv.admin)
	out, err := cmd.CombinedOutput()
	t.Logf("README example output:\n%s", out)
	if err != nil {
		t.Fatalf("the README example failed: %v", err)
	}
	for _, want := range []string{`"changedDevices":2`, `"source":"device"`, `"mode":"monitor"`, `group_name_taken`, `invalid_body`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the example's output lacks %s", want)
		}
	}
	idA, _ := a1.identity()
	idB, _ := a2.identity()
	// What the README says happened, as the API sees it once the agents synced.
	testkit.Eventually(t, 30*time.Second, "B NON_COMPLIANT on the monitored password length", func() bool {
		st := srv.status(idB)
		return st.State == proto.StateNonCompliant && len(st.Failing) == 1 && st.Failing[0].Setting == "passwordMinLength" && st.Failing[0].Monitored
	})
	var x proto.PolicyExplanation
	if code, raw := srv.call("GET", "/devices/"+idA+"/policy/explain", srv.admin, "", &x); code != 200 {
		t.Fatalf("explain: %d %s", code, raw)
	}
	if x.Settings["passwordMinLength"].Source != "device" || string(x.Settings["passwordMinLength"].Value) != "12" ||
		!strings.HasPrefix(x.Settings["cameraDisabled"].Source, "group:") || string(x.Settings["cameraDisabled"].Value) != "false" {
		t.Fatalf("A's explain after the example: %+v", x.Settings)
	}
}
