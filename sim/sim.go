// Package sim is the Doorbell MDM fleet simulator behind `doorbell sim`: it
// runs many real agents (the agent package: real HTTP, real paho MQTT
// connections, in-memory enforcers and identities) in one process against a
// running server, drives a scenario (enroll, edit-one, edit-all, idle,
// reports) and measures it.
//
// Every run is self-contained: it enrolls its own devices, connects them
// (MQTT mode) or registers their push tokens with the fake FCM endpoint it
// serves itself (FCM mode), runs the scenario and returns a Result.
package sim

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/client"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Modes: how a policy change reaches the simulated devices.
const (
	ModeMQTT = "mqtt" // the embedded broker's doorbell
	ModeFCM  = "fcm"  // the FCM doorbell, through the simulator's fake FCM endpoint
	ModePoll = "poll" // no doorbell: periodic sync every Config.Interval
)

// Scenarios.
const (
	ScenarioEnroll  = "enroll"
	ScenarioEditOne = "edit-one"
	ScenarioEditAll = "edit-all"
	ScenarioIdle    = "idle"
	ScenarioReports = "reports"
	// ScenarioRestart: the reconnect storm. With the fleet connected, the
	// simulator stops the server (SIGTERM to its pid); whoever runs the
	// server starts it again on the same data (scripts/bench.sh does), and
	// the simulator measures the time from the stop until every device
	// reconnected over MQTT and synced again, and checks they are
	// COMPLIANT.
	ScenarioRestart = "restart"
)

// Modes and Scenarios list the valid values.
var (
	Modes     = []string{ModeMQTT, ModeFCM, ModePoll}
	Scenarios = []string{ScenarioEnroll, ScenarioEditOne, ScenarioEditAll, ScenarioIdle, ScenarioReports, ScenarioCommands, ScenarioRestart}
)

// Config configures a run. ServerURL, EnrollToken, AdminToken and Devices are
// required; other zero values mean the default on the field.
type Config struct {
	// ServerURL may name several replicas of one server, separated by
	// commas: device i enrolls with, reports to and takes its broker URL
	// from replica i mod n; operator edits go to the first.
	ServerURL   string
	EnrollToken string
	AdminToken  string
	// Devices is how many devices this process simulates.
	Devices int
	// First is the index of this process's first device in the whole
	// fleet (from --slice); it only names devices and push tokens.
	First int
	// Mode is mqtt (default), fcm or poll.
	Mode string
	// Scenario is enroll (default), edit-one, edit-all, idle or reports.
	Scenario string
	// Interval is the agents' periodic sync interval; 0 = 30s in poll mode,
	// 1h otherwise (so only doorbells cause syncs).
	Interval time.Duration
	// Edits is how many single-device edits edit-one makes (and how many
	// commands the commands scenario sends); 0 = 100 (20 in
	// poll mode, where they run at the same time).
	Edits int
	// Duration is how long the reports scenario sends; 0 = 10s.
	Duration time.Duration
	// HTTPConns bounds the simulator's HTTP connections to the server
	// (shared by every agent); 0 = 128.
	HTTPConns int
	// Ramp is how many devices enroll or connect at the same time; 0 = 200.
	Ramp int
	// ServerPID is the server's pid for memory figures; 0 = find the
	// process listening on the server URL's port.
	ServerPID int
	// FCMListen is where the fake FCM endpoint listens in fcm mode; the
	// server must run with --fcm-endpoint http://<FCMListen>/v1. "" =
	// 127.0.0.1:4004.
	FCMListen string
	// Settle is how long the idle scenario waits after connecting before
	// reading memory; 0 = 5s.
	Settle time.Duration
	// ServerCA is the PEM CA certificate an https server's certificate
	// chains to (serve's <data>/tls/ca.pem). Over TLS every simulated
	// device enrolls with its own key (a CSR), gets its own certificate
	// and makes its own connections with it, as a real device does.
	ServerCA []byte
	// ServerDebug is the server's debug listener (serve --pprof ADDR),
	// optional. When set, the idle scenario asks it for its memory figures
	// (GET /debug/memory, which first returns the server's free memory to
	// the system) right before each resident-size reading, so neither
	// reading holds garbage of an earlier phase, and reports the heap,
	// stacks and goroutines per device too.
	ServerDebug string
	// Timeout bounds each wait for devices (ready, compliant); 0 = 10m.
	Timeout time.Duration
	// Progress receives a progress line while the run works; nil = none.
	Progress io.Writer
	// Slice and Slices are K and N of --slice K/N: this process runs the
	// K-th of N slices of the fleet (0 or 1 slices: this one alone). With
	// several, the first (First 0) stops the server in the restart
	// scenario and the others only measure.
	Slice, Slices int
	// WaitStart, when set, is called once every device is enrolled and
	// connected, right before the scenario's measured part; the run goes
	// on when it returns (nil) or fails with its error. Several simulator
	// processes (--slice) start a fleet-wide scenario at one moment
	// through it (doorbell sim --ready-file).
	WaitStart func(ctx context.Context) error
}

