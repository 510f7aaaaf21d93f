// Package doorbell is the Doorbell MDM agent as a gomobile library: the Go
// agent (package agent) behind an API of gobind-supported types only, for the
// thin Android app in android/app.
//
// Built with `gomobile bind -javapkg=org.doorbellmdm` (see `make aar`), Java and
// Kotlin see the package as org.doorbellmdm.doorbell:
//
//	Doorbell.newAgent(Config, Enforcer, Store, Logger) -> Agent
//	Doorbell.newConfig() -> Config           (setServerURL, setEnrollToken, ...)
//	Agent.sync(), onPushMessage(json), onNewToken(token),
//	Agent.startDoorbell(), stop(), deviceID()
//	Enforcer, Store, Logger                  (interfaces the app implements)
//	Executor, Collector, Notifier            (optional: Config.setExecutor, ...)
//	Doorbell.settingNames() -> JSON list of every setting the policy knows
//
// Every exported function and method recovers panics and returns them as
// errors, because a Go panic would kill the app. No []byte crosses the
// boundary: every value is a string, bool or integer, which gobind copies.
//
// This package imports only agent, proto and the standard library.
package doorbell

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// syncTimeout bounds Sync and OnPushMessage. It fits the time Android gives a
// high-priority FCM message handler and a WorkManager worker.
const syncTimeout = 60 * time.Second

// IdentityKey is the Store key under which the agent keeps its identity, as
// JSON, so identity fields added later are stored without a new key.
const IdentityKey = "identity"

// SettingNames returns the JSON names of every setting the policy knows, as
// a JSON list in canonical order, so the app (and its tests) can go through
// them without a list of its own.
func SettingNames() string {
	b, err := json.Marshal(proto.SettingNames)
	if err != nil {
		return "[]" // a list of strings: cannot fail
	}
	return string(b)
}

// Config configures an Agent. ServerURL is required; EnrollToken is needed
// until the device is enrolled. Java sees getters and setters for each field.
type Config struct {
	// ServerURL is the server's base URL, e.g. "https://mdm.example.com".
	ServerURL string
	// EnrollToken enrolls the device when it has no identity yet.
	EnrollToken string
	// ServerPin ("sha256/...", printed by the server and carried in the
	// enrollment QR code) is the public-key pin the agent verifies the
	// server's certificate chain against; the CA learned at enrollment is
	// pinned from then on. Empty means the system's trusted roots.
	ServerPin string
	// IntervalSeconds is the periodic sync interval of the doorbell loop
	// (StartDoorbell); 0 means 15 minutes. Phones sync from WorkManager
	// instead.
	IntervalSeconds int64
	// DisableMQTT is phone mode: StartDoorbell opens no MQTT connection and
	// doorbells arrive through OnPushMessage (FCM).
	DisableMQTT bool
	// MQTTURL overrides the broker URL the server returned at enrollment.
	MQTTURL string
	// Model, OSVersion and AgentVersion are sent at enrollment.
	Model, OSVersion, AgentVersion string
	// Debug forwards debug logs to the Logger too.
	Debug bool
	// Executor carries out remote commands (lock, wipe, ...); nil answers
	// every command ERROR "unsupported". Each command runs at most once:
	// it is recorded in the Store (under CommandJournalKey) before it runs.
	Executor Executor
	// Collector reads the device's inventory, uploaded after a sync when a
	// section changed; nil sends none.
	Collector Collector
	// Notifier tells the user what to fix by when, for settings in guided
	// mode; nil tells nobody (the server still shows PENDING_USER).
	Notifier Notifier
	// StateDir is a private directory of the app (Context.getFilesDir())
	// where the agent remembers when each guided setting first failed, so
	// a restart does not move a deadline; "" keeps that in memory.
	StateDir string
}

// NewConfig returns an empty Config, for Java code that prefers a factory.
func NewConfig() *Config { return &Config{} }

// Enforcer is implemented by the app (DevicePolicyManager). It is generic
// over the settings: each one is named by the policy's own JSON field name
// ("cameraDisabled", "lockTaskPackages", ...) and its value is that field's
// JSON ("true", "[\"com.example.kiosk\"]", "6"). A setting added to the
// policy reaches the app with no change to this interface or to this
// package: the app says it supports the new name and handles its value.
//
// A method that throws in Java returns an error in Go. Apply throwing fails
// that one setting (ENFORCEMENT_FAILED, with the exception's message); the
// others are still applied.
type Enforcer interface {
	// Supports reports whether the app enforces the setting of this name.
	// Settings it does not support are reported UNSUPPORTED and are never
	// passed to Apply or Read.
	Supports(setting string) bool
	// Apply makes the device's setting match valueJSON, the desired
	// value as JSON. It is called for every managed setting at every sync,
	// so it must be cheap when the device already matches.
	Apply(setting, valueJSON string) error
	// Read returns the device's actual value of the setting as JSON: what
	// the device really has, not what was last asked. "" means the device
	// has no value to report (the setting is left out of the report).
	Read(setting string) (string, error)
}

