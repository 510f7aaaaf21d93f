package doorbell

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// enforcerAdapter turns the app's Enforcer into an agent.Enforcer. It knows
// no setting by name: it walks the policy's settings through their JSON form
// (proto.Settings.Values / SettingValues.ToSettings), so a setting added to
// the policy crosses the boundary without a change here.
type enforcerAdapter struct{ e Enforcer }

var (
	_ agent.Enforcer  = enforcerAdapter{}
	_ agent.Supporter = enforcerAdapter{}
)

// Enforce implements agent.Enforcer: Apply for every managed setting the app
// supports, in canonical order. A Java exception (or a panic) fails that
// setting only; the others are applied all the same, and the failures come
// back as one *agent.SettingsError.
func (a enforcerAdapter) Enforce(ctx context.Context, desired proto.Settings) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	vals := desired.Values()
	failed := map[string]string{}
	for _, name := range proto.SettingNames {
		v, managed := vals[name]
		if !managed || !a.Supports(name) {
			continue
		}
		if err := a.apply(name, string(v)); err != nil {
			failed[name] = err.Error()
		}
	}
	if len(failed) > 0 {
		return &agent.SettingsError{Failed: failed}
	}
	return nil
}

func (a enforcerAdapter) apply(name, value string) (err error) {
	defer recoverTo(&err)
	return a.e.Apply(name, value)
}

// Observe implements agent.Enforcer: Read for every setting the app
// supports. Each value is checked with proto.ParseSetting, so an app that
// reads back nonsense is an error naming the setting, never a report the
// server would misjudge. Settings the app does not support are not
// observed.
func (a enforcerAdapter) Observe(ctx context.Context) (s proto.Settings, err error) {
	if err := ctx.Err(); err != nil {
		return proto.Settings{}, err
	}
	defer recoverTo(&err)
	vals := proto.SettingValues{}
	for _, name := range proto.SettingNames {
		if !a.Supports(name) {
			continue
		}
		raw, err := a.e.Read(name)
		if err != nil {
			return proto.Settings{}, fmt.Errorf("reading %s: %w", name, err)
		}
		if raw == "" {
			continue
		}
		v, err := proto.ParseSetting(name, json.RawMessage(raw))
		if err != nil {
			return proto.Settings{}, fmt.Errorf("reading %s: the app returned %q: %w", name, truncate(raw, 100), err)
		}
		vals[name] = v
	}
	return vals.ToSettings()
}

// Supports implements agent.Supporter by asking the app. A panic (or a Java
// exception, which gobind cannot return from a method without an error)
// means not supported.
func (a enforcerAdapter) Supports(setting string) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ok = false
		}
	}()
	return a.e.Supports(setting)
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// storeAdapter keeps the agent's Identity as JSON under IdentityKey.
type storeAdapter struct{ s Store }

var _ agent.IDStore = storeAdapter{}

// Load implements agent.IDStore.
func (a storeAdapter) Load() (id agent.Identity, ok bool, err error) {
	defer recoverTo(&err)
	v, err := a.s.Get(IdentityKey)
	if err != nil {
		return agent.Identity{}, false, fmt.Errorf("reading identity: %w", err)
	}
	if v == "" {
		return agent.Identity{}, false, nil
	}
	if err := json.Unmarshal([]byte(v), &id); err != nil {
		return agent.Identity{}, false, fmt.Errorf("reading identity: %w", err)
	}
	if id.DeviceID == "" || id.DeviceSecret == "" {
		return agent.Identity{}, false, fmt.Errorf("reading identity: no device id or secret")
	}
	return id, true, nil
}

// Save implements agent.IDStore.
func (a storeAdapter) Save(id agent.Identity) (err error) {
	defer recoverTo(&err)
	b, err := json.Marshal(id)
	if err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	if err := a.s.Put(IdentityKey, string(b)); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	return nil
}

// Clear implements agent.IDStore.
func (a storeAdapter) Clear() (err error) {
	defer recoverTo(&err)
	if err := a.s.Delete(IdentityKey); err != nil {
		return fmt.Errorf("clearing identity: %w", err)
	}
	return nil
}

// newSlogLogger returns a slog.Logger that hands each record, as one line of
// text without the time (logcat has its own), to l. A nil l discards.
func newSlogLogger(l Logger, debug bool) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	sink := &lineSink{l: l}
	text := slog.NewTextHandler(sink, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return slog.New(&logHandler{Handler: text, sink: sink})
}

// lineSink collects what a TextHandler writes for one record. Its mutex is
// held by logHandler.Handle from before the record is formatted until it is
// handed on, so records never mix.
type lineSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
	l   Logger
}

func (s *lineSink) Write(p []byte) (int, error) { return s.buf.Write(p) }

// logHandler forwards each formatted record to the app's Logger with its
// level.
type logHandler struct {
	slog.Handler
	sink *lineSink
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	h.sink.buf.Reset()
	if err := h.Handler.Handle(ctx, r); err != nil {
		return err
	}
	line := strings.TrimSpace(h.sink.buf.String())
	func() {
		// A logger that panics must not take the agent down.
		defer func() { _ = recover() }()
		h.sink.l.Log(r.Level.String(), line)
	}()
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHandler{Handler: h.Handler.WithAttrs(attrs), sink: h.sink}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{Handler: h.Handler.WithGroup(name), sink: h.sink}
}

// collectorAdapter turns the app's Collector into an agent.Collector: the
// JSON it returns is parsed and validated by agent.JSONCollector.
func collectorAdapter(c Collector) agent.Collector {
	return agent.JSONCollector(func(context.Context) (b []byte, err error) {
		defer recoverTo(&err)
		s, err := c.Collect()
		if err != nil {
			return nil, err
		}
		return []byte(s), nil
	})
}

// notifierAdapter turns the app's Notifier into an agent.Notifier.
type notifierAdapter struct{ n Notifier }

var _ agent.Notifier = notifierAdapter{}

// pendingSetting is one entry of ShowNotice's pendingJSON. RemediateBy is
// RFC 3339 in UTC to the second ("2026-12-02T18:00:00Z"), one fixed form an
// app parses without java.time (API 26).
type pendingSetting struct {
	Setting     string `json:"setting"`
	RemediateBy string `json:"remediateBy"`
}

// Notify implements agent.Notifier.
func (a notifierAdapter) Notify(ctx context.Context, n agent.Notice) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer recoverTo(&err)
	ps := make([]pendingSetting, len(n.Pending))
	for i, p := range n.Pending {
		ps[i] = pendingSetting{Setting: p.Setting, RemediateBy: p.RemediateBy.UTC().Truncate(time.Second).Format(time.RFC3339)}
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return err
	}
	title, body := n.Text()
	return a.n.ShowNotice(title, body, string(b))
}
