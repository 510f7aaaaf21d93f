// Package broker is Doorbell MDM's embedded MQTT broker: mochi-mqtt with one
// hook that logs devices and operators in, enforces the per-device ACL and
// tracks which devices hold a session (presence).
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorbell-mdm/doorbell/internal/netx"
)

// Credentials checks MQTT logins. The server implements it.
type Credentials interface {
	// AuthenticateDevice reports whether secret is deviceID's current device secret.
	AuthenticateDevice(deviceID, secret string) bool
	// AuthenticateOperator reports whether token is a valid operator token
	// (admin or viewer; both are read-only on MQTT).
	AuthenticateOperator(token string) bool
}

// Config configures a Broker. The zero value of every field is usable except
// Addr, which an empty string turns into ":1883".
type Config struct {
	// Addr is the TCP listen address, e.g. ":1883" or "127.0.0.1:0".
	// Empty means ":1883".
	Addr string
	// Logger receives the broker's logs, mochi's included. Nil discards them.
	Logger *slog.Logger
	// OnPresence, when set, is called after a device's presence changes:
	// connected=true every time a session of the device is established
	// (a session takeover included), connected=false when the device's
	// current session ends. Calls are serialised and in order; the callback
	// runs on a broker goroutine, so it must be quick and must not call
	// Close. It may call Connected and ConnectedCount.
	OnPresence func(deviceID string, connected bool)
	// TLS, when set, makes the listener MQTT over TLS with this
	// configuration; nil means plain TCP.
	TLS *tls.Config
	// CheckClientCert, when set, is asked about every login over TLS that
	// the credentials accepted: username, whether it is a device login, and
	// the connection's TLS state (its PeerCertificates may be empty). A
	// non-nil error refuses the login.
	CheckClientCert func(username string, device bool, cs tls.ConnectionState) error
	// MaxConnections bounds the connections open at once, authenticated
	// or not; a connection beyond it is closed as soon as it is accepted.
	// 0 means DefaultMaxConnections or less, as the file descriptor limit
	// allows (see FDConnectionLimit); a larger value is lowered to that
	// too; negative means no limit.
	MaxConnections int
	// SlowSubscriberTimeout is how long an operator session may stay so
	// far behind that new doorbells are dropped for it before it is
	// disconnected. 0 means DefaultSlowSubscriberTimeout; negative never
	// disconnects (doorbells are still dropped, so memory stays bounded).
	SlowSubscriberTimeout time.Duration
}

// DefaultMaxConnections is the upper bound of the connection limit when
// Config.MaxConnections is 0: room for a fleet of 10,000+ always-connected
// devices and their reconnect overlap. The limit actually used is the
// smaller of it and FDConnectionLimit.
const DefaultMaxConnections = 50_000

// FDConnectionLimit derives an MQTT connection cap from the process's
// file descriptor limit: the MQTT share of netx.FDBudget, so that the cap
// acts before the process runs out of descriptors and the HTTP API keeps
// room too. ok is false when the limit cannot be read or is unlimited.
func FDConnectionLimit() (limit int, ok bool) {
	limit, _, ok = netx.FDBudget()
	return limit, ok
}

// connectionLimit is the cap New uses for a configured value: the default
// and any larger value are lowered to what the file limit allows.
func connectionLimit(configured int, log *slog.Logger) int {
	fdLimit, ok := FDConnectionLimit()
	limit, lowered := netx.Cap(configured, DefaultMaxConnections, fdLimit, ok)
	if lowered {
		log.Warn("mqtt connection limit lowered to what the file descriptor limit allows; raise the limit (ulimit -n, LimitNOFILE=) to allow more",
			"configured", configured, "limit", limit)
	}
	return limit
}