// Result holds a run's figures. Fields that do not apply to the scenario are
// zero and left out of the JSON.
type Result struct {
	Scenario string `json:"scenario"`
	Mode     string `json:"mode"`
	Devices  int    `json:"devices"`
	// Latencies, in milliseconds: edit-one (edit request to the server
	// reporting the device COMPLIANT) and enroll (per-device enrollment
	// sync: enroll, fetch, enforce, report).
	P50Ms float64 `json:"p50Ms,omitempty"`
	P90Ms float64 `json:"p90Ms,omitempty"`
	P99Ms float64 `json:"p99Ms,omitempty"`
	MaxMs float64 `json:"maxMs,omitempty"`
	// AllCompliantMs is, for edit-all, the time from the first edit request
	// to the last device reporting COMPLIANT; for enroll, the time to
	// enroll every device and have it reported (and connected, over MQTT).
	AllCompliantMs float64 `json:"allCompliantMs,omitempty"`
	// RequestsPerSec is the HTTP request rate the server sustained during
	// that time (every request of the simulator: edits, policy fetches,
	// reports).
	RequestsPerSec float64 `json:"requestsPerSec,omitempty"`
	// ServerBytesPerDevice is, for idle, the server's resident memory per
	// connected device: (VmRSS with every device connected - VmRSS before
	// any connected) / devices.
	ServerBytesPerDevice float64 `json:"serverBytesPerDevice,omitempty"`
	// With Config.ServerDebug, idle also gives the server's Go heap in use,
	// goroutine stacks and goroutines per connected device (the same
	// before/after difference).
	ServerHeapPerDevice       float64 `json:"serverHeapPerDevice,omitempty"`
	ServerStackPerDevice      float64 `json:"serverStackPerDevice,omitempty"`
	ServerGoroutinesPerDevice float64 `json:"serverGoroutinesPerDevice,omitempty"`
	// ServerCPUSeconds and SimCPUSeconds are, for edit-all (from the edit
	// to the last report) and reports, the CPU time the server process and
	// this simulator used meanwhile: who bounds the figure on a shared
	// machine. The server's needs its pid (--server-pid or the listener's).
	ServerCPUSeconds float64 `json:"serverCpuSeconds,omitempty"`
	SimCPUSeconds    float64 `json:"simCpuSeconds,omitempty"`
	// ReconnectsPerSec is, for restart, devices back (reconnected and
	// synced) per second from the server's stop; AllCompliantMs is then the
	// time until the last one was back.
	ReconnectsPerSec float64 `json:"reconnectsPerSec,omitempty"`
	// HTTPSHandshakes and HTTPSResumed count, for restart over TLS, the
	// devices' HTTPS connections made after the stop and how many of them
	// resumed a TLS session (the server keeps its session-ticket keys).
	HTTPSHandshakes int64 `json:"httpsHandshakes,omitempty"`
	HTTPSResumed    int64 `json:"httpsResumed,omitempty"`
	// TLSHandshakesPerSec is, for restart over TLS, the TLS handshakes the
	// fleet made per second until the last device was back: the counted
	// HTTPS ones and one MQTT/TLS connection per device.
	TLSHandshakesPerSec float64 `json:"tlsHandshakesPerSec,omitempty"`
	// ReportsPerSec is, for reports, durable reports the server accepted
	// (2xx) per second.
	ReportsPerSec float64 `json:"reportsPerSec,omitempty"`

	// LoadAvg is the machine's load average (1, 5, 15 minutes) when the
	// run started, to read every figure beside it.
	LoadAvg string `json:"loadAvg,omitempty"`
	// TLS is true when the server URL is https.
	TLS bool `json:"tls,omitempty"`
	// Slice is K/N of --slice when several simulator processes share the
	// fleet: each reports its own devices (scripts/benchtable combines
	// them).
	Slice string `json:"slice,omitempty"`

	// Extras.
	Edits             int     `json:"edits,omitempty"`             // edit-one: edits measured; edit-all: edit requests
	EditPath          string  `json:"editPath,omitempty"`          // edit-all: "per-device" or "group"
	SimBytesPerDevice float64 `json:"simBytesPerDevice,omitempty"` // idle: the simulator's own RSS per device
	ServerPID         int     `json:"serverPid,omitempty"`
	Compliant         int     `json:"compliant,omitempty"`  // devices the server reports COMPLIANT at the end
	DurationMs        float64 `json:"durationMs,omitempty"` // the whole run
}

