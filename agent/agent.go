// Package agent is the Doorbell MDM device agent: it enrolls the device, pulls
// its desired policy, enforces it, reports what it observed, and listens for
// doorbells that ask it to do so again. It imports only proto, paho and the
// standard library so it can be built into the Android library.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Config configures an Agent. ServerURL, Enforcer and IDStore are required;
// every other zero value has the default documented on its field.
type Config struct {
	// ServerURL is the server's base URL, e.g. "http://127.0.0.1:8080".
	ServerURL string
	// EnrollToken is needed only when the agent has no identity yet, or the
	// server no longer knows it (404) and it must enroll again.
	EnrollToken string
	// Enforcer makes the device match its policy.
	Enforcer Enforcer
	// IDStore persists the identity across restarts.
	IDStore IDStore
	// Interval is the periodic sync interval; 0 means DefaultInterval
	// (15m). Every delay is jittered ±10%.
	Interval time.Duration
	// DisableMQTT is phone mode: no MQTT connection; doorbells arrive
	// through OnPush (FCM).
	DisableMQTT bool
	// MQTTURL overrides the broker URL the server returned at enrollment.
	// Several URLs separated by commas are replicas of one server: the
	// agent connects to the first and moves to the next after a failed
	// connect or a lost session.
	MQTTURL string
	// Model, OSVersion and AgentVersion are sent at enrollment.
	Model, OSVersion, AgentVersion string
	// HTTPClient makes the REST calls; nil means a client with a
	// DefaultHTTPTimeout timeout. The agent calls its
	// CloseIdleConnections when a sync (or an inventory pass, or a
	// push-token registration) ends, so an idle device holds no
	// connection to the API; a client shared by several agents should
	// therefore have a Transport without that method.
	HTTPClient *http.Client
	// Logger receives the agent's logs; nil discards them. Secrets and
	// tokens are never logged.
	Logger *slog.Logger
	// OnSync, when set, is called after every sync attempt, from the
	// goroutine that ran it. It must not call Sync.
	OnSync func(SyncResult)
	// Clock is the source of time; nil means the real clock.
	Clock Clock
	// ServerPin ("sha256/<base64>", see SPKIPin) and ServerCA (PEM)
	// verify an HTTPS server before enrollment; without either the system's
	// roots do. Once enrolled, the agent pins the CA the server sent.
	ServerPin string
	ServerCA  []byte
	// Notifier tells the device's user what to fix by when, for settings
	// in guided mode; nil tells nobody (the report still says
	// PENDING_USER).
	Notifier Notifier
	// GuidedStatePath is the file that remembers when each guided
	// setting first failed, so a restart does not move a deadline; ""
	// keeps it in memory.
	GuidedStatePath string
	// AgentSHA256 is the hex SHA-256 of the agent binary sent with every
	// report; "" means the SHA-256 of os.Executable(), computed once.
	AgentSHA256 string
	// Executor carries out remote commands; nil means the Enforcer when
	// it is an Executor, else none: every command is answered ERROR
	// "unsupported".
	Executor Executor
	// CommandJournal records each command before it runs, so it runs at
	// most once across restarts; nil keeps it in memory (at most once per
	// process only: for tests and simulators).
	CommandJournal CommandJournal
	// Inventory collects the device's inventory; nil sends none. It runs
	// off the sync path (see InventoryPass): at enrollment, every
	// InventoryInterval to find changed sections, on request (the
	// refresh_inventory command or doorbell), and in full once a day.
	Inventory Collector
	// InventoryInterval is how often the inventory is collected to look
	// for changed sections; 0 means DefaultInventoryInterval (1h).
	// Jittered ±10%.
	InventoryInterval time.Duration
	// OnInventory, when set, is called after every inventory pass, from
	// the goroutine that ran it.
	OnInventory func(InventoryResult)
}