// Store is a string key/value store implemented by the app
// (SharedPreferences). Put must be durable when it returns (commit, not
// apply).
type Store interface {
	// Get returns the value stored under key, "" when there is none.
	Get(key string) (string, error)
	// Put stores value under key.
	Put(key, value string) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key string) error
}

// Executor is implemented by the app (DevicePolicyManager): it carries out
// remote commands. A command is named by its type ("lock", "wipe", ...; see
// docs/COMMANDS.md) and its params come as a JSON object of strings ("{}"
// when none). The agent records a command in the Store before it runs it,
// so a crash or a reboot never runs it twice.
type Executor interface {
	// Supports reports whether the app carries out commands of this type.
	// The others are answered ERROR "unsupported" at once, never passed to
	// Execute.
	Supports(commandType string) bool
	// Execute runs the command and returns its result as JSON:
	// {"state": "ACKNOWLEDGED" | "ERROR" | "NOT_NOW", "errorCode"?,
	// "message"?, "output"?}. Throwing reports ERROR "failed" with the
	// exception's message. NOT_NOW means the device cannot now: the command
	// is offered again at a later sync.
	//
	// A command the device cannot outlive (a wipe) answers
	// {"state": "ACKNOWLEDGED", "runAfterReport": true} without doing it:
	// the agent reports the result first, then calls RunAfterReport. Its
	// params are kept in the Store until then, so a command with a secret
	// param (reset_password) cannot be deferred: it is answered ERROR.
	Execute(commandType, paramsJSON string) (string, error)
	// RunAfterReport does what Execute deferred, once its result was
	// reported (or, if the app died in between, at the end of the next
	// sync). It is called at most once per command.
	RunAfterReport(commandType, paramsJSON string) error
}

// Collector is implemented by the app: it reads the device's inventory.
type Collector interface {
	// Collect returns the inventory as a JSON object of sections, in the
	// form of GET /devices/{id}/inventory ({"system": {...}, "hardware":
	// {...}, "packages": {"format": "android", ...}, "android": {...}};
	// docs/INVENTORY.md). It only reads, and gives the same JSON for the
	// same device (lists sorted), so an unchanged section is not sent
	// again. Invalid JSON or an unknown section sends nothing.
	Collect() (string, error)
}

// Notifier is implemented by the app: it tells the user what to fix and by
// when (a notification), for settings in guided mode that the device fails.
// Each setting's deadline is announced once.
type Notifier interface {
	// ShowNotice shows title and body (English text made by the agent) and
	// gets the same facts as pendingJSON, a JSON list of {"setting",
	// "remediateBy"} (RFC 3339 in UTC to the second, "2026-12-02T18:00:00Z"),
	// for an app that words them itself.
	ShowNotice(title, body, pendingJSON string) error
}

// Logger receives the agent's logs (logcat). Level is "DEBUG", "INFO", "WARN"
// or "ERROR"; msg is one line of key=value text. Secrets and tokens are never
// logged.
type Logger interface {
	Log(level, msg string)
}

// Agent is the Go agent as the app sees it. Its methods are safe for
// concurrent use.
type Agent struct {
	a   *agent.Agent
	log Logger

	mu     sync.Mutex
	cancel context.CancelFunc // non-nil while the doorbell loop runs
	done   chan struct{}      // closed when the doorbell loop returned
}

