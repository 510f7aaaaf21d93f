package doorbell

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the library small for gomobile: it imports only agent,
// proto and the standard library.
func TestImports(t *testing.T) {
	out, err := exec.Command(goBinary(t), "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/doorbell-mdm/doorbell/agent": true,
		"github.com/doorbell-mdm/doorbell/proto": true,
	}
	for _, imp := range strings.Fields(string(out)) {
		first, _, _ := strings.Cut(imp, "/")
		if !allowed[imp] && strings.Contains(first, ".") {
			t.Errorf("package doorbell imports %s; only agent, proto and the standard library are allowed", imp)
		}
	}
}
