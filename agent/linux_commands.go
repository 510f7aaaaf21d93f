package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// LinuxScriptDir is where, under the executor's root, an administrator
// places the scripts run_script may run.
const LinuxScriptDir = "/etc/doorbell/scripts"

// LinuxDryRunLog is where, under a root other than "/", the executor
// records the system commands it would have run (reboot, lock) instead of
// running them, so a test tree never reboots its host.
const LinuxDryRunLog = "/var/lib/doorbell/system-commands.log"

// LinuxExecutor carries out remote commands on a Linux host:
//
//   - reboot: systemctl reboot;
//   - lock: loginctl lock-sessions;
//   - run_script: a script an administrator placed in the script directory
//     (<root>/etc/doorbell/scripts), by name only, never a command line from
//     the server. The script must be a regular file (not a link), executable,
//     and writable by nobody but its owner, who must be root or the agent's
//     user. It runs without a shell and without arguments, in its own
//     process group, killed whole after its timeout (param "timeout",
//     default 1m, at most 10m). Its standard output, and when it fails the
//     end of its standard error, is the result's output, cut to
//     proto.MaxCommandOutput bytes. Exit status 0 is ACKNOWLEDGED; anything
//     else is ERROR "failed" (or "timeout").
//
// Every other type is answered ERROR "unsupported" at once.
type LinuxExecutor struct {
	root      string
	scriptDir string

	mu     sync.Mutex
	runner Runner // runs scripts and, under "/", system commands
	system Runner // runs systemctl and loginctl
}

var _ Executor = (*LinuxExecutor)(nil)

// NewLinuxExecutor returns the executor for the host whose file system is
// mounted at root ("/" for the host itself). Under any other root, system
// commands are only recorded in <root>/var/lib/doorbell/system-commands.log.
func NewLinuxExecutor(root string) *LinuxExecutor {
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	x := &LinuxExecutor{root: root, scriptDir: filepath.Join(root, LinuxScriptDir), runner: ExecRunner{}}
	if root == "/" {
		x.system = ExecRunner{}
	} else {
		x.system = &dryRunner{path: filepath.Join(root, LinuxDryRunLog)}
	}
	return x
}

// SetRunner replaces the runner of scripts and system commands (tests
// pass a recorder).
func (x *LinuxExecutor) SetRunner(r Runner) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.runner, x.system = r, r
}

// ScriptDir returns the directory run_script takes scripts from.
func (x *LinuxExecutor) ScriptDir() string { return x.scriptDir }

// Execute implements Executor.
func (x *LinuxExecutor) Execute(ctx context.Context, cmd proto.Command) proto.CommandResult {
	x.mu.Lock()
	runner, system := x.runner, x.system
	x.mu.Unlock()
	switch cmd.Type {
	case proto.CommandReboot:
		return runSystem(ctx, system, "systemctl", "reboot")
	case proto.CommandLock:
		return runSystem(ctx, system, "loginctl", "lock-sessions")
	case proto.CommandRunScript:
		return x.runScript(ctx, runner, cmd.Params)
	}
	return Unsupported(cmd.Type)
}

// systemCommandTimeout bounds systemctl and loginctl.
const systemCommandTimeout = time.Minute

func runSystem(ctx context.Context, r Runner, name string, args ...string) proto.CommandResult {
	if err := ctx.Err(); err != nil {
		return proto.CommandResult{State: proto.CommandNotNow, Message: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, systemCommandTimeout)
	defer cancel()
	out, err := r.Run(ctx, Command{Name: name, Args: args})
	if err != nil {
		return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeFailed,
			Message: proto.Truncate(err.Error(), proto.MaxCommandMessage), Output: proto.Truncate(string(out), proto.MaxCommandOutput)}
	}
	return Acknowledged(proto.Truncate(string(out), proto.MaxCommandOutput))
}

func (x *LinuxExecutor) runScript(ctx context.Context, r Runner, params map[string]string) proto.CommandResult {
	name := params["script"]
	if !proto.ValidScriptName(name) {
		return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeBadParams, Message: fmt.Sprintf("%q is not a script name", name)}
	}
	timeout := proto.DefaultScriptTimeout
	if v, ok := params["timeout"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > proto.MaxScriptTimeout {
			return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeBadParams,
				Message: fmt.Sprintf("timeout %q must be a duration from 1s to %v", v, proto.MaxScriptTimeout)}
		}
		timeout = d
	}
	path := filepath.Join(x.scriptDir, name)
	if err := checkScript(path); err != nil {
		return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeBadParams, Message: err.Error()}
	}
	if err := ctx.Err(); err != nil {
		return proto.CommandResult{State: proto.CommandNotNow, Message: err.Error()}
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := r.Run(sctx, Command{Name: path})
	var re *RunError
	if errors.As(err, &re) && re.Stderr != "" {
		out = append(append(out, "\n--- stderr (end) ---\n"...), re.Stderr...)
	}
	output := proto.Truncate(string(out), proto.MaxCommandOutput)
	switch {
	case err != nil && errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeTimeout,
			Message: fmt.Sprintf("script %s ran past its timeout of %v and was killed", name, timeout), Output: output}
	case err != nil:
		msg := fmt.Sprintf("script %s: %v", name, err)
		if re != nil {
			msg = fmt.Sprintf("script %s: exit status %d", name, re.Code)
		}
		return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeFailed,
			Message: proto.Truncate(msg, proto.MaxCommandMessage), Output: output}
	}
	return Acknowledged(output)
}

// checkScript refuses a file an administrator did not place: a link, not a
// regular file, not executable, writable by group or others, or owned by
// someone other than root or the agent's user.
func checkScript(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no script %s", path)
	}
	if err != nil {
		return err
	}
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s is not executable", path)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by group or others", path)
	}
	if uid, ok := fileOwner(fi); ok && uid != 0 && uid != os.Getuid() {
		return fmt.Errorf("%s is owned by uid %d, neither root nor the agent's user", path, uid)
	}
	return nil
}

// dryRunner records system commands in a file instead of running them.
type dryRunner struct {
	mu   sync.Mutex
	path string
}

func (d *dryRunner) Run(ctx context.Context, cmd Command) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(d.path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(d.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	line := cmd.String()
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return []byte("dry run: recorded " + line), f.Close()
}

// fileOwner returns the uid owning fi, when the platform tells.
func fileOwner(fi os.FileInfo) (int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), true
	}
	return 0, false
}