// Tuning for many idle clients: 10,000+ always-connected devices per server,
// each receiving a ~40-byte QoS 1 doorbell now and then, one at a time, and
// publishing nothing. Memory that mochi allocates per client for its whole
// life is kept small; limits that only cost memory while in use are kept
// generous enough for an operator watching every doorbell.
const (
	// maxClientWritesPending is the capacity of each client's outbound
	// queue, allocated up front as a channel of pointers: mochi's default of
	// 8192 costs 64 KiB per client (640 MB for 10,000 idle doorbells). A
	// device has at most a doorbell or two queued; 64 slots (512 B) also
	// absorb a burst for an operator subscribed to every doorbell. Beyond it
	// mochi drops the message for that slow client only.
	maxClientWritesPending = 64

	// clientReadBufferSize is the bufio.Reader every connection holds for
	// its whole life (mochi's default 2 KiB, 20 MB per 10,000 clients). The
	// largest packet a client sends is CONNECT (~200 B with a device id and
	// secret); PINGREQ is 2 B. 512 B reads any of them in one syscall; larger
	// packets are still read, just not in one go.
	clientReadBufferSize = 512

	// clientWriteBufferSize is only a batching threshold: mochi allocates the
	// write buffer while writes are queued and drops it after the flush, so
	// it costs nothing for an idle client. 2 KiB batches ~15 doorbells into
	// one write during a burst.
	clientWriteBufferSize = 2 << 10

	// maxPacketSize bounds every inbound packet, checked before mochi
	// allocates it, CONNECT included (so before authentication). Clients may
	// only connect, subscribe and ping; 4 KiB leaves room for long ids and
	// tokens and refuses a client announcing a 256 MB packet.
	maxPacketSize = 4 << 10

	// maxSessionExpiry (seconds) is how long a disconnected persistent
	// session (clean session false) is kept. An agent syncs on every
	// (re)connect, so a kept session buys nothing but a redelivered doorbell;
	// 5 minutes bridges a takeover or a short network drop without keeping
	// a fleet's worth of dead sessions (mochi default: forever).
	maxSessionExpiry = 5 * 60

	// maxMessageExpiry (seconds) bounds how long a queued or in-flight
	// message lives (mochi default: 24 h). A doorbell older than the agents'
	// 15-minute periodic sync has been superseded by that sync.
	maxMessageExpiry = 15 * 60

	// maxInflight bounds the unacknowledged QoS 1/2 messages kept per
	// client (mochi default 8192). It costs memory only while messages are
	// in flight; a device has one or two, an operator's QoS 1 wildcard
	// subscription may have a few hundred during a bulk edit.
	maxInflight = 256

	// receiveMaximum is the number of QoS 1/2 publishes a client may have
	// in flight towards the broker (advertised to MQTT 5 clients). Nobody
	// may publish, so there is no reason to advertise mochi's 1024.
	receiveMaximum = 16

	// sysTopicInterval (seconds) is how often mochi refreshes the $SYS
	// topics. Each refresh runs runtime.ReadMemStats (a stop-the-world) and
	// rewrites 20 retained messages; mochi's default is every second.
	// Hourly keeps $SYS available to an operator at no cost.
	sysTopicInterval = 60 * 60

	// maxKeepalive (seconds) is the keepalive the broker imposes on MQTT 5
	// clients asking for none or for more (via the CONNACK Server Keep
	// Alive), so a dead connection is noticed within 1.5x of it. MQTT 3
	// clients cannot be told; their keepalive is honoured and a client
	// with none is covered by TCP keepalive (tcpKeepAliveIdle).
	maxKeepalive = 20 * 60

	// tcpKeepAliveIdle is the idle time after which the kernel starts
	// probing a connection. Any MQTT traffic, PINGREQ included, resets it,
	// so only a client quieter than maxKeepalive is ever probed: no extra
	// radio wake-ups for well-behaved mobile agents, and a dead peer of a
	// keepalive-less client is found after about 22 minutes (Go's default
	// would probe every idle connection every 15 s).
	tcpKeepAliveIdle     = maxKeepalive * time.Second
	tcpKeepAliveInterval = 30 * time.Second
	tcpKeepAliveCount    = 4

	// connectTimeout is how long a new connection may take to send its
	// CONNECT. mochi sets no deadline before CONNECT, so without it a
	// silent connection would hold a goroutine and a buffer forever.
	connectTimeout = 10 * time.Second
)

// listenerID names the broker's only listener inside mochi.
const listenerID = "doorbell-tcp"

// Broker is the embedded MQTT broker. It is created bound by New, started by
// Serve and stopped by Close.
type Broker struct {
	server   *mqtt.Server
	hook     *hook
	listener *listener
	log      *slog.Logger

	mu     sync.Mutex
	served bool
	closed bool
}

