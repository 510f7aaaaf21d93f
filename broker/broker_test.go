package broker_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorbell-mdm/doorbell/broker"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// wait bounds every wait in these tests; it is a failure guard, never a
// stand-in for synchronisation.
const wait = 5 * time.Second

const operatorToken = "op-token-0123456789"

// secrets are the device secrets the fake credentials accept.
var secrets = map[string]string{
	"dev-a":  "secret-a-0123456789",
	"dev-b":  "secret-b-0123456789",
	"inline": "secret-inline-0123456789",
}

type fakeCreds struct {
	authenticateDevice   func(deviceID, secret string) bool
	authenticateOperator func(token string) bool
}

var _ broker.Credentials = (*fakeCreds)(nil)

func (f *fakeCreds) AuthenticateDevice(deviceID, secret string) bool {
	return f.authenticateDevice(deviceID, secret)
}

func (f *fakeCreds) AuthenticateOperator(token string) bool {
	return f.authenticateOperator(token)
}

func newCreds() *fakeCreds {
	return &fakeCreds{
		authenticateDevice: func(id, secret string) bool {
			want, ok := secrets[id]
			return ok && secret == want
		},
		authenticateOperator: func(token string) bool { return token == operatorToken },
	}
}

type presenceEvent struct {
	deviceID  string
	connected bool
}

// testBroker is a served broker on 127.0.0.1:0 with its presence events and
// the client ids of every OnDisconnect.
type testBroker struct {
	*broker.Broker
	presence    chan presenceEvent
	disconnects chan string
}

