package service

import (
	"errors"
	"fmt"

	"github.com/doorbell-mdm/doorbell/server/store"
)

// Error is the one coded error of the server: Code is a stable snake_case
// name (the API maps it to an HTTP status in one table, server/api/errors.go),
// Message is for humans. Any other error is internal.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns a coded error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errors the service returns as they are.
var (
	ErrUnauthorized   = Errorf("unauthorized", "missing or invalid credentials")
	ErrForbidden      = Errorf("forbidden", "these credentials may not do this")
	ErrDeviceNotFound = Errorf("device_not_found", "no such device")
	ErrGroupNotFound  = Errorf("group_not_found", "no such group")
)

// groupError maps the store's group errors to coded ones.
func groupError(err error) error {
	var ue interface{ Unwrap() error }
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrGroupNotFound
	case errors.Is(err, store.ErrNameTaken):
		return Errorf("group_name_taken", "a group with this name exists")
	case errors.Is(err, store.ErrUnknownDevice) && errors.As(err, &ue):
		msg := err.Error()
		if len(msg) > 500 {
			msg = msg[:500] + "…"
		}
		return Errorf("unknown_devices", "%s", msg)
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return fmt.Errorf("changing group: %w", err)
}

// enrollTokenError maps the store's enrollment token errors to coded ones;
// other errors pass through.
func enrollTokenError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Errorf("unauthorized", "missing or invalid enrollment token")
	case errors.Is(err, store.ErrTokenExpired):
		return Errorf("enrollment_token_expired", "the enrollment token has expired; ask the operator for a new one")
	case errors.Is(err, store.ErrTokenUsedUp):
		return Errorf("enrollment_token_used_up", "the enrollment token has been used as often as it allows; ask the operator for a new one")
	case errors.Is(err, store.ErrTokenRevoked):
		return Errorf("enrollment_token_revoked", "the enrollment token was revoked by an operator")
	}
	return err
}

// replayError maps the store's replay refusals to coded errors; other
// errors (and nil) give nil.
func replayError(err error) error {
	switch {
	case errors.Is(err, store.ErrReplayedNonce):
		return Errorf("replayed_nonce", "this report's nonce was already accepted; send a fresh report")
	case errors.Is(err, store.ErrStaleReport):
		return Errorf("stale_report", "this report is older than the last accepted one; send a fresh report")
	case errors.Is(err, store.ErrNonceRequired):
		return Errorf("nonce_required", "this device sent reports with a nonce before; a report without one is refused")
	}
	return nil
}

// StorageError maps a store's storage failure (a full or failing disk) to
// its coded error, or returns nil for any other error.
func StorageError(err error) *Error {
	switch {
	case errors.Is(err, store.ErrStorageFull):
		return Errorf("storage_full", "the server's storage is full; nothing was written. Free space on the data directory's disk")
	case errors.Is(err, store.ErrStorageFailed):
		return Errorf("storage_failed", "the server could not write to its storage; nothing was written")
	}
	return nil
}
