package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Error is the one coded error the API returns. errorHandler maps it to an
// HTTP status and the contract's error body; nothing else writes errors.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized   = errorf(http.StatusUnauthorized, "unauthorized", "missing or invalid credentials")
	errForbidden      = errorf(http.StatusForbidden, "forbidden", "these credentials may not do this")
	errDeviceNotFound = errorf(http.StatusNotFound, "device_not_found", "no such device")
)

// errorHandler is fiber's ErrorHandler: the only place an error becomes a
// status code. Internal errors are logged with detail; the client gets a
// clean message.
func errorHandler(logger *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var e *Error
		var fe *fiber.Error
		switch {
		case errors.As(err, &e):
		case errors.As(err, &fe):
			e = &Error{Status: fe.Code, Code: snake(http.StatusText(fe.Code)), Message: fe.Message}
			if fe.Code == http.StatusRequestEntityTooLarge {
				e.Code = "body_too_large"
				e.Message = fmt.Sprintf("request body is larger than the server accepts (%d bytes; %d for group member lists)", proto.MaxBodyBytes, MaxGroupBodyBytes)
			}
		default:
			logger.Error("internal error", "method", c.Method(), "path", c.Route().Path, "err", err)
			e = errorf(http.StatusInternalServerError, "internal", "internal server error")
		}
		return c.Status(e.Status).JSON(proto.ErrorBody{Error: proto.ErrorDetail{Code: e.Code, Message: e.Message}})
	}
}

func snake(s string) string {
	if s == "" {
		return "error"
	}
	return strings.ReplaceAll(strings.ToLower(s), " ", "_")
}
