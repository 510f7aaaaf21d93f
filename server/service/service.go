// Package service owns the rules of the loop (enroll, report, edit,
// groups, evaluation) over the narrow store interfaces, returns coded
// errors, and publishes every committed change once on its change stream.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// Store is the storage the service needs: nothing else. A store that is
// also a store.HealthReporter or store.Backuper answers Health and Backup.
type Store interface {
	store.DeviceStore
	store.StateLister
	store.FailingLister
	store.ReportStore
	store.TokenStore
	store.OverrideStore
	store.GroupStore
	store.HistoryStore
	store.RevocationStore
	store.OperatorTokenStore
	store.EnrollmentTokenStore
	store.AuditStore
	store.SeenStore
	store.CommandStore
	store.RevisionStore
	store.InventoryStore
}

// Change is one committed change of one device, as published on the change
// stream: what the store committed and why. A command's change has Command
// set, Cause CauseCommand and no device.
type Change struct {
	store.Change
	Cause   proto.EventCause
	Command *store.CommandChange
	// Late is true when a newer state of the device was published
	// before this change: two commits raced and this one's publisher came
	// second. Its transitions happened (webhook, metrics take them) but
	// its Device is not the newest: consumers that show the device's
	// state (the live stream) skip it.
	Late bool
}

// Config configures a Service. Its zero value is usable.
type Config struct {
	// Bell rings devices whose policy changed; nil rings nothing.
	Bell bridge.Bell
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger: nil discards.
	Logger *slog.Logger
	// ReportSkew is how far a report's reportedAt may be from the clock;
	// 0 means DefaultReportSkew.
	ReportSkew time.Duration
	// RequireReportNonce refuses reports without reportedAt and nonce.
	RequireReportNonce bool
}

// DefaultReportSkew is the default of Config.ReportSkew.
const DefaultReportSkew = 5 * time.Minute

// Limits on what a device may send.
const (
	MaxStringField = 256
	minNonce       = 16
	maxNonce       = 128
)

// Service is the loop's rules over a Store.
type Service struct {
	st     Store
	cfg    Config
	logger *slog.Logger

	mu       sync.RWMutex
	subs     []func(Change)
	revokers []func(Principal) // revoke.go

	// order keeps, per device, the newest revision published (striped
	// by device id), so no subscriber sees an older state after a newer.
	order [orderStripes]publishOrder

	seenMu sync.Mutex
	seen   map[string]time.Time // sightings not yet flushed (seen.go)

	invRefresh sync.Map // device id -> struct{}: a whole inventory is asked for (inventory.go)
}

type nopBell struct{}

