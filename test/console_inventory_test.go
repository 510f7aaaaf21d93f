package test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
)

// TestConsoleInventory drives the inventory in the console against a real
// server and a real agent whose inventory carries markup in its hostname
// and package names: the device page shows it as text, the fleet search
// finds the device by hostname and IP and shows its hostname as text, and
// the OS chart counts it.
func TestConsoleInventory(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	b := newBrowser(t, srv)

	const hostile = `kiosk<img src=x onerror="window.__pwned=1">`
	inv := map[string]any{
		"system":   map[string]any{"hostname": hostile, "osId": "android", "osVersion": "14", "kernel": "5.15.123-android14"},
		"hardware": map[string]any{"vendor": "Google", "model": "Pixel 8", "serial": "35161FDJH000XY"},
		"network":  map[string]any{"interfaces": []any{map[string]any{"name": "wlan0", "mac": "02:00:00:00:00:07", "up": true, "addresses": []string{"192.168.77.20/24"}}}},
		"packages": map[string]any{"format": "android", "packages": []any{
			map[string]any{"name": "com.example.kiosk", "version": "1.4.2", "versionCode": 142},
			map[string]any{"name": `<script>window.__pwned=2</script>`, "version": "1", "versionCode": 1},
		}},
		"android": map[string]any{"apiLevel": 34, "securityPatch": "2026-10-05"},
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "inventory.json")
	raw, _ := json.Marshal(inv)
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, "agent", srv, dir, "--inventory", "file:"+file)
	id := enrolled(t, srv, a)
	testkit.Eventually(t, 30*time.Second, "the inventory arrived", func() bool { return srv.inventory(id).Inventory.Android != nil })

	b.do("sign in",
		chromedp.Navigate(srv.url+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), srv.admin),
		chromedp.Click(chromedp.ID("signin-submit")))

	// The fleet page: the OS chart, then the fleet search (the server's
	// GET /devices?q=) by hostname and by IP, the hostname shown as text.
	b.waitFor("the OS chart", `document.querySelector('#inventory-chart .bar-row[data-value="android 14"] .bar-n')?.textContent === '1'`)
	for _, q := range []string{"img src", "192.168.77"} {
		eval[chromedp.Void](b, `location.hash = '#/?q=`+url.QueryEscape(q)+`'`)
		b.waitFor("the hit by "+q, fmt.Sprintf(`document.querySelectorAll('#devices tbody tr').length === 1 &&
			document.querySelector('#devices tr[data-device-id=%q] .dev .sub .host')?.textContent === %s`, id, jsString(hostile)))
	}
	if n := eval[int](b, `document.querySelectorAll('#devices img, #devices script').length`); n != 0 {
		t.Errorf("the hostname became %d elements", n)
	}

	// The device page's inventory card, the markup as text.
	b.do("open the device", chromedp.Navigate(srv.url+"/#/devices/"+id))
	b.waitFor("the inventory card", `[...document.querySelectorAll('#inventory-facts dd')].some(d => d.textContent === `+jsString(hostile)+`)`)
	b.waitFor("the packages", `document.querySelectorAll('#inventory-packages tbody tr').length === 2`)
	if n := eval[int](b, `document.querySelectorAll('#inventory img, #inventory script').length`); n != 0 {
		t.Errorf("device strings became %d elements", n)
	}
	if p := eval[bool](b, `window.__pwned !== undefined`); p {
		t.Error("markup from the device ran")
	}
	b.do("filter the packages", chromedp.SendKeys(chromedp.ID("package-filter"), "kiosk"))
	b.waitFor("the filtered packages", `document.querySelectorAll('#inventory-packages tbody tr').length === 1`)
	b.do("ask for a fresh inventory", chromedp.Click(chromedp.ID("inventory-refresh")))
	b.waitFor("the refresh acknowledged", `document.querySelector('#inventory-status')?.className === 'ok'`)
	if p := b.takeProblems(); len(p) > 0 {
		t.Errorf("page problems: %s", strings.Join(p, "; "))
	}
	a.stop()
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