// syncWriter is an io.Writer safe for concurrent use that stops writing once
// the test is over.
type syncWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *syncWriter) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startBroker(t *testing.T, logTo io.Writer) *testBroker {
	t.Helper()
	if logTo == nil {
		logTo = tWriter{t}
	}
	sw := &syncWriter{w: logTo}
	t.Cleanup(sw.stop) // runs last: after the broker is closed
	logger := slog.New(slog.NewTextHandler(sw, &slog.HandlerOptions{Level: slog.LevelDebug}))

	tb := &testBroker{
		presence:    make(chan presenceEvent, 100),
		disconnects: make(chan string, 100),
	}
	b, err := broker.New(newCreds(), broker.Config{
		Addr:   "127.0.0.1:0",
		Logger: logger,
		OnPresence: func(id string, connected bool) {
			tb.presence <- presenceEvent{id, connected}
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tb.Broker = b
	broker.SetAfterDisconnect(b, func(id string) { tb.disconnects <- id })
	if err := b.Serve(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tb
}

// nextPresence returns the next presence event.
func (tb *testBroker) nextPresence(t *testing.T) presenceEvent {
	t.Helper()
	select {
	case ev := <-tb.presence:
		return ev
	case <-time.After(wait):
		t.Fatal("timed out waiting for a presence event")
		return presenceEvent{}
	}
}

// awaitDisconnect waits for the OnDisconnect of client id.
func (tb *testBroker) awaitDisconnect(t *testing.T, id string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case got := <-tb.disconnects:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for the disconnect of %s", id)
		}
	}
}

type message struct {
	topic   string
	payload string
}

// client is a real paho client with its received messages and lost signal.
type client struct {
	paho.Client
	messages chan message
	lost     chan error
}

// connect logs clientID in as user/password and returns the client and the
// connect error (nil when accepted).
func connect(t *testing.T, tb *testBroker, clientID, user, password string, opts ...func(*paho.ClientOptions)) (*client, paho.Token) {
	t.Helper()
	c := &client{messages: make(chan message, 100), lost: make(chan error, 1)}
	o := paho.NewClientOptions().
		AddBroker("tcp://" + tb.Addr()).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(wait).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	for _, opt := range opts {
		opt(o)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		t.Fatalf("connect %s: timed out", clientID)
	}
	t.Cleanup(func() {
		if c.IsConnected() {
			c.Disconnect(0)
		}
	})
	return c, tok
}

// mustConnect connects and fails the test unless the login is accepted.
func mustConnect(t *testing.T, tb *testBroker, clientID, user, password string, opts ...func(*paho.ClientOptions)) *client {
	t.Helper()
	c, tok := connect(t, tb, clientID, user, password, opts...)
	if err := tok.Error(); err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	return c
}

func connectDevice(t *testing.T, tb *testBroker, id string) *client {
	t.Helper()
	return mustConnect(t, tb, id, id, secrets[id])
}

// subscribe subscribes to filter at QoS 1 and returns the SUBACK code.
func (c *client) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		c.messages <- message{m.Topic(), string(m.Payload())}
	})
	if !tok.WaitTimeout(wait) {
		t.Fatalf("subscribe %s: timed out", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	key := filter
	if strings.HasPrefix(key, "$share/") { // paho keys results by the filter without the share prefix
		key = strings.Join(strings.Split(key, "/")[2:], "/")
	}
	code, ok := tok.(*paho.SubscribeToken).Result()[key]
	if !ok {
		t.Fatalf("subscribe %s: no SUBACK code", filter)
	}
	return code
}

// next returns the next message the client received.
func (c *client) next(t *testing.T) message {
	t.Helper()
	select {
	case m := <-c.messages:
		return m
	case <-time.After(wait):
		t.Fatal("timed out waiting for a message")
		return message{}
	}
}

// awaitLost waits for paho's connection-lost handler.
func (c *client) awaitLost(t *testing.T) {
	t.Helper()
	select {
	case <-c.lost:
	case <-time.After(wait):
		t.Fatal("timed out waiting for the connection to be lost")
	}
}

func doorbell(version int64) string {
	return `{"type":"policy_changed","version":` + strconv.FormatInt(version, 10) + `}`
}

const (
	subackQos1   = 0x01
	subackFailed = 0x80 // MQTT 3.1.1 failure code; mochi maps "not authorized" to it
)

func TestLogin(t *testing.T) {
	tb := startBroker(t, nil)
	tests := []struct {
		name     string
		clientID string
		user     string
		password string
		wantOK   bool
	}{
		{name: "device", clientID: "dev-a", user: "dev-a", password: secrets["dev-a"], wantOK: true},
		{name: "device wrong secret", clientID: "dev-a", user: "dev-a", password: secrets["dev-b"]},
		{name: "device empty secret", clientID: "dev-a", user: "dev-a", password: ""},
		{name: "client id differs from username", clientID: "dev-b", user: "dev-a", password: secrets["dev-a"]},
		{name: "unknown user", clientID: "nobody", user: "nobody", password: "whatever"},
		{name: "no username", clientID: "dev-a", user: "", password: secrets["dev-a"]},
		{name: "reserved inline client id", clientID: "inline", user: "inline", password: secrets["inline"]},
		{name: "operator", clientID: "op-1", user: "operator", password: operatorToken, wantOK: true},
		{name: "operator wrong token", clientID: "op-1", user: "operator", password: "nope"},
		{name: "operator token as device secret", clientID: "dev-a", user: "dev-a", password: operatorToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, tok := connect(t, tb, tt.clientID, tt.user, tt.password)
			if tt.wantOK {
				if err := tok.Error(); err != nil {
					t.Fatalf("login refused: %v", err)
				}
				c.Disconnect(0)
				return
			}
			if tok.Error() == nil {
				c.Disconnect(0)
				t.Fatal("login accepted, want refused")
			}
			// MQTT 3.1.1 return code 5: not authorized.
			if got := tok.(*paho.ConnectToken).ReturnCode(); got != 5 {
				t.Errorf("CONNACK return code = %d, want 5", got)
			}
		})
	}
}

func TestOperatorCannotTakeADeviceClientID(t *testing.T) {
	tb := startBroker(t, nil)
	dev := connectDevice(t, tb, "dev-a")
	if ev := tb.nextPresence(t); ev != (presenceEvent{"dev-a", true}) {
		t.Fatalf("presence = %+v, want dev-a connected", ev)
	}

	_, tok := connect(t, tb, "dev-a", "operator", operatorToken)
	if tok.Error() == nil {
		t.Fatal("operator took a connected device's client id")
	}
	// The device's session is untouched: it still gets its doorbell.
	if code := dev.subscribe(t, proto.PolicyChangedTopic("dev-a")); code != subackQos1 {
		t.Fatalf("SUBACK = %#x, want %#x", code, subackQos1)
	}
	if !tb.Connected("dev-a") {
		t.Error("device marked disconnected")
	}
}

