package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// TestConsoleCommands: on a device's page an operator locks a real agent
// and sees the command reach ACKNOWLEDGED live, without a reload; the wipe
// button stays disabled until the device id is typed; a command queued
// elsewhere appears live and is cancelled from the page.
func TestConsoleCommands(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	b := newBrowser(t, srv)
	a := startAgent(t, "agent", srv, t.TempDir())
	id := enrolled(t, srv, a)
	testkit.Eventually(t, 30*time.Second, "agent connected", func() bool { return srv.status(id).Connected })

	b.do("sign in",
		chromedp.Navigate(srv.url+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), srv.admin),
		chromedp.Click(chromedp.ID("signin-submit")))
	b.waitFor("the fleet", rowJS(id)+` !== null`)
	b.do("open the device", chromedp.Navigate(srv.url+"/#/devices/"+id))
	b.waitFor("the commands panel", `document.querySelector('#commands') !== null && !document.querySelector('#commands').hidden &&
		document.querySelector('#command-list')?.textContent.includes('No commands yet')`)

	b.do("lock", chromedp.Click(chromedp.ID("cmd-lock")))
	b.waitFor("the lock ACKNOWLEDGED, live", `[...document.querySelectorAll('#commands-table tbody tr')].some(r =>
		r.cells[0].textContent === 'lock' && r.dataset.state === 'ACKNOWLEDGED')`)
	if !contains(a.ranCommands(), eval[string](b, `document.querySelector('#commands-table tbody tr').dataset.command`)) {
		t.Fatalf("the device did not record the lock: %v", a.ranCommands())
	}

	// Wipe: disabled until the id is typed exactly.
	if !eval[bool](b, `document.querySelector('#cmd-wipe').disabled`) {
		t.Fatal("the wipe button is enabled before the id was typed")
	}
	b.do("open the wipe zone", chromedp.Click(chromedp.CSS(`#commands details.danger-zone summary`)))
	b.do("type a wrong id", chromedp.SendKeys(chromedp.ID("cmd-wipe-confirm"), id[:len(id)-1]))
	if !eval[bool](b, `document.querySelector('#cmd-wipe').disabled`) {
		t.Fatal("the wipe button is enabled for a wrong id")
	}
	b.do("type the rest of the id", chromedp.SendKeys(chromedp.ID("cmd-wipe-confirm"), id[len(id)-1:]))
	b.waitFor("the wipe button enabled", `!document.querySelector('#cmd-wipe').disabled`)

	// A command queued elsewhere appears live; the agent is stopped so it
	// waits, and the page cancels it.
	a.stop()
	c := srv.sendCommand(id, `{"type":"reboot"}`)
	b.waitFor("the pending reboot, live", fmt.Sprintf(`document.querySelector('#commands-table tr[data-command=%q]')?.dataset.state === 'PENDING'`, c.CommandID))
	b.do("cancel it", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#commands-table button[data-cancel=%q]`, c.CommandID))))
	b.waitFor("the reboot CANCELLED", fmt.Sprintf(`document.querySelector('#commands-table tr[data-command=%q]')?.dataset.state === 'CANCELLED'`, c.CommandID))
	if got := srv.command(c.CommandID).State; got != proto.CommandCancelled {
		t.Fatalf("the server says %s after the console cancelled", got)
	}
	if p := b.takeProblems(); len(p) > 0 {
		t.Fatalf("page problems: %v", p)
	}
}
