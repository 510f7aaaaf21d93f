package agent

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

func cmd(id string, typ proto.CommandType) proto.Command {
	return proto.Command{CommandID: id, Type: typ, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
}

// executedIDs returns the ids of the commands the memory device carried out.
func executedIDs(m *MemoryEnforcer) []string {
	var out []string
	for _, c := range m.ExecutedCommands() {
		out = append(out, c.CommandID)
	}
	return out
}

func resultStates(rs []fakeResult) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.CommandID+":"+string(r.Result.State)+":"+r.Result.ErrorCode)
	}
	return strings.Join(out, " ")
}

// enrolled returns a harness whose agent (executing on its memory device,
// with a journal in dir) has enrolled, and its device id.
func enrolled(t *testing.T, srv *fakeServer, dir string, mod func(*Config)) (*testHarness, string) {
	t.Helper()
	var h *testHarness
	h = newHarness(t, srv, dir, func(c *Config) {
		c.CommandJournal = NewFileCommandJournal(dir)
		if mod != nil {
			mod(c)
		}
	})
	if h.agent.executor == nil && mod == nil {
		h.agent.executor = h.dev
	}
	if r := h.sync(t); r.Err != nil {
		t.Fatal(r.Err)
	}
	return h, h.agent.DeviceID()
}

func TestCommandsRunOnceAndReported(t *testing.T) {
	srv := newFakeServer(t)
	srv.enableCommands()
	h, id := enrolled(t, srv, t.TempDir(), nil)
	srv.queueCommand(id, cmd("c1", proto.CommandReboot))
	srv.queueCommand(id, cmd("c2", proto.CommandLock))
	r := h.sync(t)
	if r.Err != nil || r.CommandErr != nil || r.Commands != 2 {
		t.Fatalf("sync = %+v, want 2 commands run", r)
	}
	if got := executedIDs(h.dev); strings.Join(got, ",") != "c1,c2" {
		t.Fatalf("device ran %v, want c1,c2 in order", got)
	}
	if got := resultStates(srv.commandResults(id)); got != "c1:ACKNOWLEDGED: c2:ACKNOWLEDGED:" {
		t.Fatalf("results %s", got)
	}
	// Offered again (as if the server lost the result): reported again from
	// the journal, never run again.
	srv.setCommandState(id, "c1", proto.CommandDelivered)
	if r := h.sync(t); r.Commands != 0 {
		t.Fatalf("second sync ran %d commands", r.Commands)
	}
	if got := executedIDs(h.dev); len(got) != 2 {
		t.Fatalf("device ran %v after a re-offer", got)
	}
	if got := resultStates(srv.commandResults(id)); got != "c1:ACKNOWLEDGED: c2:ACKNOWLEDGED: c1:ACKNOWLEDGED:" {
		t.Fatalf("results %s, want c1's result posted again", got)
	}
}

func TestCommandsUnsupportedWithoutExecutor(t *testing.T) {
	srv := newFakeServer(t)
	srv.enableCommands()
	h := newHarness(t, srv, t.TempDir(), nil) // countingEnforcer is no Executor
	if h.agent.executor != nil {
		t.Fatal("the harness agent has an executor")
	}
	h.sync(t)
	id := h.agent.DeviceID()
	srv.queueCommand(id, cmd("c1", proto.CommandWipe))
	h.sync(t)
	if got := resultStates(srv.commandResults(id)); got != "c1:ERROR:unsupported" {
		t.Fatalf("results %s, want ERROR unsupported", got)
	}
}

