package test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// logCount counts p's log lines with message msg.
func (p *proc) logCount(msg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.logs {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

// lastLog returns p's last log line with message msg, nil when none.
func (p *proc) lastLog(msg string) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.logs) - 1; i >= 0; i-- {
		if p.logs[i]["msg"] == msg {
			return p.logs[i]
		}
	}
	return nil
}

func (s *serverProc) inventory(id string) proto.DeviceInventory {
	s.t.Helper()
	var inv proto.DeviceInventory
	if code, b := s.call("GET", "/devices/"+id+"/inventory", s.admin, "", &inv); code != 200 {
		s.t.Fatalf("inventory %s: %d %s", id, code, b)
	}
	return inv
}

// deviceIDs lists the ids GET /devices answers for query.
func (s *serverProc) deviceIDs(query string) []string {
	s.t.Helper()
	var l proto.DeviceList
	if code, b := s.call("GET", "/devices?"+query, s.admin, "", &l); code != 200 {
		s.t.Fatalf("GET /devices?%s: %d %s", query, code, b)
	}
	var ids []string
	for _, d := range l.Devices {
		ids = append(ids, d.DeviceID)
	}
	slices.Sort(ids)
	return ids
}

// A real Linux agent's inventory of this machine arrives, whole, and
// matches what the machine's own tools say.
func TestInventoryRealLinuxAgent(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	a := startAgent(t, "agent", srv, t.TempDir(), "--inventory", "linux")
	id := enrolled(t, srv, a)
	var inv proto.DeviceInventory
	testkit.Eventually(t, 60*time.Second, "the inventory arrived", func() bool {
		inv = srv.inventory(id)
		return inv.Inventory.Packages != nil
	})
	host, _ := os.Hostname()
	kernel, _ := exec.Command("uname", "-r").Output()
	if s := inv.Inventory.System; s == nil || s.Hostname != host || s.Kernel != strings.TrimSpace(string(kernel)) {
		t.Errorf("system section = %+v, want hostname %q kernel %q", s, host, kernel)
	}
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Status}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(string(out), "installed\n"); len(inv.Inventory.Packages.Packages) != want {
		t.Errorf("%d packages arrived, dpkg-query says %d are installed", len(inv.Inventory.Packages.Packages), want)
	}
	for _, s := range inv.Inventory.Present() {
		if m := inv.Sections[s]; m.Hash == "" || m.ChangedAt.IsZero() {
			t.Errorf("section %s: meta %+v", s, m)
		}
	}
	// The fleet sees it: the os fact counts this machine.
	var fd proto.FactDistribution
	srv.call("GET", "/inventory/facts/kernel", srv.admin, "", &fd)
	if len(fd.Values) != 1 || fd.Values[0].Value != strings.TrimSpace(string(kernel)) || fd.Values[0].Devices != 1 {
		t.Errorf("kernel distribution = %+v", fd)
	}
	// The size of a real inventory, for the record.
	b, _ := json.Marshal(inv.Inventory)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(b)
	zw.Close()
	t.Logf("this machine's inventory: %d packages, %d bytes of JSON, %d gzipped", len(inv.Inventory.Packages.Packages), len(b), gz.Len())
	a.stop()
}

func fixtureInventory(name string) string {
	p, _ := filepath.Abs(filepath.Join("testdata", "inventory", name+".json"))
	return p
}

