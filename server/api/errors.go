package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/service"
)

// Error is the one coded error (service.Error). errorHandler maps its code
// to an HTTP status with statusOf and writes the contract's error body;
// nothing else writes errors.
type Error = service.Error

var errorf = service.Errorf

var (
	errUnauthorized   = service.ErrUnauthorized
	errForbidden      = service.ErrForbidden
	errDeviceNotFound = service.ErrDeviceNotFound
)

// statusOf is the one table from error codes to HTTP statuses. A code
// missing here is a bug: it answers 500.
var statusOf = map[string]int{
	"invalid_body":                http.StatusBadRequest,
	"invalid_query":               http.StatusBadRequest,
	"invalid_csr":                 http.StatusBadRequest,
	"invalid_name":                http.StatusBadRequest,
	"invalid_role":                http.StatusBadRequest,
	"clock_skew":                  http.StatusBadRequest,
	"nonce_required":              http.StatusBadRequest,
	"unknown_devices":             http.StatusBadRequest,
	"unauthorized":                http.StatusUnauthorized,
	"bad_client_certificate":      http.StatusUnauthorized,
	"client_certificate_required": http.StatusUnauthorized,
	"enrollment_token_expired":    http.StatusUnauthorized,
	"enrollment_token_revoked":    http.StatusUnauthorized,
	"enrollment_token_used_up":    http.StatusUnauthorized,
	"forbidden":                   http.StatusForbidden,
	"not_found":                   http.StatusNotFound,
	"device_not_found":            http.StatusNotFound,
	"group_not_found":             http.StatusNotFound,
	"revision_not_found":          http.StatusNotFound,
	"invalid_revision":            http.StatusBadRequest,
	"token_not_found":             http.StatusNotFound,
	"enrollment_token_not_found":  http.StatusNotFound,
	"no_report":                   http.StatusNotFound,
	"command_not_found":           http.StatusNotFound,
	"command_conflict":            http.StatusConflict,
	"command_state":               http.StatusConflict,
	"version_ahead":               http.StatusConflict,
	"replayed_nonce":              http.StatusConflict,
	"stale_report":                http.StatusConflict,
	"group_name_taken":            http.StatusConflict,
	"token_exists":                http.StatusConflict,
	"builtin_token":               http.StatusConflict,
	"tls_off":                     http.StatusConflict,
	"body_too_large":              http.StatusRequestEntityTooLarge,
	"unsupported_encoding":        http.StatusUnsupportedMediaType,
	"storage_full":                http.StatusInsufficientStorage,
	"storage_failed":              http.StatusServiceUnavailable,
	"backup_unsupported":          http.StatusNotImplemented,
	"unknown_fact":                http.StatusNotFound,
	"rate_limited":                http.StatusTooManyRequests,
	"internal":                    http.StatusInternalServerError,
}

// errorHandler is fiber's ErrorHandler: the only place an error becomes a
// status code. Internal errors are logged with detail; the client gets a
// clean message.
func errorHandler(logger *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var e *Error
		var fe *fiber.Error
		status := 0
		switch {
		case service.StorageError(err) != nil:
			e = service.StorageError(err)
			status = statusOf[e.Code]
			logger.Error("storage write failed", "method", c.Method(), "path", c.Route().Path, "err", err)
		case errors.As(err, &e):
			status = statusOf[e.Code]
		case errors.As(err, &fe):
			// fiber's own errors (routing, body limit) keep their status.
			status = fe.Code
			e = &Error{Code: snake(http.StatusText(fe.Code)), Message: fe.Message}
			if fe.Code == http.StatusRequestEntityTooLarge {
				e.Code = "body_too_large"
				e.Message = fmt.Sprintf("request body is larger than the server accepts (%d bytes; %d for group member lists and inventory uploads)", proto.MaxBodyBytes, MaxGroupBodyBytes)
			}
		}
		if status == 0 {
			logger.Error("internal error", "method", c.Method(), "path", c.Route().Path, "err", err)
			e, status = errorf("internal", "internal server error"), http.StatusInternalServerError
		}
		return c.Status(status).JSON(proto.ErrorBody{Error: proto.ErrorDetail{Code: e.Code, Message: e.Message}})
	}
}

func snake(s string) string {
	if s == "" {
		return "error"
	}
	return strings.ReplaceAll(strings.ToLower(s), " ", "_")
}