func (c *Config) defaults() error {
	if c.ServerURL == "" || c.EnrollToken == "" || c.AdminToken == "" {
		return errors.New("sim: --server, --enroll-token and --admin-token are required")
	}
	if strings.HasPrefix(c.ServerURL, "https://") && len(c.ServerCA) == 0 {
		return errors.New("sim: an https server needs --ca-file (the server's <data>/tls/ca.pem)")
	}
	if c.Devices < 1 {
		return fmt.Errorf("sim: --devices must be at least 1, not %d", c.Devices)
	}
	if c.Mode == "" {
		c.Mode = ModeMQTT
	}
	if !slices.Contains(Modes, c.Mode) {
		return fmt.Errorf("sim: --mode must be one of %v, not %q", Modes, c.Mode)
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioEnroll
	}
	if !slices.Contains(Scenarios, c.Scenario) {
		return fmt.Errorf("sim: --scenario must be one of %v, not %q", Scenarios, c.Scenario)
	}
	if c.Interval == 0 {
		c.Interval = time.Hour
		if c.Mode == ModePoll {
			c.Interval = 30 * time.Second
		}
	}
	if c.Edits == 0 {
		c.Edits = 100
		if c.Mode == ModePoll {
			c.Edits = 20
		}
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.HTTPConns == 0 {
		c.HTTPConns = 128
	}
	if c.Ramp == 0 {
		c.Ramp = 200
	}
	if c.FCMListen == "" {
		c.FCMListen = "127.0.0.1:4004"
	}
	if c.Settle == 0 {
		c.Settle = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// FilesNeeded estimates the open files a run of scenario needs: one socket
// per MQTT device, the HTTP connections, and some slack. Over TLS (tls true)
// every device makes its own HTTPS connections, which it holds only while it
// syncs (an agent closes them when its sync ends): where the whole fleet
// syncs at once (edit-all, restart) that is one more socket per device;
// elsewhere (enroll and connect are ramped, edit-one syncs one device, the
// reports scenario's workers one device each) at most httpConns+ramp more.
func FilesNeeded(devices, httpConns, ramp int, mode, scenario string, tls bool) uint64 {
	n := uint64(2*httpConns + 64) // agents' and operator's connections
	if mode == ModeMQTT {
		n += uint64(devices)
	}
	if tls {
		if scenario == ScenarioEditAll || scenario == ScenarioRestart {
			n += uint64(devices)
		} else {
			n += uint64(min(devices, httpConns+ramp))
		}
	}
	return n
}

// checkFiles refuses a run this process cannot hold, and says what to do.
func checkFiles(c Config) error {
	limit, err := fdLimit()
	if err != nil {
		return fmt.Errorf("sim: reading the open-file limit: %w", err)
	}
	tls := strings.HasPrefix(c.ServerURL, "https://")
	need := FilesNeeded(c.Devices, c.HTTPConns, c.Ramp, c.Mode, c.Scenario, tls)
	if need <= limit {
		return nil
	}
	per := (int(limit) - int(FilesNeeded(0, c.HTTPConns, c.Ramp, c.Mode, c.Scenario, tls))) / max(1, perDevice(c, tls))
	if per < 1 {
		return fmt.Errorf("sim: the open-file limit %d is too low even for --http-conns %d", limit, c.HTTPConns)
	}
	procs := (c.Devices + per - 1) / per
	return fmt.Errorf("sim: %d %s devices need about %d open files, over this process's limit of %d (at most %d per process): "+
		"start %d simulator processes, each with --devices %d and its own --slice K/%d (K = 1..%d)",
		c.Devices, c.Mode, need, limit, MaxOpenFiles, procs, c.Devices, procs, procs)
}

// perDevice is how many sockets a device of c holds at most (for the
// advice of checkFiles).
func perDevice(c Config, tls bool) int {
	n := 0
	if c.Mode == ModeMQTT {
		n++
	}
	if tls && (c.Scenario == ScenarioEditAll || c.Scenario == ScenarioRestart) {
		n++
	}
	return n
}

// device is one simulated device: its agent, identity and what it reported.
type device struct {
	idx   int
	ids   *memIDStore
	enf   *agent.MemoryEnforcer
	agent *agent.Agent
	http  *http.Client // over TLS: the device's own connections; nil = the fleet's
	token string
	cam   bool // the cameraDisabled value last asked for

	mu       sync.Mutex
	syncs    int   // successful syncs of the current agent
	reported int64 // highest policy version reported compliant
	commands int   // remote commands run
	waiters  []*waiter
}

// waiter is closed when its device reaches syncs successful syncs or reports
// version compliant (whichever is set); at is when.
type waiter struct {
	syncs    int
	commands int
	version  int64
	ch       chan struct{}
	at       time.Time
}

func (d *device) onSync(r agent.SyncResult) {
	if r.Err != nil {
		return
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.syncs++
	d.commands += r.Commands
	if r.Compliant && r.PolicyVersion > d.reported {
		d.reported = r.PolicyVersion
	}
	keep := d.waiters[:0]
	for _, w := range d.waiters {
		if d.reached(w) {
			w.at = now
			close(w.ch)
			continue
		}
		keep = append(keep, w)
	}
	d.waiters = keep
}

// reached reports whether w's condition holds; d.mu is held.
func (d *device) reached(w *waiter) bool {
	return (w.syncs > 0 && d.syncs >= w.syncs) || (w.version > 0 && d.reported >= w.version) ||
		(w.commands > 0 && d.commands >= w.commands)
}

// wait registers w, or closes it at once when its condition already holds.
func (d *device) wait(w *waiter) *waiter {
	w.ch = make(chan struct{})
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reached(w) {
		w.at = time.Now()
		close(w.ch)
		return w
	}
	d.waiters = append(d.waiters, w)
	return w
}

// waitSyncs returns a waiter for n successful syncs of the current agent.
func (d *device) waitSyncs(n int) *waiter { return d.wait(&waiter{syncs: n}) }

// waitCommands returns a waiter for n remote commands run in all.
func (d *device) waitCommands(n int) *waiter { return d.wait(&waiter{commands: n}) }

// ranCommands is how many remote commands the device ran.
func (d *device) ranCommands() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commands
}

// waitVersion returns a waiter for version reported compliant.
func (d *device) waitVersion(v int64) *waiter { return d.wait(&waiter{version: v}) }

func (d *device) resetSyncs() {
	d.mu.Lock()
	d.syncs = 0
	d.mu.Unlock()
}

func (d *device) id() string {
	id, _, _ := d.ids.Load()
	return id.DeviceID
}

// countingTransport counts the requests that got an answer.
type countingTransport struct {
	http.RoundTripper
	n *atomic.Int64
}

// CloseIdleConnections lets the agent drop kept-alive connections after it
// got a new certificate.
func (t countingTransport) CloseIdleConnections() {
	if c, ok := t.RoundTripper.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.RoundTripper.RoundTrip(r)
	if err == nil {
		t.n.Add(1)
	}
	return resp, err
}

// sharedPool is a transport shared by many agents: it has no
// CloseIdleConnections, which every agent calls at the end of its sync.
type sharedPool struct{ rt http.RoundTripper }

func (p sharedPool) RoundTrip(r *http.Request) (*http.Response, error) { return p.rt.RoundTrip(r) }

// fleet is one run's state.
type fleet struct {
	cfg      Config
	devs     []*device
	requests atomic.Int64 // HTTP requests answered (agents and operator)
	// handshakes and resumed count the devices' HTTPS TLS handshakes and
	// those that resumed a session (over TLS only).
	handshakes, resumed atomic.Int64
	agentHTTP           *http.Client
	sharedHTTP          *http.Client   // agentHTTP for the agents (sharedPool)
	tls                 bool           // the server URL is https
	serverPID           int            // 0 = unknown
	admin               *client.Client // the operator's calls, over a counted HTTP client of its own
	fcm                 *fcmServer
	prog                *progress

	runCtx context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

func newHTTPClient(conns int, n *atomic.Int64, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     conns,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: countingTransport{tr, n}}
}

// Run runs one simulation and returns its figures. The server must be
// running; ctx cancels the run.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	if err := checkFiles(cfg); err != nil {
		return Result{}, err
	}
	start := time.Now()
	f := &fleet{cfg: cfg, tls: strings.HasPrefix(cfg.ServerURL, "https://")}
	var roots *x509.CertPool
	if len(cfg.ServerCA) > 0 {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(cfg.ServerCA) {
			return Result{}, errors.New("sim: --ca-file holds no PEM certificate")
		}
	}
	f.agentHTTP = newHTTPClient(cfg.HTTPConns, &f.requests, roots)
	// Over plain HTTP the agents share one pool (a simulator economy):
	// through a transport without CloseIdleConnections, so an agent that
	// ends its sync does not close the others' connections.
	f.sharedHTTP = &http.Client{Timeout: f.agentHTTP.Timeout, Transport: sharedPool{f.agentHTTP.Transport}}
	var err error
	if _, err = parseHost(f.server(0)); err != nil {
		return Result{}, err
	}
	if f.admin, err = client.New(client.Config{Server: f.server(0), Token: cfg.AdminToken,
		HTTPClient: newHTTPClient(cfg.HTTPConns, &f.requests, roots)}); err != nil {
		return Result{}, fmt.Errorf("sim: %w", err)
	}
	f.prog = newProgress(cfg.Progress)
	defer f.prog.close()
	if cfg.Mode == ModeFCM {
		if f.fcm, err = newFCMServer(cfg.FCMListen); err != nil {
			return Result{}, err
		}
		defer f.fcm.close()
	}
	f.runCtx, f.stop = context.WithCancel(ctx)
	defer func() {
		f.stop()
		f.wg.Wait()
	}()

	res := Result{Scenario: cfg.Scenario, Mode: cfg.Mode, Devices: cfg.Devices, LoadAvg: loadAvg(),
		TLS: strings.HasPrefix(cfg.ServerURL, "https://")}
	if cfg.Slices > 1 {
		res.Slice = fmt.Sprintf("%d/%d", cfg.Slice, cfg.Slices)
	}
	if err := f.scenario(ctx, &res); err != nil {
		return res, err
	}
	res.DurationMs = ms(time.Since(start))
	return res, nil
}

func (f *fleet) scenario(ctx context.Context, res *Result) error {
	pid, rssBefore, simBefore := 0, int64(0), int64(0)
	if f.cfg.Scenario == ScenarioIdle || f.cfg.Scenario == ScenarioRestart {
		var err error
		if pid = f.cfg.ServerPID; pid == 0 {
			u, perr := parseHost(f.server(0))
			if perr != nil {
				return perr
			}
			if pid, err = findListener(u); err != nil {
				return fmt.Errorf("sim: finding the server's pid for the idle scenario: %w", err)
			}
		}
		res.ServerPID = pid
	} else if pid = f.cfg.ServerPID; pid == 0 {
		if u, err := parseHost(f.server(0)); err == nil {
			pid, _ = findListener(u) // only for the CPU figures; 0 = none
		}
	}
	f.serverPID = pid

	t0 := time.Now()
	reqs0 := f.requests.Load()
	lat, err := f.enroll(ctx)
	if err != nil {
		return err
	}
	var memBefore serverMemory
	if f.cfg.Scenario == ScenarioIdle {
		var err error
		if memBefore, err = f.serverMemory(ctx); err != nil {
			return err
		}
		if rssBefore, err = rssBytes(pid); err != nil {
			return err
		}
		simBefore, _ = rssBytes(0)
	}
	if err := f.connect(ctx); err != nil {
		return err
	}
	if f.cfg.WaitStart != nil && f.cfg.Scenario != ScenarioEnroll && f.cfg.Scenario != ScenarioIdle {
		f.prog.set("waiting for the start", 0, 0)
		if err := f.cfg.WaitStart(ctx); err != nil {
			return err
		}
	}
	if f.cfg.Scenario == ScenarioEnroll {
		d := time.Since(t0)
		res.AllCompliantMs = ms(d)
		res.RequestsPerSec = float64(f.requests.Load()-reqs0) / d.Seconds()
		fillPercentiles(res, lat)
	}

	switch f.cfg.Scenario {
	case ScenarioEditOne:
		if err := f.editOne(ctx, res); err != nil {
			return err
		}
	case ScenarioEditAll:
		if err := f.editAll(ctx, res); err != nil {
			return err
		}
	case ScenarioIdle:
		// An idle device holds its MQTT session only: the agent closed
		// its HTTP connection (over TLS, its own) when its sync ended.
		f.prog.set("idle: settling", 0, 0)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.cfg.Settle):
		}
		memAfter, err := f.serverMemory(ctx)
		if err != nil {
			return err
		}
		after, err := rssBytes(pid)
		if err != nil {
			return err
		}
		nd := float64(len(f.devs))
		res.ServerBytesPerDevice = float64(after-rssBefore) / nd
		if f.cfg.ServerDebug != "" {
			res.ServerHeapPerDevice = (float64(memAfter.HeapInuse) - float64(memBefore.HeapInuse)) / nd
			res.ServerStackPerDevice = (float64(memAfter.StackInuse) - float64(memBefore.StackInuse)) / nd
			res.ServerGoroutinesPerDevice = float64(memAfter.Goroutines-memBefore.Goroutines) / nd
		}
		simAfter, _ := rssBytes(0)
		res.SimBytesPerDevice = float64(simAfter-simBefore) / float64(len(f.devs))
	case ScenarioReports:
		if err := f.reports(ctx, res); err != nil {
			return err
		}
	case ScenarioCommands:
		if err := f.commands(ctx, res); err != nil {
			return err
		}
	case ScenarioRestart:
		if err := f.restart(ctx, pid, res); err != nil {
			return err
		}
	}

	n, err := f.countCompliant(ctx, f.ids())
	if err != nil {
		return fmt.Errorf("sim: checking the fleet's final state: %w", err)
	}
	res.Compliant = n
	return nil
}

