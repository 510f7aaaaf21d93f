package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/doorbell-mdm/doorbell/proto"
)

// fakeBroker is just enough of an MQTT 3.1.1 broker to test the agent's
// session handling without the real one: it checks device credentials
// against the fake server, answers SUBSCRIBE and PINGREQ, and lets the test
// publish and drop connections.
type fakeBroker struct {
	t        *testing.T
	ln       net.Listener
	srv      *fakeServer
	reject   atomic.Bool // refuse every CONNECT (not authorized)
	down     atomic.Bool // close every connection at once, as a broker that is not up yet
	dropped  chan struct{}
	refused  chan string // client ids refused
	sessions chan *brokerSession
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

type brokerSession struct {
	connect *packets.ConnectPacket
	subs    chan *packets.SubscribePacket
	closed  chan struct{} // closed when the connection ended

	conn   net.Conn
	wmu    sync.Mutex
	nextID uint16
}

func newFakeBroker(t *testing.T, srv *fakeServer) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{t: t, ln: ln, srv: srv, refused: make(chan string, 100), dropped: make(chan struct{}, 100), sessions: make(chan *brokerSession, 100)}
	b.wg.Go(b.accept)
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *fakeBroker) url() string { return "tcp://" + b.ln.Addr().String() }

func (b *fakeBroker) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		if b.down.Load() {
			c.Close()
			b.dropped <- struct{}{}
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, c)
		b.mu.Unlock()
		b.wg.Go(func() { b.serve(c) })
	}
}

func (b *fakeBroker) serve(c net.Conn) {
	defer c.Close()
	p, err := packets.ReadPacket(c)
	if err != nil {
		return
	}
	cp, ok := p.(*packets.ConnectPacket)
	if !ok {
		return
	}
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	b.srv.mu.Lock()
	d, known := b.srv.devices[cp.ClientIdentifier]
	b.srv.mu.Unlock()
	if b.reject.Load() || !known || cp.Username != cp.ClientIdentifier || string(cp.Password) != d.secret {
		ack.ReturnCode = packets.ErrRefusedNotAuthorised
		ack.Write(c)
		b.refused <- cp.ClientIdentifier
		return
	}
	if err := ack.Write(c); err != nil {
		return
	}
	s := &brokerSession{connect: cp, subs: make(chan *packets.SubscribePacket, 10), closed: make(chan struct{}), conn: c}
	defer close(s.closed)
	b.sessions <- s
	for {
		p, err := packets.ReadPacket(c)
		if err != nil {
			return
		}
		switch p := p.(type) {
		case *packets.SubscribePacket:
			ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			ack.MessageID = p.MessageID
			ack.ReturnCodes = p.Qoss
			if err := s.write(ack); err != nil {
				return
			}
			s.subs <- p
		case *packets.PingreqPacket:
			if err := s.write(packets.NewControlPacket(packets.Pingresp)); err != nil {
				return
			}
		case *packets.DisconnectPacket:
			return
		}
	}
}

func (s *brokerSession) write(p packets.ControlPacket) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return p.Write(s.conn)
}

// publish sends a QoS 1 message to the client.
func (s *brokerSession) publish(t *testing.T, topic string, payload []byte) {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	s.wmu.Lock()
	s.nextID++
	p.MessageID = s.nextID
	s.wmu.Unlock()
	p.TopicName, p.Payload, p.Qos = topic, payload, 1
	if err := s.write(p); err != nil {
		t.Fatalf("publishing: %v", err)
	}
}