// New creates the broker, registers its hook and binds the listener, so Addr
// is known as soon as New returns. Nothing is served until Serve.
func New(creds Credentials, cfg Config) (*Broker, error) {
	if creds == nil {
		return nil, errors.New("broker: nil Credentials")
	}
	if cfg.Addr == "" {
		cfg.Addr = ":1883"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "broker")

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = maxClientWritesPending
	caps.MaximumPacketSize = maxPacketSize
	caps.MaximumSessionExpiryInterval = maxSessionExpiry
	caps.MaximumMessageExpiryInterval = maxMessageExpiry
	caps.MaximumInflight = maxInflight
	caps.ReceiveMaximum = receiveMaximum

	server := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetReadBufferSize:  clientReadBufferSize,
		ClientNetWriteBufferSize: clientWriteBufferSize,
		SysTopicResendInterval:   sysTopicInterval,
		InlineClient:             true,
		// mochi logs whole packets in places (a second CONNECT with its
		// password among them); the redacting handler summarises them.
		Logger: slog.New(redactingHandler{log.Handler()}),
	})

	h := &hook{
		creds:    creds,
		server:   server,
		log:      log,
		presence: presence{clients: map[string]*mqtt.Client{}, onChange: cfg.OnPresence},
	}
	h.checkCert = cfg.CheckClientCert
	h.slow = newSlowSubscribers(cfg.SlowSubscriberTimeout, log)
	log.Info("mqtt slow subscriber timeout", "timeout", h.slow.timeout.String())
	if err := server.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("adding broker hook: %w", err)
	}

	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		Enable:   true,
		Idle:     tcpKeepAliveIdle,
		Interval: tcpKeepAliveInterval,
		Count:    tcpKeepAliveCount,
	}}
	nl, err := lc.Listen(context.Background(), "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening for mqtt on %s: %w", cfg.Addr, err)
	}
	if cfg.TLS != nil {
		nl = tls.NewListener(nl, cfg.TLS)
	}
	l := newListener(listenerID, nl, connectTimeout)
	l.disconnectAll = func() {
		for _, cl := range server.Clients.GetAll() {
			if !cl.Net.Inline && !cl.Closed() {
				_ = server.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	}
	l.maxConns = connectionLimit(cfg.MaxConnections, log)
	log.Info("mqtt connection limit", "max", l.maxConns)
	if err := server.AddListener(l); err != nil {
		_ = nl.Close()
		return nil, fmt.Errorf("adding mqtt listener: %w", err)
	}

	return &Broker{server: server, hook: h, listener: l, log: log}, nil
}

// Serve starts accepting connections and returns at once; the broker runs
// until Close. It may be called once.
func (b *Broker) Serve() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("broker: serve after close")
	}
	if b.served {
		return errors.New("broker: already serving")
	}
	b.served = true
	if err := b.server.Serve(); err != nil {
		return fmt.Errorf("starting mqtt broker: %w", err)
	}
	b.log.Info("mqtt broker serving", "addr", b.Addr())
	return nil
}

// Close disconnects every client, stops the listener and waits for the
// broker's goroutines to end. mochi's housekeeping loop ends on its own a
// moment later. Close is safe to call more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()

	err := b.server.Close() // closes the listener, disconnects every client
	b.listener.wait()       // accept loop and every connection goroutine
	return err
}

// MaxConnections returns the connection limit in force (negative: none).
func (b *Broker) MaxConnections() int { return b.listener.maxConns }

// Addr returns the address the broker listens on (host:port), with the real
// port even when Config.Addr asked for port 0.
func (b *Broker) Addr() string {
	return b.listener.Address()
}

// Connected reports whether deviceID holds an MQTT session now.
func (b *Broker) Connected(deviceID string) bool {
	return b.hook.presence.connected(deviceID)
}

// ConnectedCount returns how many devices hold an MQTT session now.
// Operators are not counted.
func (b *Broker) ConnectedCount() int {
	return b.hook.presence.count()
}

// Publish publishes payload on topic through the broker's inline client,
// which bypasses the ACL. It never waits for delivery: a subscriber whose
// queue is full misses the message.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if err := b.server.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("publishing on %s: %w", topic, err)
	}
	return nil
}

// Disconnect closes deviceID's session at once (device revocation) and marks
// the device disconnected before it returns. It does nothing when the device
// is not connected. Revoke the device's secret first, or the device may log
// straight back in.
func (b *Broker) Disconnect(deviceID string) {
	cl, ok := b.server.Clients.Get(deviceID)
	if !ok || roleOf(cl) != roleDevice {
		return
	}
	// The error is the reason code itself; the connection is closed either way.
	_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized)
	b.hook.presence.remove(deviceID, cl)
	b.log.Info("mqtt device disconnected by server", "device", deviceID)
}