// restart stops the server and measures how long the fleet takes to be
// back: every device reconnected over MQTT and synced (each reconnection is
// an MQTT and an HTTP connection, two TLS handshakes over TLS). The server
// must be started again by whoever runs it.
func (f *fleet) restart(ctx context.Context, pid int, res *Result) error {
	if f.cfg.Mode != ModeMQTT {
		return errors.New("sim: the restart scenario needs --mode mqtt")
	}
	ws := make([]*waiter, len(f.devs))
	for i, d := range f.devs {
		d.resetSyncs()
		ws[i] = d.waitSyncs(1)
	}
	reqs0 := f.requests.Load()
	hs0, res0 := f.handshakes.Load(), f.resumed.Load()
	t0 := time.Now()
	if f.cfg.First == 0 { // with --slice, the first slice stops it
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("sim: stopping the server (pid %d): %w", pid, err)
		}
	}
	f.prog.set("restart: reconnecting", len(f.devs), 0)
	for i, w := range ws {
		if err := f.wait(ctx, w, fmt.Sprintf("device %d to reconnect", f.devs[i].idx)); err != nil {
			return err
		}
		f.prog.add(1)
	}
	d := time.Since(t0)
	res.AllCompliantMs = ms(d)
	res.RequestsPerSec = float64(f.requests.Load()-reqs0) / d.Seconds()
	res.ReconnectsPerSec = float64(len(f.devs)) / d.Seconds()
	res.HTTPSHandshakes, res.HTTPSResumed = f.handshakes.Load()-hs0, f.resumed.Load()-res0
	if f.tls {
		res.TLSHandshakesPerSec = float64(res.HTTPSHandshakes+int64(len(f.devs))) / d.Seconds()
	}
	return nil
}