func doorbell(t *testing.T, v int64) []byte {
	t.Helper()
	b, err := json.Marshal(proto.Doorbell{Type: proto.DoorbellType, Version: v})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkSession(t *testing.T, s *brokerSession, id, secret string) {
	t.Helper()
	c := s.connect
	if c.ClientIdentifier != id || c.Username != id || string(c.Password) != secret {
		t.Errorf("CONNECT client id %q, username %q, password ok=%v; want the device id and secret",
			c.ClientIdentifier, c.Username, string(c.Password) == secret)
	}
	if !c.CleanSession {
		t.Error("CONNECT without a clean session")
	}
	sub := recv(t, s.subs, "SUBSCRIBE")
	want := proto.PolicyChangedTopic(id)
	if len(sub.Topics) != 1 || sub.Topics[0] != want || sub.Qoss[0] != 1 {
		t.Errorf("SUBSCRIBE %v qos %v, want [%s] qos 1", sub.Topics, sub.Qoss, want)
	}
}

func TestMQTTSession(t *testing.T) {
	srv := newFakeServer(t)
	b := newFakeBroker(t, srv)
	srv.mqttURL = b.url()
	h := newHarness(t, srv, t.TempDir(), func(c *Config) { c.DisableMQTT = false })
	stop := h.runAgent(t)

	r := recv(t, h.results, "the sync at start")
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	id := r.DeviceID
	topic := proto.PolicyChangedTopic(id)

	t.Run("connects with the device credentials and subscribes", func(t *testing.T) {
		s := recv(t, b.sessions, "a session")
		checkSession(t, s, id, srv.secret(id))
		r := recv(t, h.results, "the sync after connecting")
		if r.Err != nil || !r.Skipped {
			t.Errorf("sync after connect = %+v, want a skipped (304) sync", r)
		}

		t.Run("doorbell syncs", func(t *testing.T) {
			v := srv.setPolicy(id, proto.Settings{CameraDisabled: true})
			s.publish(t, topic, doorbell(t, v))
			r := recv(t, h.results, "the doorbell sync")
			if r.Err != nil || r.PolicyVersion != v || r.Skipped || !r.Compliant {
				t.Errorf("doorbell sync = %+v, want version %d applied", r, v)
			}
		})

		t.Run("reconnects after a jittered delay, resubscribes and syncs", func(t *testing.T) {
			s.conn.Close()
			d := h.clock.waitTimer(t, 500*time.Millisecond, 1500*time.Millisecond)
			h.clock.Advance(d)
			s2 := recv(t, b.sessions, "the second session")
			checkSession(t, s2, id, srv.secret(id))
			if r := recv(t, h.results, "the sync after reconnecting"); r.Err != nil {
				t.Errorf("sync after reconnect: %v", r.Err)
			}

			t.Run("re-enrollment switches credentials", func(t *testing.T) {
				srv.revoke(id)
				s2.publish(t, topic, doorbell(t, 99))
				r := recv(t, h.results, "the re-enrolling sync")
				if r.Err != nil || r.DeviceID == id {
					t.Fatalf("sync = %+v, want a re-enrolled device", r)
				}
				s3 := recv(t, b.sessions, "the session with new credentials")
				checkSession(t, s3, r.DeviceID, srv.secret(r.DeviceID))
				recv(t, s2.closed, "the old session to close")
				if r := recv(t, h.results, "the sync after reconnecting"); r.DeviceID != s3.connect.ClientIdentifier {
					t.Errorf("sync after reconnect = %+v", r)
				}
			})
		})
	})

	stop()
	assertNoAgentGoroutines(t)
}

func TestMQTTReconnectBackoff(t *testing.T) {
	srv := newFakeServer(t)
	b := newFakeBroker(t, srv)
	b.reject.Store(true)
	// The server announces no broker; the config override names it.
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.DisableMQTT = false
		c.MQTTURL = b.url()
	})
	stop := h.runAgent(t)
	r := recv(t, h.results, "the sync at start")

	// Refused connects back off exponentially, jittered ±50%.
	for attempt, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if got := recv(t, b.refused, "a refused CONNECT"); got != r.DeviceID {
			t.Errorf("CONNECT %d as %q, want %q", attempt+1, got, r.DeviceID)
		}
		d := h.clock.waitTimer(t, base/2, base*3/2)
		if attempt == 3 {
			b.reject.Store(false)
		}
		h.clock.Advance(d)
	}
	s := recv(t, b.sessions, "a session once the broker accepts")
	checkSession(t, s, r.DeviceID, srv.secret(r.DeviceID))
	recv(t, h.results, "the sync after connecting")
	stop()
	recv(t, s.closed, "the session to close")
	assertNoAgentGoroutines(t)
}

