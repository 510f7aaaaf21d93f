package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/client"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/servertest"
)

// fleet is a real in-process server with enrolled devices.
type fleet struct {
	url, admin string
	devices    []agent.Credentials
	dev        *agent.Client
}

// startFleet runs a real daemon on 127.0.0.1:0 with a bbolt file in a temp
// dir and enrolls n devices; the first one reports compliance at version 1.
func startFleet(t *testing.T, n int) *fleet {
	t.Helper()
	ctx := t.Context()
	d := servertest.Start(t, daemon.DaemonConfig{AdminToken: "cli-admin", EnrollToken: "cli-enroll"})
	var err error
	f := &fleet{url: "http://" + d.HTTPAddr(), admin: d.AdminToken()}
	if f.dev, err = agent.NewClient(f.url, nil); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var resp proto.EnrollResponse
		testkit.EventuallyNil(t, 20*time.Second, "an enrollment", func() error {
			resp, err = f.dev.Enroll(ctx, d.EnrollToken(), proto.EnrollRequest{Model: fmt.Sprintf("model-%d", i), OSVersion: "14", AgentVersion: "0.1.0"})
			return err
		})
		f.devices = append(f.devices, agent.Credentials{DeviceID: resp.DeviceID, Secret: resp.DeviceSecret})
	}
	if n > 0 {
		if err := f.dev.Report(ctx, f.devices[0], proto.ComplianceReport{AppliedPolicyVersion: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// cli runs the doorbell command in-process and returns stdout, stderr and
// the error.
func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestDevicesAndPolicyAgainstRealServer(t *testing.T) {
	f := startFleet(t, 3)
	id0, id1 := f.devices[0].DeviceID, f.devices[1].DeviceID
	auth := []string{"--server", f.url, "--token", f.admin}

	t.Run("ls json pages through every device", func(t *testing.T) {
		out, _, err := cli(t, append([]string{"devices", "ls", "--json"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		var devs []proto.DeviceStatus
		if err := json.Unmarshal([]byte(out), &devs); err != nil {
			t.Fatalf("not a JSON array: %v\n%s", err, out)
		}
		if len(devs) != 3 {
			t.Fatalf("got %d devices, want 3", len(devs))
		}
		states := map[string]proto.ComplianceState{}
		for _, d := range devs {
			states[d.DeviceID] = d.State
		}
		if states[id0] != proto.StateCompliant || states[id1] != proto.StateUnknown {
			t.Fatalf("states = %v", states)
		}
	})
	t.Run("ls filters by state and limits", func(t *testing.T) {
		out, _, err := cli(t, append([]string{"devices", "--state", "unknown", "--limit", "1", "--json"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		var devs []proto.DeviceStatus
		if err := json.Unmarshal([]byte(out), &devs); err != nil {
			t.Fatal(err)
		}
		if len(devs) != 1 || devs[0].State != proto.StateUnknown {
			t.Fatalf("got %+v, want one UNKNOWN device", devs)
		}
	})
	t.Run("ls table", func(t *testing.T) {
		out, _, err := cli(t, append([]string{"devices"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "DEVICE ") || !strings.Contains(lines[0], "STATE") {
			t.Fatalf("want a header and 3 rows:\n%s", out)
		}
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, id0) && !strings.Contains(l, "COMPLIANT") {
				t.Fatalf("row of %s lacks COMPLIANT: %q", id0, l)
			}
		}
	})
	t.Run("show table and json", func(t *testing.T) {
		out, _, err := cli(t, append([]string{"devices", "show", id0}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"device:", id0, "state:", "COMPLIANT", "model-0"} {
			if !strings.Contains(out, want) {
				t.Fatalf("show lacks %q:\n%s", want, out)
			}
		}
		out, _, err = cli(t, append([]string{"devices", "show", id0, "--json"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		var s proto.DeviceStatus
		if err := json.Unmarshal([]byte(out), &s); err != nil || s.DeviceID != id0 || s.AppliedVersion != 1 {
			t.Fatalf("show --json = %+v, %v\n%s", s, err, out)
		}
	})
	t.Run("policy set bumps the version and the device goes STALE", func(t *testing.T) {
		out, _, err := cli(t, append([]string{"policy", "set", id0, "--camera-disabled=true", "--json"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		var p proto.DevicePolicy
		if err := json.Unmarshal([]byte(out), &p); err != nil || p.Version != 2 || !p.CameraDisabled {
			t.Fatalf("policy set --json = %+v, %v\n%s", p, err, out)
		}
		out, _, err = cli(t, append([]string{"policy", "show", id0}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "version:") || !strings.Contains(out, "2") || !strings.Contains(out, "cameraDisabled:  true") {
			t.Fatalf("policy show:\n%s", out)
		}
		out, _, err = cli(t, append([]string{"devices", "show", id0, "--json"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		var s proto.DeviceStatus
		json.Unmarshal([]byte(out), &s)
		if s.State != proto.StateStale || s.DesiredVersion != 2 {
			t.Fatalf("after the edit: %+v", s)
		}
	})
	t.Run("policy set key=value parses per the catalog, unset inherits", func(t *testing.T) {
		out, _, err := cli(t, append([]string{"policy", "set", id0, "passwordMinLength=8", "lockTaskPackages=org.a, org.b", "screenCaptureDisabled=yes", "--json"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		var p proto.DevicePolicy
		if err := json.Unmarshal([]byte(out), &p); err != nil || p.PasswordMinLength == nil || *p.PasswordMinLength != 8 ||
			p.LockTaskPackages == nil || !reflect.DeepEqual(*p.LockTaskPackages, []string{"org.a", "org.b"}) ||
			p.ScreenCaptureDisabled == nil || !*p.ScreenCaptureDisabled || !p.CameraDisabled {
			t.Fatalf("policy set = %+v, %v\n%s", p, err, out)
		}
		out, _, err = cli(t, append([]string{"policy", "unset", id0, "passwordMinLength", "lockTaskPackages", "--json"}, auth...)...)
		if err != nil {
			t.Fatal(err)
		}
		var q proto.DevicePolicy
		if err := json.Unmarshal([]byte(out), &q); err != nil || q.PasswordMinLength != nil || q.LockTaskPackages != nil ||
			q.ScreenCaptureDisabled == nil || q.Version != p.Version+1 {
			t.Fatalf("policy unset = %+v, %v\n%s", q, err, out)
		}
	})
	t.Run("server and token from the environment", func(t *testing.T) {
		t.Setenv("DOORBELL_SERVER", f.url)
		t.Setenv("DOORBELL_TOKEN", f.admin)
		out, _, err := cli(t, "policy", "show", id1, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var p proto.DevicePolicy
		if err := json.Unmarshal([]byte(out), &p); err != nil || p.Version != 1 {
			t.Fatalf("%+v %v", p, err)
		}
	})

	errorCases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"wrong token", []string{"devices", "--server", f.url, "--token", "nope"}, "missing or invalid credentials (unauthorized, HTTP 401)"},
		{"device secret is not an operator", []string{"devices", "--server", f.url, "--token", f.devices[1].Secret}, "(forbidden, HTTP 403)"},
		{"unknown device", append([]string{"devices", "show", "no-such-device"}, auth...), "no such device (device_not_found, HTTP 404)"},
		{"unknown device policy", append([]string{"policy", "set", "no-such-device", "--camera-disabled"}, auth...), "no such device"},
		{"policy set without a setting", append([]string{"policy", "set", id1}, auth...), "name at least one setting"},
		{"policy set with a bad value", append([]string{"policy", "set", id1, "passwordMinLength=65"}, auth...), "must be from 0 to 64"},
		{"policy set with an unknown setting", append([]string{"policy", "set", id1, "cameraDisable=true"}, auth...), "unknown setting"},
		{"bad state", append([]string{"devices", "--state", "GREEN"}, auth...), "--state must be one of"},
		{"no token", []string{"devices", "--server", f.url, "--token", ""}, "no operator token"},
		{"unknown subcommand", append([]string{"devices", "frobnicate"}, auth...), "unknown devices command"},
		{"show without id", append([]string{"devices", "show"}, auth...), "usage:"},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := cli(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q (stdout %q)", err, tc.wantErr, out)
			}
		})
	}
	// The failed edit of an unknown device and the incomplete edit changed nothing.
	if s, _ := mustClient(t, f).Status(context.Background(), id1); s.DesiredVersion != 1 {
		t.Fatalf("a refused edit changed device 1: %+v", s)
	}
}

func mustClient(t *testing.T, f *fleet) *client.Client {
	c, err := client.New(client.Config{Server: f.url, Token: f.admin})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeTokens is a hand-written fake of the operator-token API (/tokens).
type fakeTokens struct {
	mu     sync.Mutex
	tokens map[string]client.OperatorToken
	admin  string
}

func (f *fakeTokens) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(proto.ErrorBody{Error: proto.ErrorDetail{Code: code, Message: msg}})
	}
	if r.Header.Get("Authorization") != "Bearer "+f.admin {
		fail(401, "unauthorized", "missing or invalid credentials")
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/tokens":
		var l struct {
			Tokens []client.OperatorToken `json:"tokens"`
		}
		l.Tokens = []client.OperatorToken{}
		for _, t := range f.tokens {
			t.Token = ""
			l.Tokens = append(l.Tokens, t)
		}
		json.NewEncoder(w).Encode(l)
	case r.Method == "POST" && r.URL.Path == "/tokens":
		var req struct{ Name, Role string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
			fail(400, "invalid_body", "name is required")
			return
		}
		if _, ok := f.tokens[req.Name]; ok {
			fail(409, "token_exists", "a token with this name exists")
			return
		}
		t := client.OperatorToken{Name: req.Name, Role: req.Role, Token: "secret-" + req.Name, CreatedAt: time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)}
		f.tokens[req.Name] = t
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(t)
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/tokens/"):
		name := strings.TrimPrefix(r.URL.Path, "/tokens/")
		if _, ok := f.tokens[name]; !ok {
			fail(404, "token_not_found", "no such token")
			return
		}
		delete(f.tokens, name)
		w.WriteHeader(204)
	default:
		fail(404, "not_found", "no route")
	}
}

func TestTokensAgainstFake(t *testing.T) {
	fake := &fakeTokens{tokens: map[string]client.OperatorToken{}, admin: "adm"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	auth := []string{"--server", srv.URL, "--token", "adm"}

	out, _, err := cli(t, append([]string{"tokens", "create", "grafana", "--role", "viewer"}, auth...)...)
	if err != nil || !strings.Contains(out, "secret-grafana") || !strings.Contains(out, "viewer") {
		t.Fatalf("create: %v\n%s", err, out)
	}
	out, _, err = cli(t, append([]string{"tokens", "create", "ci", "--role=admin", "--json"}, auth...)...)
	var created client.OperatorToken
	if err != nil || json.Unmarshal([]byte(out), &created) != nil || created.Token != "secret-ci" || created.Role != "admin" {
		t.Fatalf("create --json: %v %+v\n%s", err, created, out)
	}
	out, _, err = cli(t, append([]string{"tokens"}, auth...)...)
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "grafana") || !strings.Contains(out, "ci ") || strings.Contains(out, "secret-") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	if _, _, err := cli(t, append([]string{"tokens", "create", "ci", "--role", "admin"}, auth...)...); err == nil || !strings.Contains(err.Error(), "a token with this name exists (token_exists, HTTP 409)") {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, _, err := cli(t, append([]string{"tokens", "create", "x", "--role", "root"}, auth...)...); err == nil || !strings.Contains(err.Error(), "--role must be admin or viewer") {
		t.Fatalf("bad role: %v", err)
	}
	if out, _, err := cli(t, append([]string{"tokens", "rm", "grafana"}, auth...)...); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("rm: %v %s", err, out)
	}
	if _, _, err := cli(t, append([]string{"tokens", "rm", "grafana"}, auth...)...); err == nil || !strings.Contains(err.Error(), "no such token") {
		t.Fatalf("rm twice: %v", err)
	}
	out, _, err = cli(t, append([]string{"tokens", "ls", "--json"}, auth...)...)
	var toks []client.OperatorToken
	if err != nil || json.Unmarshal([]byte(out), &toks) != nil || len(toks) != 1 || toks[0].Name != "ci" {
		t.Fatalf("ls --json: %v %+v\n%s", err, toks, out)
	}
	if _, _, err := cli(t, "tokens", "--server", srv.URL, "--token", "wrong"); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("wrong token: %v", err)
	}
}

// fakeEvents is a hand-written SSE server: each connection gets the next
// script of events and is then closed, so the client has to reconnect.
type fakeEvents struct {
	token   string
	scripts [][]string
	mu      sync.Mutex
	conns   int
	lastIDs []string
}

func (f *fakeEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/events" || r.Header.Get("Authorization") != "Bearer "+f.token {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"code":"unauthorized","message":"missing or invalid credentials"}}`)
		return
	}
	f.mu.Lock()
	i := f.conns
	f.conns++
	f.lastIDs = append(f.lastIDs, r.Header.Get("Last-Event-ID"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	if i >= len(f.scripts) {
		<-r.Context().Done() // nothing more to say: hold the stream open
		return
	}
	for _, ev := range f.scripts[i] {
		io.WriteString(w, ev)
		w.(http.Flusher).Flush()
	}
}

// lineWriter signals every complete line written to it.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.Reset()
			w.buf.WriteString(line)
			return len(b), nil
		}
		w.lines <- strings.TrimSuffix(line, "\n")
	}
}

func TestWatchReconnectsAndPrintsEvents(t *testing.T) {
	old := watchBackoff
	watchBackoff = time.Millisecond
	t.Cleanup(func() { watchBackoff = old })

	ev := func(id, dev, state string, desired, applied int) string {
		return fmt.Sprintf("id: %s\ndata: {\"deviceId\":%q,\"state\":%q,\"desiredVersion\":%d,\"appliedVersion\":%d,\"connected\":true,\"lastReportAt\":\"2026-11-23T04:00:00Z\"}\n\n", id, dev, state, desired, applied)
	}
	fake := &fakeEvents{token: "adm", scripts: [][]string{
		{": keep-alive\n\n", ev("1", "dev-a", "STALE", 2, 1), "event: ping\ndata: {}\n\n"},
		{ev("2", "dev-a", "COMPLIANT", 2, 2)}, // after a drop
	}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	for _, tc := range []struct {
		name  string
		json  bool
		check func(t *testing.T, lines []string)
	}{
		{"table", false, func(t *testing.T, lines []string) {
			if !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "dev-a") || !strings.Contains(lines[1], "STALE") || !strings.Contains(lines[2], "COMPLIANT") {
				t.Fatalf("lines:\n%s", strings.Join(lines, "\n"))
			}
		}},
		{"json", true, func(t *testing.T, lines []string) {
			var a, b client.Event
			if json.Unmarshal([]byte(lines[0]), &a) != nil || json.Unmarshal([]byte(lines[1]), &b) != nil {
				t.Fatalf("not JSON lines:\n%s", strings.Join(lines, "\n"))
			}
			if a.DeviceID != "dev-a" || a.State != proto.StateStale || b.State != proto.StateCompliant || b.AppliedVersion != 2 || !b.Connected {
				t.Fatalf("events %+v %+v", a, b)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.mu.Lock()
			fake.conns, fake.lastIDs = 0, nil
			fake.mu.Unlock()
			ctx, cancel := context.WithCancel(context.Background())
			out := &lineWriter{lines: make(chan string, 10)}
			var stderr bytes.Buffer
			args := []string{"watch", "--server", srv.URL, "--token", "adm"}
			if tc.json {
				args = append(args, "--json")
			}
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, out, &stderr) }()
			want := 2
			if !tc.json {
				want = 3 // the header
			}
			var lines []string
			for len(lines) < want {
				select {
				case l := <-out.lines:
					lines = append(lines, l)
				case err := <-done:
					t.Fatalf("watch ended early: %v\n%s", err, stderr.String())
				case <-time.After(20 * time.Second):
					t.Fatalf("watch printed only %q", lines)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("watch after cancel: %v", err)
			}
			tc.check(t, lines)
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if fake.conns < 2 || fake.lastIDs[0] != "" || fake.lastIDs[1] != "1" {
				t.Fatalf("connections %d, Last-Event-IDs %q: want a reconnect resuming after id 1", fake.conns, fake.lastIDs)
			}
			if !strings.Contains(stderr.String(), "reconnecting") {
				t.Fatalf("the drop was not reported on stderr:\n%s", stderr.String())
			}
		})
	}

	t.Run("a wrong token ends watch with the server's message", func(t *testing.T) {
		_, _, err := cli(t, "watch", "--server", srv.URL, "--token", "wrong")
		if err == nil || !strings.Contains(err.Error(), "missing or invalid credentials (unauthorized, HTTP 401)") {
			t.Fatalf("err = %v", err)
		}
	})
}
