package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/agent/linuxtest"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// debianAgent runs a real agent in-process on a Debian fixture tree with
// the recording runner: the runner records the notifier's wall and
// notify-send, the executor's system commands land in the tree's
// system-commands.log. Its logs go to logs.
type debianAgent struct {
	host  *linuxtest.FakeHost
	agent *agent.Agent
	logs  *testkit.LockedBuffer
}

func startDebianAgent(t *testing.T, s *serverProc, name string) *debianAgent {
	t.Helper()
	host := linuxtest.Load(t, "../agent/testdata/hosts/debian")
	state := t.TempDir()
	da := &debianAgent{host: host, logs: &testkit.LockedBuffer{}}
	a, err := agent.New(agent.Config{
		ServerURL: s.url, ServerPin: s.pin, EnrollToken: s.enroll, Interval: time.Hour,
		Enforcer:        agent.NewLinuxEnforcer(host.Root, agent.WithRunner(host)),
		Executor:        agent.NewLinuxExecutor(host.Root),
		Notifier:        agent.LinuxNotifier{Root: host.Root, Runner: host},
		GuidedStatePath: filepath.Join(state, "guided.json"),
		IDStore:         agent.NewFileIDStore(state),
		CommandJournal:  agent.NewFileCommandJournal(state),
		Model:           name, OSVersion: "debian", AgentVersion: "e2e",
		Logger: slog.New(slog.NewJSONHandler(da.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	da.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, da.logs.String())
		}
	})
	testkit.Eventually(t, 30*time.Second, name+" enrolled", func() bool { return a.DeviceID() != "" })
	return da
}

// metric reads one sample of the server's /metrics, -1 when absent.
func (s *serverProc) metric(t *testing.T, sample string) float64 {
	t.Helper()
	code, b := s.call("GET", "/metrics", s.admin, "", nil)
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", sample, v)
			}
			return f
		}
	}
	return -1
}

