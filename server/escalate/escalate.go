// Package escalate evaluates the groups' escalation rules on a timer: a
// member NON_COMPLIANT for longer than a group's notifyAfter gets a
// device.escalated webhook, for longer than its commandAfter a command
// (lock) in its queue. Each step fires once per stretch of non-compliance
// (the store remembers it, in the transaction that audits it).
package escalate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// Store is what the escalator reads and marks.
type Store interface {
	Groups(ctx context.Context) ([]store.Group, error)
	Device(ctx context.Context, id string) (store.Device, error)
	store.EscalationStore
}

// Config configures an Escalator. Store is required; the rest may be zero.
type Config struct {
	Store Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Notify posts the device.escalated webhook; nil drops notify steps
	// (they are still marked and audited, so they do not fire later).
	Notify func(ctx context.Context, e proto.EscalationEvent) error
	// Command queues a command for a device; nil when the server has no
	// command queue: command steps are then logged and not marked, so
	// they fire once a queue exists.
	Command func(ctx context.Context, deviceID, command string) error
	Logger  *slog.Logger
}

// DefaultInterval is how often Run evaluates the rules when the server's
// configuration does not say.
const DefaultInterval = time.Minute

// Escalator evaluates the rules.
type Escalator struct {
	cfg Config
	log *slog.Logger
	// evaluations counts finished Evaluate passes; notified and commanded
	// the steps fired (see Collector).
	evaluations, notified, commanded atomic.Int64
}

// New returns an Escalator.
func New(cfg Config) *Escalator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Escalator{cfg: cfg, log: log.With("component", "escalate")}
}

// Evaluate runs every rule once, at the clock's now, and returns the steps
// that fired.
func (e *Escalator) Evaluate(ctx context.Context) ([]proto.EscalationEvent, error) {
	groups, err := e.cfg.Store.Groups(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	now := e.cfg.Now().UTC()
	var fired []proto.EscalationEvent
	var errs []error
	for _, g := range groups {
		if g.Escalation == nil {
			continue
		}
		notify, _ := proto.ParseAfter(g.Escalation.NotifyAfter)
		command, _ := proto.ParseAfter(g.Escalation.CommandAfter)
		for _, id := range g.Members {
			d, err := e.cfg.Store.Device(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			since := d.NonCompliantSince
			if since.IsZero() {
				continue
			}
			if notify > 0 && !now.Before(since.Add(notify)) {
				ev, ok, err := e.fire(ctx, g, d, "notify", now)
				if err != nil {
					errs = append(errs, err)
				} else if ok {
					fired = append(fired, ev)
				}
			}
			if command > 0 && !now.Before(since.Add(command)) {
				if e.cfg.Command == nil {
					e.log.Warn("escalation wants a command but the server has no command queue", "groupId", g.ID, "deviceId", d.ID, "command", g.Escalation.Command)
					continue
				}
				ev, ok, err := e.fire(ctx, g, d, "command", now)
				if err != nil {
					errs = append(errs, err)
				} else if ok {
					fired = append(fired, ev)
				}
			}
		}
	}
	for _, ev := range fired {
		if ev.Step == "notify" {
			e.notified.Add(1)
		} else {
			e.commanded.Add(1)
		}
	}
	e.evaluations.Add(1)
	return fired, errors.Join(errs...)
}

var (
	evaluationsDesc = prometheus.NewDesc("doorbell_escalation_evaluations_total", "Passes of the escalation rules over every group (one per interval).", nil, nil)
	firedDesc       = prometheus.NewDesc("doorbell_escalations_total", "Escalation steps fired, by step (notify, command); each fires once per stretch of non-compliance.", []string{"step"}, nil)
)

// Collector returns the escalator's metrics, read at scrape time:
// doorbell_escalation_evaluations_total and doorbell_escalations_total by
// step.
func (e *Escalator) Collector() prometheus.Collector { return collector{e} }

type collector struct{ e *Escalator }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- evaluationsDesc
	ch <- firedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(evaluationsDesc, prometheus.CounterValue, float64(c.e.evaluations.Load()))
	ch <- prometheus.MustNewConstMetric(firedDesc, prometheus.CounterValue, float64(c.e.notified.Load()), "notify")
	ch <- prometheus.MustNewConstMetric(firedDesc, prometheus.CounterValue, float64(c.e.commanded.Load()), "command")
}

// fire marks a step and, the first time, carries it out.
func (e *Escalator) fire(ctx context.Context, g store.Group, d store.Device, step string, now time.Time) (proto.EscalationEvent, bool, error) {
	ev := proto.EscalationEvent{Type: "device.escalated", DeviceID: d.ID, GroupID: g.ID, Step: step, NonCompliantSince: d.NonCompliantSince, At: now}
	if step == "command" {
		ev.Command = g.Escalation.Command
	}
	audit := store.WithAudit(ctx, proto.AuditEntry{Actor: "server", Action: "escalation." + step, Target: d.ID,
		Detail: fmt.Sprintf("group %s, non-compliant since %s", g.ID, d.NonCompliantSince.Format(time.RFC3339))})
	first, err := e.cfg.Store.MarkEscalated(audit, d.ID, g.ID+":"+step, d.NonCompliantSince)
	if err != nil || !first {
		return ev, false, err
	}
	switch step {
	case "notify":
		if e.cfg.Notify != nil {
			if err := e.cfg.Notify(ctx, ev); err != nil {
				e.log.Warn("escalation webhook failed", "deviceId", d.ID, "groupId", g.ID, "err", err)
			}
		}
	case "command":
		if err := e.cfg.Command(ctx, d.ID, ev.Command); err != nil {
			return ev, true, fmt.Errorf("queueing %s for %s: %w", ev.Command, d.ID, err)
		}
	}
	e.log.Info("escalated", "deviceId", d.ID, "groupId", g.ID, "step", step)
	return ev, true, nil
}

// Run evaluates every interval until ctx ends; after is the timer source
// (time.After in production, a fake clock's in tests).
func (e *Escalator) Run(ctx context.Context, interval time.Duration, after func(time.Duration) <-chan time.Time) {
	for {
		if _, err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("evaluating escalations", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-after(interval):
		}
	}
}
