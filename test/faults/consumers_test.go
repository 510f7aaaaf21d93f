package faults

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// stalledOperator logs in to the broker as an operator, subscribes to every
// doorbell at QoS 1 and never reads again.
func stalledOperator(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	var buf bytes.Buffer
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte("operator"), PasswordFlag: true, Password: []byte(adminToken)},
	}
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "devices/+/policy_changed", Qos: 1}}}
	if err := sub.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4+5) // CONNACK, SUBACK
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 || ack[4] != 0x90 {
		t.Fatalf("operator login/subscribe: % x %v", ack, err)
	}
	return conn
}

// metric reads one metric's value from /metrics.
func (s *server) metric(name string) float64 {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	s.t.Fatalf("no metric %s", name)
	return 0
}

// TestSlowOperatorConsumers: operator MQTT sessions that never read do not
// hold up real agents, their drops are counted by the dropped-messages
// metric and summarised in the log, not logged one by one (issue 17,
// finding 6).
func TestSlowOperatorConsumers(t *testing.T) {
	const stalled, devices, rounds = 50, 100, 3
	s := startServer(t, t.TempDir(), withArgs("--mqtt-slow-subscriber-timeout", "2s"))
	creds := s.enroll(devices)
	var wg sync.WaitGroup
	for i := range stalled {
		wg.Add(1)
		go func() { defer wg.Done(); stalledOperator(t, s.mqtt, fmt.Sprintf("stalled-%d", i)) }()
	}
	wg.Wait()
	a := startAgent(t, s, filepath.Join(t.TempDir(), "agent"))
	testkit.Eventually(t, 30*time.Second, "the agent connected", func() bool { return a.id() != "" && s.status(a.id()).Connected })
	for r := range rounds {
		for _, c := range creds {
			s.mustCall("PUT", "/devices/"+c.DeviceID+"/policy", adminToken, fmt.Sprintf(`{"cameraDisabled":%v}`, r%2 == 0), 200, nil)
		}
		t0 := time.Now()
		p := proto.DevicePolicy{}
		s.mustCall("PUT", "/devices/"+a.id()+"/policy", adminToken, fmt.Sprintf(`{"cameraDisabled":%v}`, r%2 == 0), 200, &p)
		testkit.Eventually(t, 60*time.Second, "the agent compliant with the edit", func() bool {
			st := s.status(a.id())
			return st.State == proto.StateCompliant && st.AppliedVersion == p.Version
		})
		t.Logf("round %d: %d doorbells to %d stalled operators; the agent compliant %v after its edit", r, devices+1, stalled, time.Since(t0))
	}
	dropped := s.metric("doorbell_mqtt_messages_dropped_total")
	t.Logf("doorbell_mqtt_messages_dropped_total = %v", dropped)
	if dropped == 0 {
		t.Error("the dropped-messages metric reads 0 with operators that never read")
	}
	lines := 0
	for _, l := range s.logLines() {
		if strings.Contains(l, "dropped") || strings.Contains(l, "quota") {
			lines++
		}
	}
	t.Logf("%d log lines about drops", lines)
	if lines > 20 {
		t.Errorf("%d log lines about drops: want a rate-limited summary", lines)
	}
	// --mqtt-slow-subscriber-timeout 2s (the default is 30 s) reaches the
	// broker (which disconnects a session found behind for longer when its
	// next doorbell is dropped: broker TestSlowOperatorDisconnected).
	if l := s.waitLog("mqtt slow subscriber timeout", 10*time.Second); l["timeout"] != "2s" {
		t.Errorf("slow subscriber timeout in force: %v, want 2s", l["timeout"])
	}
}