// SyncResult describes one sync attempt.
type SyncResult struct {
	DeviceID string
	// PolicyVersion is the desired policy version the sync worked on (0 if
	// it never got that far).
	PolicyVersion int64
	// Skipped is true when the policy was unchanged (304), already reported
	// and still matched, so nothing was enforced or reported.
	Skipped bool
	// Compliant is the agent's own verdict on what it reported.
	Compliant bool
	// EnforceErr is the Enforcer's error. A failed enforcement is still a
	// successful sync: the device's unchanged state was reported.
	EnforceErr error
	// Err is why the sync failed, nil when it reported (or skipped).
	Err error
	// Commands is how many remote commands ran during the sync.
	Commands int
	// CommandErr is why fetching commands failed; the policy part of the
	// sync goes on regardless.
	CommandErr error
	Duration   time.Duration
}

// ErrNoEnrollToken is returned by Sync when the agent must enroll (it has
// no identity, or the server no longer knows it) but has no enrollment token.
var ErrNoEnrollToken = errors.New("agent is not enrolled and has no enrollment token")

// Agent runs the device side of the loop. Its methods are safe for concurrent
// use.
type Agent struct {
	cfg    Config
	client *Client
	log    *slog.Logger
	clock  Clock
	rnd    func() float64

	// sem is held by whoever runs a sync or registers a token, so those
	// never overlap and identity changes are serialised.
	sem chan struct{}
	// trigger holds at most one pending sync request (coalescing).
	trigger chan struct{}
	// idChanged tells the MQTT loop the identity became known or changed.
	idChanged chan struct{}
	syncOK    chan struct{} // a sync succeeded: the server is up (cuts an MQTT backoff short)
	running   atomic.Bool
	guided    *guidedTracker

	mu       sync.Mutex
	loaded   bool     // id was read from the store (or set by enrollment)
	haveID   bool     // id is valid
	unsaved  bool     // id was enrolled but its save failed; retried on every sync
	id       Identity // the current identity
	token    string   // the push token the device wants registered
	etag     string   // ETag of policy; "" when none is cached
	policy   proto.DevicePolicy
	reported int64 // policy version last applied and reported successfully
	// sent is what the last successful report said the device looked like;
	// a sync for an unchanged policy reports again when the device no
	// longer looks like that (a hand fix, a monitored setting drifting
	// back), not only when the policy changed.
	sent proto.Settings
	inv  invState
	// due is the earliest remediateBy of the guided settings the last
	// enforcement left to the user, zero when none: the scheduler wakes
	// then to enforce them, without waiting for the next periodic sync.
	due time.Time

	// invKick holds at most one pending inventory pass request; invSem is
	// held by the inventory pass running.
	invKick chan struct{}
	invSem  chan struct{}

	// tlsState is the parsed device certificate and the TLS session cache
	// of its connections (agent/tls.go).
	tlsState tlsState

	hashOnce sync.Once
	hash     string // AgentSHA256 or the executable's hash

	executor Executor
	journal  journal // used under sem
}