func TestDeviceReceivesItsDoorbell(t *testing.T) {
	tb := startBroker(t, nil)
	dev := connectDevice(t, tb, "dev-a")
	topic := proto.PolicyChangedTopic("dev-a")
	if code := dev.subscribe(t, topic); code != subackQos1 {
		t.Fatalf("SUBACK = %#x, want %#x", code, subackQos1)
	}
	if err := tb.Publish(topic, []byte(doorbell(3)), false, 1); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := dev.next(t)
	if want := (message{topic, doorbell(3)}); got != want {
		t.Errorf("received %+v, want %+v", got, want)
	}
}

func TestDeviceSubscribeRefused(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		leak   string // a topic the filter matches that is not the device's own
	}{
		{name: "other device", filter: proto.PolicyChangedTopic("dev-b"), leak: proto.PolicyChangedTopic("dev-b")},
		{name: "doorbell wildcard", filter: proto.PolicyChangedWildcard, leak: proto.PolicyChangedTopic("dev-b")},
		{name: "everything", filter: "#", leak: "anything/else"},
		{name: "own subtree", filter: "devices/dev-a/#", leak: "devices/dev-a/other"},
		{name: "shared wildcard", filter: "$share/g/" + proto.PolicyChangedWildcard, leak: proto.PolicyChangedTopic("dev-b")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := startBroker(t, nil)
			dev := connectDevice(t, tb, "dev-a")
			own := proto.PolicyChangedTopic("dev-a")
			if code := dev.subscribe(t, own); code != subackQos1 {
				t.Fatalf("own topic SUBACK = %#x, want %#x", code, subackQos1)
			}
			if code := dev.subscribe(t, tt.filter); code != subackFailed {
				t.Fatalf("SUBACK for %s = %#x, want %#x", tt.filter, code, subackFailed)
			}

			if err := tb.Publish(tt.leak, []byte("leak"), false, 1); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if err := tb.Publish(own, []byte("marker"), false, 1); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if got, want := dev.next(t), (message{own, "marker"}); got != want {
				t.Errorf("first message = %+v, want only the marker %+v", got, want)
			}
		})
	}
}

func TestNobodyPublishes(t *testing.T) {
	target := proto.PolicyChangedTopic("dev-a")
	tests := []struct {
		name           string
		clientID       string
		user, password string
		qos            byte
		// wantKicked: mochi disconnects an MQTT 3 client whose QoS 1
		// publish is refused, as it cannot send a negative PUBACK.
		wantKicked bool
	}{
		{name: "device on its own topic", clientID: "dev-a", user: "dev-a", password: secrets["dev-a"]},
		{name: "device on another device's topic", clientID: "dev-b", user: "dev-b", password: secrets["dev-b"]},
		{name: "device at qos 1", clientID: "dev-b", user: "dev-b", password: secrets["dev-b"], qos: 1, wantKicked: true},
		{name: "operator", clientID: "op-2", user: "operator", password: operatorToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := startBroker(t, nil)
			watcher := mustConnect(t, tb, "op-1", "operator", operatorToken)
			if code := watcher.subscribe(t, proto.PolicyChangedWildcard); code != subackQos1 {
				t.Fatalf("operator SUBACK = %#x, want %#x", code, subackQos1)
			}

			pub := mustConnect(t, tb, tt.clientID, tt.user, tt.password)
			pub.Publish(target, tt.qos, false, "forged")
			if tt.wantKicked {
				pub.awaitLost(t)
			} else {
				// mochi handles one client's packets in order: once this
				// SUBACK is back, the publish has been processed.
				pub.subscribe(t, "sync/"+tt.clientID)
			}

			if err := tb.Publish(target, []byte("marker"), false, 1); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if got, want := watcher.next(t), (message{target, "marker"}); got != want {
				t.Errorf("first message = %+v, want only the marker %+v", got, want)
			}
		})
	}
}

