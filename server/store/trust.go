package store

import (
	"context"
	"errors"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Errors of the replay checks in SaveReport.
var (
	ErrReplayedNonce = errors.New("report nonce was already accepted")
	ErrStaleReport   = errors.New("report is older than the last accepted one")
	ErrNonceRequired = errors.New("device reported with a nonce before; a report without one is refused")
)

// Errors of enrollment token checks. A revoked token is kept as a tombstone
// so its holder learns it was revoked rather than mistyped.
var (
	ErrTokenExpired = errors.New("enrollment token expired")
	ErrTokenUsedUp  = errors.New("enrollment token used up")
	ErrTokenRevoked = errors.New("enrollment token revoked")
)

// OperatorToken is a named operator credential. Only the hash of the token
// is kept.
type OperatorToken struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Hash      []byte    `json:"hash"`
	CreatedAt time.Time `json:"createdAt"`
}

// EnrollmentToken is an operator-issued enrollment credential. Only the hash
// of the token is kept.
type EnrollmentToken struct {
	ID        string    `json:"id"`
	Hash      []byte    `json:"hash"`
	ExpiresAt time.Time `json:"expiresAt"`
	MaxUses   int       `json:"maxUses"`
	Uses      int       `json:"uses"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	Revoked   bool      `json:"revoked,omitempty"`
}

// Check returns why t may not enroll a device at now, or nil.
func (t EnrollmentToken) Check(now time.Time) error {
	switch {
	case t.Revoked:
		return ErrTokenRevoked
	case !now.Before(t.ExpiresAt):
		return ErrTokenExpired
	case t.Uses >= t.MaxUses:
		return ErrTokenUsedUp
	}
	return nil
}

type auditKey struct{}

// WithAudit returns a context that makes the next change a store method
// commits also append e to the audit log, in the same transaction. A method
// that changes nothing (an unchanged policy, an unknown id) records nothing.
// ID is assigned by the store.
func WithAudit(ctx context.Context, e proto.AuditEntry) context.Context {
	return context.WithValue(ctx, auditKey{}, e)
}

// AuditFrom returns the entry WithAudit put in ctx, if any.
func AuditFrom(ctx context.Context) (proto.AuditEntry, bool) {
	e, ok := ctx.Value(auditKey{}).(proto.AuditEntry)
	return e, ok
}

// RevocationStore deletes devices.
type RevocationStore interface {
	// DeleteDevice deletes the device record, its secret index and its FCM
	// token in one transaction, or returns ErrNotFound. It records the audit
	// entry of ctx. In the same transaction it cancels every unfinished
	// command of the device (the commands themselves are kept).
	DeleteDevice(ctx context.Context, id string) error
}

// OperatorTokenStore holds named operator tokens.
type OperatorTokenStore interface {
	// CreateOperatorToken stores t, or returns ErrExists when the name or
	// the hash is taken. It records the audit entry of ctx.
	CreateOperatorToken(ctx context.Context, t OperatorToken) error
	// OperatorTokenByHash returns the token whose secret hashes to h, or
	// ErrNotFound.
	OperatorTokenByHash(ctx context.Context, h []byte) (OperatorToken, error)
	// OperatorTokens returns every token in name order.
	OperatorTokens(ctx context.Context) ([]OperatorToken, error)
	// DeleteOperatorToken deletes the named token, or returns ErrNotFound.
	// It records the audit entry of ctx.
	DeleteOperatorToken(ctx context.Context, name string) error
}

// EnrollmentTokenStore holds operator-issued enrollment tokens.
type EnrollmentTokenStore interface {
	// CreateEnrollmentToken stores t, or returns ErrExists when its id or
	// hash is taken. It records the audit entry of ctx.
	CreateEnrollmentToken(ctx context.Context, t EnrollmentToken) error
	// EnrollmentTokens returns every token not revoked, in id order.
	EnrollmentTokens(ctx context.Context) ([]EnrollmentToken, error)
	// EnrollmentTokenByHash returns the token (revoked ones included) whose
	// secret hashes to h, or ErrNotFound.
	EnrollmentTokenByHash(ctx context.Context, h []byte) (EnrollmentToken, error)
	// RevokeEnrollmentToken marks the token revoked, or returns
	// ErrNotFound (also for one already revoked). It records the audit
	// entry of ctx.
	RevokeEnrollmentToken(ctx context.Context, id string) error
	// EnrollWithToken, in one transaction, checks the token whose secret
	// hashes to h at now (ErrNotFound, ErrTokenRevoked, ErrTokenExpired,
	// ErrTokenUsedUp), counts one use and creates d as CreateDevice does.
	// On any error nothing is written.
	EnrollWithToken(ctx context.Context, h []byte, now time.Time, d Device) (Change, error)
}

// AuditStore is the audit log. Entries are appended by the other stores'
// changes (WithAudit); the log keeps the newest entries up to the backend's
// retention (bolt: 100,000).
type AuditStore interface {
	// AuditEntries returns up to limit entries with ids after after, oldest
	// first; more says whether further entries exist.
	AuditEntries(ctx context.Context, after string, limit int) (entries []proto.AuditEntry, more bool, err error)
}