// New validates cfg and returns an agent. It does no I/O.
func New(cfg Config) (*Agent, error) {
	if cfg.ServerURL == "" {
		return nil, errors.New("agent config: ServerURL is required")
	}
	if cfg.Enforcer == nil {
		return nil, errors.New("agent config: Enforcer is required")
	}
	if cfg.IDStore == nil {
		return nil, errors.New("agent config: IDStore is required")
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("agent config: Interval %v is negative", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.InventoryInterval < 0 {
		return nil, fmt.Errorf("agent config: InventoryInterval %v is negative", cfg.InventoryInterval)
	}
	if cfg.InventoryInterval == 0 {
		cfg.InventoryInterval = DefaultInventoryInterval
	}
	if cfg.MQTTURL != "" {
		for _, b := range brokerURLs(cfg.MQTTURL) {
			if u, err := url.Parse(b); err != nil || u.Scheme == "" || u.Host == "" {
				return nil, fmt.Errorf("agent config: MQTTURL %q: want scheme://host:port, or several separated by commas", b)
			}
		}
	}
	client, err := NewClient(cfg.ServerURL, cfg.HTTPClient)
	if err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if cfg.AgentVersion != "" {
		client.userAgent = "doorbell-agent/" + cfg.AgentVersion
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.ServerPin != "" && !ValidPin(cfg.ServerPin) {
		return nil, fmt.Errorf("agent config: ServerPin %q: want sha256/<base64 of 32 bytes>", cfg.ServerPin)
	}
	a := &Agent{
		cfg:       cfg,
		client:    client,
		log:       cfg.Logger.With("component", "agent"),
		clock:     cfg.Clock,
		rnd:       rand.Float64,
		sem:       make(chan struct{}, 1),
		trigger:   make(chan struct{}, 1),
		idChanged: make(chan struct{}, 1),
		syncOK:    make(chan struct{}, 1),
		invKick:   make(chan struct{}, 1),
		invSem:    make(chan struct{}, 1),
		guided:    &guidedTracker{path: cfg.GuidedStatePath},
	}
	if cfg.HTTPClient == nil {
		client.http = a.newHTTPClient()
	}
	a.executor = cfg.Executor
	if a.executor == nil {
		if x, ok := cfg.Enforcer.(Executor); ok {
			a.executor = x
		}
	}
	a.journal.store = cfg.CommandJournal
	if a.journal.store == nil {
		a.journal.store = &memJournal{}
	}
	return a, nil
}

// Run syncs at once, then on a jittered periodic timer (with exponential
// backoff after failures), at the deadline of a guided setting left to the
// user when that comes first (to enforce it then), on every Trigger, and,
// unless DisableMQTT, on every MQTT (re)connect and doorbell, and, when the
// Enforcer is a Watcher, on every change of a watched file. With an
// inventory Collector it also runs inventory passes on their own schedule
// (see InventoryPass). It returns nil once ctx is done and
// every goroutine it started has stopped. Run may be called again after it
// returned, but not twice at the same time.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent is already running")
	}
	defer a.running.Store(false)

	a.Trigger() // the sync at start
	var wg sync.WaitGroup
	wg.Go(func() { a.scheduleLoop(ctx) })
	if !a.cfg.DisableMQTT {
		wg.Go(func() { a.mqttLoop(ctx) })
	}
	if w, ok := a.cfg.Enforcer.(Watcher); ok {
		wg.Go(func() { a.watchLoop(ctx, w) })
	}
	if a.cfg.Inventory != nil {
		wg.Go(func() { a.inventoryLoop(ctx) })
	}
	wg.Wait()
	return nil
}

// scheduleLoop runs a sync for every trigger or timer tick until ctx is
// done. The timer restarts after every sync, so the interval counts from the
// last sync, whatever caused it.
func (a *Agent) scheduleLoop(ctx context.Context) {
	var timer Timer
	var tick <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.trigger:
		case <-tick:
		}
		if timer != nil {
			timer.Stop()
		}
		err := a.Sync(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
		} else {
			failures = 0
		}
		d := nextSyncDelay(failures, IsBusy(err), a.cfg.Interval, a.rnd)
		if err != nil {
			a.log.Warn("sync failed", "err", err, "failures", failures, "retryIn", d)
		}
		if until := a.untilDeadline(); until > 0 && until < d {
			// A guided setting's deadline comes first: wake at it and
			// enforce (a deadline already past waits for the next sync,
			// so a failing server is not hammered).
			a.log.Info("waking at a guided deadline", "in", until)
			d = until
		}
		timer = a.clock.NewTimer(d)
		tick = timer.C()
	}
}

// untilDeadline is how long until the earliest guided deadline the last
// enforcement left pending; 0 when there is none or it has passed.
func (a *Agent) untilDeadline() time.Duration {
	a.mu.Lock()
	due := a.due
	a.mu.Unlock()
	if due.IsZero() {
		return 0
	}
	return max(due.Sub(a.clock.Now()), 0)
}

// setDue records the earliest remediateBy of pending (zero when none).
func (a *Agent) setDue(pending []PendingSetting) {
	var due time.Time
	for _, p := range pending {
		if due.IsZero() || p.RemediateBy.Before(due) {
			due = p.RemediateBy
		}
	}
	a.mu.Lock()
	a.due = due
	a.mu.Unlock()
}

