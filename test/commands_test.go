package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge/fcmtest"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// sendCommand queues a command and returns it; it fails the test unless
// the server answers 202.
func (s *serverProc) sendCommand(id, body string) proto.Command {
	s.t.Helper()
	var c proto.Command
	if code, b := s.call("POST", "/devices/"+id+"/commands", s.admin, body, &c); code != 202 {
		s.t.Fatalf("POST /devices/%s/commands %s: %d %s", id, body, code, b)
	}
	return c
}

func (s *serverProc) command(cid string) proto.Command {
	s.t.Helper()
	var c proto.Command
	if code, b := s.call("GET", "/commands/"+cid, s.admin, "", &c); code != 200 {
		s.t.Fatalf("GET /commands/%s: %d %s", cid, code, b)
	}
	return c
}

// waitCommand waits until the command is in state want.
func (s *serverProc) waitCommand(cid string, want proto.CommandState, timeout time.Duration) proto.Command {
	s.t.Helper()
	var c proto.Command
	testkit.Eventually(s.t, timeout, fmt.Sprintf("command %s %s", cid, want), func() bool {
		c = s.command(cid)
		return c.State == want || c.State.Final()
	})
	if c.State != want {
		s.t.Fatalf("command %s ended %s (%+v), want %s", cid, c.State, c.Result, want)
	}
	return c
}

