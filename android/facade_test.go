package doorbell

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// fakeExecutor stands in for the app's DevicePolicyManager executor: it
// records every call.
type fakeExecutor struct {
	mu        sync.Mutex
	supported []string
	calls     []string // "type params"
	after     []string // RunAfterReport calls, "type params"
	result    map[string]string
	fail      map[string]error
}

var _ Executor = (*fakeExecutor)(nil)

func (f *fakeExecutor) Supports(t string) bool {
	for _, s := range f.supported {
		if s == t {
			return true
		}
	}
	return false
}

func (f *fakeExecutor) Execute(t, params string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, t+" "+params)
	if err := f.fail[t]; err != nil {
		return "", err
	}
	if r, ok := f.result[t]; ok {
		return r, nil
	}
	return `{"state":"ACKNOWLEDGED","output":"done: ` + t + `"}`, nil
}

func (f *fakeExecutor) RunAfterReport(t, params string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.after = append(f.after, t+" "+params)
	return nil
}

func (f *fakeExecutor) snapshot() (calls, after []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...), append([]string(nil), f.after...)
}

func (s *testServer) sendCommand(id, body string) proto.Command {
	s.t.Helper()
	var c proto.Command
	s.call("POST", "/devices/"+id+"/commands", body, &c)
	if c.CommandID == "" || c.State != proto.CommandPending {
		s.t.Fatalf("command %s: %+v, want a PENDING command", body, c)
	}
	return c
}

func (s *testServer) command(cid string) proto.Command {
	s.t.Helper()
	var c proto.Command
	s.call("GET", "/commands/"+cid, "", &c)
	return c
}

func enrolled(t *testing.T, a *Agent) string {
	t.Helper()
	if err := a.Sync(); err != nil {
		t.Fatalf("enrolling Sync: %v", err)
	}
	id := a.DeviceID()
	if id == "" {
		t.Fatal("not enrolled after Sync")
	}
	return id
}

// TestCommandsThroughFacade runs commands through the facade's Executor
// against a real server: a supported one is executed once and ACKNOWLEDGED,
// an unsupported one is answered without calling the app, an exception is
// ERROR failed with its message, and the journal in the app's Store keeps a
// second agent on the same Store from running any of them again.
func TestCommandsThroughFacade(t *testing.T) {
	s := startServer(t)
	ex := &fakeExecutor{supported: []string{"lock", "clear_app_data"},
		fail: map[string]error{"clear_app_data": errors.New("SecurityException: cannot clear org.example.x")}}
	st := newFakeStore()
	a, _ := newTestAgent(t, s, &fakeEnforcer{}, st, func(c *Config) { c.Executor = ex })
	id := enrolled(t, a)

	lock := s.sendCommand(id, `{"type":"lock"}`)
	script := s.sendCommand(id, `{"type":"run_script","params":{"script":"hello"}}`)
	clear := s.sendCommand(id, `{"type":"clear_app_data","params":{"package":"org.example.x"}}`)
	if err := a.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if c := s.command(lock.CommandID); c.State != proto.CommandAcknowledged || c.Result == nil || c.Result.Output != "done: lock" {
		t.Fatalf("lock: %s %+v, want ACKNOWLEDGED with the executor's output", c.State, c.Result)
	}
	if c := s.command(script.CommandID); c.State != proto.CommandError || c.Result.ErrorCode != proto.ErrorCodeUnsupported {
		t.Fatalf("run_script: %s %+v, want ERROR unsupported", c.State, c.Result)
	}
	if c := s.command(clear.CommandID); c.State != proto.CommandError || c.Result.ErrorCode != proto.ErrorCodeFailed ||
		!strings.Contains(c.Result.Message, "cannot clear org.example.x") {
		t.Fatalf("clear_app_data: %s %+v, want ERROR failed with the exception's message", c.State, c.Result)
	}
	calls, _ := ex.snapshot()
	want := []string{`lock {}`, `clear_app_data {"package":"org.example.x"}`}
	if strings.Join(calls, "|") != strings.Join(want, "|") {
		t.Fatalf("executor calls %q, want %q (run_script never reaches the app)", calls, want)
	}
	if j := st.get(CommandJournalKey); !strings.Contains(j, lock.CommandID) || !strings.Contains(j, clear.CommandID) {
		t.Fatalf("the journal in the Store does not name the commands: %q", j)
	}

	// A restarted app (same Store) runs nothing again.
	b, _ := newTestAgent(t, s, &fakeEnforcer{}, st, func(c *Config) { c.Executor = ex; c.EnrollToken = "" })
	if err := b.Sync(); err != nil {
		t.Fatalf("Sync after restart: %v", err)
	}
	if calls, _ := ex.snapshot(); len(calls) != 2 {
		t.Fatalf("executor called %d times after a restart, want still 2: %q", len(calls), calls)
	}
}