// Trigger asks for a sync soon. Triggers that arrive while one is pending or
// a sync is running coalesce into one more sync. Without Run, the request
// waits for Run.
func (a *Agent) Trigger() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// OnPush handles an FCM data message. A {"type": "policy_changed",
// "version": "N"} message triggers a sync unless N is at most the version
// already applied and reported; a message without a readable version
// triggers one anyway (a needless sync costs only a 304). A {"type":
// "command_pending"} message triggers a sync, which fetches the commands.
// A {"type": "refresh_inventory"} message asks for a full inventory upload
// (RefreshInventory; servers of capability 7 send a refresh_inventory
// command instead). Other types are ignored.
func (a *Agent) OnPush(data map[string]string) {
	if data["type"] == proto.DoorbellRefreshInventory {
		a.RefreshInventory()
		return
	}
	if data["type"] == proto.CommandDoorbellType {
		a.log.Info("command doorbell", "source", "fcm")
		a.Trigger()
		return
	}
	if data["type"] != proto.DoorbellType {
		a.log.Debug("ignoring push message", "type", data["type"])
		return
	}
	v, err := strconv.ParseInt(data["version"], 10, 64)
	if err != nil {
		v = 0
	}
	a.ring(v, "fcm")
}

// ring triggers a sync for a doorbell announcing version, unless that
// version (or a later one) was already applied and reported. version <= 0
// means unknown.
func (a *Agent) ring(version int64, source string) {
	a.mu.Lock()
	reported := a.reported
	a.mu.Unlock()
	if version > 0 && version <= reported {
		a.log.Debug("doorbell for a version already reported", "source", source, "version", version, "reported", reported)
		return
	}
	a.log.Info("doorbell", "source", source, "version", version)
	a.Trigger()
}

// DeviceID returns the device id, "" while the agent is not enrolled.
func (a *Agent) DeviceID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.loadLocked(); err != nil || !a.haveID {
		return ""
	}
	return a.id.DeviceID
}

// pushTokenTimeout bounds SetPushToken, which has no context.
const pushTokenTimeout = time.Minute

// SetPushToken records the device's FCM token. When the agent is enrolled and
// the token differs from the registered one it is registered at once (waiting
// for a running sync to finish); otherwise it is registered by the sync that
// enrolls. An unchanged token is never registered again, and one that failed
// to register is retried by the next sync.
func (a *Agent) SetPushToken(token string) error {
	if token == "" {
		return errors.New("setting push token: empty token")
	}
	a.mu.Lock()
	a.token = token
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), pushTokenTimeout)
	defer cancel()
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("setting push token: %w", ctx.Err())
	}
	defer func() { <-a.sem }()
	defer a.holdConnections()()

	a.mu.Lock()
	err := a.loadLocked()
	id, ok := a.id, a.haveID
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("setting push token: %w", err)
	}
	if !ok {
		return nil // registered after enrollment
	}
	return a.registerToken(ctx, id)
}

// registerToken registers the wanted push token when it differs from the
// one registered for id. The caller holds sem.
func (a *Agent) registerToken(ctx context.Context, id Identity) error {
	a.mu.Lock()
	token := a.token
	a.mu.Unlock()
	if token == "" || token == id.FCMToken {
		return nil
	}
	if err := a.client.RegisterToken(ctx, id.Credentials(), token); err != nil {
		return err
	}
	id.FCMToken = token
	a.mu.Lock()
	if a.haveID && a.id.DeviceID == id.DeviceID {
		a.id.FCMToken = token
	}
	a.mu.Unlock()
	if err := a.cfg.IDStore.Save(id); err != nil {
		// Registered, but a restart will register it once more.
		a.log.Warn("saving identity after token registration", "err", err)
	}
	a.log.Info("push token registered", "deviceId", id.DeviceID)
	return nil
}

