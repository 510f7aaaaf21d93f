package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/broker"
	"github.com/doorbell-mdm/doorbell/internal/netx"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/api"
	"github.com/doorbell-mdm/doorbell/server/cluster"
	"github.com/doorbell-mdm/doorbell/server/escalate"
	"github.com/doorbell-mdm/doorbell/server/pki"
	"github.com/doorbell-mdm/doorbell/server/service"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
	"github.com/doorbell-mdm/doorbell/server/store/postgres"
	"github.com/prometheus/client_golang/prometheus"
)

// DaemonConfig configures a whole server. Zero values are documented per
// field; defaults are filled in by NewDaemon.
type DaemonConfig struct {
	// DataDir holds the database and generated tokens; "" = ./doorbell-data.
	DataDir string
	// Store is "" for bbolt in DataDir, or a postgres:// URL: the shared
	// store of several replicas (docs/SCALING.md). Generated tokens and the
	// private CA then live in the database too.
	Store string
	// HTTPAddr and MQTTAddr are listen addresses; "" = :8080 and :1883.
	HTTPAddr, MQTTAddr string
	// AdminToken and EnrollToken: "" = generated on first start, kept in
	// DataDir and printed once to Out.
	AdminToken, EnrollToken string
	// MQTTURL is the broker URL handed to agents; "" = derived per request.
	MQTTURL string
	// FCM configures the FCM doorbell; nil = the FCM bell is off.
	FCM *bridge.FCMConfig
	// WebhookURL, when set, receives every state transition as a signed
	// POST (see Webhook); WebhookSecret is then required.
	WebhookURL, WebhookSecret string
	// OnPresence, when set, is called after a device connects or
	// disconnects over MQTT.
	OnPresence func(deviceID string, connected bool)
	// MetricsPublic serves /metrics without an operator token.
	MetricsPublic bool
	// Logger: nil discards. Out receives generated tokens; nil = os.Stdout.
	Logger *slog.Logger
	Out    io.Writer
	// TLS turns on HTTPS, MQTT over TLS and device certificates; nil means
	// plain listeners. Its Dir defaults to <DataDir>/tls, and its Hosts are
	// added to pki.DefaultHosts for the listen addresses.
	TLS *pki.Config

	// ReportSkew: 0 = DefaultReportSkew. RequireReportNonce refuses
	// capability-1 reports. See TrustConfig.
	ReportSkew         time.Duration
	RequireReportNonce bool
	// EnrollPerMinute and DevicePerMinute are the rate limits (per remote
	// IP on /enroll, per device on device endpoints): 0 = the defaults,
	// negative = no limit.
	EnrollPerMinute, DevicePerMinute int
	// AgentAllowlist: nil = integrity unchecked. See TrustConfig.
	AgentAllowlist map[string]bool
	// EscalationInterval is how often the groups' escalation rules are
	// evaluated: 0 = escalate.DefaultInterval (a minute).
	EscalationInterval time.Duration
	// MQTTMaxConnections bounds concurrent MQTT connections: 0 = derived
	// from the file descriptor limit (broker.FDConnectionLimit), negative =
	// no limit.
	MQTTMaxConnections int
	// HTTPMaxConnections bounds concurrent HTTP connections (one over it
	// is answered 503 and closed): 0 = DefaultHTTPMaxConnections or less,
	// as the file descriptor limit allows (netx.FDBudget), negative = no
	// limit.
	HTTPMaxConnections int
	// HTTPIdleTimeout is how long an idle keep-alive HTTP connection is
	// kept; 0 = api.IdleTimeout.
	HTTPIdleTimeout time.Duration
	// SlowSubscriberTimeout: see broker.Config (0 = its default).
	SlowSubscriberTimeout time.Duration
}

// DefaultHTTPMaxConnections is the upper bound of the HTTP connection cap
// when Config.HTTPMaxConnections is 0; the file limit usually lowers it.
const DefaultHTTPMaxConnections = 50_000