// TestMQTTBackoffResetBySync: once an HTTP sync succeeds, the server is
// back, so the MQTT loop stops waiting out its backoff and reconnects at
// once (issue 17, finding 10: the last agents came back minutes after the
// server did).
func TestMQTTBackoffResetBySync(t *testing.T) {
	srv := newFakeServer(t)
	b := newFakeBroker(t, srv)
	b.down.Store(true)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.DisableMQTT = false
		c.MQTTURL = b.url()
	})
	stop := h.runAgent(t)
	recv(t, h.results, "the sync at start")
	for _, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		recv(t, b.dropped, "a connection to the broker that is down")
		d := h.clock.waitTimer(t, base/2, base*3/2)
		if base < 4*time.Second {
			h.clock.Advance(d)
		}
	}
	// The loop now waits 2-6s of the fake clock, which never advances.
	b.down.Store(false)
	h.agent.Trigger()
	if r := recv(t, h.results, "the HTTP sync"); r.Err != nil {
		t.Fatalf("sync: %v", r.Err)
	}
	recv(t, b.sessions, "an MQTT session right after the successful sync")
	stop()
	assertNoAgentGoroutines(t)
}

// TestMQTTSeveralBrokers: with several broker URLs (replicas of one
// server), the agent connects to the first, and when that session is lost
// it moves to the next rather than waiting for the lost one.
func TestMQTTSeveralBrokers(t *testing.T) {
	srv := newFakeServer(t)
	b1, b2 := newFakeBroker(t, srv), newFakeBroker(t, srv)
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.DisableMQTT = false
		c.MQTTURL = b1.url() + ", " + b2.url()
	})
	stop := h.runAgent(t)
	r := recv(t, h.results, "the sync at start")
	s1 := recv(t, b1.sessions, "a session with the first broker")
	checkSession(t, s1, r.DeviceID, srv.secret(r.DeviceID))
	recv(t, h.results, "the sync after connecting")

	// The first replica dies: it refuses everyone from now on.
	b1.reject.Store(true)
	s1.conn.Close()
	h.clock.Advance(h.clock.waitTimer(t, 500*time.Millisecond, 1500*time.Millisecond))
	s2 := recv(t, b2.sessions, "a session with the second broker")
	checkSession(t, s2, r.DeviceID, srv.secret(r.DeviceID))
	if r := recv(t, h.results, "the sync after moving"); r.Err != nil {
		t.Errorf("sync after moving to the second broker: %v", r.Err)
	}
	stop()
	recv(t, s2.closed, "the session to close")
	assertNoAgentGoroutines(t)
}

func TestMQTTStopsWhileConnecting(t *testing.T) {
	srv := newFakeServer(t)
	// A listener that never answers CONNECT.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	h := newHarness(t, srv, t.TempDir(), func(c *Config) {
		c.DisableMQTT = false
		c.MQTTURL = "tcp://" + ln.Addr().String()
	})
	stop := h.runAgent(t)
	recv(t, h.results, "the sync at start")
	c := recv(t, accepted, "the MQTT dial")
	// Stop while the handshake hangs; closing the connection is what a
	// connect timeout would do, without waiting for it. A sync that
	// succeeded meanwhile makes the agent dial again at once: that
	// handshake hangs the same way and is closed the same way.
	stopped, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			// Reading the CONNECT proves the agent is mid-handshake.
			if _, err := packets.ReadPacket(c); err != nil && !errors.Is(err, io.EOF) {
				return
			}
			c.Close()
			select {
			case c = <-accepted:
			case <-stopped:
				return
			}
		}
	}()
	stop()
	close(stopped)
	<-done
	assertNoAgentGoroutines(t)
}