// NewAgent returns an agent. It does no I/O; the first Sync enrolls the device
// when the Store holds no identity. logger may be nil.
func NewAgent(cfg *Config, enforcer Enforcer, store Store, logger Logger) (a *Agent, err error) {
	defer recoverTo(&err)
	if cfg == nil {
		return nil, errors.New("doorbell: config is required")
	}
	if enforcer == nil {
		return nil, errors.New("doorbell: enforcer is required")
	}
	if store == nil {
		return nil, errors.New("doorbell: store is required")
	}
	if cfg.IntervalSeconds < 0 {
		return nil, fmt.Errorf("doorbell: intervalSeconds %d is negative", cfg.IntervalSeconds)
	}
	ex := newExecutorAdapter(cfg.Executor, store, logger)
	acfg := agent.Config{
		ServerURL:    cfg.ServerURL,
		EnrollToken:  cfg.EnrollToken,
		ServerPin:    cfg.ServerPin,
		Enforcer:     enforcerAdapter{enforcer},
		IDStore:      storeAdapter{store},
		Interval:     time.Duration(cfg.IntervalSeconds) * time.Second,
		DisableMQTT:  cfg.DisableMQTT,
		MQTTURL:      cfg.MQTTURL,
		Model:        cfg.Model,
		OSVersion:    cfg.OSVersion,
		AgentVersion: cfg.AgentVersion,
		Logger:       newSlogLogger(logger, cfg.Debug),
		// The journal lives in the app's Store whether or not there is an
		// Executor: a command is recorded before it is answered either way.
		CommandJournal: journalAdapter{store},
		OnSync:         func(agent.SyncResult) { ex.afterSync() },
	}
	if cfg.Executor != nil {
		acfg.Executor = ex
	}
	if cfg.Collector != nil {
		acfg.Inventory = collectorAdapter(cfg.Collector)
	}
	if cfg.Notifier != nil {
		acfg.Notifier = notifierAdapter{cfg.Notifier}
	}
	if cfg.StateDir != "" {
		acfg.GuidedStatePath = filepath.Join(cfg.StateDir, "guided.json")
	}
	ag, err := agent.New(acfg)
	if err != nil {
		return nil, fmt.Errorf("doorbell: %w", err)
	}
	return &Agent{a: ag, log: logger}, nil
}

// Sync runs one sync now (for the WorkManager worker): enroll if needed,
// fetch the policy, enforce it and report what the device does. A refused
// enforcement is not an error (the device is reported non-compliant); an
// unreachable server or a rejected credential is.
func (a *Agent) Sync() (err error) {
	defer recoverTo(&err)
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	return a.a.Sync(ctx)
}

// OnPushMessage handles an FCM data message, given as the JSON object of its
// data map (for example {"type":"policy_changed","version":"7"}). While the
// doorbell loop runs, the message only rings it. Otherwise (a phone woken by
// FCM) a policy_changed or command_pending message syncs at once (which runs
// the pending commands), and refresh_inventory syncs with a full inventory
// upload; the sync's error is returned, so the caller can fall back to a
// WorkManager job. Other types are ignored.
func (a *Agent) OnPushMessage(dataJSON string) (err error) {
	defer recoverTo(&err)
	var data map[string]string
	if err := json.Unmarshal([]byte(dataJSON), &data); err != nil {
		return fmt.Errorf("doorbell: push message is not a JSON object of strings: %w", err)
	}
	if a.running() {
		a.a.OnPush(data)
		return nil
	}
	switch data["type"] {
	case proto.DoorbellType, proto.CommandDoorbellType:
	case proto.DoorbellRefreshInventory:
		a.a.RefreshInventory() // the next sync uploads everything
	default:
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	return a.a.Sync(ctx)
}

// OnNewToken records the device's FCM token and registers it with the server
// when it changed and the device is enrolled (otherwise the enrolling sync
// registers it).
func (a *Agent) OnNewToken(token string) (err error) {
	defer recoverTo(&err)
	return a.a.SetPushToken(token)
}

// StartDoorbell starts the agent's own loop in the background (the kiosk
// foreground service): a sync now, on every MQTT doorbell (unless
// DisableMQTT), and periodically. Starting a running loop does nothing.
func (a *Agent) StartDoorbell() (err error) {
	defer recoverTo(&err)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.cancel, a.done = cancel, done
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil && a.log != nil {
				a.log.Log("ERROR", fmt.Sprintf("doorbell loop panicked: %v\n%s", r, debug.Stack()))
			}
		}()
		if err := a.a.Run(ctx); err != nil && a.log != nil {
			a.log.Log("ERROR", "doorbell loop: "+err.Error())
		}
	}()
	return nil
}

// Stop stops the doorbell loop and returns once it has stopped (its MQTT
// session closed). Stopping a stopped agent does nothing.
func (a *Agent) Stop() (err error) {
	defer recoverTo(&err)
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel, a.done = nil, nil
	a.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}

// DeviceID returns the device id, "" while the device is not enrolled (or
// its identity cannot be read).
func (a *Agent) DeviceID() (id string) {
	defer func() {
		if r := recover(); r != nil {
			id = ""
		}
	}()
	return a.a.DeviceID()
}

func (a *Agent) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cancel != nil
}

// recoverTo turns a panic into an error, so it crosses into Java as an
// exception instead of killing the app.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("doorbell: internal error (panic): %v\n%s", r, debug.Stack())
	}
}