// ranCommands returns the ids of the commands the file enforcer recorded.
func (a *agentProc) ranCommands() []string {
	var out []string
	cmds, _ := a.deviceState()["commands"].([]any)
	for _, c := range cmds {
		if m, ok := c.(map[string]any); ok {
			out = append(out, fmt.Sprint(m["commandId"]))
		}
	}
	return out
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// latency is request -> ACKNOWLEDGED by the server's own clock.
func latency(c proto.Command) time.Duration {
	return c.Timestamps[proto.CommandAcknowledged].Sub(c.CreatedAt)
}

// TestCommandsEndToEnd: issue 12's done-when, through the real binary.
func TestCommandsEndToEnd(t *testing.T) {
	fake := fcmtest.NewServer(t)
	hook := startCommandHookReceiver(t, "hook-secret")
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0",
		"--fcm-project", "doorbell-test", "--fcm-endpoint", fake.URL,
		"--webhook-url", hook.srv.URL, "--webhook-secret", "hook-secret")
	sub := startMosquittoSub(t, srv, proto.PolicyChangedWildcard)

	a := startAgent(t, "agent-a", srv, t.TempDir())
	ph := startPhone(t, srv, fake, "phone-cmd-token")
	idA := enrolled(t, srv, a)
	var idP string
	testkit.Eventually(t, 30*time.Second, "phone enrolled with its token", func() bool {
		idP = ph.agent.DeviceID()
		return idP != "" && srv.status(idP).FCMRegistered && srv.status(idP).State == proto.StateCompliant
	})
	testkit.Eventually(t, 30*time.Second, "agent A connected", func() bool { return srv.status(idA).Connected })

	t.Run("MQTT agent executes on the doorbell", func(t *testing.T) {
		c := srv.sendCommand(idA, `{"type":"lock"}`)
		if c.State != proto.CommandPending || c.DeviceID != idA || c.CommandID == "" {
			t.Fatalf("queued %+v", c)
		}
		done := srv.waitCommand(c.CommandID, proto.CommandAcknowledged, 10*time.Second)
		t.Logf("MQTT agent: request -> ACKNOWLEDGED %v", latency(done))
		if !contains(a.ranCommands(), c.CommandID) {
			t.Fatalf("the device did not record %s: %v", c.CommandID, a.ranCommands())
		}
		for _, st := range []proto.CommandState{proto.CommandPending, proto.CommandDelivered, proto.CommandAcknowledged} {
			if done.Timestamps[st].IsZero() {
				t.Errorf("no timestamp for %s: %v", st, done.Timestamps)
			}
		}
		// The operator's mosquitto_sub saw the content-free bell.
		want := proto.PolicyChangedTopic(idA) + ` {"type":"command_pending"}`
		testkit.Eventually(t, 5*time.Second, "mosquitto_sub sees the command bell", func() bool { return contains(sub.all(), want) })
		// The signed webhook and the audit log.
		testkit.Eventually(t, 5*time.Second, "webhook command.state_changed ACKNOWLEDGED", func() bool {
			return contains(hook.steps(c.CommandID), "DELIVERED>ACKNOWLEDGED")
		})
		var audit proto.AuditList
		srv.mustAdmin("GET", "/audit?limit=1000", "", &audit)
		var actions []string
		for _, e := range audit.Entries {
			if e.Target == idA || e.Target == c.CommandID {
				actions = append(actions, e.Action)
			}
		}
		for _, want := range []string{"command.create", "command.deliver", "command.result"} {
			if !contains(actions, want) {
				t.Errorf("audit for the command = %v, want %s among them", actions, want)
			}
		}
	})

	t.Run("phone executes through the FCM doorbell", func(t *testing.T) {
		c := srv.sendCommand(idP, `{"type":"reboot"}`)
		done := srv.waitCommand(c.CommandID, proto.CommandAcknowledged, 10*time.Second)
		t.Logf("phone (FCM): request -> ACKNOWLEDGED %v", latency(done))
		var bell *fcmtest.Message
		for _, m := range fake.ForToken("phone-cmd-token") {
			if m.Data["type"] == "command_pending" {
				bell = &m
			}
		}
		if bell == nil || len(bell.Data) != 1 || bell.Android == nil || bell.Android.CollapseKey != "command_pending" {
			t.Fatalf("FCM command bell = %+v, want {type: command_pending} with collapse key command_pending", bell)
		}
	})

	t.Run("group command", func(t *testing.T) {
		var g proto.Group
		srv.mustAdmin("POST", "/groups", fmt.Sprintf(`{"name":"cmd-group","deviceIds":[%q,%q]}`, idA, idP), &g)
		var res proto.GroupCommandResponse
		if code, b := srv.call("POST", "/groups/"+g.GroupID+"/commands", srv.admin, `{"type":"reboot","idempotencyKey":"g1"}`, &res); code != 202 {
			t.Fatalf("group command: %d %s", code, b)
		}
		if len(res.Commands) != 2 {
			t.Fatalf("group command created %d commands, want 2", len(res.Commands))
		}
		for _, c := range res.Commands {
			if c.GroupID != g.GroupID {
				t.Errorf("command %s groupId %q", c.CommandID, c.GroupID)
			}
			srv.waitCommand(c.CommandID, proto.CommandAcknowledged, 10*time.Second)
		}
	})

	t.Run("CLI", func(t *testing.T) {
		out, err := cli(t, srv, srv.admin, "commands", "send", idP, "lock", "--wait")
		if err != nil || !strings.Contains(out, "state:    ACKNOWLEDGED") {
			t.Fatalf("commands send --wait: %v\n%s", err, out)
		}
		out, err = cli(t, srv, srv.admin, "commands", "send", idP, "run_script", "--param", "script=x.sh", "--json")
		if err != nil {
			t.Fatalf("commands send --json: %v\n%s", err, out)
		}
		var c proto.Command
		if err := json.Unmarshal([]byte(out), &c); err != nil || c.Params["script"] != "x.sh" {
			t.Fatalf("commands send --json printed %s (%v)", out, err)
		}
		srv.waitCommand(c.CommandID, proto.CommandAcknowledged, 10*time.Second)
		out, err = cli(t, srv, srv.admin, "commands", "ls", idP)
		if err != nil || !strings.Contains(out, c.CommandID) || !strings.Contains(out, "ACKNOWLEDGED") {
			t.Fatalf("commands ls: %v\n%s", err, out)
		}
		out, err = cli(t, srv, srv.admin, "commands", "send", idP, "selfdestruct")
		if err == nil || !strings.Contains(out, "unknown command type") {
			t.Fatalf("commands send of an unknown type: %v\n%s", err, out)
		}
		out, err = cli(t, srv, srv.admin, "commands", "cancel", c.CommandID)
		if err == nil || !strings.Contains(out, "command_state") {
			t.Fatalf("commands cancel of a finished command: %v\n%s", err, out)
		}
	})

	// A is offline from here until restarted.
	a.stop()
	testkit.Eventually(t, 10*time.Second, "agent A disconnected", func() bool { return !srv.status(idA).Connected })

	expired := srv.sendCommand(idA, `{"type":"reboot","expiresIn":"1s"}`)
	cancelled := srv.sendCommand(idA, `{"type":"lock"}`)
	var cc proto.Command
	if code, b := srv.call("DELETE", "/commands/"+cancelled.CommandID, srv.admin, "", &cc); code != 200 || cc.State != proto.CommandCancelled {
		t.Fatalf("cancel before delivery: %d %s", code, b)
	}
	srv.waitCommand(expired.CommandID, proto.CommandExpired, 10*time.Second)
	// A wipe cancels the rest.
	rest := srv.sendCommand(idA, `{"type":"reboot"}`)
	wipe := srv.sendCommand(idA, `{"type":"wipe","params":{"keepFactoryResetProtection":"true"}}`)
	if got := srv.command(rest.CommandID).State; got != proto.CommandCancelled {
		t.Fatalf("the reboot queued before the wipe is %s, want CANCELLED", got)
	}
	a = startAgent(t, "agent-a2", srv, a.stateDir)
	srv.waitCommand(wipe.CommandID, proto.CommandAcknowledged, 30*time.Second)
	ran := a.ranCommands()
	for _, c := range []proto.Command{expired, cancelled, rest} {
		if contains(ran, c.CommandID) {
			t.Errorf("command %s (%s) was executed", c.CommandID, srv.command(c.CommandID).State)
		}
	}
	if !contains(ran, wipe.CommandID) {
		t.Errorf("the wipe was not executed: %v", ran)
	}

	t.Run("bad input changes nothing", func(t *testing.T) {
		var before proto.CommandList
		srv.mustAdmin("GET", "/devices/"+idA+"/commands?limit=1000", "", &before)
		for _, tt := range []struct{ name, body, code string }{
			{"unknown type", `{"type":"selfdestruct"}`, "invalid_body"},
			{"bad params", `{"type":"clear_app_data","params":{"package":"not a package"}}`, "invalid_body"},
			{"unknown param", `{"type":"lock","params":{"force":"true"}}`, "invalid_body"},
			{"missing param", `{"type":"run_script"}`, "invalid_body"},
			{"expiry too long", `{"type":"lock","expiresIn":"31d"}`, "invalid_body"},
			{"expiry too short", `{"type":"lock","expiresIn":"10ms"}`, "invalid_body"},
			{"unknown field", `{"type":"lock","when":"now"}`, "invalid_body"},
		} {
			code, b := srv.call("POST", "/devices/"+idA+"/commands", srv.admin, tt.body, nil)
			if code != 400 || !strings.Contains(string(b), tt.code) {
				t.Errorf("%s: %d %s, want 400 %s", tt.name, code, b, tt.code)
			}
		}
		var after proto.CommandList
		srv.mustAdmin("GET", "/devices/"+idA+"/commands?limit=1000", "", &after)
		if len(after.Commands) != len(before.Commands) {
			t.Fatalf("bad requests queued commands: %d -> %d", len(before.Commands), len(after.Commands))
		}

		// Cancel after delivery: refused.
		if code, b := srv.call("DELETE", "/commands/"+wipe.CommandID, srv.admin, "", nil); code != 409 {
			t.Errorf("cancel of a finished command: %d %s, want 409", code, b)
		}
		// A second unfinished lock is a conflict (A is stopped again).
		a.stop()
		first := srv.sendCommand(idA, `{"type":"lock"}`)
		if code, b := srv.call("POST", "/devices/"+idA+"/commands", srv.admin, `{"type":"lock"}`, nil); code != 409 || !strings.Contains(string(b), "command_conflict") {
			t.Errorf("second pending lock: %d %s, want 409 command_conflict", code, b)
		}
		// The same idempotency key returns the first command.
		k1 := srv.sendCommand(idA, `{"type":"reboot","idempotencyKey":"k-1"}`)
		k2 := srv.sendCommand(idA, `{"type":"reboot","idempotencyKey":"k-1"}`)
		if k1.CommandID != k2.CommandID {
			t.Errorf("same idempotency key gave %s then %s", k1.CommandID, k2.CommandID)
		}
		// A deleted device: 404, and its unfinished commands are cancelled.
		if code, b := srv.call("DELETE", "/devices/"+idA, srv.admin, "", nil); code/100 != 2 {
			t.Fatalf("delete device: %d %s", code, b)
		}
		if code, b := srv.call("POST", "/devices/"+idA+"/commands", srv.admin, `{"type":"reboot"}`, nil); code != 404 {
			t.Errorf("command for a deleted device: %d %s, want 404", code, b)
		}
		for _, c := range []proto.Command{first, k1} {
			if got := srv.command(c.CommandID).State; got != proto.CommandCancelled {
				t.Errorf("command %s of the deleted device is %s, want CANCELLED", c.CommandID, got)
			}
		}
		// A viewer may read, not send.
		var tok proto.OperatorToken
		srv.mustAdmin("POST", "/tokens", `{"name":"cmd-viewer","role":"viewer"}`, &tok)
		if code, _ := srv.call("POST", "/devices/"+idP+"/commands", tok.Token, `{"type":"lock"}`, nil); code != 403 {
			t.Errorf("viewer sent a command: %d, want 403", code)
		}
		if code, _ := srv.call("GET", "/devices/"+idP+"/commands", tok.Token, "", nil); code != 200 {
			t.Errorf("viewer listing commands: %d, want 200", code)
		}
	})
}