// TestCommandStartedBeforeRestartIsNotRerun: the app dies while a command
// runs. A new agent on what the Store then held reports the command
// interrupted and never runs it again.
func TestCommandStartedBeforeRestartIsNotRerun(t *testing.T) {
	s := startServer(t)
	st := newFakeStore()
	first := &blockingExecutor{store: st, started: make(chan map[string]string, 1), release: make(chan struct{})}
	a, _ := newTestAgent(t, s, &fakeEnforcer{}, st, func(c *Config) { c.Executor = first })
	id := enrolled(t, a)
	c := s.sendCommand(id, `{"type":"lock"}`)
	done := make(chan error, 1)
	go func() { done <- a.Sync() }()
	t.Cleanup(func() { close(first.release); <-done })
	// What the Store holds while lockNow runs is what a crash leaves.
	crashed := <-first.started
	if !strings.Contains(crashed[CommandJournalKey], c.CommandID) {
		t.Fatalf("the command was not in the Store's journal before it ran: %q", crashed[CommandJournalKey])
	}

	second := &fakeExecutor{supported: []string{"lock"}}
	restarted := newFakeStore()
	restarted.m = crashed
	b, _ := newTestAgent(t, s, &fakeEnforcer{}, restarted, func(c *Config) { c.Executor = second; c.EnrollToken = "" })
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if calls, _ := second.snapshot(); len(calls) != 0 {
		t.Fatalf("the restarted agent ran %q again", calls)
	}
	if got := s.command(c.CommandID); got.State != proto.CommandError || got.Result.ErrorCode != proto.ErrorCodeInterrupted {
		t.Fatalf("the interrupted lock is %s %+v, want ERROR interrupted", got.State, got.Result)
	}
}

// blockingExecutor hands a copy of the Store's contents to started when a
// command starts, and finishes it when release is closed.
type blockingExecutor struct {
	store   *fakeStore
	started chan map[string]string
	release chan struct{}
}

func (b *blockingExecutor) Supports(string) bool { return true }

func (b *blockingExecutor) Execute(t, params string) (string, error) {
	b.started <- b.store.copy()
	<-b.release
	return `{"state":"ACKNOWLEDGED"}`, nil
}

func (b *blockingExecutor) RunAfterReport(t, params string) error { return nil }

