package broker_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorbell-mdm/doorbell/broker"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
)

// stalledOperator logs in as an operator, subscribes to every doorbell at
// QoS 1 and then never reads again: the slow consumer of issue 17,
// finding 6.
func stalledOperator(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096) // fill up soon
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte("operator"),
			PasswordFlag: true, Password: []byte(operatorToken),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if ack := readConnack(t, conn, 4); ack.ReasonCode != 0 {
		t.Fatalf("operator login refused: %d", ack.ReasonCode)
	}
	sub := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		ProtocolVersion: 4,
		PacketID:        1,
		Filters:         packets.Subscriptions{{Filter: "devices/+/policy_changed", Qos: 1}},
	}
	buf.Reset()
	if err := sub.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	suback := make([]byte, 5) // 0x90 0x03 id id code
	conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.ReadFull(conn, suback); err != nil || suback[0] != 0x90 || suback[4] != 1 {
		t.Fatalf("SUBACK = % x, %v", suback, err)
	}
	return conn
}

// TestSlowOperatorsDoNotHoldDevices: operator sessions that never read
// cost a bounded amount each, their drops are counted in MessagesDropped
// and summarised in the log (not one line per message), and a device still
// gets its doorbell at once.
func TestSlowOperatorsDoNotHoldDevices(t *testing.T) {
	const stalled, devices, rounds = 200, 300, 3
	logs := &testkit.LockedBuffer{}
	b, err := broker.New(newCreds(), broker.Config{
		Addr:   "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tb := &testBroker{Broker: b}

	var wg sync.WaitGroup
	for i := range stalled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stalledOperator(t, b.Addr(), fmt.Sprintf("stalled-%d", i))
		}()
	}
	wg.Wait()
	dev := connectDevice(t, tb, "dev-a")
	dev.subscribe(t, "devices/dev-a/policy_changed")

	for r := range rounds {
		start := time.Now()
		for i := range devices {
			if err := b.Publish(fmt.Sprintf("devices/dev-%d/policy_changed", i), []byte(doorbell(int64(r))), false, 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Publish("devices/dev-a/policy_changed", []byte(doorbell(int64(r))), false, 1); err != nil {
			t.Fatal(err)
		}
		if m := dev.next(t); m.payload != doorbell(int64(r)) {
			t.Fatalf("device got %q, want %q", m.payload, doorbell(int64(r)))
		}
		t.Logf("round %d: %d doorbells published to %d stalled operators; the device had its own after %v",
			r, devices+1, stalled, time.Since(start))
	}

	info := b.Info()
	t.Logf("broker info: dropped %d, inflight %d, inflight dropped %d", info.MessagesDropped, info.Inflight, info.InflightDropped)
	if info.MessagesDropped == 0 {
		t.Errorf("MessagesDropped = 0 after %d doorbells to %d operators that never read", rounds*(devices+1), stalled)
	}
	if max := int64(stalled*broker.OperatorMaxInflight + 10); info.Inflight > max { // +10: the device's own
		t.Errorf("%d messages in flight, want at most %d (%d per stalled operator)", info.Inflight, max, broker.OperatorMaxInflight)
	}
	lines := strings.Count(logs.String(), "\n")
	if lines > stalled+20 {
		t.Errorf("%d log lines for the drops (want a summary, not a line per message); first lines:\n%.2000s", lines, logs.String())
	}
}

// TestSlowOperatorDisconnected: an operator session that stays behind
// longer than SlowSubscriberTimeout is disconnected; a reading one is kept.
func TestSlowOperatorDisconnected(t *testing.T) {
	logs := &testkit.LockedBuffer{}
	b, err := broker.New(newCreds(), broker.Config{
		Addr:                  "127.0.0.1:0",
		Logger:                slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		SlowSubscriberTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tb := &testBroker{Broker: b}
	conn := stalledOperator(t, b.Addr(), "stalled")
	reader := mustConnect(t, tb, "reader", "operator", operatorToken)
	got := make(chan struct{}, 10000)
	reader.Subscribe("devices/+/policy_changed", 1, func(_ paho.Client, _ paho.Message) { got <- struct{}{} }).WaitTimeout(wait)

	start := time.Now()
	deadline := time.Now().Add(wait)
	closed := make(chan struct{})
	go func() { // the stalled operator's connection ends
		defer close(closed)
		conn.SetReadDeadline(time.Now().Add(wait))
		io.Copy(io.Discard, conn) // returns once the broker closes it... after reading; that is fine
	}()
	published := 0
	for {
		if err := b.Publish(fmt.Sprintf("devices/dev-%d/policy_changed", published), []byte(doorbell(1)), false, 1); err != nil {
			t.Fatal(err)
		}
		published++
		if strings.Contains(logs.String(), "slow subscriber disconnected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stalled operator not disconnected after %d doorbells; logs:\n%s", published, logs.String())
		}
		time.Sleep(10 * time.Millisecond) // pacing the publishes; the log is the condition
	}
	t.Logf("stalled operator disconnected %v after the first doorbell (%d published)", time.Since(start), published)
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("stalled operator's connection still open")
	}
	if !reader.IsConnected() {
		t.Error("the reading operator was disconnected too")
	}
	for range published {
		select {
		case <-got:
		case <-time.After(wait):
			t.Fatal("the reading operator missed doorbells")
		}
	}
}