// TestCommandResultsRefused: results from another device, for a cancelled
// or expired command, or posted twice are refused and change nothing. The
// server runs without TLS so the test can post as the devices with their
// secrets alone.
func TestCommandResultsRefused(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "--tls", "off")
	a := startAgent(t, "agent-a", srv, t.TempDir())
	b := startAgent(t, "agent-b", srv, t.TempDir())
	idA, idB := enrolled(t, srv, a), enrolled(t, srv, b)
	testkit.Eventually(t, 30*time.Second, "agent A connected", func() bool { return srv.status(idA).Connected })
	acked := srv.sendCommand(idA, `{"type":"lock"}`)
	srv.waitCommand(acked.CommandID, proto.CommandAcknowledged, 10*time.Second)
	a.stop()
	cancelled := srv.sendCommand(idA, `{"type":"lock"}`)
	srv.mustAdmin("DELETE", "/commands/"+cancelled.CommandID, "", nil)
	expired := srv.sendCommand(idA, `{"type":"reboot","expiresIn":"1s"}`)
	srv.waitCommand(expired.CommandID, proto.CommandExpired, 10*time.Second)
	open := srv.sendCommand(idA, `{"type":"reboot"}`)
	_, secretA := a.identity()
	_, secretB := b.identity()

	post := func(deviceID, secret, cid, body string) (int, string) {
		code, raw := srv.call("POST", "/devices/"+deviceID+"/commands/"+cid+"/result", secret, body, nil)
		return code, string(raw)
	}
	// Another device: on its own path the command is not found; on A's
	// path its secret is refused.
	before := srv.command(open.CommandID)
	if code, body := post(idB, secretB, open.CommandID, `{"state":"ACKNOWLEDGED"}`); code != 404 || !strings.Contains(body, "command_not_found") {
		t.Errorf("B's result for A's command: %d %s, want 404 command_not_found", code, body)
	}
	if code, body := post(idA, secretB, open.CommandID, `{"state":"ACKNOWLEDGED"}`); code != 403 {
		t.Errorf("B posting on A's path: %d %s, want 403", code, body)
	}
	if after := srv.command(open.CommandID); after.State != before.State || after.State != proto.CommandPending {
		t.Errorf("another device's result changed the command: %s -> %s", before.State, after.State)
	}
	for name, c := range map[string]proto.Command{"cancelled": cancelled, "expired": expired, "already acknowledged": acked} {
		before := srv.command(c.CommandID)
		code, body := post(idA, secretA, c.CommandID, `{"state":"ERROR","errorCode":"failed"}`)
		if code != 409 || !strings.Contains(body, "command_state") {
			t.Errorf("result for a %s command: %d %s, want 409 command_state", name, code, body)
		}
		after := srv.command(c.CommandID)
		if after.State != before.State || len(after.Timestamps) != len(before.Timestamps) || (after.Result == nil) != (before.Result == nil) {
			t.Errorf("a refused result changed the %s command: %+v -> %+v", name, before, after)
		}
	}
	// Bad results are 400 and change nothing.
	for _, body := range []string{`{"state":"PENDING"}`, `{"state":"ERROR"}`, `{"state":"ACKNOWLEDGED","output":"` + strings.Repeat("x", proto.MaxCommandOutput+1) + `"}`} {
		if code, resp := post(idA, secretA, open.CommandID, body); code != 400 {
			t.Errorf("result %.60s: %d %.200s, want 400", body, code, resp)
		}
	}
	if got := srv.command(open.CommandID).State; got != proto.CommandPending {
		t.Errorf("bad results changed the command to %s", got)
	}
	// The device's own answer is accepted once.
	if code, body := post(idA, secretA, open.CommandID, `{"state":"ACKNOWLEDGED","message":"done"}`); code != 200 {
		t.Fatalf("A's result: %d %s", code, body)
	}
	if code, _ := post(idA, secretA, open.CommandID, `{"state":"ACKNOWLEDGED"}`); code != 409 {
		t.Errorf("the same result twice: %d, want 409", code)
	}
}

