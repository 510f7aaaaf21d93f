// Package test holds the end-to-end tests that run the real doorbell binary,
// real agents, a real broker and real MQTT clients together.
package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// binary is the doorbell binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "doorbell-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "doorbell")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/doorbell")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building doorbell:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running doorbell process whose JSON log lines are kept.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs []map[string]any
	out  bytes.Buffer
	seen chan struct{} // signalled on every new log line
	done chan error
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: exec.Command(binary, args...), seen: make(chan struct{}, 1), done: make(chan error, 1)}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = &syncWriter{p: p}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				m = map[string]any{"msg": line}
			}
			p.mu.Lock()
			p.logs = append(p.logs, m)
			p.mu.Unlock()
			select {
			case p.seen <- struct{}{}:
			default:
			}
		}
		p.done <- p.cmd.Wait()
		close(p.seen)
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			for _, l := range p.logs {
				t.Logf("%s: %v", p.name, l)
			}
			p.mu.Unlock()
		}
	})
	return p
}

type syncWriter struct{ p *proc }

func (w *syncWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// waitLog waits for a log line with the given msg and returns it.
func (p *proc) waitLog(msg string, timeout time.Duration) map[string]any {
	p.t.Helper()
	deadline := time.After(timeout)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.logs); i++ {
			if p.logs[i]["msg"] == msg {
				l := p.logs[i]
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case _, ok := <-p.seen:
			if !ok {
				p.t.Fatalf("%s exited before logging %q", p.name, msg)
			}
		case <-deadline:
			p.t.Fatalf("%s did not log %q within %v", p.name, msg, timeout)
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("%s did not exit cleanly: %v", p.name, err)
		}
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%s did not stop within 20s of SIGTERM", p.name)
	}
}

// server is a running `doorbell serve`.
type serverProc struct {
	*proc
	url, httpAddr, mqttAddr, admin, enroll, dataDir string
	// pin and caFile are set when the server runs TLS (the default);
	// client trusts its CA then.
	pin, caFile string
	client      *http.Client
	// live are devices with a running agent: their own requests move
	// their lastSeenAt, which snapshots then leave out.
	live map[string]bool
}

func startServer(t *testing.T, dataDir, httpAddr, mqttAddr string, extra ...string) *serverProc {
	t.Helper()
	s := &serverProc{dataDir: dataDir, admin: "e2e-admin-token", enroll: "e2e-enroll-token"}
	args := append([]string{"serve", "--data", dataDir, "--http", httpAddr, "--mqtt", mqttAddr,
		"--admin-token", s.admin, "--enroll-token", s.enroll, "--log-format", "json"}, extra...)
	s.proc = start(t, "server", args...)
	l := s.waitLog("serving", 30*time.Second)
	s.httpAddr, s.mqttAddr = l["http"].(string), l["mqtt"].(string)
	s.url = "http://" + s.httpAddr
	s.client = http.DefaultClient
	if l["tls"] == true {
		s.useTLS(l["pin"].(string))
	}
	return s
}

// call makes an API request and decodes a 2xx JSON answer into out.
func (s *serverProc) call(method, path, token, body string, out any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, b
}

func (s *serverProc) status(id string) proto.DeviceStatus {
	s.t.Helper()
	var st proto.DeviceStatus
	if code, b := s.call("GET", "/devices/"+id+"/status", s.admin, "", &st); code != 200 {
		s.t.Fatalf("status %s: %d %s", id, code, b)
	}
	return st
}

func (s *serverProc) devices() []proto.DeviceStatus {
	s.t.Helper()
	var l proto.DeviceList
	if code, b := s.call("GET", "/devices", s.admin, "", &l); code != 200 {
		s.t.Fatalf("list: %d %s", code, b)
	}
	return l.Devices
}

func (s *serverProc) setCamera(id string, disabled bool) proto.DevicePolicy {
	s.t.Helper()
	var p proto.DevicePolicy
	if code, b := s.call("PUT", "/devices/"+id+"/policy", s.admin, fmt.Sprintf(`{"cameraDisabled":%v}`, disabled), &p); code != 200 {
		s.t.Fatalf("edit %s: %d %s", id, code, b)
	}
	return p
}

// agentProc is a running `doorbell agent` with a file enforcer.
type agentProc struct {
	*proc
	stateDir, devicePath string
}

func startAgent(t *testing.T, name string, s *serverProc, stateDir string, extra ...string) *agentProc {
	t.Helper()
	a := &agentProc{stateDir: stateDir, devicePath: filepath.Join(stateDir, "device.json")}
	args := append([]string{"agent", "--server", s.url, "--enroll-token", s.enroll, "--state", stateDir,
		"--enforcer", "file:" + a.devicePath, "--interval", "1h", "--log-format", "json"}, extra...)
	if s.pin != "" && !slices.Contains(extra, "--server-pin") && !slices.Contains(extra, "--ca-file") {
		args = append(args, "--server-pin", s.pin)
	}
	a.proc = start(t, name, args...)
	return a
}

// identity reads the agent's stored identity.
func (a *agentProc) identity() (id, secret string) {
	a.t.Helper()
	var v struct{ DeviceID, DeviceSecret string }
	b, err := os.ReadFile(filepath.Join(a.stateDir, "identity.json"))
	if err != nil {
		return "", ""
	}
	if err := json.Unmarshal(b, &v); err != nil {
		a.t.Fatalf("identity.json: %v", err)
	}
	return v.DeviceID, v.DeviceSecret
}

// deviceState reads the file the enforcer manages.
func (a *agentProc) deviceState() map[string]any {
	a.t.Helper()
	m := map[string]any{}
	b, err := os.ReadFile(a.devicePath)
	if err == nil {
		json.Unmarshal(b, &m)
	}
	return m
}
