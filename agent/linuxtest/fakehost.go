// Package linuxtest is a recording stand-in for a Linux host's programs,
// for tests of the Linux enforcer under a root prefix. FakeHost is an
// agent.Runner that records every call and answers as apt-get, dpkg-query,
// dnf, rpm, systemctl, ufw, firewall-cmd, nft and setenforce do (their
// output formats and exit statuses), from a host state loaded from a
// fixture and changed by the calls it answers; the files those programs
// would change (SELinux's enforce flag, AppArmor's profiles) are changed
// under the root.
package linuxtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/doorbell-mdm/doorbell/agent"
)

// Unit is a systemd unit of the fake host.
type Unit struct {
	Enabled bool `json:"enabled"`
	Active  bool `json:"active"`
	Masked  bool `json:"masked"`
}

// State is what a fake host has: installed packages and the repository's
// versions (name -> version), the units each package brings, the units,
// and whether ufw is on.
type State struct {
	Installed map[string]string   `json:"installed"`
	Repo      map[string]string   `json:"repo"`
	PkgUnits  map[string][]string `json:"pkgUnits"`
	Units     map[string]*Unit    `json:"units"`
	UFWActive bool                `json:"ufwActive"`
}

// FakeHost answers program calls for a host whose files are under Root.
type FakeHost struct {
	Root string

	mu    sync.Mutex
	st    State
	calls []string
	fails map[string]failure
}

type failure struct {
	code   int
	stderr string
}

var _ agent.Runner = (*FakeHost)(nil)

// Load copies the fixture tree dir (e.g. testdata/hosts/debian) into a new
// temporary directory and returns a FakeHost for it, with the state in
// dir + ".json".
func Load(t testing.TB, dir string) *FakeHost {
	t.Helper()
	root := t.TempDir()
	if err := copyTree(dir, root); err != nil {
		t.Fatalf("copying fixture %s: %v", dir, err)
	}
	b, err := os.ReadFile(dir + ".json")
	if err != nil {
		t.Fatal(err)
	}
	h := &FakeHost{Root: root, fails: map[string]failure{}}
	if err := json.Unmarshal(b, &h.st); err != nil {
		t.Fatalf("%s.json: %v", dir, err)
	}
	for _, m := range []*map[string]string{&h.st.Installed, &h.st.Repo} {
		if *m == nil {
			*m = map[string]string{}
		}
	}
	if h.st.Units == nil {
		h.st.Units = map[string]*Unit{}
	}
	return h
}

// copyTree copies the files of src into dst; empty directories are kept
// through a ".keep" file, which is not copied.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		if d.Name() == ".keep" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
}

// Calls returns every command run so far, as agent.Command.String shows it.
func (h *FakeHost) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// CallsTo returns the recorded commands of one program.
func (h *FakeHost) CallsTo(program string) []string {
	var out []string
	for _, c := range h.Calls() {
		f := strings.Fields(c)
		for len(f) > 0 && strings.Contains(f[0], "=") {
			f = f[1:]
		}
		if len(f) > 0 && f[0] == program {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (h *FakeHost) ResetCalls() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = nil
}

// Fail makes every command whose rendering starts with prefix fail with
// code and stderr, without effect; code 0 removes the failure.
func (h *FakeHost) Fail(prefix string, code int, stderr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if code == 0 {
		delete(h.fails, prefix)
		return
	}
	h.fails[prefix] = failure{code, stderr}
}

// Installed returns the installed version of a package, "" when it is not
// installed.
func (h *FakeHost) Installed(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st.Installed[name]
}

// Unit returns a copy of a unit's state; ok is false for an unknown unit.
func (h *FakeHost) Unit(name string) (Unit, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u, ok := h.st.Units[unitName(name)]
	if !ok {
		return Unit{}, false
	}
	return *u, true
}

// SetUnit changes a unit behind the agent's back (drift).
func (h *FakeHost) SetUnit(name string, u Unit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.st.Units[unitName(name)] = &u
	h.sideEffects()
}

// Remove uninstalls a package behind the agent's back (drift).
func (h *FakeHost) Remove(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.st.Installed, name)
}

// UFWActive reports whether ufw is on.
func (h *FakeHost) UFWActive() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st.UFWActive
}