// TestCommandNotRunTwiceAcrossRestart: the agent dies while a command runs
// (the goroutine ends without a result, as a power loss would); the agent
// that starts next from the same state never runs it again and reports it.
func TestCommandNotRunTwiceAcrossRestart(t *testing.T) {
	srv := newFakeServer(t)
	srv.enableCommands()
	dir := t.TempDir()
	var mu sync.Mutex
	runs := map[string]int{}
	dying := ExecutorFunc(func(ctx context.Context, c proto.Command) proto.CommandResult {
		mu.Lock()
		runs[c.CommandID]++
		mu.Unlock()
		runtime.Goexit() // the process is gone mid-command
		return proto.CommandResult{}
	})
	h1, id := enrolled(t, srv, dir, func(c *Config) { c.Executor = dying })
	srv.queueCommand(id, cmd("boot", proto.CommandReboot))
	dyingSync := func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			h1.agent.Sync(t.Context())
		}()
		recv(t, done, "the dying sync")
	}
	dyingSync()
	if len(srv.commandResults(id)) != 0 {
		t.Fatal("a result was posted by the agent that died")
	}
	b, err := os.ReadFile(filepath.Join(dir, "commands.json"))
	if err != nil || !strings.Contains(string(b), `"boot"`) {
		t.Fatalf("journal after the crash: %s, %v; want the command recorded", b, err)
	}
	srv.queueCommand(id, cmd("wipe", proto.CommandWipe))
	dyingSync() // "wipe" dies too
	// Restart: a fresh agent, same state directory.
	h2 := newHarness(t, srv, dir, func(c *Config) {
		c.CommandJournal = NewFileCommandJournal(dir)
		c.Executor = dying
	})
	if r := h2.sync(t); r.Err != nil || r.Commands != 0 {
		t.Fatalf("sync after restart = %+v, want nothing run", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs["boot"] != 1 || runs["wipe"] != 1 {
		t.Fatalf("runs = %v, want each command run once", runs)
	}
	if got := resultStates(srv.commandResults(id)); got != "boot:ACKNOWLEDGED: wipe:ERROR:interrupted" {
		t.Fatalf("results %s, want the reboot acknowledged (the device restarted) and the wipe interrupted", got)
	}
}

func TestCommandNotNowRunsLater(t *testing.T) {
	srv := newFakeServer(t)
	srv.enableCommands()
	h, id := enrolled(t, srv, t.TempDir(), nil)
	h.dev.SetLocked(true)
	srv.queueCommand(id, cmd("c1", proto.CommandLock))
	h.sync(t)
	if got := resultStates(srv.commandResults(id)); got != "c1:NOT_NOW:" {
		t.Fatalf("results %s, want NOT_NOW", got)
	}
	h.dev.SetLocked(false)
	h.sync(t)
	if got := executedIDs(h.dev); strings.Join(got, ",") != "c1" {
		t.Fatalf("device ran %v, want c1 once it could", got)
	}
	if got := resultStates(srv.commandResults(id)); got != "c1:NOT_NOW: c1:ACKNOWLEDGED:" {
		t.Fatalf("results %s", got)
	}
}

func TestCommandResultRetried(t *testing.T) {
	srv := newFakeServer(t)
	srv.enableCommands()
	h, id := enrolled(t, srv, t.TempDir(), nil)
	srv.queueCommand(id, cmd("c1", proto.CommandReboot))
	srv.failOnce("result", 503)
	h.sync(t)
	if got := srv.commandResults(id); len(got) != 0 {
		t.Fatalf("results %v before the retry", got)
	}
	// The next sync posts the saved result first; the command is not run
	// again.
	h.sync(t)
	if got := resultStates(srv.commandResults(id)); got != "c1:ACKNOWLEDGED:" {
		t.Fatalf("results %s, want the saved result posted once", got)
	}
	if got := executedIDs(h.dev); len(got) != 1 {
		t.Fatalf("device ran %v", got)
	}
	// A refused result (cancelled meanwhile) is not retried.
	srv.queueCommand(id, cmd("c2", proto.CommandReboot))
	srv.setBefore(func(route, _ string) {
		if route == "result" {
			srv.setCommandState(id, "c2", proto.CommandCancelled)
		}
	})
	h.sync(t)
	srv.setBefore(nil)
	h.sync(t)
	rs := srv.commandResults(id)
	if got := resultStates(rs); got != "c1:ACKNOWLEDGED: c2:ACKNOWLEDGED:" || rs[1].Status != 409 {
		t.Fatalf("results %s (%+v): want c2's refused once and not posted again", got, rs)
	}
}

func TestCommandsOldServer(t *testing.T) {
	srv := newFakeServer(t) // no command routes: 404
	h, _ := enrolled(t, srv, t.TempDir(), nil)
	r := h.sync(t)
	if r.Err != nil || r.CommandErr == nil || !IsNotFound(r.CommandErr) {
		t.Fatalf("sync against an old server = %+v, want the policy sync to succeed and a 404 command error", r)
	}
	if len(srv.reports(h.agent.DeviceID())) == 0 {
		t.Fatal("no report")
	}
}

func TestCommandDoorbells(t *testing.T) {
	srv := newFakeServer(t)
	srv.enableCommands()
	h, id := enrolled(t, srv, t.TempDir(), nil)
	h.runAgent(t)
	recv(t, h.results, "the sync at start")
	for i, ring := range []func(){
		func() { h.agent.OnPush(map[string]string{"type": proto.CommandDoorbellType}) },
		func() { h.agent.handleDoorbell([]byte(`{"type":"command_pending"}`)) },
	} {
		cid := []string{"fcm", "mqtt"}[i]
		srv.queueCommand(id, cmd(cid, proto.CommandLock))
		ring()
		r := recv(t, h.results, "the sync the bell triggers")
		if r.Commands != 1 {
			t.Fatalf("%s bell: sync ran %d commands", cid, r.Commands)
		}
		if got := executedIDs(h.dev); got[len(got)-1] != cid {
			t.Fatalf("device ran %v, want %s last", got, cid)
		}
	}
}