// serverMemory is the answer of the server's GET /debug/memory.
type serverMemory struct {
	HeapInuse  uint64 `json:"heapInuse"`
	StackInuse uint64 `json:"stackInuse"`
	Goroutines int    `json:"goroutines"`
}

// serverMemory asks the server's debug listener for its memory figures
// (which also makes the server return its free memory to the system); it
// returns zeros without Config.ServerDebug.
func (f *fleet) serverMemory(ctx context.Context) (serverMemory, error) {
	var m serverMemory
	if f.cfg.ServerDebug == "" {
		return m, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+f.cfg.ServerDebug+"/debug/memory", nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, fmt.Errorf("sim: reading the server's memory figures: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("sim: GET /debug/memory on %s: %s", f.cfg.ServerDebug, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return m, fmt.Errorf("sim: decoding the server's memory figures: %w", err)
	}
	return m, nil
}

func (f *fleet) ids() map[string]bool {
	m := make(map[string]bool, len(f.devs))
	for _, d := range f.devs {
		m[d.id()] = true
	}
	return m
}

func (f *fleet) newAgent(d *device, mqtt bool) (*agent.Agent, error) {
	hc := f.sharedHTTP
	var tr *http.Transport
	if f.tls {
		// The device's own connections, made with its own certificate
		// through the agent's dialer (set below, once the agent exists);
		// the agent closes them when its sync ends.
		tr = &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second}
		hc = &http.Client{Timeout: 60 * time.Second, Transport: countingTransport{tr, &f.requests}}
	}
	a, err := agent.New(agent.Config{
		ServerCA:     f.cfg.ServerCA,
		ServerURL:    f.server(d.idx),
		EnrollToken:  f.cfg.EnrollToken,
		Enforcer:     d.enf,
		IDStore:      d.ids,
		Interval:     f.cfg.Interval,
		DisableMQTT:  !mqtt,
		Model:        fmt.Sprintf("sim-%d", d.idx),
		OSVersion:    "sim",
		AgentVersion: "sim",
		HTTPClient:   hc,
		OnSync:       d.onSync,
	})
	if err != nil {
		return nil, err
	}
	if tr != nil {
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := a.DialTLSContext(ctx, network, addr)
			if tc, ok := c.(*tls.Conn); ok && err == nil {
				f.handshakes.Add(1)
				if tc.ConnectionState().DidResume {
					f.resumed.Add(1)
				}
			}
			return c, err
		}
		d.mu.Lock()
		old := d.http
		d.http = hc
		d.mu.Unlock()
		if old != nil { // the device's previous agent (enrollment) is done
			old.CloseIdleConnections()
		}
	}
	return a, nil
}