func (nopBell) Ring(...bridge.Ring)           {}
func (nopBell) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// New returns a Service over st.
func New(st Store, cfg Config) *Service {
	if cfg.Bell == nil {
		cfg.Bell = nopBell{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReportSkew <= 0 {
		cfg.ReportSkew = DefaultReportSkew
	}
	return &Service{st: st, cfg: cfg, logger: cfg.Logger.With("component", "service")}
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.cfg.Now() }

// Subscribe adds f to the change stream: it is called once for every
// committed change, after the commit. Changes of one device reach f in
// the order the store committed them (store.Device.Rev); one that lost a
// race to be published comes with Late set. f is called on the goroutine
// that committed the change, holding that device's publication turn: f
// must not block (hand off to a queue).
func (s *Service) Subscribe(f func(Change)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, f)
}

func (s *Service) publish(c store.Change, cause proto.EventCause) {
	s.publishChange(Change{Change: c, Cause: cause})
}

// orderStripes is how many locks the publication order is striped over.
const orderStripes = 64

// publishOrder is one stripe of the publication order: the newest
// revision published per device.
type publishOrder struct {
	mu   sync.Mutex
	last map[string]int64
}

func (s *Service) orderOf(id string) *publishOrder {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return &s.order[h%orderStripes]
}

func (s *Service) publishChange(ch Change) {
	if ch.Command != nil || ch.Device.ID == "" {
		s.fanOut(ch)
		return
	}
	o := s.orderOf(ch.Device.ID)
	o.mu.Lock()
	defer o.mu.Unlock()
	s.publishInOrder(o, ch)
}

// publishInOrder publishes a device's change, o (its stripe) held. Two
// commits of one device may race from their commit to here; the one with
// the older revision, if it comes second, is marked Late. A revision equal
// to the last published is the same state read again (presence).
func (s *Service) publishInOrder(o *publishOrder, ch Change) {
	if rev := ch.Device.Rev; rev > 0 {
		switch last := o.last[ch.Device.ID]; {
		case rev < last:
			ch.Late = true
		case rev > last:
			if o.last == nil {
				o.last = map[string]int64{}
			}
			o.last[ch.Device.ID] = rev
		}
	}
	s.fanOut(ch)
}

// forget drops what the service remembers of a deleted device.
func (s *Service) forget(id string) {
	o := s.orderOf(id)
	o.mu.Lock()
	delete(o.last, id)
	o.mu.Unlock()
}

func (s *Service) fanOut(ch Change) {
	s.mu.RLock()
	subs := s.subs
	s.mu.RUnlock()
	for _, f := range subs {
		f(ch)
	}
}

// ring rings the devices whose policy changed and publishes each change.
func (s *Service) ring(changes []store.Change, cause proto.EventCause) {
	if len(changes) == 0 {
		return
	}
	rings := make([]bridge.Ring, len(changes))
	for i, c := range changes {
		rings[i] = bridge.Ring{DeviceID: c.Device.ID, Version: c.Device.Policy.Version, FCMToken: c.Device.FCMToken}
	}
	s.cfg.Bell.Ring(rings...)
	for _, c := range changes {
		s.publish(c, cause)
	}
}

// Evaluate returns a device's compliance state and failing settings: the
// one place the server derives them.
func Evaluate(d store.Device) (proto.ComplianceState, []proto.SettingFailure) {
	return policy.Derive(d)
}

// Current returns device id as it is now, with its derived state, or
// ErrDeviceNotFound: for a change committed elsewhere (another replica),
// which this replica only hears of.
func (s *Service) Current(ctx context.Context, id string) (store.Change, error) {
	d, err := s.Device(ctx, id)
	if err != nil {
		return store.Change{}, err
	}
	return policy.Current(d), nil
}

// --- enroll ------------------------------------------------------------------

// CheckEnrollToken refuses a missing or unusable API enrollment token
// (hash h) before the body is read; the use is counted by Enroll.
func (s *Service) CheckEnrollToken(ctx context.Context, h []byte) error {
	if h == nil {
		return enrollTokenError(store.ErrNotFound)
	}
	t, err := s.st.EnrollmentTokenByHash(ctx, h)
	if err == nil {
		err = t.Check(s.cfg.Now())
	}
	if err != nil {
		if e := enrollTokenError(err); e != err {
			return e
		}
		return fmt.Errorf("checking enrollment token: %w", err)
	}
	return nil
}

// Enroll stores the new device d. tokenHash is the hash of the API
// enrollment token used, whose use is counted in the same transaction, or
// nil for the static enrollment token.
func (s *Service) Enroll(ctx context.Context, d store.Device, tokenHash []byte) error {
	if err := checkSyncInterval(d.SyncIntervalSeconds); err != nil {
		return err
	}
	var c store.Change
	var err error
	if tokenHash != nil {
		c, err = s.st.EnrollWithToken(ctx, tokenHash, s.cfg.Now(), d)
		if e := enrollTokenError(err); e != err {
			return e
		}
	} else {
		c, err = s.st.CreateDevice(ctx, d)
	}
	if err != nil {
		return fmt.Errorf("enrolling device: %w", err)
	}
	s.publish(c, proto.CauseEnroll)
	return nil
}

// --- report ------------------------------------------------------------------

// Report accepts a compliance report from device d (as authenticated: the
// record is read once, inside the store's write). It bounds what is kept,
// checks freshness, commits, and publishes the change.
func (s *Service) Report(ctx context.Context, d store.DeviceAuth, r proto.ComplianceReport) error {
	if r.AppliedPolicyVersion < 0 {
		return Errorf("invalid_body", "appliedPolicyVersion must not be negative")
	}
	if err := checkSyncInterval(r.SyncIntervalSeconds); err != nil {
		return err
	}
	SanitizeReport(&r)
	now := s.cfg.Now().UTC()
	if err := s.checkFreshness(r, now); err != nil {
		return err
	}
	c, err := s.st.SaveReport(ctx, d.ID, store.Report{ComplianceReport: r, ReceivedAt: now})
	if err := replayError(err); err != nil {
		return err
	}
	switch {
	case errors.Is(err, store.ErrVersionAhead):
		return Errorf("version_ahead", "appliedPolicyVersion %d is above the desired version %d", r.AppliedPolicyVersion, d.PolicyVersion)
	case errors.Is(err, store.ErrNotFound):
		return ErrDeviceNotFound
	case err != nil:
		return fmt.Errorf("saving report: %w", err)
	}
	s.publish(c, proto.CauseReport)
	return nil
}

// checkFreshness checks reportedAt and nonce before the store checks them
// against the device's last report.
func (s *Service) checkFreshness(r proto.ComplianceReport, now time.Time) error {
	switch {
	case r.Nonce == "" && r.ReportedAt.IsZero():
		if s.cfg.RequireReportNonce {
			return Errorf("nonce_required", "reports must carry reportedAt and nonce (agent capability 2 or later)")
		}
		return nil
	case r.Nonce == "" || r.ReportedAt.IsZero():
		return Errorf("invalid_body", "reportedAt and nonce must be sent together")
	case len(r.Nonce) < minNonce || len(r.Nonce) > maxNonce:
		return Errorf("invalid_body", "nonce must be %d to %d characters", minNonce, maxNonce)
	}
	skew := r.ReportedAt.Sub(now)
	if skew > s.cfg.ReportSkew || -skew > s.cfg.ReportSkew {
		return Errorf("clock_skew", "reportedAt %s is more than %v from the server's time %s; fix the device clock",
			r.ReportedAt.UTC().Format(time.RFC3339), s.cfg.ReportSkew, now.Format(time.RFC3339))
	}
	return nil
}

// SanitizeReport keeps, of a report's per-setting detail, only known
// setting names, each once, with failure texts cut to MaxStringField bytes:
// device bodies are lenient (newer agents may know more settings) but what
// is stored stays bounded.
func SanitizeReport(r *proto.ComplianceReport) {
	var unsupported []string
	for _, n := range r.Unsupported {
		if proto.IsSetting(n) && !slices.Contains(unsupported, n) {
			unsupported = append(unsupported, n)
		}
	}
	r.Unsupported = unsupported
	var failed map[string]string
	for n, why := range r.Failed {
		if !proto.IsSetting(n) {
			continue
		}
		if len(why) > MaxStringField {
			why = strings.ToValidUTF8(why[:MaxStringField], "")
		}
		if why == "" {
			why = "failed"
		}
		if failed == nil {
			failed = map[string]string{}
		}
		failed[n] = why
	}
	r.Failed = failed
}

// --- edits -------------------------------------------------------------------

// EditOverride changes device id's own policy layer to change(current).
// When the effective policy changed, the device is rung after the commit.
// ctx carries the audit entry (store.WithAudit).
func (s *Service) EditOverride(ctx context.Context, id string, change func(store.Layer) store.Layer) (store.Device, error) {
	c, changed, err := s.st.UpdateOverride(ctx, id, change)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, ErrDeviceNotFound
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("updating policy: %w", err)
	}
	// The edit is committed (fsynced) above; only now is the bell rung.
	if changed {
		s.ring([]store.Change{c}, proto.CauseEdit)
	}
	return c.Device, nil
}

