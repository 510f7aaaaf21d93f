package broker_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/broker"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
)

// startLimited serves a broker with a connection limit.
func startLimited(t *testing.T, maxConns int) *testBroker {
	t.Helper()
	b, err := broker.New(newCreds(), broker.Config{Addr: "127.0.0.1:0", MaxConnections: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &testBroker{Broker: b}
}

func TestConnectionLimit(t *testing.T) {
	tb := startLimited(t, 2)
	a := connectDevice(t, tb, "dev-a")
	connectDevice(t, tb, "dev-b")

	// A third connection is closed at once, before it can even log in.
	_, tok := connect(t, tb, "op-1", "operator", operatorToken)
	if tok.Error() == nil {
		t.Fatal("a connection beyond the limit was accepted")
	}

	// A slot frees up when a client leaves.
	a.Disconnect(0)
	testkit.EventuallyNil(t, wait, "a connection accepted after a client left", func() error {
		c, tok := connect(t, tb, "op-1", "operator", operatorToken)
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	})
}

func TestOversizedPacketRefused(t *testing.T) {
	tb := startLimited(t, 0)
	conn, err := net.Dial("tcp", tb.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A CONNECT announcing a 1 MiB body (remaining length 1048576 as an
	// MQTT variable byte integer), far beyond the 4 KiB packet limit.
	if _, err := conn.Write([]byte{0x10, 0x80, 0x80, 0x40}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 16)
	n, err := conn.Read(buf)
	for err == nil {
		// An MQTT 3 broker may answer nothing; whatever it sends, the
		// connection must end.
		_, err = conn.Read(buf)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after an oversized packet (read %d bytes)", n)
	}
	if err != io.EOF {
		t.Logf("connection ended with %v", err)
	}
}