// TestWipeRunsAfterReport: a command that answers runAfterReport is
// reported ACKNOWLEDGED first and its deferred part runs once, after the
// report; one left in the Store by an app that died runs at the end of the
// next sync, and a Store that cannot record it keeps it from running.
func TestWipeRunsAfterReport(t *testing.T) {
	s := startServer(t)
	var seenAtRun proto.CommandState
	var srv *testServer = s
	var cid string
	ex := &afterReportExecutor{fakeExecutor: fakeExecutor{supported: []string{"wipe"},
		result: map[string]string{"wipe": `{"state":"ACKNOWLEDGED","message":"wiping now","runAfterReport":true}`}}}
	ex.onAfter = func() { seenAtRun = srv.command(cid).State }
	st := newFakeStore()
	a, _ := newTestAgent(t, s, &fakeEnforcer{}, st, func(c *Config) { c.Executor = ex })
	id := enrolled(t, a)
	cid = s.sendCommand(id, `{"type":"wipe","params":{"keepFactoryResetProtection":"true"}}`).CommandID
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	calls, after := ex.snapshot()
	if len(calls) != 1 || len(after) != 1 || after[0] != `wipe {"keepFactoryResetProtection":"true"}` {
		t.Fatalf("execute %q, runAfterReport %q: want one of each with the params", calls, after)
	}
	if seenAtRun != proto.CommandAcknowledged {
		t.Fatalf("when the wipe ran the server had %q, want ACKNOWLEDGED (reported first)", seenAtRun)
	}
	if c := s.command(cid); c.Result == nil || c.Result.Message != "wiping now" {
		t.Fatalf("result %+v", c.Result)
	}
	if v := st.get(AfterReportKey); v != "" {
		t.Fatalf("%s still holds %q after the deferred part ran", AfterReportKey, v)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, after := ex.snapshot(); len(after) != 1 {
		t.Fatalf("the deferred part ran %d times, want 1", len(after))
	}

	// Left over by an app that died between the report and the wipe.
	st.Put(AfterReportKey, `[{"type":"wipe","params":"{}"}]`)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, after := ex.snapshot(); len(after) != 2 || after[1] != "wipe {}" {
		t.Fatalf("the left-over deferred part: runAfterReport calls %q", after)
	}

	// A Store that cannot record the deferred part: the command is not
	// acknowledged and nothing runs.
	st.PutErr = errors.New("disk full")
	c2 := s.sendCommand(id, `{"type":"wipe"}`)
	a.Sync()
	st.PutErr = nil
	if calls, after := ex.snapshot(); len(after) != 2 {
		t.Fatalf("with a failing Store: execute %q, runAfterReport %q; want no new deferred run", calls, after)
	}
	if c := s.command(c2.CommandID); c.State == proto.CommandAcknowledged {
		t.Fatalf("a wipe that could not be recorded was reported %s", c.State)
	}
}

// TestSecretParamsAreNeverDeferred: a reset_password answered with
// runAfterReport would keep the password in the Store: it is refused
// (ERROR), nothing is stored and nothing runs after.
func TestSecretParamsAreNeverDeferred(t *testing.T) {
	s := startServer(t)
	ex := &fakeExecutor{supported: []string{"reset_password"},
		result: map[string]string{"reset_password": `{"state":"ACKNOWLEDGED","runAfterReport":true}`}}
	st := newFakeStore()
	a, log := newTestAgent(t, s, &fakeEnforcer{}, st, func(c *Config) { c.Executor = ex })
	id := enrolled(t, a)
	c := s.sendCommand(id, `{"type":"reset_password","params":{"password":"hunter2-secret"}}`)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := s.command(c.CommandID); got.State != proto.CommandError || !strings.Contains(got.Result.Message, "secret") {
		t.Fatalf("deferred reset_password: %s %+v, want ERROR naming the secret param", got.State, got.Result)
	}
	for k, v := range st.copy() {
		if strings.Contains(v, "hunter2-secret") {
			t.Fatalf("the password is in the Store under %q", k)
		}
	}
	if _, after := ex.snapshot(); len(after) != 0 {
		t.Fatalf("runAfterReport called %q", after)
	}
	if log.contains("hunter2-secret") {
		t.Fatal("the password was logged")
	}
}

type afterReportExecutor struct {
	fakeExecutor
	onAfter func()
}

func (f *afterReportExecutor) RunAfterReport(t, params string) error {
	f.onAfter()
	return f.fakeExecutor.RunAfterReport(t, params)
}

// TestCommandDoorbellSyncsAPhone: a phone woken by the command_pending FCM
// message runs the command in that call.
func TestCommandDoorbellSyncsAPhone(t *testing.T) {
	s := startServer(t)
	ex := &fakeExecutor{supported: []string{"lock"}}
	a, _ := newTestAgent(t, s, &fakeEnforcer{}, newFakeStore(), func(c *Config) { c.Executor = ex })
	id := enrolled(t, a)
	c := s.sendCommand(id, `{"type":"lock"}`)
	if err := a.OnPushMessage(`{"type":"command_pending"}`); err != nil {
		t.Fatalf("OnPushMessage: %v", err)
	}
	if got := s.command(c.CommandID).State; got != proto.CommandAcknowledged {
		t.Fatalf("after the command doorbell the lock is %s, want ACKNOWLEDGED", got)
	}
}

// fakeCollector stands in for the app's collector.
type fakeCollector struct {
	mu    sync.Mutex
	json  string
	err   error
	calls int
}

func (f *fakeCollector) Collect() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.json, f.err
}

func (f *fakeCollector) set(j string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.json = j
}

const androidInventory = `{
 "system": {"osId": "android", "osVersion": "14", "osName": "Android 14", "kernel": "5.15.123-android14", "arch": "arm64-v8a"},
 "hardware": {"vendor": "Google", "model": "Pixel 8", "serial": "38011FDJH00ABC", "memoryBytes": 8000000000},
 "disks": {"disks": [{"name": "data", "type": "internal", "sizeBytes": 128000000000, "freeBytes": 64000000000}]},
 "network": {"interfaces": [{"name": "wlan0", "mac": "02:00:00:00:00:00", "up": true, "addresses": ["192.168.1.23/24"]}]},
 "packages": {"format": "android", "packages": [
   {"name": "com.android.chrome", "version": "120.0.6099.43", "versionCode": 609904333},
   {"name": "org.doorbellmdm.agent", "version": "0.1.0", "versionCode": 1}]},
 "android": {"apiLevel": 34, "securityPatch": "2026-10-05", "buildFingerprint": "google/shiba/shiba:14/AP1A/1:user/release-keys", "batteryPercent": 81, "charging": true, "deviceOwner": true}
}`