// enroll enrolls every device (HTTP only, Ramp at a time) and returns the
// per-device durations of the enrolling sync. In fcm mode the push token is
// registered by the same sync.
func (f *fleet) enroll(ctx context.Context) ([]time.Duration, error) {
	n := f.cfg.Devices
	f.devs = make([]*device, n)
	lat := make([]time.Duration, n)
	f.prog.set("enroll", n, 0)
	err := f.parallel(ctx, n, f.cfg.Ramp, func(ctx context.Context, i int) error {
		d := &device{idx: f.cfg.First + i, ids: &memIDStore{}, enf: &agent.MemoryEnforcer{}}
		f.devs[i] = d
		a, err := f.newAgent(d, false)
		if err != nil {
			return err
		}
		d.agent = a
		if f.cfg.Mode == ModeFCM {
			d.token = fmt.Sprintf("sim-fcm-token-%d-%016x", d.idx, rand.Uint64())
			f.fcm.register(d.token, a.OnPush)
			if err := a.SetPushToken(d.token); err != nil {
				return err
			}
		}
		t := time.Now()
		if err := a.Sync(ctx); err != nil {
			return fmt.Errorf("enrolling device %d: %w", d.idx, err)
		}
		lat[i] = time.Since(t)
		f.prog.add(1)
		return nil
	})
	return lat, err
}

// connect starts every device's agent and waits until each is ready: over
// MQTT, subscribed (its second sync: the one at start, then the one every
// connect triggers once subscribed); otherwise after its sync at start.
func (f *fleet) connect(ctx context.Context) error {
	phase := "start"
	if f.cfg.Mode == ModeMQTT {
		phase = "connect"
	}
	f.prog.set(phase, len(f.devs), 0)
	return f.parallel(ctx, len(f.devs), f.cfg.Ramp, func(ctx context.Context, i int) error {
		d := f.devs[i]
		want := 1
		if f.cfg.Mode == ModeMQTT {
			a, err := f.newAgent(d, true)
			if err != nil {
				return err
			}
			d.agent = a
			want = 2
		}
		d.resetSyncs()
		w := d.waitSyncs(want)
		f.wg.Go(func() { d.agent.Run(f.runCtx) })
		if err := f.wait(ctx, w, fmt.Sprintf("device %d to %s", d.idx, phase)); err != nil {
			return err
		}
		f.prog.add(1)
		return nil
	})
}

func (f *fleet) wait(ctx context.Context, w *waiter, what string) error {
	t := time.NewTimer(f.cfg.Timeout)
	defer t.Stop()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("sim: timed out after %v waiting for %s", f.cfg.Timeout, what)
	}
}

