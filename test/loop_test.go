package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// mosquittoSub runs Debian's real mosquitto_sub as the operator and collects
// the lines it prints.
type mosquittoSub struct {
	mu    sync.Mutex
	lines []string
	got   chan string
	cmd   *exec.Cmd
}

func startMosquittoSub(t *testing.T, s *serverProc, topic string) *mosquittoSub {
	t.Helper()
	if _, err := exec.LookPath("mosquitto_sub"); err != nil {
		t.Fatal("mosquitto_sub not installed: `make test` installs mosquitto-clients (run it as root)")
	}
	host, port := splitHostPort(t, s.mqttAddr)
	m := &mosquittoSub{got: make(chan string, 100)}
	// -d prints the SUBACK, so we know the subscription is in place.
	// stdbuf: mosquitto_sub's stdout is a pipe here, so force line buffering.
	m.cmd = exec.Command("stdbuf", append([]string{"-oL", "mosquitto_sub", "-d", "-h", host, "-p", port, "-u", "operator", "-P", s.admin, "-t", topic, "-v", "-q", "1"}, s.mosquittoTLSArgs()...)...)
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m.cmd.Stderr = m.cmd.Stdout
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.cmd.Process.Kill(); m.cmd.Wait() })
	suback := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "SUBACK") {
				once.Do(func() { close(suback) })
				continue
			}
			if strings.HasPrefix(line, "devices/") {
				m.mu.Lock()
				m.lines = append(m.lines, line)
				m.mu.Unlock()
				m.got <- line
			}
		}
	}()
	select {
	case <-suback:
	case <-time.After(15 * time.Second):
		t.Fatal("mosquitto_sub was not subscribed within 15s")
	}
	return m
}