// Explain says where each setting of device d's effective policy comes from.
func (s *Service) Explain(ctx context.Context, d store.Device) (proto.PolicyExplanation, error) {
	var groups []store.Group
	for _, gid := range d.Groups {
		g, err := s.st.Group(ctx, gid)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return proto.PolicyExplanation{}, fmt.Errorf("loading group: %w", err)
		}
		groups = append(groups, g)
	}
	_, _, ex := policy.Effective(groups, d.Override)
	return proto.PolicyExplanation{DeviceID: d.ID, Policy: d.Policy, Settings: ex}, nil
}

// --- groups ------------------------------------------------------------------

// CreateGroup stores g and rings its members whose policy changed.
func (s *Service) CreateGroup(ctx context.Context, g store.Group) (changed int, err error) {
	changes, err := s.st.CreateGroup(ctx, g)
	if err != nil {
		return 0, groupError(err)
	}
	s.ring(changes, proto.CauseEdit)
	return len(changes), nil
}

// Group returns one group.
func (s *Service) Group(ctx context.Context, id string) (store.Group, error) {
	g, err := s.st.Group(ctx, id)
	if err != nil {
		return g, groupError(err)
	}
	return g, nil
}

// Groups returns every group in precedence order.
func (s *Service) Groups(ctx context.Context) ([]store.Group, error) {
	gs, err := s.st.Groups(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	return gs, nil
}

// UpdateGroup changes a group with change and rings the devices whose
// policy changed.
func (s *Service) UpdateGroup(ctx context.Context, id string, change func(store.Group) (store.Group, error)) (store.Group, int, error) {
	g, changes, err := s.st.UpdateGroup(ctx, id, change)
	if err != nil {
		return g, 0, groupError(err)
	}
	s.ring(changes, proto.CauseEdit)
	return g, len(changes), nil
}

// SetGroupMembers replaces a group's members and rings the devices whose
// policy changed.
func (s *Service) SetGroupMembers(ctx context.Context, id string, ids []string) (store.Group, int, error) {
	g, changes, err := s.st.SetGroupMembers(ctx, id, ids)
	if err != nil {
		return g, 0, groupError(err)
	}
	s.ring(changes, proto.CauseEdit)
	return g, len(changes), nil
}

// DeleteGroup removes a group and rings the devices whose policy changed.
func (s *Service) DeleteGroup(ctx context.Context, id string) (int, error) {
	changes, err := s.st.DeleteGroup(ctx, id)
	if err != nil {
		return 0, groupError(err)
	}
	s.ring(changes, proto.CauseEdit)
	return len(changes), nil
}

// --- presence ----------------------------------------------------------------

// PresenceChanged publishes a device's MQTT session opening or closing.
// Nothing is written, so the device is read (this is no re-read after a
// write), holding its publication turn: a change committed before the
// read is published before or with an equal revision, one after it with a
// newer, so the event is never Late.
func (s *Service) PresenceChanged(deviceID string, connected bool) {
	cause := proto.CauseDisconnect
	if connected {
		cause = proto.CauseConnect
	}
	o := s.orderOf(deviceID)
	o.mu.Lock()
	defer o.mu.Unlock()
	d, err := s.st.Device(context.Background(), deviceID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.logger.Error("loading device for a presence change", "device", deviceID, "err", err)
		}
		return
	}
	s.publishInOrder(o, Change{Change: policy.Current(d), Cause: cause})
}
