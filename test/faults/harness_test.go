// Package faults is the fault-injection and abuse suite: the real doorbell
// binary under kill -9, restarts, a failing or hanging FCM, exhausted file
// descriptors, a full disk, damaged databases, hostile bodies and slow
// consumers. Every case asserts that nothing acknowledged was lost and that
// the server kept serving (or refused to start with a clear message);
// timings are logged, never asserted. Sizes fit `make test` on a small
// machine.
package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// binary is the doorbell binary built once for the package. It is built
// without the race detector: these cases stress memory and descriptors,
// and the race build's overhead would measure the detector (the e2e
// package in test/ runs the race build).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "doorbell-faults")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "doorbell")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/doorbell")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building doorbell:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	adminToken  = "faults-admin-token"
	enrollToken = "faults-enroll-token"
	// startTimeout bounds a server start; a guard, not a measurement.
	startTimeout = 30 * time.Second
)

// server is a running `doorbell serve` (plain HTTP and MQTT on loopback).
type server struct {
	t                  *testing.T
	cmd                *exec.Cmd
	dataDir            string
	url, http, mqtt    string
	mu                 sync.Mutex
	lines              []string
	exited             chan struct{}
	exitErr            error
	prefix             []string // a wrapper command, e.g. prlimit
	extra              []string
	fixedHTTP, fixedMQ string
}

// serverOpt changes how the server is started.
type serverOpt func(*server)

// withLimit runs the server under prlimit (e.g. "--nofile=256:256").
func withLimit(limits ...string) serverOpt {
	return func(s *server) {
		s.prefix = append([]string{"prlimit"}, limits...)
		s.prefix = append(s.prefix, "--")
	}
}

// withArgs adds serve flags.
func withArgs(args ...string) serverOpt {
	return func(s *server) { s.extra = append(s.extra, args...) }
}

// launch starts the binary and returns without waiting for it to serve.
func launch(t *testing.T, dataDir string, opts ...serverOpt) *server {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, exited: make(chan struct{}), fixedHTTP: "127.0.0.1:0", fixedMQ: "127.0.0.1:0"}
	for _, o := range opts {
		o(s)
	}
	args := append([]string{"serve", "--data", dataDir, "--http", s.fixedHTTP, "--mqtt", s.fixedMQ, "--tls", "off",
		"--admin-token", adminToken, "--enroll-token", enrollToken, "--log-format", "json",
		"--enroll-rate", "-1", "--device-rate", "-1"}, s.extra...)
	name := binary
	if len(s.prefix) > 0 {
		args = append(append(s.prefix[1:], binary), args...)
		name = s.prefix[0]
	}
	s.cmd = exec.Command(name, args...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout = io.Discard
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
		s.exitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			for _, l := range s.logLines() {
				t.Logf("server: %.500s", l)
			}
		}
	})
	return s
}

// startServer launches a server and waits until it serves.
func startServer(t *testing.T, dataDir string, opts ...serverOpt) *server {
	t.Helper()
	s := launch(t, dataDir, opts...)
	l := s.waitLog("serving", startTimeout)
	s.http, s.mqtt = l["http"].(string), l["mqtt"].(string)
	s.url = "http://" + s.http
	return s
}

// restart starts a new server on the same data dir and addresses.
func (s *server) restart(opts ...serverOpt) *server {
	s.t.Helper()
	opts = append([]serverOpt{func(n *server) { n.fixedHTTP, n.fixedMQ = s.http, s.mqtt }}, opts...)
	return startServer(s.t, s.dataDir, opts...)
}

func (s *server) logLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// waitLog waits for a JSON log line with msg.
func (s *server) waitLog(msg string, timeout time.Duration) map[string]any {
	s.t.Helper()
	var found map[string]any
	testkit.Eventually(s.t, timeout, fmt.Sprintf("the server to log %q", msg), func() bool {
		for _, l := range s.logLines() {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
				found = m
				return true
			}
		}
		select {
		case <-s.exited:
			s.t.Fatalf("server exited (%v) before logging %q", s.exitErr, msg)
		default:
		}
		return false
	})
	return found
}

// kill sends SIGKILL and waits for the process to end.
func (s *server) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-s.exited
}

// alive reports whether the process still runs.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// call makes an API request and decodes a 2xx JSON answer into out.
func (s *server) call(method, path, token, body string, out any) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, b, fmt.Errorf("decoding %s: %w", b, err)
		}
	}
	return resp.StatusCode, b, nil
}

// mustCall is call that fails the test on a transport error or an
// unexpected status.
func (s *server) mustCall(method, path, token, body string, want int, out any) []byte {
	s.t.Helper()
	code, b, err := s.call(method, path, token, body, out)
	if err != nil || code != want {
		s.t.Fatalf("%s %s = %d %s, %v; want %d", method, path, code, b, err, want)
	}
	return b
}

func (s *server) status(id string) proto.DeviceStatus {
	s.t.Helper()
	var st proto.DeviceStatus
	s.mustCall("GET", "/devices/"+id+"/status", adminToken, "", 200, &st)
	return st
}

// enroll enrolls n devices through the API (no agent process).
func (s *server) enroll(n int) []agent.Credentials {
	s.t.Helper()
	c, err := agent.NewClient(s.url, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	creds := make([]agent.Credentials, n)
	for i := range creds {
		resp, err := c.Enroll(context.Background(), enrollToken, proto.EnrollRequest{Model: fmt.Sprintf("faults-%d", i), OSVersion: "14", AgentVersion: "0.1.0"})
		if err != nil {
			s.t.Fatalf("enroll %d: %v", i, err)
		}
		creds[i] = agent.Credentials{DeviceID: resp.DeviceID, Secret: resp.DeviceSecret}
	}
	return creds
}

// deviceClient is an agent's HTTP client for s.
func (s *server) deviceClient() *agent.Client {
	s.t.Helper()
	c, err := agent.NewClient(s.url, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// serves reports whether /healthz answers 200.
func (s *server) serves() bool {
	code, _, err := s.call("GET", "/healthz", "", "", nil)
	return err == nil && code == 200
}

// agentProc is a real `doorbell agent` with a file enforcer.
type agentProc struct {
	cmd      *exec.Cmd
	stateDir string
	exited   chan struct{}
}

func startAgent(t *testing.T, s *server, stateDir string) *agentProc {
	t.Helper()
	a := &agentProc{stateDir: stateDir, exited: make(chan struct{})}
	a.cmd = exec.Command(binary, "agent", "--server", s.url, "--enroll-token", enrollToken, "--state", stateDir,
		"--enforcer", "file:"+filepath.Join(stateDir, "device.json"), "--interval", "1h", "--log-format", "json")
	a.cmd.Stdout, a.cmd.Stderr = io.Discard, io.Discard
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() { a.cmd.Process.Kill(); <-a.exited })
	return a
}

// id returns the agent's device id once it enrolled, "" before.
func (a *agentProc) id() string {
	var v struct{ DeviceID string }
	b, err := os.ReadFile(filepath.Join(a.stateDir, "identity.json"))
	if err != nil || json.Unmarshal(b, &v) != nil {
		return ""
	}
	return v.DeviceID
}

// dialMany opens up to n TCP connections to addr and returns them; it
// stops at the first error.
func dialMany(addr string, n int) ([]net.Conn, error) {
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}
