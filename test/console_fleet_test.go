package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// inventoryFile writes an inventory for `--inventory file:` with the given
// hostname and address, and returns its path.
func inventoryFile(t *testing.T, dir, hostname, ip string) string {
	t.Helper()
	inv := map[string]any{
		"system":   map[string]any{"hostname": hostname, "osId": "debian", "osVersion": "12", "kernel": "6.1.0-18-amd64"},
		"hardware": map[string]any{"vendor": "LENOVO", "model": "ThinkCentre M70q", "serial": "SN-" + strings.ToUpper(hostname)},
		"network":  map[string]any{"interfaces": []any{map[string]any{"name": "eth0", "up": true, "addresses": []string{ip + "/24"}}}},
	}
	raw, _ := json.Marshal(inv)
	file := filepath.Join(dir, "inventory.json")
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestConsoleFleetTools drives, in Debian's Chromium against a real
// `doorbell serve` and real agents: the fleet search answered by the server
// (hostname, IP; two hosts of one model told apart by hostname); a bulk
// command to the selected devices with each device's outcome, one
// reaching ACKNOWLEDGED live on a running agent, one refused; a wipe that
// stays disabled until "wipe 2" is typed; a group's priority and name
// changed on its page, flipping which group wins a setting; and the device
// page's revisions card rolling the device's own settings back.
func TestConsoleFleetTools(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	b := newBrowser(t, srv)

	// A runs (MQTT, follows its doorbell); B synced once and then stays off.
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startAgent(t, "agent-a", srv, dirA, "--inventory", "file:"+inventoryFile(t, dirA, "lobby-kiosk-7", "10.20.0.7"))
	pB := startAgent(t, "agent-b", srv, dirB, "--once", "--no-mqtt", "--inventory", "file:"+inventoryFile(t, dirB, "build-runner-2", "10.30.0.2"))
	select {
	case err := <-pB.done:
		if err != nil {
			t.Fatalf("agent-b --once: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agent-b --once did not finish within 60s")
	}
	idA := enrolled(t, srv, a)
	idB, _ := pB.identity()
	testkit.Eventually(t, 30*time.Second, "A connected, both inventories in", func() bool {
		return srv.status(idA).Connected && srv.inventory(idA).Inventory.System != nil && srv.inventory(idB).Inventory.System != nil
	})

	b.do("sign in",
		chromedp.Navigate(srv.url+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), srv.admin),
		chromedp.Click(chromedp.ID("signin-submit")))
	b.waitFor("both devices", `document.querySelectorAll('#devices tbody tr').length === 2`)

	// The search is the server's: by hostname, then by IP.
	b.do("search a hostname", chromedp.SendKeys(chromedp.ID("fleet-search"), "RUNNER\r"))
	b.waitFor("only B, with its hostname", `location.hash.includes('q=RUNNER') && document.querySelectorAll('#devices tbody tr').length === 1 && `+
		rowJS(idB)+`?.querySelector('.dev .sub .host')?.textContent === 'build-runner-2'`)
	eval[chromedp.Void](b, `document.querySelector('#fleet-search').value = ''`)
	b.do("search an IP", chromedp.SendKeys(chromedp.ID("fleet-search"), "10.20.0\r"))
	b.waitFor("only A", `document.querySelectorAll('#devices tbody tr').length === 1 && `+rowJS(idA)+`?.querySelector('.dev .sub .host')?.textContent === 'lobby-kiosk-7'`)
	eval[chromedp.Void](b, `document.querySelector('#fleet-search').value = ''`)
	b.do("search the shared model", chromedp.SendKeys(chromedp.ID("fleet-search"), "thinkcentre\r"))
	b.waitFor("both, told apart by hostname", `document.querySelectorAll('#devices tbody tr').length === 2 && `+
		`[...document.querySelectorAll('#devices .dev .sub .host')].map(h => h.textContent).sort().join() === 'build-runner-2,lobby-kiosk-7'`)
	eval[chromedp.Void](b, `document.querySelector('#fleet-search').value = ''`)
	b.do("search nothing", chromedp.SendKeys(chromedp.ID("fleet-search"), "no-such-host\r"))
	b.waitFor("no match", `document.querySelectorAll('#devices tbody tr').length === 0 && !document.querySelector('#no-devices').hidden`)
	eval[chromedp.Void](b, `location.hash = '#/'`)
	b.waitFor("both again", `document.querySelectorAll('#devices tbody tr').length === 2`)

	// Bulk: lock both. A runs and acknowledges live; B is off: PENDING.
	b.do("select all", chromedp.Click(chromedp.ID("select-all")))
	b.waitFor("the command catalog in the bulk bar", `!document.querySelector('#bulk').hidden &&
		[...document.querySelectorAll('#bulk-command option')].map(o => o.value).join() === `+jsString(","+strings.Join(proto.CommandTypeNames(), ",")))
	pick := func(typ string) {
		eval[chromedp.Void](b, fmt.Sprintf(`(() => { const s = document.querySelector('#bulk-command'); s.value = %q; s.dispatchEvent(new Event('change')) })()`, typ))
	}
	pick("lock")
	b.do("send the lock", chromedp.Click(chromedp.ID("bulk-send")))
	resultRow := func(id string) string {
		return fmt.Sprintf(`document.querySelector('#bulk-command-table tr[data-device-id=%q]')`, id)
	}
	b.waitFor("A's lock ACKNOWLEDGED live, B's PENDING", resultRow(idA)+`?.dataset.state === 'ACKNOWLEDGED' && `+resultRow(idB)+`?.dataset.state === 'PENDING' &&
		document.querySelector('#bulk-result')?.textContent.startsWith('Queued lock for 2 of 2 devices')`)
	cmdA := eval[string](b, resultRow(idA)+`.dataset.commandId`)
	cmdB := eval[string](b, resultRow(idB)+`.dataset.commandId`)
	if c := srv.command(cmdA); c.DeviceID != idA || c.Type != proto.CommandLock || c.State != proto.CommandAcknowledged {
		t.Fatalf("A's command on the server: %+v", c)
	}
	if !contains(a.ranCommands(), cmdA) {
		t.Fatalf("agent A did not record the lock %s: %v", cmdA, a.ranCommands())
	}
	if c := srv.command(cmdB); c.DeviceID != idB || c.State != proto.CommandPending {
		t.Fatalf("B's command on the server: %+v", c)
	}

	// Again: B still has an unfinished lock, so the server refuses B's and
	// the page says why; A's is queued.
	b.do("send the lock again", chromedp.Click(chromedp.ID("bulk-send")))
	b.waitFor("B refused, A queued", resultRow(idB)+`?.dataset.state === 'REFUSED' && `+resultRow(idB)+`.querySelector('.detail').textContent !== '' && `+
		resultRow(idA)+`?.dataset.commandId !== `+jsString(cmdA)+` && document.querySelector('#bulk-result')?.textContent.startsWith('Queued lock for 1 of 2 devices; 1 refused')`)
	// However fast the running agent answers (even before the POST's
	// answer reaches the page), its row ends ACKNOWLEDGED.
	b.waitFor("A's second lock ACKNOWLEDGED", resultRow(idA)+`?.dataset.state === 'ACKNOWLEDGED'`)
	eval[chromedp.Void](b, `window.scrollTo(0, 0)`)
	b.screenshot("console-bulk.png", "console-bulk.png")

	// run_script needs its script: nothing is sent without it.
	var before proto.CommandList
	srv.mustAdmin("GET", "/devices/"+idB+"/commands", "", &before)
	pick("run_script")
	b.waitFor("the script param", `document.querySelector('#bulk-param-script') !== null && document.querySelector('#bulk-param-timeout') !== null`)
	b.do("send without a script", chromedp.Click(chromedp.ID("bulk-send")))
	b.waitFor("the refusal on the page", `document.querySelector('#bulk-result')?.textContent === 'run_script needs script.'`)
	var after proto.CommandList
	srv.mustAdmin("GET", "/devices/"+idB+"/commands", "", &after)
	if len(after.Commands) != len(before.Commands) {
		t.Fatalf("a command without its required param was sent: %d -> %d", len(before.Commands), len(after.Commands))
	}

	// Wipe: the button stays disabled until "wipe 2" is typed.
	pick("wipe")
	b.waitFor("the wipe confirmation", `!document.querySelector('#bulk-command-confirm').hidden && document.querySelector('#bulk-send').disabled`)
	b.do("type a wrong count", chromedp.SendKeys(chromedp.ID("bulk-command-confirm"), "wipe 1"))
	if !eval[bool](b, `document.querySelector('#bulk-send').disabled`) {
		t.Fatal("wipe enabled by a wrong confirmation")
	}
	eval[chromedp.Void](b, `document.querySelector('#bulk-command-confirm').value = ''`)
	b.do("type the confirmation", chromedp.SendKeys(chromedp.ID("bulk-command-confirm"), "wipe 2"))
	b.waitFor("wipe enabled", `!document.querySelector('#bulk-send').disabled`)
	pick("reboot") // not sent: the wipe was only armed
	b.waitFor("the confirmation gone", `document.querySelector('#bulk-command-confirm').hidden && !document.querySelector('#bulk-send').disabled`)

	// Group priority: "high" (5) lets the camera on for A, "low" (1)
	// disables it. Raising low to 10 on its page flips A's camera.
	var low, high proto.GroupChange
	srv.mustAdmin("POST", "/groups", fmt.Sprintf(`{"name":"low","priority":1,"policy":{"cameraDisabled":true},"deviceIds":[%q]}`, idA), &low)
	srv.mustAdmin("POST", "/groups", fmt.Sprintf(`{"name":"high","priority":5,"policy":{"cameraDisabled":false},"deviceIds":[%q]}`, idA), &high)
	if x := srv.explain(idA)["cameraDisabled"]; !strings.HasPrefix(x, "group:"+high.GroupID+"=false") {
		t.Fatalf("A's camera before: %s", x)
	}
	eval[chromedp.Void](b, `location.hash = '#/groups/`+low.GroupID+`'`)
	b.waitFor("the name and priority form", `document.querySelector('#group-edit-priority')?.value === '1' && document.querySelector('#group-edit-name')?.value === 'low'`)
	eval[chromedp.Void](b, `document.querySelector('#group-edit-priority').value = ''`)
	eval[chromedp.Void](b, `(() => { const n = document.querySelector('#group-edit-name'); n.value = 'low (wins)'; n.dispatchEvent(new Event('input', {bubbles: true})) })()`)
	b.do("raise the priority and rename",
		chromedp.SendKeys(chromedp.ID("group-edit-priority"), "10"),
		chromedp.Click(chromedp.ID("group-edit-save")))
	b.waitFor("saved, A got a new policy", `document.querySelector('#group-edit-result')?.textContent === 'Saved. 1 member device got a new policy.' &&
		document.querySelector('#group-name')?.textContent === 'low (wins)' && document.querySelector('#group-meta')?.textContent.startsWith('priority 10')`)
	var g proto.Group
	srv.mustAdmin("GET", "/groups/"+low.GroupID, "", &g)
	if g.Priority != 10 || g.Name != "low (wins)" {
		t.Fatalf("the group on the server: %+v", g)
	}
	if x := srv.explain(idA)["cameraDisabled"]; !strings.HasPrefix(x, "group:"+low.GroupID+"=true") {
		t.Fatalf("A's camera after raising low: %s", x)
	}
	// A command to every member, through the group route: A (running)
	// acknowledges it live; the command carries the group.
	b.waitFor("the group's command form", `document.querySelector('#group-commands #bulk-command option[value="reboot"]') !== null`)
	pick("reboot")
	b.do("reboot the members", chromedp.Click(chromedp.CSS(`#group-commands #bulk-send`)))
	b.waitFor("A's reboot ACKNOWLEDGED", resultRow(idA)+`?.dataset.state === 'ACKNOWLEDGED' && document.querySelectorAll('#bulk-command-table tbody tr').length === 1 &&
		document.querySelector('#group-command-result')?.textContent.startsWith('Queued reboot for 1 of 1 device')`)
	if c := srv.command(eval[string](b, resultRow(idA)+`.dataset.commandId`)); c.GroupID != low.GroupID || c.Type != proto.CommandReboot {
		t.Fatalf("the group's reboot on the server: %+v", c)
	}
	// A bad priority is refused on the page and changes nothing.
	eval[chromedp.Void](b, `document.querySelector('#group-edit-priority').value = ''`)
	b.do("a blank priority", chromedp.Click(chromedp.ID("group-edit-save")))
	b.waitFor("the refusal", `document.querySelector('#group-edit-result')?.className === 'error'`)
	srv.mustAdmin("GET", "/groups/"+low.GroupID, "", &g)
	if g.Priority != 10 {
		t.Fatalf("a refused edit changed the priority: %+v", g)
	}

	// The device's own settings: two edits, then a rollback from its page.
	srv.mustAdmin("PUT", "/devices/"+idA+"/policy", `{"passwordMinLength":6}`, nil)
	srv.mustAdmin("PUT", "/devices/"+idA+"/policy", `{"passwordMinLength":9}`, nil)
	var revs proto.RevisionList
	srv.mustAdmin("GET", "/devices/"+idA+"/revisions", "", &revs)
	if len(revs.Revisions) < 2 {
		t.Fatalf("device revisions: %+v", revs)
	}
	newest, prev := revs.Revisions[0].N, revs.Revisions[1].N
	eval[chromedp.Void](b, `location.hash = '#/devices/`+idA+`'`)
	b.waitFor("the revisions card with the diff", fmt.Sprintf(`document.querySelectorAll('#revisions li[data-revision]').length === %d &&
		document.querySelector('#revisions li[data-revision="%d"] td.after')?.textContent === '9' &&
		document.querySelector('#revisions li[data-revision="%d"] td.before')?.textContent === '6'`, len(revs.Revisions), newest, newest))
	b.do("open the earlier revision", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#revisions li[data-revision="%d"] summary`, prev))))
	b.waitFor("its rollback button", fmt.Sprintf(`document.querySelector('#revisions li[data-revision="%d"] details')?.open === true`, prev))
	b.do("roll back", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#revisions button[data-revision="%d"]`, prev))))
	b.waitFor("the rollback on the page", fmt.Sprintf(`document.querySelector('#revision-status')?.className === 'ok' &&
		document.querySelectorAll('#revisions li[data-revision]').length === %d &&
		document.querySelector('#set-passwordMinLength')?.value === '6'`, len(revs.Revisions)+1))
	if x := srv.explain(idA)["passwordMinLength"]; !strings.HasPrefix(x, "device=6") {
		t.Fatalf("A's password length after the rollback: %s", x)
	}
	srv.mustAdmin("GET", "/devices/"+idA+"/revisions", "", &revs)
	if revs.Revisions[0].N != newest+1 || revs.Revisions[0].Action == "" {
		t.Fatalf("the rollback is not the newest revision: %+v", revs.Revisions[0])
	}
	eval[chromedp.Void](b, `window.scrollTo(0, 0)`)
	b.screenshot("device-revisions.png", "")

	if p := b.takeProblems(); len(p) > 0 {
		t.Fatalf("the page reported problems: %q", p)
	}
	a.stop()
}

// TestConsoleFailingSince: the fleet's "Failing since" column shows since
// when a real NON_COMPLIANT device fails (the server's nonCompliantSince)
// and nothing for a COMPLIANT one; the "failing for more than" filter asks
// the server (failingSince.lt), which leaves out a device failing for
// seconds only; sorting by the column puts the failing device first.
func TestConsoleFailingSince(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	b := newBrowser(t, srv)
	dirOK, dirBad := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dirBad, "device.json"), []byte(`{"cameraDisabled": true, "locked": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	idOK, _ := syncAgentOnce(t, srv, "agent-ok", dirOK).identity()
	idBad, _ := syncAgentOnce(t, srv, "agent-bad", dirBad).identity()
	st := srv.status(idBad)
	if st.State != proto.StateNonCompliant || st.NonCompliantSince == nil {
		t.Fatalf("the locked device: %+v", st)
	}

	b.do("sign in",
		chromedp.Navigate(srv.url+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), srv.admin),
		chromedp.Click(chromedp.ID("signin-submit")))
	b.waitFor("both devices, the failing one with its time", `document.querySelectorAll('#devices tbody tr').length === 2 && `+
		rowJS(idBad)+`?.querySelector('td.failing time')?.getAttribute('datetime') === `+jsString(st.NonCompliantSince.Format(time.RFC3339Nano))+` && `+
		rowJS(idOK)+`?.querySelector('td.failing time') === null`)
	b.do("sort by failing since", chromedp.Click(chromedp.CSS(`#devices button.sort[data-sort="Failing since"]`)))
	b.waitFor("the failing device first", `document.querySelector('#devices tbody tr')?.dataset.deviceId === `+jsString(idBad))

	eval[chromedp.Void](b, `(() => { const f = document.querySelector('#failing-filter'); f.value = '1h'; f.dispatchEvent(new Event('change')) })()`)
	b.waitFor("no device failing for more than an hour", `location.hash.includes('failing=1h') && document.querySelectorAll('#devices tbody tr').length === 0 &&
		document.querySelector('#no-devices')?.textContent.includes('failing for more than 1h')`)
	eval[chromedp.Void](b, `(() => { const f = document.querySelector('#failing-filter'); f.value = ''; f.dispatchEvent(new Event('change')) })()`)
	b.waitFor("both again", `document.querySelectorAll('#devices tbody tr').length === 2`)
	if p := b.takeProblems(); len(p) > 0 {
		t.Fatalf("the page reported problems: %q", p)
	}
}