// A fleet of agents with fixture inventories: the package query answers
// right at the version boundaries of Debian (a ~rc before the release, a
// backport revision after it) and RPM (an epoch outranking the version, a
// release after the bare version).
func TestInventoryFleetPackageQuery(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	names := []string{"deb-fixed", "deb-rc", "deb-old", "rpm-epoch", "rpm-old", "rpm-exact"}
	ids := map[string]string{}
	for _, n := range names {
		a := startAgent(t, n, srv, t.TempDir(), "--inventory", "file:"+fixtureInventory(n))
		ids[n] = enrolled(t, srv, a)
		testkit.Eventually(t, 30*time.Second, n+"'s inventory arrived", func() bool { return srv.inventory(ids[n]).Inventory.Packages != nil })
	}
	want := func(ns ...string) []string {
		var out []string
		for _, n := range ns {
			out = append(out, ids[n])
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"package=openssl&package.lt=3.0.11", want("deb-rc", "deb-old", "rpm-old")},
		{"package=openssl&package.ge=3.0.11", want("deb-fixed", "rpm-epoch", "rpm-exact")},
		{"package=openssl&package.lt=3.0.11-10.fc40&os.id=fedora", nil},
		{"package=openssl&package.le=3.0.11-10.fc40&os.id=fedora", want("rpm-exact")},
		{"package=openssl&package.lt=3.0.11-1~deb12u3", want("deb-fixed", "deb-rc", "deb-old", "rpm-old")},
		{"kernel.lt=6.1", want("deb-old", "rpm-old")},
		{"os=debian+12", want("deb-fixed", "deb-rc")},
		{"hostname~=RPM", want("rpm-epoch", "rpm-old", "rpm-exact")},
		{"serial=SN-kiosk-deb-rc", want("deb-rc")},
		{"ip=10.1.0.10", want("rpm-old")},
		{"package=bash&model=K2", want("rpm-epoch", "rpm-old")},
	} {
		if got := srv.deviceIDs(c.query); !slices.Equal(got, c.want) {
			t.Errorf("GET /devices?%s = %v, want %v", c.query, got, c.want)
		}
	}
	var pv proto.PackageVersions
	srv.call("GET", "/inventory/packages?name=openssl", srv.admin, "", &pv)
	if pv.Devices != 6 || len(pv.Versions) != 6 {
		t.Errorf("openssl versions = %+v", pv)
	}
	var os proto.FactDistribution
	srv.call("GET", "/inventory/facts/os", srv.admin, "", &os)
	if got := fmt.Sprint(os.Values); got != "[{fedora 40 2} {debian 12 2} {debian 11 1} {rhel 9.2 1}]" && got != "[{debian 12 2} {fedora 40 2} {debian 11 1} {rhel 9.2 1}]" {
		t.Errorf("os distribution = %s", got)
	}
	// The same question from the command line.
	out, err := cli(t, srv, srv.admin, "devices", "--where", "package:openssl<3.0.11", "--json")
	if err != nil {
		t.Fatal(err, out)
	}
	var listed []proto.DeviceStatus
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatal(err, out)
	}
	var got []string
	for _, d := range listed {
		got = append(got, d.DeviceID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want("deb-rc", "deb-old", "rpm-old")) {
		t.Errorf("doorbell devices --where 'package:openssl<3.0.11' = %v", got)
	}
	if out, err := cli(t, srv, srv.admin, "inventory", "packages", "openssl"); err != nil || !strings.Contains(out, "1:3.0.9-2.fc40") {
		t.Errorf("doorbell inventory packages openssl: %v\n%s", err, out)
	}
}

// A changed section is re-sent alone; an unchanged inventory costs no
// upload at all; syncs do not collect (the inventory has its own timer,
// --inventory-interval).
func TestInventoryChangedSectionAlone(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	dir := t.TempDir()
	file := filepath.Join(dir, "inventory.json")
	fixture, err := os.ReadFile(fixtureInventory("deb-rc"))
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, file, string(fixture))
	a := startAgent(t, "agent", srv, dir, "--inventory", "file:"+file, "--inventory-interval", "1s")
	id := enrolled(t, srv, a)
	testkit.Eventually(t, 30*time.Second, "the first upload", func() bool { return a.logCount("inventory uploaded") == 1 })
	first := srv.inventory(id)
	if got := a.lastLog("inventory uploaded")["sections"]; fmt.Sprint(got) != "[system hardware network packages]" {
		t.Errorf("first upload sent %v, want every section", got)
	}

	// Policy edits make the agent sync, and the inventory timer collects
	// again and again; the inventory did not change, so nothing is
	// uploaded and the server's copy is untouched.
	for i, on := range []bool{true, false} {
		p := srv.setCamera(id, on)
		converged(t, srv, id, p.Version, fmt.Sprintf("edit %d converged", i+1), func() bool { return true })
	}
	testkit.Eventually(t, 30*time.Second, "two unchanged inventory passes", func() bool { return a.logCount("inventory unchanged") >= 2 })
	if n := a.logCount("inventory uploaded"); n != 1 {
		t.Errorf("an unchanged inventory was uploaded again (%d uploads)", n)
	}
	if again := srv.inventory(id); !again.UpdatedAt.Equal(first.UpdatedAt) {
		t.Errorf("the server's inventory moved from %v to %v without an upload", first.UpdatedAt, again.UpdatedAt)
	}

	// openssl is upgraded: only the packages section goes.
	replaceFile(t, file, strings.Replace(string(fixture), "3.0.11~rc1-1", "3.0.11-1~deb12u2", 1))
	testkit.Eventually(t, 30*time.Second, "the second upload", func() bool { return a.logCount("inventory uploaded") == 2 })
	if got := a.lastLog("inventory uploaded")["sections"]; fmt.Sprint(got) != "[packages]" {
		t.Errorf("after the upgrade the agent sent %v, want [packages]", got)
	}
	after := srv.inventory(id)
	if !after.Sections["packages"].ChangedAt.After(first.Sections["packages"].ChangedAt) {
		t.Errorf("packages changedAt did not move: %v", after.Sections["packages"])
	}
	if !after.Sections["system"].ChangedAt.Equal(first.Sections["system"].ChangedAt) || !after.Sections["system"].ReceivedAt.Equal(first.Sections["system"].ReceivedAt) {
		t.Errorf("system was touched: %+v then %+v", first.Sections["system"], after.Sections["system"])
	}
	if got := srv.deviceIDs("package=openssl&package.lt=3.0.11"); len(got) != 0 {
		t.Errorf("the upgraded device still matches openssl<3.0.11: %v", got)
	}
	a.stop()
}

