package client

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the operator client light: outside the standard library it
// may depend only on proto, so any tool can embed it.
func TestDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "github.com/doorbell-mdm/doorbell/client" && dep != "github.com/doorbell-mdm/doorbell/proto" {
			t.Errorf("client depends on %s; it may use only proto and the standard library", dep)
		}
	}
}