func (m *mosquittoSub) all() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// TestLoop is the whole MDM loop across real processes: issue 2's end-to-end
// checks in the order an operator would meet them.
func TestLoop(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, dataDir, "127.0.0.1:0", "127.0.0.1:0")
	// Without FCM flags the FCM bell is off, and the server says so.
	srv.waitLog("FCM doorbell off: no --fcm-project given; phones are reached by periodic sync only", 5*time.Second)

	a := startAgent(t, "agent-a", srv, t.TempDir())
	b := startAgent(t, "agent-b", srv, t.TempDir())

	var idA, idB string
	testkit.Eventually(t, 30*time.Second, "both agents enrolled", func() bool {
		idA, _ = a.identity()
		idB, _ = b.identity()
		return idA != "" && idB != ""
	})
	testkit.Eventually(t, 30*time.Second, "both devices COMPLIANT and connected", func() bool {
		sa, sb := srv.status(idA), srv.status(idB)
		return sa.State == proto.StateCompliant && sb.State == proto.StateCompliant && sa.Connected && sb.Connected
	})

	// A device that enrolled but never reported is UNKNOWN.
	var silent proto.EnrollResponse
	if code, body := srv.call("POST", "/enroll", srv.enroll, `{"model":"silent"}`, &silent); code != 201 {
		t.Fatalf("enroll: %d %s", code, body)
	}
	if st := srv.status(silent.DeviceID); st.State != proto.StateUnknown {
		t.Fatalf("never-reported device is %s, want UNKNOWN", st.State)
	}

	// An edit rings A's doorbell, which mosquitto_sub (operator login) sees.
	sub := startMosquittoSub(t, srv, proto.PolicyChangedWildcard)
	editAt := time.Now()
	p := srv.setCamera(idA, true)
	if p.Version != 2 || !p.CameraDisabled {
		t.Fatalf("edit returned %+v", p)
	}
	select {
	case line := <-sub.got:
		want := fmt.Sprintf(`devices/%s/policy_changed {"type":"policy_changed","version":2}`, idA)
		if line != want {
			t.Fatalf("mosquitto_sub printed %q, want %q", line, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mosquitto_sub saw no doorbell within 10s")
	}

	// A converges long before its 1h interval: only the doorbell can do that.
	testkit.Eventually(t, 30*time.Second, "A COMPLIANT with version 2", func() bool {
		st := srv.status(idA)
		return st.State == proto.StateCompliant && st.AppliedVersion == 2
	})
	t.Logf("edit to COMPLIANT through the doorbell (polled, informational): %v", time.Since(editAt))
	if got := a.deviceState()["cameraDisabled"]; got != true {
		t.Fatalf("A's device file has cameraDisabled=%v, want true", got)
	}
	if st := srv.status(idB); st.DesiredVersion != 1 || st.State != proto.StateCompliant {
		t.Fatalf("B was touched by A's edit: %+v", st)
	}

	// A device that refuses (locked) reports its unchanged state: NON_COMPLIANT.
	if err := os.WriteFile(a.devicePath, []byte(`{"cameraDisabled": true, "locked": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.setCamera(idA, false)
	testkit.Eventually(t, 30*time.Second, "locked A NON_COMPLIANT at version 3", func() bool {
		st := srv.status(idA)
		return st.State == proto.StateNonCompliant && st.AppliedVersion == 3
	})
	if got := a.deviceState()["cameraDisabled"]; got != true {
		t.Fatalf("locked device file changed: cameraDisabled=%v", got)
	}

	// mosquitto_sub printed doorbells for A's topic only.
	testkit.Eventually(t, 10*time.Second, "second doorbell printed", func() bool { return len(sub.all()) >= 2 })
	for _, line := range sub.all() {
		if !strings.HasPrefix(line, "devices/"+idA+"/policy_changed ") {
			t.Fatalf("mosquitto_sub printed a doorbell for another topic: %q", line)
		}
	}

	// Restart the server on the same ports: devices, versions and reports
	// survive, and the agents keep their ids.
	before := map[string]proto.DeviceStatus{}
	for _, d := range srv.devices() {
		before[d.DeviceID] = d
	}
	srv.stop()
	srv = startServer(t, dataDir, srv.httpAddr, srv.mqttAddr)
	after := srv.devices()
	if len(after) != len(before) || len(after) != 3 {
		t.Fatalf("after restart %d devices, before %d (want 3)", len(after), len(before))
	}
	for _, d := range after {
		w := before[d.DeviceID]
		if d.DesiredVersion != w.DesiredVersion || d.AppliedVersion != w.AppliedVersion || d.State != w.State ||
			d.LastReportAt == nil && w.LastReportAt != nil {
			t.Fatalf("device %s changed across restart: %+v -> %+v", d.DeviceID, w, d)
		}
	}
	// The agents reconnect and keep working with the same ids.
	srv.setCamera(idB, true)
	testkit.Eventually(t, 90*time.Second, "B COMPLIANT with version 2 after restart", func() bool {
		st := srv.status(idB)
		return st.State == proto.StateCompliant && st.AppliedVersion == 2
	})
	if id, _ := a.identity(); id != idA {
		t.Fatalf("A's id changed: %s -> %s", idA, id)
	}
	if id, _ := b.identity(); id != idB {
		t.Fatalf("B's id changed: %s -> %s", idB, id)
	}
	if n := len(srv.devices()); n != 3 {
		t.Fatalf("%d devices after restart, want 3 (an agent re-enrolled)", n)
	}

	// A device's credentials cannot read another device's doorbell.
	_, secretA := a.identity()
	a.stop()
	c := mqtt.NewClient(srv.mqttOptions(a.certificate()...).
		SetClientID(idA).SetUsername(idA).SetPassword(secretA).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("A's credentials cannot connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	for _, topic := range []string{proto.PolicyChangedTopic(idB), proto.PolicyChangedWildcard} {
		tok := c.Subscribe(topic, 1, nil)
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatalf("no SUBACK for %s", topic)
		}
		if code := tok.(*mqtt.SubscribeToken).Result()[topic]; code < 0x80 {
			t.Fatalf("A subscribed to %s with code %#x, want a refusal (>= 0x80)", topic, code)
		}
	}
	tok := c.Subscribe(proto.PolicyChangedTopic(idA), 1, nil)
	tok.WaitTimeout(10 * time.Second)
	if code := tok.(*mqtt.SubscribeToken).Result()[proto.PolicyChangedTopic(idA)]; code >= 0x80 {
		t.Fatalf("A may not subscribe to its own topic: %#x", code)
	}
}