// Run implements agent.Runner.
func (h *FakeHost) Run(ctx context.Context, cmd agent.Command) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	line := cmd.String()
	h.calls = append(h.calls, line)
	bare := agent.Command{Name: cmd.Name, Args: cmd.Args}.String()
	for prefix, f := range h.fails {
		if strings.HasPrefix(line, prefix) || strings.HasPrefix(bare, prefix) {
			return nil, &agent.RunError{Cmd: cmd, Code: f.code, Stderr: f.stderr}
		}
	}
	out, code, stderr := h.answer(cmd.Name, args(cmd.Args))
	if code != 0 {
		return []byte(out), &agent.RunError{Cmd: cmd, Code: code, Stderr: stderr}
	}
	return []byte(out), nil
}

// args drops a "--" end-of-options marker.
func args(a []string) []string {
	return slices.DeleteFunc(slices.Clone(a), func(s string) bool { return s == "--" })
}

// names returns the arguments that are not options.
func names(a []string) []string {
	var out []string
	for _, s := range a {
		if !strings.HasPrefix(s, "-") {
			out = append(out, s)
		}
	}
	return out
}

func unitName(n string) string {
	if !strings.Contains(n, ".") {
		return n + ".service"
	}
	return n
}

// answer runs one command against the state: stdout, exit code, stderr.
func (h *FakeHost) answer(prog string, a []string) (string, int, string) {
	switch prog {
	case "dpkg-query":
		var out strings.Builder
		code, stderr := 0, ""
		for _, n := range names(a[2:]) {
			if v, ok := h.st.Installed[n]; ok {
				fmt.Fprintf(&out, "%s\tii \t%s\n", n, v)
			} else {
				code, stderr = 1, stderr+"dpkg-query: no packages found matching "+n+"\n"
			}
		}
		return out.String(), code, strings.TrimSpace(stderr)
	case "rpm":
		var out strings.Builder
		missing := 0
		for _, n := range names(a[3:]) {
			if v, ok := h.st.Installed[n]; ok {
				if !strings.Contains(v, ":") {
					v = "0:" + v
				}
				fmt.Fprintf(&out, "%s\t%s\n", n, v)
			} else {
				missing++
				fmt.Fprintf(&out, "package %s is not installed\n", n)
			}
		}
		return out.String(), missing, ""
	case "apt-get", "dnf":
		return h.pkgManager(prog, a)
	case "systemctl":
		return h.systemctl(a)
	case "ufw":
		switch strings.Join(a, " ") {
		case "--force enable":
			h.st.UFWActive = true
			return "Firewall is active and enabled on system startup\n", 0, ""
		case "disable":
			h.st.UFWActive = false
			return "Firewall stopped and disabled on system startup\n", 0, ""
		case "status":
			if h.st.UFWActive {
				return "Status: active\n\nTo                         Action      From\n--                         ------      ----\n", 0, ""
			}
			return "Status: inactive\n", 0, ""
		}
	case "firewall-cmd":
		if strings.Join(a, " ") == "--state" {
			if u := h.st.Units["firewalld.service"]; u != nil && u.Active {
				return "running\n", 0, ""
			}
			return "not running\n", 252, ""
		}
	case "nft":
		switch strings.Join(a, " ") {
		case "list table inet firewalld":
			if u := h.st.Units["firewalld.service"]; u != nil && u.Active {
				return "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n}\n", 0, ""
			}
			return "", 1, "Error: No such file or directory\nlist table inet firewalld"
		case "list ruleset":
			if u := h.st.Units["nftables.service"]; u != nil && u.Active {
				return "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n", 0, ""
			}
			return "", 0, ""
		}
	case "setenforce":
		if len(a) == 1 && (a[0] == "0" || a[0] == "1") {
			p := filepath.Join(h.Root, "sys/fs/selinux/enforce")
			if _, err := os.Stat(p); err != nil {
				return "", 1, "setenforce: SELinux is disabled"
			}
			if err := os.WriteFile(p, []byte(a[0]), 0o644); err != nil {
				return "", 1, err.Error()
			}
			return "", 0, ""
		}
	case "wall", "notify-send", "runuser":
		return "", 0, ""
	}
	return "", 127, fmt.Sprintf("%s: command not found by the fake host (%s)", prog, strings.Join(a, " "))
}