// Sync runs one sync (runMdmSync) now: enroll if needed, register a pending
// push token, fetch the policy, enforce it, observe and report. Syncs never
// overlap: Sync waits for a running one to finish first. When it ends the
// agent closes its idle HTTP connections (holdConnections): an idle device
// holds none.
//
// A failed enforcement is not an error: the device's unchanged state is
// reported (non-compliant) and Sync returns nil, so a device that refuses
// does not make the scheduler back off and spin; the error is in
// SyncResult.EnforceErr and the log.
func (a *Agent) Sync(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-a.sem }()
	release := a.holdConnections()
	start := a.clock.Now()
	res := a.runMdmSync(ctx)
	if res.Err == nil {
		a.inventoryAfterSync(ctx)
	}
	release() // the sync's connection closes now (holdConnections)
	res.Duration = a.clock.Now().Sub(start)
	if res.Err != nil {
		a.log.Debug("sync failed", "deviceId", res.DeviceID, "err", res.Err)
	} else {
		a.log.Debug("sync done", "deviceId", res.DeviceID, "version", res.PolicyVersion,
			"skipped", res.Skipped, "compliant", res.Compliant, "took", res.Duration)
	}
	if res.Err == nil {
		select {
		case a.syncOK <- struct{}{}:
		default:
		}
	}
	if a.cfg.OnSync != nil {
		a.cfg.OnSync(res)
	}
	return res.Err
}

// runMdmSync is one pass of the loop. The caller holds sem.
func (a *Agent) runMdmSync(ctx context.Context) SyncResult {
	id, err := a.ensureIdentity(ctx)
	if err != nil {
		return SyncResult{Err: err}
	}
	res := a.syncDevice(ctx, id)
	if !IsNotFound(res.Err) {
		return res
	}
	// The server does not know this device: it was deleted, or the server
	// lost its data. Without an enrollment token the identity is kept, so
	// the device recovers if the server comes back with it.
	if a.cfg.EnrollToken == "" {
		res.Err = fmt.Errorf("device %s is unknown to the server: %w (%w)", id.DeviceID, ErrNoEnrollToken, res.Err)
		return res
	}
	a.log.Warn("server does not know this device; enrolling again", "deviceId", id.DeviceID)
	if err := a.forgetIdentity(); err != nil {
		res.Err = err
		return res
	}
	id, err = a.ensureIdentity(ctx)
	if err != nil {
		return SyncResult{Err: err}
	}
	return a.syncDevice(ctx, id)
}

// ensureIdentity returns the stored identity, enrolling (and saving the new
// identity before anything else) when there is none.
func (a *Agent) ensureIdentity(ctx context.Context) (Identity, error) {
	a.mu.Lock()
	err := a.loadLocked()
	id, ok, unsaved := a.id, a.haveID, a.unsaved
	a.mu.Unlock()
	if err != nil {
		return Identity{}, err
	}
	if ok {
		if unsaved {
			a.retrySave(id)
		}
		return id, nil
	}
	if a.cfg.EnrollToken == "" {
		return Identity{}, ErrNoEnrollToken
	}
	if wc, ok := a.cfg.IDStore.(WritableChecker); ok {
		if err := wc.CheckWritable(); err != nil {
			return Identity{}, fmt.Errorf("not enrolling: %w (an identity that cannot be saved would leave an orphan device and spend the enrollment token)", err)
		}
	}
	csr, keyPEM, err := a.newCSR()
	if err != nil {
		return Identity{}, err
	}
	resp, cs, err := a.client.enroll(ctx, a.cfg.EnrollToken, proto.EnrollRequest{
		Model:        a.cfg.Model,
		OSVersion:    a.cfg.OSVersion,
		AgentVersion: a.cfg.AgentVersion,
		CSR:          csr,

		SyncIntervalSeconds: a.syncIntervalSeconds(),
	})
	if err != nil {
		return Identity{}, err
	}
	id = Identity{
		DeviceID:     resp.DeviceID,
		DeviceSecret: resp.DeviceSecret,
		MQTTURL:      resp.MQTT.URL,
		Topic:        resp.MQTT.Topic,
	}
	a.adoptEnrollment(&id, resp, keyPEM, cs)
	// Saved before anything else: an identity the server knows but the
	// device forgot would be an orphan. When the save fails the identity
	// is kept in memory, used, and saved again on every sync until it
	// sticks: enrolling again would spend the token on a second device.
	saveErr := a.cfg.IDStore.Save(id)
	a.setIdentity(id, true)
	a.mu.Lock()
	a.inv.fresh = true // the new device's first inventory is a full one
	a.mu.Unlock()
	a.log.Info("enrolled", "identity", id)
	if saveErr != nil {
		a.mu.Lock()
		a.unsaved = true
		a.mu.Unlock()
		a.log.Error("enrolled but could not save the identity; keeping it in memory and retrying the save on every sync",
			"deviceId", id.DeviceID, "err", saveErr)
	}
	return id, nil
}