// Daemon is a running Doorbell server: the API, the embedded broker and the
// bells, started and stopped as one group.
type Daemon struct {
	cfg    DaemonConfig
	logger *slog.Logger
	store  daemonStore
	bolt   *bolt.Store     // nil on PostgreSQL
	pg     *postgres.Store // nil on bbolt
	node   *cluster.Node   // nil on bbolt
	bus    *postgres.Bus   // nil on bbolt
	// replica names this process among the replicas of a shared store.
	replica string
	api     *api.API
	broker  *broker.Broker
	bell    bridge.Bell
	hook    *Webhook // nil without WebhookURL
	esc     *escalate.Escalator
	httpLn  net.Listener
	// handshakes counts the listeners' TLS handshakes (tls.go).
	handshakes *prometheus.CounterVec
	pki        *pki.Authority
}

// NewDaemon opens the data dir and binds both listeners, so the addresses are
// known before Run.
func NewDaemon(ctx context.Context, cfg DaemonConfig) (_ *Daemon, err error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "./doorbell-data"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = ":8080"
	}
	if cfg.MQTTAddr == "" {
		cfg.MQTTAddr = ":1883"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.EscalationInterval < 0 {
		return nil, fmt.Errorf("escalation interval %v is negative", cfg.EscalationInterval)
	}
	if cfg.EscalationInterval == 0 {
		cfg.EscalationInterval = escalate.DefaultInterval
	}
	d := &Daemon{cfg: cfg, logger: cfg.Logger.With("component", "daemon"), handshakes: newHandshakeCounter()}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	// Every committed command change goes on the service's change stream
	// (the service exists once the API does, below, before anything
	// serves).
	onCommand := func(cs ...store.CommandChange) {
		if d.api != nil {
			d.api.Service().PublishCommands(cs...)
		}
	}
	var enrollGenerated bool
	if IsPostgres(cfg.Store) {
		if err := d.openShared(ctx, onCommand); err != nil {
			return nil, err
		}
		closers = append(closers, d.store.Close)
		if d.cfg.AdminToken, _, err = d.sharedToken(cfg.AdminToken, "admin", "admin token"); err != nil {
			return nil, err
		}
		if d.cfg.EnrollToken, enrollGenerated, err = d.sharedToken(cfg.EnrollToken, "enroll", "enrollment token"); err != nil {
			return nil, err
		}
	} else {
		if cfg.Store != "" {
			return nil, fmt.Errorf("--store %q: want a postgres:// URL, or nothing for bbolt in the data dir", cfg.Store)
		}
		if d.cfg.AdminToken, err = d.token(cfg.AdminToken, "admin-token", "admin token"); err != nil {
			return nil, err
		}
		enrollGenerated = cfg.EnrollToken == "" && !fileExists(filepath.Join(cfg.DataDir, "enroll-token"))
		if d.cfg.EnrollToken, err = d.token(cfg.EnrollToken, "enroll-token", "enrollment token"); err != nil {
			return nil, err
		}
	}
	if cfg.WebhookURL != "" {
		if d.hook, err = NewWebhook(WebhookConfig{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Logger: cfg.Logger}); err != nil {
			return nil, fmt.Errorf("--webhook-url: %w", err)
		}
	}
	if d.pg == nil {
		if d.bolt, err = bolt.Open(filepath.Join(cfg.DataDir, "doorbell.db"), bolt.WithCommandHook(onCommand)); err != nil {
			return nil, err
		}
		d.store = d.bolt
		closers = append(closers, d.store.Close)
	}

	_, mqttPort, err := net.SplitHostPort(cfg.MQTTAddr)
	if err != nil {
		return nil, fmt.Errorf("--mqtt %q: %w", cfg.MQTTAddr, err)
	}
	if err := d.openPKI(); err != nil {
		return nil, err
	}
	creds := service.Credentials{Devices: d.store, Operators: d.store, AdminToken: d.cfg.AdminToken}
	// The live stream hears of presence too; d.api is set below, before
	// the broker serves.
	onPresence := func(deviceID string, connected bool) {
		if d.node != nil {
			d.node.PresenceChanged(deviceID, connected)
		}
		d.api.PresenceChanged(deviceID, connected)
		if cfg.OnPresence != nil {
			cfg.OnPresence(deviceID, connected)
		}
	}
	d.broker, err = broker.New(creds, d.brokerTLS(broker.Config{Addr: cfg.MQTTAddr, Logger: cfg.Logger, OnPresence: onPresence,
		MaxConnections: cfg.MQTTMaxConnections, SlowSubscriberTimeout: cfg.SlowSubscriberTimeout}))
	if err != nil {
		return nil, fmt.Errorf("starting broker: %w", err)
	}
	closers = append(closers, d.broker.Close)
	if _, p, err := net.SplitHostPort(d.broker.Addr()); err == nil {
		mqttPort = p
	}

	mqttBell := bridge.NewMQTTBell(d.broker, cfg.Logger)
	bellStats := api.Bells{MQTT: mqttBell}
	bells := []bridge.Bell{mqttBell}
	if cfg.FCM != nil {
		fcmCfg := *cfg.FCM
		if fcmCfg.Logger == nil {
			fcmCfg.Logger = cfg.Logger
		}
		fcmCfg.OnInvalidToken = func(deviceID, token string) {
			if err := d.store.DeleteFCMToken(context.Background(), deviceID, token); err != nil {
				d.logger.Error("deleting dead FCM token", "device", deviceID, "err", err)
			}
		}
		fcm, err := bridge.NewFCMBell(ctx, fcmCfg)
		if err != nil {
			return nil, fmt.Errorf("configuring FCM: %w", err)
		}
		bells = append(bells, fcm)
		bellStats.FCM = fcm
		d.logger.Info("FCM doorbell on", "project", fcmCfg.ProjectID, "endpoint", fcmCfg.Endpoint)
	} else {
		d.logger.Info("FCM doorbell off: no --fcm-project given; phones are reached by periodic sync only")
	}
	if d.pg != nil {
		bells = append(bells, d.startCluster(mqttBell))
	}
	d.bell = bridge.Multi(bells...)

	metrics := api.NewMetrics()
	metrics.Public = cfg.MetricsPublic
	// Escalation steps: a command queues like an operator's, audited as
	// the server's; notify posts the webhook when there is one.
	esc := escalate.Config{Store: d.store, Logger: cfg.Logger, Command: d.escalationCommand}
	if d.hook != nil {
		esc.Notify = d.hook.Escalated
	}
	d.esc = escalate.New(esc)
	collectors := []prometheus.Collector{bellStats, api.BrokerStats(d.brokerInfo, d.broker.ConnectedCount), d.esc.Collector(),
		d.handshakes, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "doorbell_http_connections",
			Help: "HTTP connections open now, idle keep-alive ones included (over --http-max-connections one is answered 503).",
		}, func() float64 { return float64(d.api.App().Server().GetOpenConnectionsCount()) })}
	if d.bolt != nil {
		collectors = append(collectors, api.BoltStats(d.bolt.DBStats))
	}
	if err := metrics.Register(collectors...); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}

	d.api, err = api.New(d.store, api.Config{
		AdminToken:  d.cfg.AdminToken,
		EnrollToken: d.cfg.EnrollToken,
		MQTTURL:     cfg.MQTTURL,
		MQTTPort:    mqttPort,
		Presence:    d.presence(),
		Bell:        d.bell,
		Logger:      cfg.Logger,
		PKI:         d.pki,
		Trust: api.TrustConfig{
			ReportSkew:         cfg.ReportSkew,
			RequireReportNonce: cfg.RequireReportNonce,
			EnrollPerMinute:    rateOrDefault(cfg.EnrollPerMinute, api.DefaultEnrollPerMinute),
			DevicePerMinute:    rateOrDefault(cfg.DevicePerMinute, api.DefaultDevicePerMinute),
			AgentAllowlist:     cfg.AgentAllowlist,
		},
		Metrics:        metrics,
		MaxConnections: d.httpConnectionLimit(),
		IdleTimeout:    cfg.HTTPIdleTimeout,
	})
	if err != nil {
		return nil, err
	}
	if d.node != nil {
		d.forwardChanges()
	}
	if d.hook != nil {
		// The webhook hears every committed transition, from the one
		// change stream.
		d.api.Service().Subscribe(func(ch service.Change) {
			if ch.Command != nil {
				d.hook.NotifyCommand(proto.CommandEvent{Command: ch.Command.Command.Redacted(), From: ch.Command.From})
				return
			}
			d.hook.Notify(ch.Transitions...)
		})
	}
	// Revocation closes the principal's MQTT sessions at once (the API's
	// event streams registered themselves).
	d.api.Service().OnRevoke(func(p service.Principal) {
		switch p.Kind {
		case service.PrincipalOperator:
			if len(p.TokenHash) > 0 {
				d.broker.DisconnectOperator(p.TokenHash)
			}
		case service.PrincipalDevice:
			d.sessions().Disconnect(p.Name)
		}
	})

	if d.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listening on --http %s: %w", cfg.HTTPAddr, err)
	}
	// Out of descriptors, Accept waits and retries instead of ending the
	// HTTP server (and with it doorbell serve).
	d.httpLn = d.wrapHTTP(netx.Resilient(d.httpLn, d.logger))
	d.announceTLS(enrollGenerated)
	return d, nil
}