func TestWillIsNeverPublished(t *testing.T) {
	tb := startBroker(t, nil)
	target := proto.PolicyChangedTopic("dev-a")
	watcher := mustConnect(t, tb, "op-1", "operator", operatorToken)
	if code := watcher.subscribe(t, proto.PolicyChangedWildcard); code != subackQos1 {
		t.Fatalf("operator SUBACK = %#x, want %#x", code, subackQos1)
	}

	dev := mustConnect(t, tb, "dev-b", "dev-b", secrets["dev-b"], func(o *paho.ClientOptions) {
		o.SetWill(target, "forged will", 1, true)
	})
	tb.Disconnect("dev-b") // an unclean end: mochi would send the will here
	dev.awaitLost(t)
	tb.awaitDisconnect(t, "dev-b")

	if err := tb.Publish(target, []byte("marker"), false, 1); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got, want := watcher.next(t), (message{target, "marker"}); got != want {
		t.Errorf("first message = %+v, want only the marker %+v", got, want)
	}
}

func TestOperatorSeesEveryDoorbell(t *testing.T) {
	tb := startBroker(t, nil)
	op := mustConnect(t, tb, "op-1", "operator", operatorToken)
	if code := op.subscribe(t, proto.PolicyChangedWildcard); code != subackQos1 {
		t.Fatalf("SUBACK = %#x, want %#x", code, subackQos1)
	}
	want := []message{
		{proto.PolicyChangedTopic("dev-a"), doorbell(2)},
		{proto.PolicyChangedTopic("dev-b"), doorbell(5)},
		{proto.PolicyChangedTopic("never-connected"), doorbell(1)},
	}
	for _, m := range want {
		if err := tb.Publish(m.topic, []byte(m.payload), false, 1); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	for i, w := range want {
		if got := op.next(t); got != w {
			t.Errorf("message %d = %+v, want %+v", i, got, w)
		}
	}
}

func TestPresence(t *testing.T) {
	tb := startBroker(t, nil)
	if tb.Connected("dev-a") || tb.ConnectedCount() != 0 {
		t.Fatal("device connected before it connected")
	}

	dev := connectDevice(t, tb, "dev-a")
	if ev := tb.nextPresence(t); ev != (presenceEvent{"dev-a", true}) {
		t.Fatalf("presence = %+v, want dev-a connected", ev)
	}
	if !tb.Connected("dev-a") || tb.ConnectedCount() != 1 {
		t.Fatalf("Connected = %v, ConnectedCount = %d; want true, 1", tb.Connected("dev-a"), tb.ConnectedCount())
	}

	// An operator is not a device. Its SUBACK comes after its session is
	// established, so presence has had its chance to change.
	op := mustConnect(t, tb, "op-1", "operator", operatorToken)
	op.subscribe(t, "#")
	if tb.Connected("op-1") || tb.ConnectedCount() != 1 {
		t.Errorf("operator counted as a device: ConnectedCount = %d", tb.ConnectedCount())
	}

	dev.Disconnect(0)
	if ev := tb.nextPresence(t); ev != (presenceEvent{"dev-a", false}) {
		t.Fatalf("presence = %+v, want dev-a disconnected", ev)
	}
	if tb.Connected("dev-a") || tb.ConnectedCount() != 0 {
		t.Errorf("Connected = %v, ConnectedCount = %d; want false, 0", tb.Connected("dev-a"), tb.ConnectedCount())
	}
}

func TestPresenceSurvivesTakeover(t *testing.T) {
	tests := []struct {
		name  string
		clean bool
	}{
		{name: "clean session", clean: true},
		{name: "persistent session", clean: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := startBroker(t, nil)
			session := func(o *paho.ClientOptions) { o.SetCleanSession(tt.clean) }
			old := mustConnect(t, tb, "dev-a", "dev-a", secrets["dev-a"], session)
			if ev := tb.nextPresence(t); ev != (presenceEvent{"dev-a", true}) {
				t.Fatalf("presence = %+v, want dev-a connected", ev)
			}

			// The same device again while the old connection is open.
			mustConnect(t, tb, "dev-a", "dev-a", secrets["dev-a"], session)
			old.awaitLost(t)
			tb.awaitDisconnect(t, "dev-a") // the old connection's disconnect has run
			// ...and so has the new session's establishment, whichever came first.
			for ev := tb.nextPresence(t); ev != (presenceEvent{"dev-a", true}); ev = tb.nextPresence(t) {
			}

			if !tb.Connected("dev-a") || tb.ConnectedCount() != 1 {
				t.Errorf("after takeover Connected = %v, ConnectedCount = %d; want true, 1", tb.Connected("dev-a"), tb.ConnectedCount())
			}
		})
	}
}

