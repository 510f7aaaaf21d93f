package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/policy"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// This file is the service's side of the operator's reads and of the
// credentials (operator tokens, enrollment tokens, device revocation): the
// API calls these, never the store.

// WithAudit returns ctx carrying the audit entry of the change about to be
// made; the store records it in the change's transaction.
func WithAudit(ctx context.Context, e proto.AuditEntry) context.Context {
	return store.WithAudit(ctx, e)
}

// --- devices -----------------------------------------------------------------

// Device returns one device, or ErrDeviceNotFound.
func (s *Service) Device(ctx context.Context, id string) (store.Device, error) {
	d, err := s.st.Device(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return d, ErrDeviceNotFound
	}
	if err != nil {
		return d, fmt.Errorf("loading device: %w", err)
	}
	return d, nil
}

// DeviceAuth returns what authenticates device id (no record decoded), or
// ErrDeviceNotFound.
func (s *Service) DeviceAuth(ctx context.Context, id string) (store.DeviceAuth, error) {
	d, err := s.st.DeviceAuth(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return d, ErrDeviceNotFound
	}
	if err != nil {
		return d, fmt.Errorf("loading device: %w", err)
	}
	return d, nil
}

// DevicePolicy returns device id's desired policy (no report decoded), or
// ErrDeviceNotFound.
func (s *Service) DevicePolicy(ctx context.Context, id string) (proto.DevicePolicy, error) {
	p, err := s.st.DevicePolicy(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, ErrDeviceNotFound
	}
	if err != nil {
		return p, fmt.Errorf("loading policy: %w", err)
	}
	return p, nil
}

// DeviceBySecretHash returns what authenticates the device whose secret
// hashes to h, or ErrUnauthorized when none does.
func (s *Service) DeviceBySecretHash(ctx context.Context, h []byte) (store.DeviceAuth, error) {
	d, err := s.st.DeviceBySecretHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return store.DeviceAuth{}, ErrUnauthorized
	}
	if err != nil {
		return store.DeviceAuth{}, fmt.Errorf("loading device: %w", err)
	}
	return store.AuthOf(d), nil
}

// Devices returns a page of devices (see store.DeviceStore.Devices). When
// the only filter is a state (match nil, state set), the store answers from
// its index when it has one.
func (s *Service) Devices(ctx context.Context, state proto.ComplianceState, after string, limit int, match func(store.Device) bool) ([]store.Device, bool, error) {
	var devs []store.Device
	var more bool
	var err error
	if state != "" && match == nil {
		devs, more, err = s.st.DevicesInState(ctx, state, after, limit)
	} else {
		devs, more, err = s.st.Devices(ctx, after, limit, match)
	}
	if err != nil {
		return nil, false, fmt.Errorf("listing devices: %w", err)
	}
	return devs, more, nil
}

// DevicesFailingBefore returns a page of the devices failing since before
// t (see store.FailingLister), from the store's column when it has one.
func (s *Service) DevicesFailingBefore(ctx context.Context, t time.Time, after string, limit int) ([]store.Device, bool, error) {
	devs, more, err := s.st.DevicesFailingBefore(ctx, t, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("listing devices: %w", err)
	}
	return devs, more, nil
}

// FailingBefore reports whether d has been failing since before t (the
// ?failingSince.lt= filter): policy.FailingBefore.
func FailingBefore(d store.Device, t time.Time) bool { return policy.FailingBefore(d, t) }

// DevicesByInventory is Devices filtered on the inventory: the index yields
// the matching ids in id order, page by page, and only those devices are
// loaded and checked against match (nil keeps all).
func (s *Service) DevicesByInventory(ctx context.Context, q store.InventoryQuery, after string, limit int, match func(store.Device) bool) ([]store.Device, bool, error) {
	var devs []store.Device
	for {
		ids, more, err := s.FindDevices(ctx, q, after, limit)
		if err != nil {
			return nil, false, err
		}
		for _, id := range ids {
			d, err := s.st.Device(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted since
			}
			if err != nil {
				return nil, false, fmt.Errorf("loading device: %w", err)
			}
			if match != nil && !match(d) {
				continue
			}
			if len(devs) == limit {
				return devs, true, nil
			}
			devs = append(devs, d)
		}
		if !more || len(ids) == 0 {
			return devs, false, nil
		}
		after = ids[len(ids)-1]
	}
}

// SetFCMToken records device id's FCM registration token.
func (s *Service) SetFCMToken(ctx context.Context, id, token string) error {
	err := s.st.SetFCMToken(ctx, id, token)
	if errors.Is(err, store.ErrNotFound) {
		return ErrDeviceNotFound
	}
	if err != nil {
		return fmt.Errorf("registering token: %w", err)
	}
	return nil
}

// History returns a device's newest transitions, oldest first.
func (s *Service) History(ctx context.Context, id string) ([]proto.Transition, error) {
	ts, err := s.st.History(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrDeviceNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("loading history: %w", err)
	}
	return ts, nil
}

// Summary returns the fleet's state counts and drifting settings.
func (s *Service) Summary(ctx context.Context) (proto.ComplianceSummary, error) {
	sum, err := s.st.Summary(ctx)
	if err != nil {
		return sum, fmt.Errorf("summarising: %w", err)
	}
	return sum, nil
}

