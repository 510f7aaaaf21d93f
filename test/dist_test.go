package test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestAgentUnitFile checks the systemd unit of the Linux agent: the keys
// the install relies on, that every DOORBELL_ variable it and the example
// environment file set is a real agent flag, and, where systemd-analyze
// exists, that systemd itself accepts the unit without a warning.
func TestAgentUnitFile(t *testing.T) {
	unitPath := filepath.Join("..", "dist", "doorbell-agent.service")
	u := parseUnit(t, unitPath)
	for _, tc := range []struct{ section, key, want string }{
		{"Unit", "Wants", "network-online.target"},
		{"Unit", "After", "network-online.target"},
		{"Service", "Restart", "on-failure"},
		{"Service", "EnvironmentFile", "/etc/doorbell/agent.env"},
		{"Service", "StateDirectory", "doorbell"},
		{"Service", "ExecStart", "/usr/local/bin/doorbell agent"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "yes"}, // full or strict would make /etc read-only
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := u.get(tc.section, tc.key); got != tc.want {
			t.Errorf("[%s] %s=%q, want %q", tc.section, tc.key, got, tc.want)
		}
	}

	// Every variable set for the agent names one of its flags.
	help, _ := exec.Command(binary, "agent", "-h").CombinedOutput()
	vars := map[string]string{}
	for _, e := range u["Service"]["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		vars[k] = v
	}
	env, err := os.ReadFile(filepath.Join("..", "dist", "agent.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "#")
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "DOORBELL_") {
			vars[k] = v
		}
	}
	for _, must := range []string{"DOORBELL_SERVER", "DOORBELL_ENROLL_TOKEN", "DOORBELL_STATE", "DOORBELL_ENFORCER"} {
		if _, ok := vars[must]; !ok {
			t.Errorf("%s is set neither in the unit nor in agent.env.example", must)
		}
	}
	for k := range vars {
		flag := "-" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "DOORBELL_")), "_", "-")
		if !strings.Contains(string(help), "  "+flag+" ") && !strings.Contains(string(help), "  "+flag+"\n") {
			t.Errorf("%s does not name a flag of `doorbell agent` (no %s in its -h)", k, flag)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: checked the keys only")
		return
	}
	// systemd-analyze wants ExecStart to exist: point it at the binary
	// under test.
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "doorbell-agent.service")
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/doorbell", binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
