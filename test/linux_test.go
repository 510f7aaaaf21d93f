package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/agent/linuxtest"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/servertest"
)

// linuxFleet is an in-process server and one Linux agent per fixture host,
// each under its root prefix with a recording runner.
type linuxFleet struct {
	url, admin string
	hosts      map[string]*linuxtest.FakeHost // distro -> host
	ids        map[string]string              // distro -> device id
}

func startLinuxFleet(t *testing.T, distros ...string) *linuxFleet {
	t.Helper()
	d := servertest.Start(t, daemon.DaemonConfig{AdminToken: "lx-admin", EnrollToken: "lx-enroll", DevicePerMinute: -1})
	f := &linuxFleet{url: "http://" + d.HTTPAddr(), admin: "lx-admin", hosts: map[string]*linuxtest.FakeHost{}, ids: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, distro := range distros {
		host := linuxtest.Load(t, "../agent/testdata/hosts/"+distro)
		a, err := agent.New(agent.Config{
			ServerURL: f.url, EnrollToken: "lx-enroll", Interval: time.Hour,
			Enforcer: agent.NewLinuxEnforcer(host.Root, agent.WithRunner(host)),
			IDStore:  agent.NewFileIDStore(t.TempDir()),
			Model:    distro, OSVersion: "linux", AgentVersion: "e2e",
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); a.Run(ctx) }()
		testkit.Eventually(t, 30*time.Second, distro+" agent enrolled", func() bool { return a.DeviceID() != "" })
		f.hosts[distro], f.ids[distro] = host, a.DeviceID()
	}
	return f
}

func (f *linuxFleet) call(t *testing.T, method, path, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.url+path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+f.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

func (f *linuxFleet) status(t *testing.T, id string) proto.DeviceStatus {
	var st proto.DeviceStatus
	f.call(t, "GET", "/devices/"+id+"/status", "", &st)
	return st
}

// compliantAt waits until every device is COMPLIANT at a policy version of
// at least min.
func (f *linuxFleet) compliantAt(t *testing.T, what string, min map[string]int64, only ...string) {
	t.Helper()
	for distro, id := range f.ids {
		if len(only) > 0 && !slices.Contains(only, distro) {
			continue
		}
		testkit.Eventually(t, 30*time.Second, distro+" "+what, func() bool {
			st := f.status(t, id)
			return st.State == proto.StateCompliant && st.AppliedVersion >= min[distro]
		})
	}
}

func (f *linuxFleet) versions(t *testing.T) map[string]int64 {
	out := map[string]int64{}
	for distro, id := range f.ids {
		out[distro] = f.status(t, id).DesiredVersion + 1
	}
	return out
}

const linuxPolicyA = `{"packages":[{"name":"fail2ban","state":"present"},{"name":"telnet","state":"absent"}],
 "services":[{"name":"fail2ban.service","enabled":true,"running":true},{"name":"cups.service","enabled":false,"running":false}],
 "firewallEnabled":true}`

const linuxPolicyB = `{"packages":[{"name":"fail2ban","state":"absent"}],"firewallEnabled":false}`

// TestLinuxAgentsConverge runs a Debian and a Fedora agent (fixture trees
// under a root prefix, recording runners) against a real server: a group
// policy with packages, services and the firewall makes both hosts
// COMPLIANT through their own tools (apt/ufw, dnf/firewalld); a second
// policy is enforced too; and a setting a host cannot support is reported
// UNSUPPORTED with the host's reason.
func TestLinuxAgentsConverge(t *testing.T) {
	f := startLinuxFleet(t, "debian", "fedora")
	deb, fed := f.hosts["debian"], f.hosts["fedora"]
	want := f.versions(t)
	var g proto.GroupChange
	f.call(t, "POST", "/groups", fmt.Sprintf(`{"name":"linux","policy":%s,"deviceIds":["%s","%s"]}`, linuxPolicyA, f.ids["debian"], f.ids["fedora"]), &g)
	f.compliantAt(t, "compliant with policy A", want)
	f.checkPolicyA(t, "after policy A")

	want = f.versions(t)
	f.call(t, "PUT", "/groups/"+g.GroupID+"/policy", linuxPolicyB, nil)
	f.compliantAt(t, "compliant with policy B", want)
	for distro, h := range f.hosts {
		if h.Installed("fail2ban") != "" {
			t.Errorf("%s after policy B: fail2ban still installed", distro)
		}
	}
	if deb.UFWActive() {
		t.Error("debian after policy B: ufw still active")
	}
	if u, _ := fed.Unit("firewalld.service"); u.Active {
		t.Errorf("fedora after policy B: firewalld %+v", u)
	}

	// Fedora's root is not on LUKS, and no agent encrypts: requiring it
	// fails there with the reason and holds on Debian's LUKS root.
	want = f.versions(t)
	f.call(t, "PUT", "/groups/"+g.GroupID+"/policy", `{"diskEncryptionRequired":true}`, nil)
	f.compliantAt(t, "debian compliant with disk encryption", map[string]int64{"debian": want["debian"]}, "debian")
	testkit.Eventually(t, 30*time.Second, "fedora failing disk encryption", func() bool {
		st := f.status(t, f.ids["fedora"])
		return st.State == proto.StateNonCompliant && st.AppliedVersion >= want["fedora"] &&
			len(st.Failing) == 1 && st.Failing[0].Setting == "diskEncryptionRequired" &&
			st.Failing[0].Reason == proto.ReasonEnforcementFailed && strings.Contains(st.Failing[0].Detail, "not on LUKS")
	})
}

// checkPolicyA checks every host against linuxPolicyA through its state.
func (f *linuxFleet) checkPolicyA(t *testing.T, when string) {
	t.Helper()
	for distro, h := range f.hosts {
		if h.Installed("fail2ban") == "" || h.Installed("telnet") != "" {
			t.Errorf("%s %s: fail2ban %q, telnet %q", distro, when, h.Installed("fail2ban"), h.Installed("telnet"))
		}
		if u, _ := h.Unit("fail2ban.service"); !u.Enabled || !u.Active {
			t.Errorf("%s %s: fail2ban unit %+v", distro, when, u)
		}
		if u, _ := h.Unit("cups.service"); u.Enabled || u.Active {
			t.Errorf("%s %s: cups unit %+v", distro, when, u)
		}
	}
	deb, fed := f.hosts["debian"], f.hosts["fedora"]
	if deb != nil && !deb.UFWActive() {
		t.Errorf("debian %s: ufw inactive", when)
	}
	if fed != nil {
		if u, _ := fed.Unit("firewalld.service"); !u.Active || !u.Enabled {
			t.Errorf("fedora %s: firewalld %+v", when, u)
		}
		if len(fed.CallsTo("apt-get")) > 0 || len(fed.CallsTo("ufw")) > 0 {
			t.Errorf("fedora ran Debian's tools: %q", append(fed.CallsTo("apt-get"), fed.CallsTo("ufw")...))
		}
	}
	if deb != nil && (len(deb.CallsTo("dnf")) > 0 || len(deb.CallsTo("firewall-cmd")) > 0) {
		t.Errorf("debian ran Fedora's tools")
	}
}

// TestLinuxRollbackBringsAgentsBack edits a group's policy and rolls it
// back to its first revision: both the Debian and the Fedora host converge
// back to what the first revision says, and the rollback is itself a new
// revision.
func TestLinuxRollbackBringsAgentsBack(t *testing.T) {
	f := startLinuxFleet(t, "debian", "fedora")
	want := f.versions(t)
	var g proto.GroupChange
	f.call(t, "POST", "/groups", fmt.Sprintf(`{"name":"linux","policy":%s,"deviceIds":["%s","%s"]}`, linuxPolicyA, f.ids["debian"], f.ids["fedora"]), &g)
	f.compliantAt(t, "compliant with policy A", want)

	want = f.versions(t)
	f.call(t, "PUT", "/groups/"+g.GroupID+"/policy", linuxPolicyB, nil)
	f.compliantAt(t, "compliant with policy B", want)
	for distro, h := range f.hosts {
		if h.Installed("fail2ban") != "" {
			t.Fatalf("%s after policy B: fail2ban still installed", distro)
		}
	}

	var revs proto.RevisionList
	f.call(t, "GET", "/groups/"+g.GroupID+"/revisions", "", &revs)
	if len(revs.Revisions) != 2 || revs.Revisions[0].N != 2 || revs.Revisions[1].N != 1 {
		t.Fatalf("revisions %+v", revs)
	}
	want = f.versions(t)
	var rb proto.GroupChange
	f.call(t, "POST", "/groups/"+g.GroupID+"/rollback", `{"revision":1}`, &rb)
	if rb.ChangedDevices != 2 {
		t.Errorf("rollback changed %d devices, want 2", rb.ChangedDevices)
	}
	f.compliantAt(t, "compliant again after the rollback to revision 1", want)
	f.checkPolicyA(t, "after the rollback")
	f.call(t, "GET", "/groups/"+g.GroupID+"/revisions", "", &revs)
	if len(revs.Revisions) != 3 || revs.Revisions[0].N != 3 || revs.Revisions[0].Action != "group.rollback" || revs.Revisions[0].Actor == "" {
		t.Errorf("after the rollback, newest revision %+v", revs.Revisions[0])
	}
}
