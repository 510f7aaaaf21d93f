package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/agent/executortest"
	"github.com/doorbell-mdm/doorbell/proto"
)

func TestFileExecutorConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T) executortest.Harness {
		e := agent.NewFileEnforcer(filepath.Join(t.TempDir(), "device.json"))
		return executortest.Harness{Executor: e, Supported: allTypes(), Ran: func() []proto.CommandType {
			done, err := e.ExecutedCommands()
			if err != nil {
				t.Fatal(err)
			}
			return typesOf(done)
		}}
	})
}

func TestMemoryExecutorConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T) executortest.Harness {
		e := &agent.MemoryEnforcer{}
		return executortest.Harness{Executor: e, Supported: allTypes(), Ran: func() []proto.CommandType { return typesOf(e.ExecutedCommands()) }}
	})
}

func TestLinuxExecutorConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T) executortest.Harness {
		root := t.TempDir()
		x := agent.NewLinuxExecutor(root)
		placeScript(t, x, "hello.sh", "#!/bin/sh\necho hello\n", 0o755)
		rec := &recordingRunner{}
		x.SetRunner(rec)
		return executortest.Harness{
			Executor: x,
			Supported: map[proto.CommandType]map[string]string{
				proto.CommandReboot:    nil,
				proto.CommandLock:      nil,
				proto.CommandRunScript: {"script": "hello.sh"},
			},
			Ran: func() []proto.CommandType {
				var out []proto.CommandType
				for _, c := range rec.calls() {
					switch {
					case c == "systemctl reboot":
						out = append(out, proto.CommandReboot)
					case c == "loginctl lock-sessions":
						out = append(out, proto.CommandLock)
					case c == filepath.Join(x.ScriptDir(), "hello.sh"):
						out = append(out, proto.CommandRunScript)
					default:
						t.Fatalf("the executor ran %q", c)
					}
				}
				return out
			},
		}
	})
}

func allTypes() map[proto.CommandType]map[string]string {
	out := map[proto.CommandType]map[string]string{}
	for _, s := range proto.CommandTypes {
		params := map[string]string{}
		for _, p := range s.Params {
			switch p.Kind {
			case proto.ParamBool:
				params[p.Name] = "true"
			case proto.ParamDuration:
				params[p.Name] = "5s"
			case proto.ParamPackage:
				params[p.Name] = "com.example.app"
			default:
				params[p.Name] = "x"
			}
		}
		out[s.Type] = params
	}
	return out
}

func typesOf(done []agent.ExecutedCommand) []proto.CommandType {
	var out []proto.CommandType
	for _, c := range done {
		out = append(out, c.Type)
	}
	return out
}

// recordingRunner records the command lines it is asked to run and runs
// nothing.
type recordingRunner struct {
	mu    sync.Mutex
	lines []string
}

var _ agent.Runner = (*recordingRunner)(nil)

func (r *recordingRunner) Run(ctx context.Context, cmd agent.Command) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, cmd.String())
	return []byte("ok"), nil
}

func (r *recordingRunner) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