// parallel runs fn(i) for i in [0,n) with at most width at a time; the
// first error cancels the rest and is returned.
func (f *fleet) parallel(ctx context.Context, n, width int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  atomic.Int64
	)
	for range min(width, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// edit asks for d's camera to flip and returns a waiter for the new version.
func (f *fleet) edit(ctx context.Context, d *device) (*waiter, error) {
	d.cam = !d.cam
	v, err := f.setCamera(ctx, d.id(), d.cam)
	if err != nil {
		return nil, err
	}
	return d.waitVersion(v), nil
}

// editOne makes Edits single-device edits to random devices, one at a time
// (all at once in poll mode, where each waits up to an interval), and
// measures each from the edit request to the server answering COMPLIANT for
// the new version.
func (f *fleet) editOne(ctx context.Context, res *Result) error {
	return f.oneAtATime(ctx, res, "edit-one", func(ctx context.Context, d *device, _ int) (time.Duration, error) {
		t := time.Now()
		w, err := f.edit(ctx, d)
		if err != nil {
			return 0, err
		}
		if err := f.wait(ctx, w, fmt.Sprintf("device %d to report version %d", d.idx, w.version)); err != nil {
			return 0, err
		}
		// The agent's report was acknowledged, so it is durable; the
		// figure includes the server saying so.
		if err := f.checkCompliant(ctx, d.id(), w.version); err != nil {
			return 0, err
		}
		return time.Since(t), nil
	})
}

// oneAtATime runs measure Edits times on random devices, one at a time (all
// at once in poll mode), never on one device twice at once, and fills res
// with the latencies it returns. In poll mode each starts at a random point
// of the device's sync cycle (the fleet started together, so without this
// every one would wait a whole interval). phase names the progress line.
func (f *fleet) oneAtATime(ctx context.Context, res *Result, phase string, measure func(ctx context.Context, d *device, i int) (time.Duration, error)) error {
	n := f.cfg.Edits
	workers := 1
	if f.cfg.Mode == ModePoll {
		workers = min(n, len(f.devs))
	}
	// Distinct devices per concurrent worker; sequential runs may repeat.
	perm := rand.Perm(len(f.devs))
	lat := make([]time.Duration, n)
	f.prog.set(phase, n, 0)
	var mu sync.Mutex // one run per device at a time
	busy := map[*device]bool{}
	err := f.parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		d := f.devs[perm[i%len(perm)]]
		mu.Lock()
		if busy[d] {
			mu.Unlock()
			return fmt.Errorf("sim: %s: device %d used twice at once", phase, d.idx)
		}
		busy[d] = true
		mu.Unlock()
		defer func() { mu.Lock(); delete(busy, d); mu.Unlock() }()

		if f.cfg.Mode == ModePoll {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(rand.N(f.cfg.Interval)):
			}
		}
		var err error
		if lat[i], err = measure(ctx, d, i); err != nil {
			return err
		}
		f.prog.add(1)
		return nil
	})
	if err != nil {
		return err
	}
	res.Edits = n
	fillPercentiles(res, lat)
	return nil
}

// fleetEditor changes every device's policy in one operation.
type fleetEditor interface {
	// name is what Result.EditPath says.
	name() string
	// prepare readies devs for editAll, before the clock starts.
	prepare(ctx context.Context, devs []*device) error
	// editAll asks for cameraDisabled=cam on every device and returns each
	// device's new policy version, by device id.
	editAll(ctx context.Context, devs []*device, cam bool) (map[string]int64, error)
}

// perDeviceEditor edits each device through PUT /devices/{id}/policy,
// HTTPConns requests at a time, on a server without groups.
type perDeviceEditor struct{ f *fleet }

func (e perDeviceEditor) name() string { return "per-device" }

func (e perDeviceEditor) prepare(context.Context, []*device) error { return nil }

func (e perDeviceEditor) editAll(ctx context.Context, devs []*device, cam bool) (map[string]int64, error) {
	versions := make([]int64, len(devs))
	err := e.f.parallel(ctx, len(devs), e.f.cfg.HTTPConns, func(ctx context.Context, i int) error {
		v, err := e.f.setCamera(ctx, devs[i].id(), cam)
		versions[i] = v
		return err
	})
	out := make(map[string]int64, len(devs))
	for i, d := range devs {
		out[d.id()] = versions[i]
	}
	return out, err
}

// groupEditor changes the whole fleet with one group edit: a group of
// every simulated device (created by prepare, before the clock starts; it
// changes no effective policy; prepare also reads each device's version),
// then one PUT /groups/{id}/policy, which the server applies in one
// transaction and rings as one batch.
type groupEditor struct {
	f    *fleet
	gid  string
	base map[string]int64 // each device's version before the edit
}

func (e *groupEditor) name() string { return "group" }

func (e *groupEditor) prepare(ctx context.Context, devs []*device) error {
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.id()
	}
	var g proto.Group
	create := map[string]any{"name": fmt.Sprintf("sim-%d-%d", e.f.cfg.First, time.Now().UnixNano()), "priority": 1000, "deviceIds": ids}
	if err := e.f.admin.Call(ctx, http.MethodPost, "/groups", create, &g); err != nil {
		return fmt.Errorf("sim: creating the group: %w", err)
	}
	e.gid = g.GroupID
	// Each member's version now: the edit makes it one more (a change
	// grows a device's version by exactly one), so nothing is read back
	// while the clock runs.
	e.base = make(map[string]int64, len(devs))
	mine := make(map[string]bool, len(devs))
	for _, id := range ids {
		mine[id] = true
	}
	return e.f.admin.AllDevices(ctx, client.ListOptions{}, 0, func(st proto.DeviceStatus) bool {
		if mine[st.DeviceID] {
			e.base[st.DeviceID] = st.DesiredVersion
		}
		return true
	})
}

func (e *groupEditor) editAll(ctx context.Context, devs []*device, cam bool) (map[string]int64, error) {
	if err := e.f.admin.Call(ctx, http.MethodPut, "/groups/"+url.PathEscape(e.gid)+"/policy",
		map[string]bool{"cameraDisabled": cam}, nil); err != nil {
		return nil, fmt.Errorf("sim: editing the group: %w", err)
	}
	out := make(map[string]int64, len(devs))
	for _, d := range devs {
		out[d.id()] = e.base[d.id()] + 1
	}
	return out, nil
}