// retrySave saves an identity whose save failed after enrollment.
func (a *Agent) retrySave(id Identity) {
	if err := a.cfg.IDStore.Save(id); err != nil {
		a.log.Warn("identity still not saved; a restart now would lose it", "deviceId", id.DeviceID, "err", err)
		return
	}
	a.mu.Lock()
	if a.id.DeviceID == id.DeviceID {
		a.unsaved = false
	}
	a.mu.Unlock()
	a.log.Info("identity saved", "deviceId", id.DeviceID)
}

// loadLocked reads the identity from the store once. The caller holds mu.
func (a *Agent) loadLocked() error {
	if a.loaded {
		return nil
	}
	id, ok, err := a.cfg.IDStore.Load()
	if err != nil {
		return fmt.Errorf("loading identity: %w", err)
	}
	a.loaded, a.haveID, a.id = true, ok, id
	if ok {
		a.notifyIDChanged()
	}
	return nil
}

// setIdentity replaces the identity and forgets everything learned under the
// previous one.
func (a *Agent) setIdentity(id Identity, ok bool) {
	a.mu.Lock()
	if a.haveID && a.token == "" {
		// Keep the old registered token wanted, so a re-enrolled device
		// registers it under its new id.
		a.token = a.id.FCMToken
	}
	a.loaded, a.haveID, a.id, a.unsaved = true, ok, id, false
	a.etag, a.policy, a.reported, a.sent = "", proto.DevicePolicy{}, 0, proto.Settings{}
	a.inv = invState{}
	a.due = time.Time{}
	a.mu.Unlock()
	a.notifyIDChanged()
}

func (a *Agent) forgetIdentity() error {
	if err := a.cfg.IDStore.Clear(); err != nil {
		return fmt.Errorf("clearing identity: %w", err)
	}
	a.setIdentity(Identity{}, false)
	return nil
}

func (a *Agent) notifyIDChanged() {
	select {
	case a.idChanged <- struct{}{}:
	default:
	}
}

// currentIdentity returns the identity if one is known, without I/O.
func (a *Agent) currentIdentity() (Identity, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id, a.haveID
}