// httpConnectionLimit is the HTTP connection cap for the configured
// value, logged; 0 for none (fasthttp's own default, 262,144).
func (d *Daemon) httpConnectionLimit() int {
	_, share, ok := netx.FDBudget()
	limit, lowered := netx.Cap(d.cfg.HTTPMaxConnections, DefaultHTTPMaxConnections, share, ok)
	if lowered {
		d.logger.Warn("http connection limit lowered to what the file descriptor limit allows; raise the limit (ulimit -n, LimitNOFILE=) to allow more",
			"configured", d.cfg.HTTPMaxConnections, "limit", limit)
	}
	d.logger.Info("http connection limit", "max", limit)
	return max(limit, 0)
}

// rateOrDefault maps a daemon rate (0 = default, negative = off) to the
// API's (0 = off).
func rateOrDefault(n, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return 0
	}
	return n
}

// token returns the configured token, or the one kept in the data dir, or a
// new one it keeps there (mode 0600) and prints once.
func (d *Daemon) token(configured, file, what string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(d.cfg.DataDir, file)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	tok := base64.RawURLEncoding.EncodeToString(randomBytes(24))
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving %s: %w", what, err)
	}
	fmt.Fprintf(d.cfg.Out, "Generated %s (kept in %s; shown only now): %s\n", what, path, tok)
	return tok, nil
}