// POST /devices/{id}/inventory/refresh queues a refresh_inventory command;
// the agent (capability 7) uploads its whole inventory and acknowledges it,
// though nothing changed and its inventory timer is an hour away.
func TestInventoryRefreshCommand(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	dir := t.TempDir()
	file := filepath.Join(dir, "inventory.json")
	fixture, err := os.ReadFile(fixtureInventory("deb-rc"))
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, file, string(fixture))
	a := startAgent(t, "agent", srv, dir, "--inventory", "file:"+file)
	id := enrolled(t, srv, a)
	testkit.Eventually(t, 30*time.Second, "the first upload", func() bool { return a.logCount("inventory uploaded") == 1 })
	first := srv.inventory(id)

	var cmd proto.Command
	if code, b := srv.call("POST", "/devices/"+id+"/inventory/refresh", srv.admin, "", &cmd); code != 202 {
		t.Fatalf("refresh: %d %s", code, b)
	}
	if cmd.Type != proto.CommandRefreshInventory || cmd.DeviceID != id || cmd.CommandID == "" {
		t.Fatalf("refresh answered %+v", cmd)
	}
	done := srv.waitCommand(cmd.CommandID, proto.CommandAcknowledged, 30*time.Second)
	if done.Result == nil || !strings.Contains(done.Result.Output, "4 sections") {
		t.Errorf("the command's result %+v", done.Result)
	}
	if n := a.logCount("inventory uploaded"); n != 2 {
		t.Errorf("%d uploads, want the first and the requested one", n)
	}
	if got := a.lastLog("inventory uploaded")["sections"]; fmt.Sprint(got) != "[system hardware network packages]" {
		t.Errorf("the requested upload sent %v, want every section", got)
	}
	after := srv.inventory(id)
	for _, sec := range first.Inventory.Present() {
		if !after.Sections[sec].ReceivedAt.After(first.Sections[sec].ReceivedAt) || !after.Sections[sec].ChangedAt.Equal(first.Sections[sec].ChangedAt) {
			t.Errorf("section %s: %+v then %+v; want received again, unchanged", sec, first.Sections[sec], after.Sections[sec])
		}
	}
	// Refused for an unknown device, nothing queued.
	if code, b := srv.call("POST", "/devices/nope/inventory/refresh", srv.admin, "", nil); code != 404 {
		t.Errorf("refresh of an unknown device: %d %s", code, b)
	}
	a.stop()
}

// Bad uploads are refused with a clear error and store nothing.
func TestInventoryBadUploads(t *testing.T) {
	srv := startServer(t, t.TempDir(), "127.0.0.1:0", "127.0.0.1:0")
	a := startAgent(t, "agent", srv, t.TempDir(), "--inventory", "none")
	id := enrolled(t, srv, a)
	_, secret := a.identity()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.tlsConfig(a.certificate()...)}}
	put := func(body []byte, encoding string) (int, string) {
		req, _ := http.NewRequest("PUT", srv.url+"/devices/"+id+"/inventory", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		resp, err := client.Do(req)
		if err != nil && len(body) > proto.MaxInventoryBodyBytes && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
			// The server answered 413 and closed the connection before
			// the client had written the whole oversized body.
			return -1, "connection closed by the server before the body was read"
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb proto.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, eb.Error.Code + ": " + eb.Error.Message
	}
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	bomb := gzipped(append([]byte(`{"hashes":{"system":"x"},"system":{"hostname":"`), bytes.Repeat([]byte("a"), proto.MaxInventoryBytes+1)...))
	for _, c := range []struct {
		name     string
		body     []byte
		encoding string
		status   int
	}{
		{"gzip bomb", bomb, "gzip", 413},
		{"oversized", bytes.Repeat([]byte(" "), proto.MaxInventoryBodyBytes+1), "", 413},
		{"malformed", []byte(`{"hashes": {"system": "x"}, "system": `), "", 400},
		{"not gzip", []byte(`{}`), "gzip", 400},
		{"unknown encoding", []byte(`{}`), "br", 415},
		{"too long a string", []byte(`{"hashes":{"system":"x"},"system":{"hostname":"` + strings.Repeat("a", proto.MaxInventoryStringLen+1) + `"}}`), "", 400},
	} {
		status, msg := put(c.body, c.encoding)
		if status == -1 && c.status == 413 {
			continue // refused before the body was read: as good as a 413
		}
		if status != c.status || len(msg) < 10 {
			t.Errorf("%s: %d %q, want %d with a message", c.name, status, msg, c.status)
		}
	}
	if inv := srv.inventory(id); len(inv.Sections) != 0 {
		t.Errorf("a refused upload stored %v", inv.Sections)
	}
	a.stop()
}