// syncDeviceOnce runs the device part of a sync for id once; syncDevice
// retries it after a replay refusal.
func (a *Agent) syncDeviceOnce(ctx context.Context, id Identity) SyncResult {
	res := SyncResult{DeviceID: id.DeviceID}
	id = a.maybeRenewCert(ctx, id)
	cred := id.Credentials()

	// A token that fails to register does not fail the sync: the policy
	// loop matters more, and the next sync retries the token.
	if err := a.registerToken(ctx, id); err != nil {
		if IsNotFound(err) {
			res.Err = err
			return res
		}
		a.log.Warn("registering push token", "deviceId", id.DeviceID, "err", err)
	}

	a.mu.Lock()
	etag, cached, reported, sent := a.etag, a.policy, a.reported, a.sent
	a.mu.Unlock()

	pr, err := a.client.Policy(ctx, cred, etag)
	if err != nil {
		res.Err = err
		return res
	}

	// Commands before enforcing: a lock should not wait for a long
	// enforcement. They are fetched only when the server says some are
	// open (or does not say: before capability 9); results a previous
	// run could not report go out either way. A failure here does not
	// fail the sync (a server before capability 4 answers 404 here for a
	// device it knows).
	n, err := a.runCommands(ctx, id, !pr.NoCommands)
	res.Commands = n
	if err != nil && ctx.Err() == nil {
		res.CommandErr = err
		a.log.Warn("running commands", "deviceId", id.DeviceID, "err", err)
	}
	if pr.InventoryRequested {
		a.mu.Lock()
		a.inv.force = true // uploaded after this sync (inventoryAfterSync)
		a.mu.Unlock()
	}
	policy := pr.Policy
	if pr.NotModified {
		policy = cached
	} else {
		a.mu.Lock()
		a.etag, a.policy = pr.ETag, pr.Policy
		a.mu.Unlock()
	}
	res.PolicyVersion = policy.Version

	// Unchanged, already reported, the device still matches and looks as
	// last reported: a doorbell for an applied version costs only the 304.
	// A device that now matches but was reported otherwise (fixed by hand,
	// a monitored setting back as wanted) is reported again.
	a.scope(policy)
	if pr.NotModified && reported == policy.Version {
		if observed, err := a.cfg.Enforcer.Observe(ctx); err == nil && observed.Equal(sent) &&
			policy.IsSatisfiedBy(proto.ComplianceReport{AppliedPolicyVersion: policy.Version, Settings: observed, Unsupported: a.unsupported(policy)}) {
			res.Skipped, res.Compliant = true, true
			a.setDue(nil)
			return res
		}
	}

	report, enforceErr, err := a.enforce(ctx, policy)
	if enforceErr != nil {
		res.EnforceErr = enforceErr
		a.log.Warn("enforcing policy failed; reporting the device's actual state",
			"deviceId", id.DeviceID, "version", policy.Version, "err", enforceErr)
	}
	if err != nil {
		res.Err = err
		return res
	}
	a.stamp(&report)
	if err := a.client.Report(ctx, cred, report); err != nil {
		res.Err = err
		return res
	}
	a.mu.Lock()
	if a.haveID && a.id.DeviceID == id.DeviceID {
		a.reported, a.sent = policy.Version, report.Settings
	}
	a.mu.Unlock()
	res.Compliant = report.Compliant
	return res
}

// scope tells a Scoper enforcer what the policy names.
func (a *Agent) scope(policy proto.DevicePolicy) {
	if sc, ok := a.cfg.Enforcer.(Scoper); ok {
		sc.Scope(policy.Settings)
	}
}

// unsupported lists the settings policy manages that the Enforcer says it
// cannot enforce (none when it does not implement Supporter).
func (a *Agent) unsupported(policy proto.DevicePolicy) []string {
	sup, ok := a.cfg.Enforcer.(Supporter)
	if !ok {
		return nil
	}
	var out []string
	managed := policy.Settings.Values()
	for _, name := range proto.SettingNames {
		if _, ok := managed[name]; ok && !sup.Supports(name) {
			out = append(out, name)
		}
	}
	return out
}

// enforce makes the device match policy, except for the settings it only
// monitors or cannot enforce, then observes and builds the report. The
// settings left alone are handed to the Enforcer unmanaged (nil), or, for
// the always managed cameraDisabled, with its observed value, so it changes
// nothing there. enforceErr is the Enforcer's error (the sync goes on);
// err is a failure to observe.
func (a *Agent) enforce(ctx context.Context, policy proto.DevicePolicy) (report proto.ComplianceReport, enforceErr, err error) {
	unsupported := a.unsupported(policy)
	skip := append(slices.Clone(policy.Monitor), unsupported...)
	desired := policy.Settings
	var pending []PendingSetting
	a.setDue(nil)
	if len(skip) > 0 || len(policy.Guided) > 0 {
		before, err := a.cfg.Enforcer.Observe(ctx)
		if err != nil {
			return report, nil, fmt.Errorf("observing device state: %w", err)
		}
		pending = a.guide(ctx, policy, before, unsupported)
		a.setDue(pending)
		for _, p := range pending {
			skip = append(skip, p.Setting)
		}
		desired = leaveAlone(desired, before, skip)
	}
	if pe, ok := a.cfg.Enforcer.(PartialEnforcer); ok && len(skip) > 0 {
		enforceErr = pe.EnforceExcept(ctx, desired, skip)
	} else {
		enforceErr = a.cfg.Enforcer.Enforce(ctx, desired)
	}
	// Observe even when Enforce failed: a device that refuses reports its
	// unchanged state.
	observed, err := a.cfg.Enforcer.Observe(ctx)
	if err != nil {
		return report, enforceErr, fmt.Errorf("observing device state: %w", err)
	}
	report = proto.ComplianceReport{AppliedPolicyVersion: policy.Version, Settings: observed, Unsupported: unsupported,
		SyncIntervalSeconds: a.syncIntervalSeconds()}
	for _, p := range pending {
		if report.Pending == nil {
			report.Pending = map[string]time.Time{}
		}
		report.Pending[p.Setting] = p.RemediateBy.UTC()
	}
	if enforceErr != nil {
		var se *SettingsError
		if errors.As(enforceErr, &se) {
			report.Failed = maps.Clone(se.Failed)
		} else {
			// The whole enforcement failed: every enforced setting that
			// still differs failed for that reason.
			for _, f := range proto.Diff(policy, report) {
				if f.Reason == proto.ReasonMismatch && !f.Monitored {
					if report.Failed == nil {
						report.Failed = map[string]string{}
					}
					report.Failed[f.Setting] = enforceErr.Error()
				}
			}
		}
	}
	if r, ok := a.cfg.Enforcer.(UnsupportedReasoner); ok {
		for _, name := range unsupported {
			if why := r.UnsupportedReason(name); why != "" {
				if report.Failed == nil {
					report.Failed = map[string]string{}
				}
				report.Failed[name] = why
			}
		}
	}
	report.Compliant = policy.IsSatisfiedBy(report)
	return report, enforceErr, nil
}