func TestDisconnect(t *testing.T) {
	tb := startBroker(t, nil)
	dev := connectDevice(t, tb, "dev-a")
	other := connectDevice(t, tb, "dev-b")
	for range 2 {
		tb.nextPresence(t)
	}

	tb.Disconnect("dev-a")
	if tb.Connected("dev-a") {
		t.Error("Connected right after Disconnect")
	}
	dev.awaitLost(t)
	if ev := tb.nextPresence(t); ev != (presenceEvent{"dev-a", false}) {
		t.Fatalf("presence = %+v, want dev-a disconnected", ev)
	}
	tb.awaitDisconnect(t, "dev-a")
	if tb.Connected("dev-a") || !tb.Connected("dev-b") || tb.ConnectedCount() != 1 {
		t.Errorf("Connected(dev-a) = %v, Connected(dev-b) = %v, ConnectedCount = %d; want false, true, 1",
			tb.Connected("dev-a"), tb.Connected("dev-b"), tb.ConnectedCount())
	}
	if !other.IsConnected() {
		t.Error("the other device was disconnected too")
	}

	tb.Disconnect("never-connected") // must not panic or block
	tb.Disconnect("op-1")
}

func TestAddrResolvesPortZero(t *testing.T) {
	b, err := broker.New(newCreds(), broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b.Close()
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatalf("Addr %q: %v", b.Addr(), err)
	}
	if host != "127.0.0.1" || port == "0" || port == "" {
		t.Errorf("Addr = %q, want 127.0.0.1 with a real port", b.Addr())
	}
}