func (d *Daemon) brokerInfo() api.BrokerInfo {
	i := d.broker.Info()
	return api.BrokerInfo{
		ClientsConnected: i.ClientsConnected, BytesReceived: i.BytesReceived, BytesSent: i.BytesSent,
		MessagesReceived: i.MessagesReceived, MessagesSent: i.MessagesSent, MessagesDropped: i.MessagesDropped,
		Inflight: i.Inflight, Subscriptions: i.Subscriptions,
	}
}

// HTTPAddr is the API's listen address.
func (d *Daemon) HTTPAddr() string { return d.httpLn.Addr().String() }

// MQTTAddr is the broker's listen address.
func (d *Daemon) MQTTAddr() string { return d.broker.Addr() }

// AdminToken is the operator token in force.
func (d *Daemon) AdminToken() string { return d.cfg.AdminToken }

// EnrollToken is the enrollment token in force.
func (d *Daemon) EnrollToken() string { return d.cfg.EnrollToken }

// Run serves until ctx is done, then stops the HTTP server, the broker and
// the bells, and closes the database. Every goroutine has ended when it
// returns.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)

	if d.node != nil {
		wg.Go(func() { d.node.Run(ctx, d.bus.Run) })
		// Serve only once the bus listens: what another replica publishes
		// before then (a ring, a revocation) would never reach this one.
		select {
		case <-d.bus.Listening():
		case <-ctx.Done():
		}
	}
	if err := d.broker.Serve(); err != nil {
		cancel()
		wg.Wait()
		d.httpLn.Close()
		d.broker.Close()
		d.store.Close()
		return fmt.Errorf("serving MQTT: %w", err)
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := d.bell.Run(ctx); err != nil {
			errc <- fmt.Errorf("doorbells: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := d.api.App().Listener(d.httpLn); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("serving HTTP: %w", err)
		}
	}()
	if d.hook != nil {
		wg.Go(func() { d.hook.Run(ctx) })
	}
	// Escalation rules are evaluated every EscalationInterval.
	wg.Go(func() { d.esc.Run(ctx, d.cfg.EscalationInterval, time.After) })
	// Last-seen times are batched in memory and flushed every few seconds
	// and once more at shutdown.
	wg.Go(func() { d.api.Service().RunSeen(ctx, 0) })
	wg.Go(func() { d.api.Service().RunCommandExpiry(ctx, 0) })
	if d.pki != nil {
		wg.Go(func() { d.pki.Run(ctx) })
	}
	d.logger.Info("serving", "http", d.HTTPAddr(), "mqtt", d.MQTTAddr(), "tls", d.pki != nil, "pin", d.Pin(), "store", d.storeName(), "replica", d.replica)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	if err := d.api.App().ShutdownWithTimeout(5 * time.Second); err != nil {
		d.logger.Error("stopping HTTP", "err", err)
	}
	// Shutdown is a no-op when fasthttp has not started serving yet (a
	// signal right at start); closing the listener stops Serve either way.
	d.httpLn.Close()
	if err := d.broker.Close(); err != nil {
		d.logger.Error("stopping broker", "err", err)
	}
	wg.Wait()
	// Requests that finished after RunSeen's last flush.
	if err := d.api.Service().FlushSeen(context.Background()); err != nil {
		d.logger.Error("flushing last-seen times", "err", err)
	}
	if err := d.store.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("closing database: %w", err)
	}
	d.logger.Info("stopped")
	return runErr
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return b
}