// TestInventoryThroughFacade: the app's Collector's JSON reaches GET
// /devices/{id}/inventory; a collector that returns nonsense sends nothing
// and keeps the last inventory.
func TestInventoryThroughFacade(t *testing.T) {
	s := startServer(t)
	col := &fakeCollector{json: androidInventory}
	a, _ := newTestAgent(t, s, &fakeEnforcer{}, newFakeStore(), func(c *Config) { c.Collector = col })
	id := enrolled(t, a)
	var inv proto.DeviceInventory
	s.call("GET", "/devices/"+id+"/inventory", "", &inv)
	if inv.Inventory.Android == nil || inv.Inventory.Android.SecurityPatch != "2026-10-05" || inv.Inventory.Android.APILevel != 34 ||
		inv.Inventory.Hardware == nil || inv.Inventory.Hardware.Model != "Pixel 8" ||
		inv.Inventory.Packages == nil || inv.Inventory.Packages.Format != proto.FormatAndroid ||
		len(inv.Inventory.Packages.Packages) != 2 || inv.Inventory.Packages.Packages[0].VersionCode != 609904333 {
		t.Fatalf("inventory on the server: %+v", inv.Inventory)
	}

	col.set(`{"android": {"apiLevel": "not a number"}}`)
	if err := a.Sync(); err != nil {
		t.Fatalf("a bad inventory failed the sync: %v", err)
	}
	var again proto.DeviceInventory
	s.call("GET", "/devices/"+id+"/inventory", "", &again)
	if again.Inventory.Android == nil || again.Inventory.Android.APILevel != 34 {
		t.Fatalf("after an invalid collection the server's inventory changed: %+v", again.Inventory.Android)
	}
}

// fakeNotifier stands in for the app's notification.
type fakeNotifier struct {
	mu     sync.Mutex
	titles []string
	bodies []string
	pend   []string
}

func (f *fakeNotifier) ShowNotice(title, body, pending string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.titles, f.bodies, f.pend = append(f.titles, title), append(f.bodies, body), append(f.pend, pending)
	return nil
}

func (f *fakeNotifier) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pend)
}

// TestGuidedNotifiesThroughFacade: a guided setting the device fails is
// left alone, reported PENDING_USER, and the app's Notifier is told once,
// with the setting and its deadline; the deadline's start is kept in
// StateDir.
func TestGuidedNotifiesThroughFacade(t *testing.T) {
	s := startServer(t)
	n := &fakeNotifier{}
	e := &fakeEnforcer{}
	dir := t.TempDir()
	a, _ := newTestAgent(t, s, e, newFakeStore(), func(c *Config) { c.Notifier = n; c.StateDir = dir })
	id := enrolled(t, a)
	before := time.Now()
	s.call("PUT", "/devices/"+id+"/policy", `{"cameraDisabled": true, "modes": {"cameraDisabled": "guided"}, "deadline": "72h"}`, nil)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if disabled, _ := e.state(); disabled {
		t.Fatal("a guided setting was enforced before its deadline")
	}
	st := s.status(id)
	if st.State != proto.StateNonCompliant || len(st.Failing) != 1 || st.Failing[0].Reason != proto.ReasonPendingUser || st.Failing[0].RemediateBy == nil {
		t.Fatalf("status %+v, want NON_COMPLIANT with cameraDisabled PENDING_USER", st)
	}
	if n.count() != 1 {
		t.Fatalf("ShowNotice called %d times, want 1", n.count())
	}
	var pend []struct {
		Setting     string    `json:"setting"`
		RemediateBy time.Time `json:"remediateBy"`
	}
	if err := json.Unmarshal([]byte(n.pend[0]), &pend); err != nil || len(pend) != 1 || pend[0].Setting != "cameraDisabled" {
		t.Fatalf("pendingJSON %q (%v)", n.pend[0], err)
	}
	if !strings.HasSuffix(n.pend[0], `Z"}]`) || strings.Contains(n.pend[0], ".") {
		t.Fatalf("pendingJSON %q: want remediateBy in UTC to the second", n.pend[0])
	}
	if by := pend[0].RemediateBy; by.Before(before.Add(72*time.Hour-time.Minute)) || !by.Equal(st.Failing[0].RemediateBy.Truncate(time.Second)) {
		t.Fatalf("remediateBy %v, server says %v: want 72h from now, the same", by, st.Failing[0].RemediateBy)
	}
	if !strings.Contains(n.bodies[0], "cameraDisabled") || n.titles[0] == "" {
		t.Fatalf("notification %q / %q does not name the setting", n.titles[0], n.bodies[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "guided.json")); err != nil {
		t.Fatalf("the guided deadline is not kept in StateDir: %v", err)
	}
	// The next sync does not notify again.
	s.call("PUT", "/devices/"+id+"/policy", `{"cameraDisabled": true, "screenCaptureDisabled": null, "modes": {"cameraDisabled": "guided"}, "deadline": "72h"}`, nil)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if n.count() != 1 {
		t.Fatalf("ShowNotice called %d times after a second sync, want still 1", n.count())
	}
}

func (s *fakeStore) copy() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]string, len(s.m))
	for k, v := range s.m {
		m[k] = v
	}
	return m
}
