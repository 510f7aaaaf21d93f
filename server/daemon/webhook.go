package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/backoff"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Webhook headers. SignatureHeader carries "sha256=" and the hex HMAC-SHA256
// of the exact body under the webhook secret.
const (
	SignatureHeader = "X-Doorbell-Signature"
	EventHeader     = "X-Doorbell-Event"
	// EventStateChanged is the type of a device's state transition.
	EventStateChanged = "device.state_changed"
	// EventCommandStateChanged is the type of a command's state change
	// (proto.CommandEvent).
	EventCommandStateChanged = proto.WebhookCommandStateChanged
)

// webhookItem is one queued event: its type, the device it is about (for
// logs) and its body.
type webhookItem struct {
	typ    string
	device string
	body   any
}

// WebhookEvent is the JSON body of one webhook POST: one state transition.
type WebhookEvent struct {
	Type string `json:"type"`
	proto.Transition
}

// WebhookConfig configures a Webhook. URL and Secret are required.
type WebhookConfig struct {
	URL    string
	Secret string
	// QueueSize bounds the events waiting for delivery; 0 means 1024.
	// When full, new events are dropped (and counted), never waited for.
	QueueSize int
	// MaxAttempts per event; 0 means 8.
	MaxAttempts int
	// Backoff is the delay before the first retry, doubling each time up
	// to MaxBackoff; 0 means 1s and 1m.
	Backoff, MaxBackoff time.Duration
	// HTTPClient posts the events; nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger: nil discards. The secret is never logged.
	Logger *slog.Logger
}

// Webhook POSTs every state transition to an operator's URL, signed with
// HMAC-SHA256, retried with exponential backoff. Notify never blocks, so
// the request path never waits for the receiver.
type Webhook struct {
	cfg     WebhookConfig
	log     *slog.Logger
	queue   chan webhookItem
	dropped atomic.Int64
}

// NewWebhook validates cfg and returns a webhook; Run delivers.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook URL %q: want http(s)://host/path", cfg.URL)
	}
	if cfg.Secret == "" {
		return nil, errors.New("webhook: a secret is required to sign events")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Webhook{cfg: cfg, log: cfg.Logger.With("component", "webhook"), queue: make(chan webhookItem, cfg.QueueSize)}, nil
}

// Notify queues transitions for delivery. It never blocks: when the queue
// is full the event is dropped and counted (see Dropped).
func (w *Webhook) Notify(ts ...proto.Transition) {
	for _, t := range ts {
		w.enqueue(webhookItem{EventStateChanged, t.DeviceID, WebhookEvent{Type: EventStateChanged, Transition: t}})
	}
}

// NotifyCommand queues a command's state change for delivery, as Notify
// does.
func (w *Webhook) NotifyCommand(ev proto.CommandEvent) {
	ev.Type = EventCommandStateChanged
	w.enqueue(webhookItem{EventCommandStateChanged, ev.Command.DeviceID, ev})
}

func (w *Webhook) enqueue(it webhookItem) {
	{
		select {
		case w.queue <- it:
		default:
			if n := w.dropped.Add(1); n == 1 || n%1000 == 0 {
				w.log.Warn("webhook queue full; dropping events", "dropped", n)
			}
		}
	}
}

// Dropped is how many events were dropped because the queue was full.
func (w *Webhook) Dropped() int64 { return w.dropped.Load() }

// Run delivers queued events, one at a time and in order, until ctx is
// done.
func (w *Webhook) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case it := <-w.queue:
			w.deliver(ctx, it)
		}
	}
}

// Sign returns the SignatureHeader value for body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *Webhook) deliver(ctx context.Context, it webhookItem) {
	body, err := json.Marshal(it.body)
	if err != nil {
		w.log.Error("encoding webhook event", "err", err)
		return
	}
	delays := backoff.Backoff{Min: w.cfg.Backoff, Max: w.cfg.MaxBackoff}
	for attempt := 1; ; attempt++ {
		retry, err := w.post(ctx, it.typ, body)
		if err == nil {
			return
		}
		if !retry || attempt >= w.cfg.MaxAttempts {
			w.log.Error("webhook delivery failed; dropping event", "device", it.device, "event", it.typ, "attempts", attempt, "err", err)
			return
		}
		delay := delays.Next()
		w.log.Warn("webhook delivery failed; retrying", "device", it.device, "event", it.typ, "attempt", attempt, "retryIn", delay, "err", err)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// EventEscalated is the type of an escalation's webhook event.
const EventEscalated = "device.escalated"

// Escalated posts an escalation event (one attempt; the escalator has
// already marked the step, so it does not fire again).
func (w *Webhook) Escalated(ctx context.Context, e proto.EscalationEvent) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = w.post(ctx, EventEscalated, body)
	return err
}

// post sends one event; retry says whether a failure may succeed later
// (network errors, 429, 5xx).
func (w *Webhook) post(ctx context.Context, typ string, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(EventHeader, typ)
	req.Header.Set(SignatureHeader, Sign(w.cfg.Secret, body))
	resp, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("receiver answered %s", resp.Status)
	default:
		return false, fmt.Errorf("receiver answered %s", resp.Status)
	}
}