// pkgManager answers apt-get and dnf.
func (h *FakeHost) pkgManager(prog string, a []string) (string, int, string) {
	if len(a) == 0 {
		return "", 100, "no verb"
	}
	verb, pkgs := a[0], names(a[1:])
	if prog == "apt-get" && verb == "install" && slices.Contains(a, "--only-upgrade") {
		verb = "upgrade"
	}
	switch verb {
	case "update":
		return "Reading package lists...\n", 0, ""
	case "install", "upgrade":
		for _, n := range pkgs {
			if _, ok := h.st.Repo[n]; !ok {
				if prog == "apt-get" {
					return "", 100, "E: Unable to locate package " + n
				}
				return "No match for argument: " + n + "\n", 1, "Error: Unable to find a match: " + n
			}
		}
		for _, n := range pkgs {
			if _, ok := h.st.Installed[n]; verb == "upgrade" && !ok {
				continue
			}
			h.st.Installed[n] = h.st.Repo[n]
			for _, u := range h.st.PkgUnits[n] {
				if h.st.Units[u] == nil {
					// Debian starts and enables a package's services
					// on installation; Fedora does neither.
					on := prog == "apt-get"
					h.st.Units[u] = &Unit{Enabled: on, Active: on}
				}
			}
		}
		return "", 0, ""
	case "remove":
		for _, n := range pkgs {
			delete(h.st.Installed, n)
			for _, u := range h.st.PkgUnits[n] {
				delete(h.st.Units, u)
			}
		}
		h.sideEffects()
		return "", 0, ""
	}
	return "", 100, "unknown verb " + verb
}

// systemctl answers show, enable, disable, start, stop, mask, unmask and
// try-reload-or-restart.
func (h *FakeHost) systemctl(a []string) (string, int, string) {
	if len(a) == 0 {
		return "", 1, "no verb"
	}
	verb := a[0]
	now := slices.Contains(a, "--now")
	for _, n := range names(a[1:]) {
		name := unitName(n)
		u := h.st.Units[name]
		switch verb {
		case "show":
			switch {
			case u == nil:
				return "LoadState=not-found\nUnitFileState=\nActiveState=inactive\n", 0, ""
			case u.Masked:
				return fmt.Sprintf("LoadState=masked\nUnitFileState=masked\nActiveState=%s\n", active(u.Active)), 0, ""
			}
			file := "disabled"
			if u.Enabled {
				file = "enabled"
			}
			return fmt.Sprintf("LoadState=loaded\nUnitFileState=%s\nActiveState=%s\n", file, active(u.Active)), 0, ""
		case "try-reload-or-restart":
			if u == nil {
				return "", 5, "Failed to try-reload-or-restart " + name + ": Unit " + name + " not found."
			}
			continue
		case "mask":
			if u == nil {
				u = &Unit{}
				h.st.Units[name] = u
			}
			u.Masked = true
			if now {
				u.Active = false
			}
			continue
		case "unmask":
			if u != nil {
				u.Masked = false
			}
			continue
		}
		if u == nil {
			return "", 5, "Failed to " + verb + " " + name + ": Unit " + name + " not found."
		}
		if u.Masked && (verb == "enable" || verb == "start") {
			return "", 1, "Failed to " + verb + " unit: Unit " + name + " is masked."
		}
		switch verb {
		case "enable":
			u.Enabled = true
			u.Active = u.Active || now
		case "disable":
			u.Enabled = false
			u.Active = u.Active && !now
		case "start":
			u.Active = true
		case "stop":
			u.Active = false
		default:
			return "", 1, "unknown verb " + verb
		}
	}
	h.sideEffects()
	return "", 0, ""
}

func active(b bool) string {
	if b {
		return "active"
	}
	return "inactive"
}

// sideEffects writes what running units change under the root: AppArmor's
// loaded profiles.
func (h *FakeHost) sideEffects() {
	if u := h.st.Units["apparmor.service"]; u != nil {
		p := filepath.Join(h.Root, "sys/kernel/security/apparmor/profiles")
		if _, err := os.Stat(filepath.Dir(p)); err == nil {
			content := ""
			if u.Active {
				content = "/usr/bin/man (enforce)\nnvidia_modprobe (enforce)\n"
			}
			_ = os.WriteFile(p, []byte(content), 0o644)
		}
	}
}

// Units lists the units the host knows, sorted.
func (h *FakeHost) Units() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n := range h.st.Units {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
