package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the agent small enough for the mobile library: outside the
// standard library it may depend only on proto, paho and fsnotify (with their own
// dependencies).
func TestDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := []string{
		"github.com/doorbell-mdm/doorbell/agent",
		"github.com/doorbell-mdm/doorbell/proto",
		"github.com/eclipse/paho.mqtt.golang",
		// paho's own dependencies.
		"github.com/gorilla/websocket",
		"golang.org/x/net/",
		"golang.org/x/sync/",
		// fsnotify, for real-time drift, and its own dependency.
		"github.com/fsnotify/fsnotify",
		"golang.org/x/sys/",
	}
	forbidden := []string{"gofiber", "bbolt", "mochi-mqtt", "firebase.google.com"}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.Contains(dep, f) {
				t.Errorf("agent depends on %s", dep)
			}
		}
		ok := false
		for _, a := range allowed {
			if dep == a || strings.HasPrefix(dep, a) || strings.HasPrefix(dep, a+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("agent depends on %s, which is not allowed", dep)
		}
	}
}