// brokerGoroutines returns the stacks of goroutines running mochi or this
// package's code.
func brokerGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/mochi-mqtt/server") || strings.Contains(g, "github.com/doorbell-mdm/doorbell/broker.") {
			found = append(found, g)
		}
	}
	return found
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	tb := startBroker(t, nil)
	dev := connectDevice(t, tb, "dev-a")
	op := mustConnect(t, tb, "op-1", "operator", operatorToken)
	op.subscribe(t, "#")
	// A connection that never sends CONNECT.
	silent, err := net.Dial("tcp", tb.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer silent.Close()

	if err := tb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	dev.awaitLost(t)
	op.awaitLost(t)
	if err := tb.Serve(); err == nil {
		t.Error("Serve after Close succeeded")
	}

	// mochi's housekeeping loop stops on its own just after Close; give it
	// a bounded moment.
	testkit.EventuallyNil(t, wait, "the broker's goroutines to end", func() error {
		if left := brokerGoroutines(); len(left) > 0 {
			return fmt.Errorf("%d goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		return nil
	})
}

func TestSecretsNeverLogged(t *testing.T) {
	var logs testkit.LockedBuffer
	tb := startBroker(t, &logs)

	connectDevice(t, tb, "dev-a").Disconnect(0)
	connect(t, tb, "dev-b", "dev-b", "wrong-secret-0123456789")
	connect(t, tb, "dev-b", secrets["dev-b"], "swapped-0123456789") // username and password swapped
	mustConnect(t, tb, "op-1", "operator", operatorToken).Disconnect(0)

	// A second CONNECT on a live connection: mochi logs the offending
	// packet, password included, unless redacted.
	const second = "second-connect-secret-0123456789"
	conn, err := net.Dial("tcp", tb.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Write(connectPacket(t, "dev-a", secrets["dev-a"])); err != nil {
		t.Fatalf("write CONNECT: %v", err)
	}
	if ack := readConnack(t, conn, 4); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK reason %#x, want accepted", ack.ReasonCode)
	}
	if _, err := conn.Write(connectPacket(t, "dev-a", second)); err != nil {
		t.Fatalf("write second CONNECT: %v", err)
	}
	// The broker logs, then closes the connection.
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("waiting for the broker to close the connection: %v", err)
	}

	out := logs.String()
	if !strings.Contains(out, "error processing packet") {
		t.Fatalf("the second CONNECT was not logged; logs:\n%s", out)
	}
	for _, secret := range []string{secrets["dev-a"], secrets["dev-b"], operatorToken, "wrong-secret-0123456789", "swapped-0123456789", second} {
		// As text, as a %v of []byte (how slog's text handler prints a
		// packet's password), and as base64 (how encoding/json does).
		for _, form := range []string{secret, strings.Trim(fmt.Sprint([]byte(secret)), "[]"), base64.StdEncoding.EncodeToString([]byte(secret))} {
			if strings.Contains(out, form) {
				t.Errorf("logs contain secret %q as %q:\n%s", secret, form, out)
			}
		}
	}
}

// connectPacket encodes an MQTT 3.1.1 CONNECT.
func connectPacket(t *testing.T, id, password string) []byte {
	t.Helper()
	return connectPacketV(t, 4, 30, id, password)
}

// connectPacketV encodes a CONNECT of the given protocol version and keepalive.
func connectPacketV(t *testing.T, version byte, keepalive uint16, id, password string) []byte {
	t.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            true,
			Keepalive:        keepalive,
			ClientIdentifier: id,
			UsernameFlag:     true,
			Username:         []byte(id),
			PasswordFlag:     true,
			Password:         []byte(password),
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatalf("encoding CONNECT: %v", err)
	}
	return buf.Bytes()
}

// readConnack reads and decodes one CONNACK of the given protocol version.
func readConnack(t *testing.T, conn net.Conn, version byte) packets.Packet {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	pk := packets.Packet{ProtocolVersion: version}
	if err := pk.FixedHeader.Decode(first[0]); err != nil || pk.FixedHeader.Type != packets.Connack {
		t.Fatalf("first packet type %d (%v), want CONNACK", pk.FixedHeader.Type, err)
	}
	r := &byteReader{conn}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		t.Fatalf("reading CONNACK length: %v", err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	if err := pk.ConnackDecode(body); err != nil {
		t.Fatalf("decoding CONNACK: %v", err)
	}
	return pk
}

type byteReader struct{ r io.Reader }

func (b *byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.r, p[:])
	return p[0], err
}

func TestKeepaliveBoundedForMQTT5(t *testing.T) {
	tb := startBroker(t, nil)
	tests := []struct {
		name      string
		version   byte
		keepalive uint16
		wantFlag  bool   // the CONNACK carries a Server Keep Alive
		want      uint16 // its value
	}{
		{name: "v5 none", version: 5, keepalive: 0, wantFlag: true, want: 20 * 60},
		{name: "v5 too long", version: 5, keepalive: 2 * 60 * 60, wantFlag: true, want: 20 * 60},
		{name: "v5 within bounds", version: 5, keepalive: 60},
		{name: "v3 none cannot be told", version: 4, keepalive: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", tb.Addr())
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			if _, err := conn.Write(connectPacketV(t, tt.version, tt.keepalive, "dev-a", secrets["dev-a"])); err != nil {
				t.Fatalf("write CONNECT: %v", err)
			}
			ack := readConnack(t, conn, tt.version)
			if ack.ReasonCode != 0 {
				t.Fatalf("CONNACK reason %#x, want accepted", ack.ReasonCode)
			}
			if ack.Properties.ServerKeepAliveFlag != tt.wantFlag || ack.Properties.ServerKeepAlive != tt.want {
				t.Errorf("Server Keep Alive = %v %d, want %v %d",
					ack.Properties.ServerKeepAliveFlag, ack.Properties.ServerKeepAlive, tt.wantFlag, tt.want)
			}
		})
	}
}