// guide decides, for the policy's guided settings that the device fails
// (observed before enforcing), which wait for the user (returned: left
// alone, reported pending) and which are past their deadline (enforced),
// and tells the user about the new ones.
func (a *Agent) guide(ctx context.Context, policy proto.DevicePolicy, before proto.Settings, unsupported []string) []PendingSetting {
	deadlines := map[string]time.Duration{}
	for name, d := range policy.Guided {
		if dur, err := time.ParseDuration(d); err == nil && dur > 0 && !slices.Contains(unsupported, name) && !policy.Monitored(name) {
			deadlines[name] = dur
		}
	}
	failing := map[string]bool{}
	want := policy.Settings.Values()
	got := before.Values()
	for name := range deadlines {
		d, ok := proto.LookupSetting(name)
		exp, managed := want[name]
		act, observed := got[name]
		failing[name] = ok && managed && (!observed || !d.EqualValues(exp, act))
	}
	plan, err := a.guided.plan(a.clock.Now(), deadlines, failing)
	if err != nil {
		a.log.Warn("remembering guided deadlines", "err", err)
	}
	if len(plan.Notify) > 0 && a.cfg.Notifier != nil {
		if err := a.cfg.Notifier.Notify(ctx, Notice{Pending: plan.Notify}); err != nil {
			a.log.Warn("notifying the user", "err", err)
		} else if err := a.guided.notifiedAt(plan.Notify); err != nil {
			a.log.Warn("remembering a notice", "err", err)
		}
	}
	for _, name := range plan.Due {
		a.log.Info("guided deadline passed: enforcing", "setting", name)
	}
	return plan.Pending
}

// leaveAlone returns desired without the settings in names: optional ones
// become unmanaged (nil: the Enforcer leaves them alone) and the always
// managed cameraDisabled takes its observed value, so enforcing it changes
// nothing there.
func leaveAlone(desired, observed proto.Settings, names []string) proto.Settings {
	for _, n := range names {
		if n == proto.SettingCameraDisabled {
			desired.CameraDisabled = observed.CameraDisabled
		}
	}
	vals := desired.Values()
	for _, n := range names {
		if n != proto.SettingCameraDisabled {
			delete(vals, n)
		}
	}
	s, err := vals.ToSettings()
	if err != nil {
		return desired // cannot happen: values came from Settings
	}
	return s
}

// syncIntervalSeconds is the interval the agent tells the server, so it
// can tell a silent healthy device from a dead one (capability 3).
func (a *Agent) syncIntervalSeconds() int64 {
	return int64(min(a.cfg.Interval, proto.MaxSyncInterval) / time.Second)
}