// TestGuidedAndEscalationEndToEnd runs the real doorbell binary and two
// real agents on Debian fixture trees (recording runners):
//
//   - a guided firewallEnabled with a 12s deadline walks NON_COMPLIANT
//     (PENDING_USER, remediateBy) with the user told through wall, then
//     the agent wakes at the deadline on its own (its periodic sync is an
//     hour away and nothing rings) and enforces: COMPLIANT, ufw enabled
//     only after the notice;
//   - a group escalation rule on a monitored, never-fixed setting fires
//     its notifyAfter webhook exactly once and queues its commandAfter
//     lock exactly once (which the agent runs), both audited, however
//     many more times the server evaluates the rules, before and after a
//     restart of the server.
func TestGuidedAndEscalationEndToEnd(t *testing.T) {
	hook := startHookReceiver(t, "esc-secret")
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0",
		"--escalation-interval", "500ms", "--webhook-url", hook.srv.URL, "--webhook-secret", "esc-secret")
	g := startDebianAgent(t, srv, "guided")
	e := startDebianAgent(t, srv, "escalated")
	gid, eid := g.agent.DeviceID(), e.agent.DeviceID()
	if g.host.UFWActive() || e.host.UFWActive() {
		t.Fatal("the Debian fixture starts with ufw active; the test needs it inactive")
	}

	var gg, eg proto.GroupChange
	srv.mustAdmin("POST", "/groups", fmt.Sprintf(`{"name":"guided","deviceIds":[%q]}`, gid), &gg)
	srv.mustAdmin("POST", "/groups", fmt.Sprintf(`{"name":"escalated","deviceIds":[%q]}`, eid), &eg)
	srv.mustAdmin("PUT", "/groups/"+gg.GroupID+"/policy", `{"firewallEnabled":true,"mode":"guided","deadline":"12s"}`, nil)
	srv.mustAdmin("PUT", "/groups/"+eg.GroupID+"/policy",
		`{"firewallEnabled":true,"mode":"monitor","escalation":{"notifyAfter":"1s","commandAfter":"2s","command":"lock"}}`, nil)

	t.Run("guided: pending, notified, enforced at the deadline", func(t *testing.T) {
		var st proto.DeviceStatus
		testkit.Eventually(t, 30*time.Second, "the guided device PENDING_USER", func() bool {
			st = srv.status(gid)
			return st.State == proto.StateNonCompliant && len(st.Failing) == 1 && st.Failing[0].Reason == proto.ReasonPendingUser
		})
		f := st.Failing[0]
		if f.Setting != "firewallEnabled" || f.RemediateBy == nil || f.FailingSince == nil || st.NonCompliantSince == nil {
			t.Fatalf("pending status %+v", st)
		}
		by := *f.RemediateBy
		// The deadline runs 12s from when the agent first saw the failure,
		// which it did before the server heard of it.
		if d := by.Sub(*st.NonCompliantSince); d > 12*time.Second {
			t.Errorf("remediateBy %v is %v after nonCompliantSince %v, want within the 12s deadline", by, d, *st.NonCompliantSince)
		}
		// The fleet filter finds it while it waits for its user.
		var l proto.DeviceList
		srv.mustAdmin("GET", "/devices?failingSince.lt="+url.QueryEscape(by.Add(time.Hour).Format(time.RFC3339)), "", &l)
		if !slices.ContainsFunc(l.Devices, func(d proto.DeviceStatus) bool { return d.DeviceID == gid }) {
			t.Errorf("failingSince.lt lists %d devices, without the pending one", len(l.Devices))
		}
		walls := g.host.CallsTo("wall")
		if len(walls) != 1 || !strings.Contains(walls[0], "firewallEnabled: fix it by "+by.UTC().Format("2006-01-02 15:04 MST")) {
			t.Fatalf("wall calls %q, want one telling firewallEnabled and its deadline", walls)
		}

		testkit.Eventually(t, 60*time.Second, "the guided device COMPLIANT after its deadline", func() bool {
			st = srv.status(gid)
			return st.State == proto.StateCompliant
		})
		if !g.host.UFWActive() {
			t.Fatal("COMPLIANT but ufw inactive")
		}
		if st.LastReportAt == nil || st.LastReportAt.Before(by) || st.NonCompliantSince != nil {
			t.Errorf("compliant report at %v (nonCompliantSince %v), want at or after remediateBy %v and cleared", st.LastReportAt, st.NonCompliantSince, by)
		}
		// Told first, enforced after: the order of the recorded calls.
		calls := g.host.Calls()
		wall := slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, "wall ") })
		enable := slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, "ufw --force enable") })
		if wall < 0 || enable < wall {
			t.Errorf("wall at call %d, ufw enable at call %d: want the notice before the enforcement\n%q", wall, enable, calls)
		}
		if n := len(g.host.CallsTo("wall")); n != 1 {
			t.Errorf("the user was told %d times, want once", n)
		}
		// Its own timer woke it: nothing rang between the notice and the
		// deadline, and its periodic sync is an hour away.
		if !strings.Contains(g.logs.String(), `"msg":"waking at a guided deadline"`) {
			t.Error("the agent did not log waking at the deadline")
		}
	})

	t.Run("escalation: webhook once, lock once, audited", func(t *testing.T) {
		var cmds proto.CommandList
		testkit.Eventually(t, 30*time.Second, "the notify webhook and the lock command", func() bool {
			srv.mustAdmin("GET", "/devices/"+eid+"/commands", "", &cmds)
			return len(hook.escalations(eid)) > 0 && len(cmds.Commands) > 0
		})
		c := srv.waitCommand(cmds.Commands[0].CommandID, proto.CommandAcknowledged, 30*time.Second)
		if c.Type != proto.CommandLock {
			t.Fatalf("escalation queued %+v, want a lock", c)
		}
		b, err := os.ReadFile(filepath.Join(e.host.Root, agent.LinuxDryRunLog))
		if err != nil || !strings.Contains(string(b), "loginctl lock-sessions") {
			t.Fatalf("the agent's system commands %q (%v), want loginctl lock-sessions", b, err)
		}
		// However often the rules run again while the device stays
		// failing, nothing fires twice.
		const evals = "doorbell_escalation_evaluations_total"
		n := srv.metric(t, evals)
		if n < 1 {
			t.Fatalf("%s = %v", evals, n)
		}
		testkit.Eventually(t, 30*time.Second, "three more evaluations", func() bool { return srv.metric(t, evals) >= n+3 })
		if st := srv.status(eid); st.State != proto.StateNonCompliant {
			t.Fatalf("the escalated device is %s; the test needs it still failing", st.State)
		}
		evs := hook.escalations(eid)
		if len(evs) != 1 || evs[0].Step != "notify" || evs[0].GroupID != eg.GroupID || evs[0].NonCompliantSince.IsZero() {
			t.Errorf("escalation webhooks %+v, want one notify", evs)
		}
		srv.mustAdmin("GET", "/devices/"+eid+"/commands", "", &cmds)
		if len(cmds.Commands) != 1 {
			t.Errorf("%d commands queued, want one lock", len(cmds.Commands))
		}
		for sample, want := range map[string]float64{
			`doorbell_escalations_total{step="notify"}`:  1,
			`doorbell_escalations_total{step="command"}`: 1,
		} {
			if got := srv.metric(t, sample); got != want {
				t.Errorf("%s = %v, want %v", sample, got, want)
			}
		}
		var audit proto.AuditList
		srv.mustAdmin("GET", "/audit?limit=1000", "", &audit)
		count := map[string]int{}
		for _, en := range audit.Entries {
			if en.Target == eid && en.Actor == "server" {
				count[en.Action]++
			}
		}
		if count["escalation.notify"] != 1 || count["escalation.command"] != 1 || count["command.create"] != 1 {
			t.Errorf("server's audit entries for the device %v, want one escalation.notify, escalation.command and command.create", count)
		}
		if len(hook.escalations(gid)) != 0 {
			t.Errorf("the guided device, in a group without rules, escalated: %+v", hook.escalations(gid))
		}
		hook.mu.Lock()
		bad := hook.bad
		hook.mu.Unlock()
		if bad != 0 {
			t.Errorf("%d webhook posts failed their signature", bad)
		}

		// The marks are stored: a restarted server, evaluating afresh
		// while the device still fails, fires nothing again.
		srv.stop()
		again := startServer(t, srv.dataDir, "127.0.0.1:0", "127.0.0.1:0",
			"--escalation-interval", "500ms", "--webhook-url", hook.srv.URL, "--webhook-secret", "esc-secret")
		testkit.Eventually(t, 30*time.Second, "three evaluations after the restart", func() bool { return again.metric(t, evals) >= 3 })
		if st := again.status(eid); st.State != proto.StateNonCompliant {
			t.Fatalf("after the restart the escalated device is %s", st.State)
		}
		if n := len(hook.escalations(eid)); n != 1 {
			t.Errorf("after the restart %d escalation webhooks, want still one", n)
		}
		again.mustAdmin("GET", "/devices/"+eid+"/commands", "", &cmds)
		if len(cmds.Commands) != 1 {
			t.Errorf("after the restart %d commands, want still one", len(cmds.Commands))
		}
		if got := again.metric(t, `doorbell_escalations_total{step="notify"}`) + again.metric(t, `doorbell_escalations_total{step="command"}`); got != 0 {
			t.Errorf("the restarted server fired %v steps, want none", got)
		}
	})
}