func placeScript(t *testing.T, x *agent.LinuxExecutor, name, body string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(x.ScriptDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(x.ScriptDir(), name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func runScript(t *testing.T, x *agent.LinuxExecutor, params map[string]string) proto.CommandResult {
	t.Helper()
	r := x.Execute(t.Context(), proto.Command{CommandID: "c1", Type: proto.CommandRunScript, Params: params})
	if err := r.Validate(); err != nil {
		t.Fatalf("invalid result %+v: %v", r, err)
	}
	return r
}

// TestLinuxRunScript runs real scripts through the real runner.
func TestLinuxRunScript(t *testing.T) {
	x := agent.NewLinuxExecutor(t.TempDir())
	placeScript(t, x, "ok.sh", "#!/bin/sh\necho \"out $0\"\n", 0o755)
	placeScript(t, x, "fails.sh", "#!/bin/sh\necho broken\necho why >&2\nexit 3\n", 0o755)
	placeScript(t, x, "chatty.sh", "#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' a\n", 0o755)
	// The child sleeps in the background holding the output pipe: the
	// timeout must kill the whole group, not only the shell.
	placeScript(t, x, "hangs.sh", "#!/bin/sh\nsleep 60 &\nsleep 60\n", 0o755)
	placeScript(t, x, "writable.sh", "#!/bin/sh\necho no\n", 0o777)
	placeScript(t, x, "plain.txt", "#!/bin/sh\necho no\n", 0o644)
	if err := os.Symlink("/bin/true", filepath.Join(x.ScriptDir(), "link.sh")); err != nil {
		t.Fatal(err)
	}

	r := runScript(t, x, map[string]string{"script": "ok.sh"})
	if r.State != proto.CommandAcknowledged || !strings.Contains(r.Output, "out "+filepath.Join(x.ScriptDir(), "ok.sh")) {
		t.Errorf("ok.sh = %+v, want ACKNOWLEDGED with its output", r)
	}
	r = runScript(t, x, map[string]string{"script": "fails.sh"})
	if r.State != proto.CommandError || r.ErrorCode != proto.ErrorCodeFailed || !strings.Contains(r.Output, "broken") || !strings.Contains(r.Output, "why") || !strings.Contains(r.Message, "exit status 3") {
		t.Errorf("fails.sh = %+v, want ERROR failed with its output, its stderr and exit status", r)
	}
	r = runScript(t, x, map[string]string{"script": "chatty.sh"})
	if r.State != proto.CommandAcknowledged || len(r.Output) > proto.MaxCommandOutput || !strings.HasSuffix(r.Output, "[truncated]") || len(r.Output) < proto.MaxCommandOutput-100 {
		t.Errorf("chatty.sh output is %d bytes ending %q, want cut to at most %d and marked", len(r.Output), r.Output[max(0, len(r.Output)-20):], proto.MaxCommandOutput)
	}
	start := time.Now()
	r = runScript(t, x, map[string]string{"script": "hangs.sh", "timeout": "1s"})
	if r.State != proto.CommandError || r.ErrorCode != proto.ErrorCodeTimeout {
		t.Errorf("hangs.sh = %+v, want ERROR timeout", r)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a 1s timeout returned after %v: the group was not killed", took)
	}

	for _, tt := range []struct{ name, script, want string }{
		{"missing", "nope.sh", "no script"},
		{"writable by others", "writable.sh", "writable by group or others"},
		{"not executable", "plain.txt", "not executable"},
		{"a link", "link.sh", "not a regular file"},
		{"a path", "../ok.sh", "not a script name"},
		{"an absolute path", "/bin/sh", "not a script name"},
		{"a command line", "ok.sh; reboot", "not a script name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runScript(t, x, map[string]string{"script": tt.script})
			if r.State != proto.CommandError || r.ErrorCode != proto.ErrorCodeBadParams || !strings.Contains(r.Message, tt.want) {
				t.Errorf("%s = %+v, want ERROR bad_params mentioning %q", tt.script, r, tt.want)
			}
		})
	}
	r = runScript(t, x, map[string]string{"script": "ok.sh", "timeout": "2h"})
	if r.State != proto.CommandError || r.ErrorCode != proto.ErrorCodeBadParams {
		t.Errorf("timeout 2h = %+v, want ERROR bad_params", r)
	}
}

// TestLinuxExecutorDryRun: under a test root, reboot and lock are recorded
// in the root, never run on the host.
func TestLinuxExecutorDryRun(t *testing.T) {
	root := t.TempDir()
	x := agent.NewLinuxExecutor(root)
	for _, typ := range []proto.CommandType{proto.CommandReboot, proto.CommandLock} {
		if r := x.Execute(t.Context(), proto.Command{CommandID: "c", Type: typ}); r.State != proto.CommandAcknowledged {
			t.Fatalf("%s = %+v", typ, r)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, agent.LinuxDryRunLog))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "systemctl reboot\nloginctl lock-sessions\n" {
		t.Fatalf("dry-run log = %q", b)
	}
}

// TestJSONExecutor: the string-only adapter a gomobile binding implements.
func TestJSONExecutor(t *testing.T) {
	var gotType, gotParams string
	x := agent.NewJSONExecutor(func(typ, params string) (string, error) {
		gotType, gotParams = typ, params
		switch typ {
		case "lock":
			return `{"state":"ACKNOWLEDGED","message":"locked"}`, nil
		case "reboot":
			return `not json`, nil
		case "wipe":
			return `{"state":"ERROR"}`, nil // no errorCode: invalid
		}
		return "", os.ErrPermission
	})
	r := x.Execute(t.Context(), proto.Command{Type: proto.CommandLock})
	if r.State != proto.CommandAcknowledged || r.Message != "locked" || gotType != "lock" || gotParams != "{}" {
		t.Errorf("lock = %+v (type %q params %q)", r, gotType, gotParams)
	}
	x.Execute(t.Context(), proto.Command{Type: proto.CommandClearAppData, Params: map[string]string{"package": "com.a.b"}})
	if gotParams != `{"package":"com.a.b"}` {
		t.Errorf("params JSON = %q", gotParams)
	}
	for typ, want := range map[proto.CommandType]string{"reboot": "not JSON", "wipe": "invalid", "clear_app_data": "permission"} {
		r := x.Execute(t.Context(), proto.Command{Type: typ})
		if r.State != proto.CommandError || r.ErrorCode != proto.ErrorCodeFailed || !strings.Contains(r.Message, want) {
			t.Errorf("%s = %+v, want ERROR failed mentioning %q", typ, r, want)
		}
	}
}
