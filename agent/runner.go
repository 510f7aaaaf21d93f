package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Command is one program call an enforcer makes: a package manager,
// systemctl, a firewall tool. Name is the program (looked up in PATH), Env
// extra variables (KEY=value) on top of the agent's environment.
type Command struct {
	Name string
	Args []string
	Env  []string
}

// String renders the command as a shell would show it, for logs, errors and
// recorded test calls: environment first, arguments quoted when needed.
func (c Command) String() string {
	parts := make([]string, 0, len(c.Env)+1+len(c.Args))
	parts = append(parts, c.Env...)
	parts = append(parts, c.Name)
	for _, a := range c.Args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// Runner runs programs for an enforcer. Every program call of the Linux
// enforcer goes through one, so tests replace the host's programs with a
// recorder that answers from fixtures (linuxtest.FakeHost), and a root
// prefix never runs anything on the machine it is a prefix on.
//
// Run returns the program's standard output. A program that exits non-zero
// returns its output too, with a *RunError: several tools answer questions
// through their exit status (systemctl is-active, rpm -q).
type Runner interface {
	Run(ctx context.Context, cmd Command) ([]byte, error)
}

// RunError is a program that ran and failed (non-zero exit, or killed).
type RunError struct {
	Cmd Command
	// Code is the exit status, -1 when the program was killed.
	Code int
	// Stderr is the end of its standard error, trimmed.
	Stderr string
}

func (e *RunError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", e.Cmd, e.Code)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// ExitCode returns the exit status of a program that ran and failed, and
// -1 for any other error (the program could not be started).
func ExitCode(err error) int {
	var re *RunError
	if errors.As(err, &re) {
		return re.Code
	}
	return -1
}

// maxRunOutput bounds what ExecRunner keeps of a program's output: a
// package list of a large host fits many times over.
const (
	maxRunOutput = 32 << 20
	maxRunStderr = 4 << 10
)

// ExecRunner runs programs on this host with os/exec. The zero value is
// ready to use.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// runWaitDelay bounds how long Run waits for a killed program's output
// pipes to close.
const runWaitDelay = 2 * time.Second

// Run implements Runner. Standard output is kept up to 32 MiB, standard
// error up to its last 4 KiB. The program runs in its own process group,
// which is killed whole when ctx ends: a script's background children do
// not outlive its timeout or keep Run waiting on their output.
func (ExecRunner) Run(ctx context.Context, cmd Command) ([]byte, error) {
	c := exec.CommandContext(ctx, cmd.Name, cmd.Args...)
	c.Env = append(os.Environ(), cmd.Env...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error {
		// The negative pid is the process group.
		if err := syscall.Kill(-c.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	c.WaitDelay = runWaitDelay
	var stdout, stderr boundedBuffer
	stdout.max, stderr.max, stderr.keepTail = maxRunOutput, maxRunStderr, true
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.Bytes(), &RunError{Cmd: cmd, Code: exit.ExitCode(), Stderr: strings.TrimSpace(stderr.String())}
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("running %s: %w", cmd, err)
	}
	return stdout.Bytes(), nil
}

// boundedBuffer keeps at most max bytes: the first ones, or with keepTail
// the last ones.
type boundedBuffer struct {
	bytes.Buffer
	max      int
	keepTail bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if b.keepTail {
		b.Buffer.Write(p)
		if over := b.Len() - b.max; over > 0 {
			b.Next(over)
		}
		return n, nil
	}
	if room := b.max - b.Len(); room < len(p) {
		p = p[:max(room, 0)]
	}
	b.Buffer.Write(p)
	return n, nil
}