// TestCommandNotRunTwiceAcrossRestart: a Linux agent runs a script that
// kills the agent mid-command, as a reboot would; the agent started next
// from the same state reports the command and never runs it again.
func TestCommandNotRunTwiceAcrossRestart(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	root := t.TempDir()
	state := t.TempDir()
	scripts := filepath.Join(root, "etc/doorbell/scripts")
	if err := os.MkdirAll(scripts, 0o755); err != nil {
		t.Fatal(err)
	}
	runs := filepath.Join(root, "runs")
	// The script records its run, then kills its parent, the agent.
	script := "#!/bin/sh\necho ran >> " + runs + "\nkill -9 $PPID\nsleep 5\n"
	if err := os.WriteFile(filepath.Join(scripts, "restart.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, "linux-agent", srv, state, "--enforcer", "linux:"+root)
	id := enrolled(t, srv, a)
	testkit.Eventually(t, 30*time.Second, "agent connected", func() bool { return srv.status(id).Connected })
	c := srv.sendCommand(id, `{"type":"run_script","params":{"script":"restart.sh"}}`)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the script did not kill the agent")
	}
	if got := srv.command(c.CommandID).State; got != proto.CommandDelivered {
		t.Fatalf("after the agent died mid-command the command is %s, want DELIVERED", got)
	}
	a2 := startAgent(t, "linux-agent-2", srv, state, "--enforcer", "linux:"+root)
	done := srv.waitCommand(c.CommandID, proto.CommandError, 30*time.Second)
	if done.Result == nil || done.Result.ErrorCode != proto.ErrorCodeInterrupted {
		t.Fatalf("result %+v, want ERROR interrupted", done.Result)
	}
	b, _ := os.ReadFile(runs)
	if n := strings.Count(string(b), "ran"); n != 1 {
		t.Fatalf("the script ran %d times, want once", n)
	}
	// And a reboot under the test root is recorded, not run on this host.
	r := srv.sendCommand(id, `{"type":"reboot"}`)
	srv.waitCommand(r.CommandID, proto.CommandAcknowledged, 10*time.Second)
	log, _ := os.ReadFile(filepath.Join(root, "var/lib/doorbell/system-commands.log"))
	if string(log) != "systemctl reboot\n" {
		t.Fatalf("dry-run log %q", log)
	}
	// A type Linux does not carry out: ERROR unsupported at once.
	w := srv.sendCommand(id, `{"type":"wipe"}`)
	if done := srv.waitCommand(w.CommandID, proto.CommandError, 10*time.Second); done.Result == nil || done.Result.ErrorCode != proto.ErrorCodeUnsupported {
		t.Fatalf("wipe on Linux: %+v, want ERROR unsupported", done.Result)
	}
	a2.stop()
}

// commandHookReceiver keeps every command webhook whose signature verifies.
type commandHookReceiver struct {
	*hookReceiver
}

func startCommandHookReceiver(t *testing.T, secret string) *commandHookReceiver {
	h := &commandHookReceiver{hookReceiver: startHookReceiver(t, secret)}
	return h
}

// steps renders a command's webhook events as "FROM>TO".
func (h *commandHookReceiver) steps(cid string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, raw := range h.bodies {
		var ev proto.CommandEvent
		if json.Unmarshal(raw, &ev) == nil && ev.Type == proto.WebhookCommandStateChanged && ev.Command.CommandID == cid {
			out = append(out, string(ev.From)+">"+string(ev.Command.State))
		}
	}
	return out
}

// TestAgentAsksForCommandsOnlyWhenOpen: an agent's syncs ask for its
// commands only when the policy answer says some are open (capability 9),
// so a doorbell for a policy edit costs two requests, not three; a queued
// command is still fetched and run.
func TestAgentAsksForCommandsOnlyWhenOpen(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	a := startAgent(t, "agent-a", srv, t.TempDir())
	id := enrolled(t, srv, a)
	testkit.Eventually(t, 30*time.Second, "agent connected", func() bool { return srv.status(id).Connected })
	const (
		policyGets   = `doorbell_http_request_duration_seconds_count{code="200",method="GET",route="/devices/:id/policy"}`
		commandGets  = `doorbell_http_request_duration_seconds_count{code="200",method="GET",route="/devices/:id/commands"}`
		commandPosts = `doorbell_http_request_duration_seconds_count{code="202",method="POST",route="/devices/:id/commands"}`
	)
	before := srv.metric(t, policyGets)
	for i := range 3 {
		p := srv.setCamera(id, i%2 == 0)
		converged(t, srv, id, p.Version, fmt.Sprintf("edit %d applied", i+1), func() bool { return true })
	}
	if got := srv.metric(t, policyGets); got < before+3 {
		t.Fatalf("policy fetches %v -> %v over three edits, want at least 3 more", before, got)
	}
	if got := srv.metric(t, commandGets); got > 0 {
		t.Fatalf("the agent asked for its commands %v times with none open", got)
	}
	c := srv.sendCommand(id, `{"type":"lock"}`)
	srv.waitCommand(c.CommandID, proto.CommandAcknowledged, 10*time.Second)
	if got := srv.metric(t, commandGets); got < 1 {
		t.Fatalf("the lock was acknowledged with %v command fetches", got)
	}
	if got := srv.metric(t, commandPosts); got != 1 {
		t.Fatalf("command posts = %v, want 1 (the metric names this test reads are wrong)", got)
	}
}