// DeleteDevice deletes device id (ctx carries the audit entry) and, once
// that is durable, revokes it: RevokePrincipal closes its MQTT session and
// every other live session at once, so a reconnect is already refused.
func (s *Service) DeleteDevice(ctx context.Context, id string) error {
	err := s.st.DeleteDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return ErrDeviceNotFound
	}
	if err != nil {
		return fmt.Errorf("deleting device: %w", err)
	}
	s.forget(id)
	s.RevokePrincipal(Principal{Kind: PrincipalDevice, Name: id})
	return nil
}

// --- operator tokens -----------------------------------------------------------

// OperatorTokenByHash returns the named operator token whose secret hashes
// to h, or ErrUnauthorized.
func (s *Service) OperatorTokenByHash(ctx context.Context, h []byte) (store.OperatorToken, error) {
	t, err := s.st.OperatorTokenByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return t, ErrUnauthorized
	}
	if err != nil {
		return t, fmt.Errorf("loading operator token: %w", err)
	}
	return t, nil
}

// CreateOperatorToken stores a named operator token (ctx carries the audit
// entry); a taken name is token_exists.
func (s *Service) CreateOperatorToken(ctx context.Context, t store.OperatorToken) error {
	err := s.st.CreateOperatorToken(ctx, t)
	if errors.Is(err, store.ErrExists) {
		return ErrTokenExists(t.Name)
	}
	if err != nil {
		return fmt.Errorf("creating operator token: %w", err)
	}
	return nil
}

// ErrTokenExists is the error for an operator token name already in use.
func ErrTokenExists(name string) *Error {
	return Errorf("token_exists", "an operator token named %q exists", name)
}

// OperatorTokens returns every named operator token.
func (s *Service) OperatorTokens(ctx context.Context) ([]store.OperatorToken, error) {
	ts, err := s.st.OperatorTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing operator tokens: %w", err)
	}
	return ts, nil
}

// DeleteOperatorToken deletes the named operator token (ctx carries the
// audit entry) and, once that is durable, revokes it: every live session
// opened with it (MQTT, event streams) is closed at once.
func (s *Service) DeleteOperatorToken(ctx context.Context, name string) error {
	var hash []byte
	if toks, err := s.st.OperatorTokens(ctx); err == nil {
		for _, t := range toks {
			if t.Name == name {
				hash = t.Hash
			}
		}
	}
	err := s.st.DeleteOperatorToken(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return Errorf("token_not_found", "no operator token named %q", name)
	}
	if err != nil {
		return fmt.Errorf("deleting operator token: %w", err)
	}
	s.RevokePrincipal(Principal{Kind: PrincipalOperator, Name: name, TokenHash: hash})
	return nil
}

// --- enrollment tokens ---------------------------------------------------------

// CreateEnrollmentToken stores an API enrollment token (ctx carries the
// audit entry).
func (s *Service) CreateEnrollmentToken(ctx context.Context, t store.EnrollmentToken) error {
	if err := s.st.CreateEnrollmentToken(ctx, t); err != nil {
		return fmt.Errorf("creating enrollment token: %w", err)
	}
	return nil
}

// EnrollmentTokens returns every API enrollment token.
func (s *Service) EnrollmentTokens(ctx context.Context) ([]store.EnrollmentToken, error) {
	ts, err := s.st.EnrollmentTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing enrollment tokens: %w", err)
	}
	return ts, nil
}

// RevokeEnrollmentToken revokes an API enrollment token (ctx carries the
// audit entry).
func (s *Service) RevokeEnrollmentToken(ctx context.Context, id string) error {
	err := s.st.RevokeEnrollmentToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Errorf("enrollment_token_not_found", "no enrollment token %q", id)
	}
	if err != nil {
		return fmt.Errorf("revoking enrollment token: %w", err)
	}
	return nil
}

// --- audit and storage ---------------------------------------------------------

// AuditEntries returns up to limit audit entries after the entry id after
// ("" for the oldest), oldest first; more says whether others follow.
func (s *Service) AuditEntries(ctx context.Context, after string, limit int) ([]proto.AuditEntry, bool, error) {
	entries, more, err := s.st.AuditEntries(ctx, after, limit)
	if err != nil {
		return nil, false, fmt.Errorf("reading audit log: %w", err)
	}
	return entries, more, nil
}

// Health returns the storage's last write failure (see
// store.HealthReporter), nil when it is healthy or cannot tell.
func (s *Service) Health() error {
	if hr, ok := s.st.(store.HealthReporter); ok {
		return hr.Health()
	}
	return nil
}

// ErrBackupUnsupported is Backup's error for a store the API does not copy.
var ErrBackupUnsupported = Errorf("backup_unsupported", "this server's store is not copied through the API: a PostgreSQL store is backed up with pg_dump (docs/SCALING.md)")

// CanBackup reports whether Backup can copy the store.
func (s *Service) CanBackup() error {
	if _, ok := s.st.(store.Backuper); !ok {
		return ErrBackupUnsupported
	}
	return nil
}

// Backup writes a consistent copy of the store to w.
func (s *Service) Backup(w io.Writer) (int64, error) {
	b, ok := s.st.(store.Backuper)
	if !ok {
		return 0, ErrBackupUnsupported
	}
	return b.Backup(w)
}