// editor picks how edit-all edits the fleet: through one group when the
// server has groups (GET /groups, a read with no side effect, answers),
// else each device on its own.
func (f *fleet) editor(ctx context.Context) fleetEditor {
	if f.admin.Call(ctx, http.MethodGet, "/groups", nil, nil) == nil {
		return &groupEditor{f: f}
	}
	return perDeviceEditor{f: f}
}

// editAll flips every device's camera setting and measures the time until
// every device reported the new version COMPLIANT, and the request rate the
// server sustained meanwhile.
func (f *fleet) editAll(ctx context.Context, res *Result) error {
	ed := f.editor(ctx)
	res.EditPath = ed.name()
	if err := ed.prepare(ctx, f.devs); err != nil {
		return err
	}
	cam := !f.devs[0].cam
	for _, d := range f.devs {
		d.cam = cam
	}
	f.prog.set("edit-all", len(f.devs), 0)
	reqs0 := f.requests.Load()
	cpu0 := f.cpu()
	t0 := time.Now()
	versions, err := ed.editAll(ctx, f.devs, cam)
	if err != nil {
		return err
	}
	waiters := make([]*waiter, len(f.devs))
	for i, d := range f.devs {
		waiters[i] = d.waitVersion(versions[d.id()])
	}
	last := t0
	for i, w := range waiters {
		if err := f.wait(ctx, w, fmt.Sprintf("device %d to report version %d", f.devs[i].idx, w.version)); err != nil {
			return err
		}
		if w.at.After(last) {
			last = w.at
		}
		f.prog.add(1)
	}
	d := last.Sub(t0)
	f.cpuSince(cpu0, res)
	res.Edits = len(f.devs)
	res.AllCompliantMs = ms(d)
	res.RequestsPerSec = float64(f.requests.Load()-reqs0) / d.Seconds()
	return nil
}

// reports sends compliance reports for every device as fast as HTTPConns
// connections allow, for Duration, and counts those the server accepted.
func (f *fleet) reports(ctx context.Context, res *Result) error {
	type job struct {
		cred   agent.Credentials
		rep    agentReport
		client *agent.Client
		own    *http.Client // over TLS, the device's own connections
	}
	clients := map[string]*agent.Client{}
	jobs := make([]job, len(f.devs))
	for i, d := range f.devs {
		u := f.server(d.idx)
		if clients[u] == nil {
			c, err := agent.NewClient(u, f.agentHTTP)
			if err != nil {
				return err
			}
			clients[u] = c
		}
		id, _, _ := d.ids.Load()
		jobs[i] = job{cred: id.Credentials(), rep: currentReport(d), client: clients[u]}
		d.mu.Lock()
		hc := d.http
		d.mu.Unlock()
		if hc != nil { // over TLS, each device reports on its own connection
			c, err := agent.NewClient(u, hc)
			if err != nil {
				return err
			}
			jobs[i].client, jobs[i].own = c, hc
		}
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Duration)
	defer cancel()
	f.prog.set("reports", 0, 0)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	cpu0 := f.cpu()
	t0 := time.Now()
	var wg sync.WaitGroup
	// Each device's reports go out from one worker, one after another: a
	// report carries its time and a fresh nonce, and the server refuses
	// one older than the last it accepted from that device.
	workers := min(f.cfg.HTTPConns, len(jobs))
	for w := range workers {
		wg.Go(func() {
			var mine []job
			for k := w; k < len(jobs); k += workers {
				mine = append(mine, jobs[k])
			}
			for n := 0; ctx.Err() == nil; n++ {
				j := mine[n%len(mine)]
				j.rep.ReportedAt, j.rep.Nonce = time.Now().UTC(), nonce()
				if err := j.client.Report(ctx, j.cred, j.rep); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					continue
				}
				if j.own != nil {
					// As an agent does when its sync ends: the
					// next report resumes the TLS session.
					j.own.CloseIdleConnections()
				}
				ok.Add(1)
				f.prog.add(1)
			}
		})
	}
	wg.Wait()
	d := time.Since(t0)
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("sim: %d reports failed, the first: %w", failed.Load(), e.(error))
	}
	res.ReportsPerSec = float64(ok.Load()) / d.Seconds()
	f.cpuSince(cpu0, res)
	return nil
}

// cpu reads the server's and this process's CPU seconds.
func (f *fleet) cpu() [2]float64 {
	var c [2]float64
	if f.serverPID > 0 {
		c[0] = cpuSeconds(f.serverPID)
	}
	c[1] = cpuSeconds(0)
	return c
}

// cpuSince fills res's CPU figures with the time used since c0.
func (f *fleet) cpuSince(c0 [2]float64, res *Result) {
	c := f.cpu()
	if f.serverPID > 0 {
		res.ServerCPUSeconds = c[0] - c0[0]
	}
	res.SimCPUSeconds = c[1] - c0[1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fillPercentiles(res *Result, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(p*float64(len(s))+0.5) - 1
		return ms(s[max(0, min(i, len(s)-1))])
	}
	res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs = q(0.50), q(0.90), q(0.99), ms(s[len(s)-1])
}

// nonce is a fresh random report nonce.
func nonce() string {
	b := make([]byte, 16)
	if _, err := crand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// server is the base URL of the replica device idx talks to (index 0 for
// the operator).
func (f *fleet) server(idx int) string {
	var urls []string
	for _, u := range strings.Split(f.cfg.ServerURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return f.cfg.ServerURL
	}
	return urls[idx%len(urls)]
}
