package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/doorbell-mdm/doorbell/proto"
)

// TestCLIRevisions lists, shows and rolls back a device's own settings
// against a real server.
func TestCLIRevisions(t *testing.T) {
	f := startFleet(t, 1)
	auth := []string{"--server", f.url, "--token", f.admin}
	id := f.devices[0].DeviceID
	for _, kv := range []string{"passwordMinLength=8", "passwordMinLength=12"} {
		if _, _, err := cli(t, append([]string{"policy", "set", id, kv}, auth...)...); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := cli(t, append([]string{"revisions", "device", id}, auth...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "2 ") || !strings.Contains(lines[1], "passwordMinLength: 8 -> 12") || !strings.Contains(lines[2], "passwordMinLength: null -> 8") {
		t.Fatalf("revisions ls:\n%s", out)
	}
	out, _, err = cli(t, append([]string{"revisions", "show", "device", id, "1"}, auth...)...)
	if err != nil || !strings.Contains(out, "revision 1 at ") || !strings.Contains(out, "passwordMinLength: null -> 8") {
		t.Fatalf("revisions show: %q, %v", out, err)
	}
	out, _, err = cli(t, append([]string{"revisions", "rollback", "device", id, "1", "--json"}, auth...)...)
	if err != nil {
		t.Fatal(err)
	}
	var p proto.DevicePolicy
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.PasswordMinLength == nil || *p.PasswordMinLength != 8 {
		t.Fatalf("rollback answered %s (%v)", out, err)
	}
	for _, bad := range [][]string{
		{"revisions", "show", "device", id, "0"},
		{"revisions", "show", "phone", id, "1"},
		{"revisions", "rollback", "device", id, "99"},
	} {
		if _, _, err := cli(t, append(bad, auth...)...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
}