// Defaults of the trust settings, for the command line's flags.
const (
	DefaultReportSkew      = api.DefaultReportSkew
	DefaultEnrollPerMinute = api.DefaultEnrollPerMinute
	DefaultDevicePerMinute = api.DefaultDevicePerMinute
)

// LoadAllowlist reads an agent allowlist file (see api.LoadAllowlist).
func LoadAllowlist(path string) (map[string]bool, error) { return api.LoadAllowlist(path) }

// daemonStore is the store the daemon runs on: bbolt or PostgreSQL.
type daemonStore interface {
	store.Store
}

func (d *Daemon) storeName() string {
	if d.pg != nil {
		return "postgres"
	}
	return "bbolt"
}

// presence answers "connected": this replica's broker alone on bbolt, the
// shared presence of every replica on PostgreSQL.
func (d *Daemon) presence() api.Presence {
	if d.node != nil {
		return d.node
	}
	return d.broker
}

// sessions closes a revoked device's session, wherever it is held.
func (d *Daemon) sessions() cluster.Local {
	if d.node != nil {
		return d.node
	}
	return d.broker
}

// escalationCommand queues an escalation step's command for a device,
// audited with the server as its actor.
func (d *Daemon) escalationCommand(ctx context.Context, deviceID, command string) error {
	actx := store.WithAudit(ctx, proto.AuditEntry{At: time.Now().UTC(), Actor: "server", Action: "command.create", Target: deviceID, Detail: "escalation: " + command})
	_, err := d.api.Service().SendCommand(actx, deviceID, proto.CommandRequest{Type: proto.CommandType(command)}, "server")
	return err
}
