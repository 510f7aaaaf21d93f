package test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	_ "image/png"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	qrreader "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// TestConsoleOperatorPages drives the operator pages in Debian's Chromium
// against a real `doorbell serve` and real agents: fleet search by id
// prefix, sorting, bulk add to a group, group create / policy edit (a
// setting nobody held, a per-setting mode) / members / delete, a device
// edit that does not pin the group's camera setting, inherit, the agent
// hash outside the settings table, the compliance chart, the audit log,
// and an enrollment token whose QR code decodes back to its enrollment
// string.
func TestConsoleOperatorPages(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	b := newBrowser(t, srv)
	dirA, dirB := t.TempDir(), t.TempDir()
	idA, _ := syncAgentOnce(t, srv, "agent-a", dirA).identity()
	idB, _ := syncAgentOnce(t, srv, "agent-b", dirB).identity()
	api := func(method, path, body string, out any) {
		t.Helper()
		if code, raw := srv.call(method, path, srv.admin, body, out); code/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, path, code, raw)
		}
	}
	explain := func(id string) proto.PolicyExplanation {
		var x proto.PolicyExplanation
		api("GET", "/devices/"+id+"/policy/explain", "", &x)
		return x
	}

	b.do("sign in",
		chromedp.Navigate(srv.url+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), srv.admin),
		chromedp.Click(chromedp.ID("signin-submit")))
	b.waitFor("both devices", `document.querySelectorAll('#devices tbody tr').length === 2`)

	// Search by id prefix: only A.
	b.do("search A's id prefix", chromedp.SendKeys(chromedp.ID("fleet-search"), idA[:6]+"\r"))
	b.waitFor("only A", `location.hash.includes('q=') && document.querySelectorAll('#devices tbody tr').length === 1 && `+rowJS(idA)+` !== null`)
	eval[chromedp.Void](b, `location.hash = '#/'`)
	b.waitFor("both again", `document.querySelectorAll('#devices tbody tr').length === 2`)

	// Sorting by device id, both ways.
	want := []string{idA, idB}
	slices.Sort(want)
	order := `[...document.querySelectorAll('#devices tbody tr')].map(tr => tr.dataset.deviceId).join(',')`
	b.do("sort by device", chromedp.Click(chromedp.CSS(`#devices button.sort[data-sort="Device"]`)))
	b.waitFor("ascending", order+` === `+fmt.Sprintf("%q", strings.Join(want, ",")))
	b.do("sort by device again", chromedp.Click(chromedp.CSS(`#devices button.sort[data-sort="Device"]`)))
	b.waitFor("descending", order+` === `+fmt.Sprintf("%q", want[1]+","+want[0]))

	// Create a group in the UI.
	b.do("the groups page", chromedp.Click(chromedp.ID("nav-groups")))
	b.do("create a group",
		chromedp.WaitVisible(chromedp.ID("group-new-name")),
		chromedp.SendKeys(chromedp.ID("group-new-name"), "Lobby"),
		chromedp.SetValue(chromedp.ID("group-new-priority"), "5"),
		chromedp.Click(chromedp.ID("group-create")))
	b.waitFor("the new group's page", `document.querySelector('#group-name')?.textContent === 'Lobby'`)
	gid := eval[string](b, `decodeURIComponent(location.hash.split('/')[2])`)
	var g proto.Group
	api("GET", "/groups/"+gid, "", &g)
	if g.Name != "Lobby" || g.Priority != 5 || len(g.DeviceIDs) != 0 {
		t.Fatalf("created group %+v", g)
	}

	// Bulk: select both devices on the fleet page, add them to the group.
	b.do("back to the fleet", chromedp.Click(chromedp.CSS(`nav a[data-nav="fleet"]`)))
	b.waitFor("both listed", `document.querySelectorAll('#devices tbody tr').length === 2`)
	b.do("select all", chromedp.Click(chromedp.ID("select-all")))
	b.waitFor("the group in the bulk bar", `!document.querySelector('#bulk').hidden && document.querySelector('#bulk-count').textContent === '2 selected' &&
		[...document.querySelectorAll('#bulk-group option')].some(o => o.value === `+fmt.Sprintf("%q", gid)+`)`)
	eval[chromedp.Void](b, fmt.Sprintf(`const s = document.querySelector('#bulk-group'); s.value = %q; s.dispatchEvent(new Event('change'))`, gid))
	b.do("add to group", chromedp.Click(chromedp.ID("bulk-add")))
	b.waitFor("the bulk result", `document.querySelector('#bulk-result')?.textContent.startsWith('Added 2 devices to Lobby')`)
	api("GET", "/groups/"+gid, "", &g)
	got := slices.Clone(g.DeviceIDs)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("group members after the bulk add: %v, want %v", got, want)
	}

	// Edit the group's policy: the camera, and a setting nobody held
	// (passwordMinLength) in monitor mode.
	eval[chromedp.Void](b, `location.hash = '#/groups/`+gid+`'`)
	b.waitFor("the group's editor", `document.querySelector('#set-passwordMinLength') !== null && document.querySelectorAll('#group-members li').length === 2`)
	b.do("edit the group policy",
		chromedp.Click(chromedp.ID("set-cameraDisabled")),
		chromedp.SendKeys(chromedp.ID("set-passwordMinLength"), "6"))
	eval[chromedp.Void](b, `const m = document.querySelector('#mode-passwordMinLength'); m.value = 'monitor'; m.dispatchEvent(new Event('change', {bubbles: true}))`)
	b.do("save the group policy", chromedp.Click(chromedp.ID("group-policy-save")))
	b.waitFor("the group saved", `document.querySelector('#group-policy-result')?.textContent.startsWith('Saved')`)
	api("GET", "/groups/"+gid, "", &g)
	if string(g.Policy["cameraDisabled"]) != "true" || string(g.Policy["passwordMinLength"]) != "6" || g.Modes["passwordMinLength"] != proto.ModeMonitor || g.Mode != proto.ModeEnforce {
		t.Fatalf("group after the edit: %+v", g)
	}
	if x := explain(idA); x.Settings["cameraDisabled"].Source != "group:"+gid {
		t.Fatalf("A's camera source: %+v", x.Settings)
	}

	// A's page: the agent hash is device information, not a setting row.
	b.do("open A", chromedp.Click(chromedp.CSS(`#group-members li[data-device-id="`+idA+`"] a`)))
	b.waitFor("A's page with the group as the camera's source", `document.querySelector('#settings-table tr[data-setting="cameraDisabled"] td.source a')?.textContent === 'group Lobby'`)
	if eval[bool](b, `document.querySelector('#settings-table tr[data-setting="agentSha256"]') !== null`) {
		t.Fatal("agentSha256 is shown as a setting")
	}
	var rep map[string]any
	api("GET", "/devices/"+idA+"/report", "", &rep)
	if sha, _ := rep["agentSha256"].(string); sha != "" {
		b.waitFor("the agent hash in the device facts", fmt.Sprintf(`document.querySelector('#agent-sha')?.title === %q && document.querySelector('#agent-sha').textContent === %q`, sha, sha[:12]+"…"))
	}
	b.waitFor("the compliance chart", `document.querySelectorAll('#compliance-chart svg line.seg').length >= 1 &&
		document.querySelector('#compliance-chart figcaption')?.dataset.compliantShare !== undefined`)

	// A device value for a setting only the group held: the camera stays the group's.
	b.waitFor("the device editor", `document.querySelector('#set-passwordMinLength') !== null && document.querySelector('#inherit-passwordMinLength').checked`)
	eval[chromedp.Void](b, `document.querySelector('#set-passwordMinLength').value = ''`)
	b.do("set the device's own password length",
		chromedp.SendKeys(chromedp.ID("set-passwordMinLength"), "8"),
		chromedp.Click(chromedp.ID("policy-save")))
	b.waitFor("the device saved", `document.querySelector('#policy-result')?.textContent.startsWith('Saved as')`)
	x := explain(idA)
	if x.Settings["passwordMinLength"].Source != "device" || string(x.Settings["passwordMinLength"].Value) != "8" {
		t.Fatalf("A's password length after the edit: %+v", x.Settings["passwordMinLength"])
	}
	if x.Settings["cameraDisabled"].Source != "group:"+gid {
		t.Fatalf("saving the password length pinned the camera to the device: %+v", x.Settings["cameraDisabled"])
	}
	// Inherit again: the group's value returns.
	b.waitFor("the editor shows the device's own value", `document.querySelector('#inherit-passwordMinLength')?.checked === false`)
	b.do("inherit the password length",
		chromedp.Click(chromedp.ID("inherit-passwordMinLength")),
		chromedp.Click(chromedp.ID("policy-save")))
	b.waitFor("saved again", `document.querySelector('#policy-result')?.textContent.startsWith('Saved as')`)
	if s := explain(idA).Settings["passwordMinLength"]; s.Source != "group:"+gid || string(s.Value) != "6" {
		t.Fatalf("after inherit: %+v", s)
	}

	// Members: remove B on the group page.
	eval[chromedp.Void](b, `location.hash = '#/groups/`+gid+`'`)
	b.waitFor("the members", `document.querySelectorAll('#group-members li').length === 2`)
	b.do("remove B", chromedp.Click(chromedp.CSS(`#group-members button.member-remove[data-device-id="`+idB+`"]`)))
	b.waitFor("one member left", `document.querySelectorAll('#group-members li').length === 1`)
	api("GET", "/groups/"+gid, "", &g)
	if !slices.Equal(g.DeviceIDs, []string{idA}) {
		t.Fatalf("members after removing B: %v", g.DeviceIDs)
	}

	// Delete the group (a second click confirms).
	b.do("delete the group", chromedp.Click(chromedp.ID("group-delete")), chromedp.Click(chromedp.ID("group-delete")))
	b.waitFor("back on the groups list without it", `location.hash === '#/groups' && document.querySelector('#groups tbody') !== null &&
		document.querySelector('#groups tr[data-group-id="`+gid+`"]') === null && document.querySelector('#groups tbody td') !== null`)
	if code, _ := srv.call("GET", "/groups/"+gid, srv.admin, "", nil); code != 404 {
		t.Fatalf("GET the deleted group: %d", code)
	}

	// The audit log shows what was done, as text.
	b.do("the audit log", chromedp.Click(chromedp.ID("nav-audit")))
	b.waitFor("the audit entries", `['group.create','group.devices','group.policy','policy.update','group.delete'].every(a =>
		document.querySelector('#audit tr[data-action="' + a + '"]') !== null)`)

	// An enrollment token: its QR code decodes back to the enrollment
	// string shown, which names this server, its pin and the secret.
	b.do("the enrollment page", chromedp.Click(chromedp.ID("nav-tokens")))
	b.do("create a token",
		chromedp.WaitVisible(chromedp.ID("token-create")),
		chromedp.SetValue(chromedp.ID("token-uses"), "3"),
		chromedp.Click(chromedp.ID("token-create")))
	b.waitFor("the QR code", `document.querySelector('#token-qr')?.complete && document.querySelector('#token-qr').naturalWidth > 0`)
	enrollURL := eval[string](b, `document.querySelector('#token-enroll-url').textContent`)
	secret := eval[string](b, `document.querySelector('#token-secret').textContent`)
	src := eval[string](b, `document.querySelector('#token-qr').src`)
	pngB64, ok := strings.CutPrefix(src, "data:image/png;base64,")
	if !ok {
		t.Fatalf("the QR image is not a PNG data URL: %.60s", src)
	}
	png, err := base64.StdEncoding.DecodeString(pngB64)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := image.Decode(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrreader.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{
		// The image is the served PNG itself, nothing around the code: a pure
		// barcode (without the hint gozxing's finder-pattern search misses
		// about 1 in 50 codes that decode fine with it).
		gozxing.DecodeHintType_PURE_BARCODE: true,
	})
	if err != nil {
		t.Fatalf("decoding the QR code: %v", err)
	}
	if res.GetText() != enrollURL {
		t.Fatalf("QR decodes to %q, the page shows %q", res.GetText(), enrollURL)
	}
	e, err := agent.ParseEnrollURL(enrollURL)
	if err != nil || e.Token != secret || e.Pin != srv.pin || !strings.HasPrefix(srv.url, e.Server) {
		t.Fatalf("enrollment string %q: %+v %v (server %s, pin %s)", enrollURL, e, err, srv.url, srv.pin)
	}
	tokID := eval[string](b, `document.querySelector('#token-new h2 code').textContent`)
	b.waitFor("the token listed", `document.querySelector('#enroll-tokens tr[data-token-id="`+tokID+`"]')?.textContent.includes('0 / 3')`)
	b.do("revoke it", chromedp.Click(chromedp.CSS(`#enroll-tokens button.token-revoke[data-token-id="`+tokID+`"]`)))
	b.waitFor("the token gone", `document.querySelector('#enroll-tokens tr[data-token-id="`+tokID+`"]') === null`)
	b.screenshot("console-tokens.png", "")

	if p := b.takeProblems(); len(p) > 0 {
		t.Fatalf("the page reported problems: %q", p)
	}
	_ = time.Second
}
