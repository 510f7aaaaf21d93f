package api

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/internal/body"
	"github.com/doorbell-mdm/doorbell/proto"
)

// MaxGroupBodyBytes is the largest body of PUT /groups/{id}/devices and
// POST /groups (a member list of tens of thousands of ids); every other
// request is limited to proto.MaxBodyBytes, inventory uploads to
// proto.MaxInventoryBodyBytes.
const MaxGroupBodyBytes = 4 << 20

// maxBodyBytes is the largest body any route accepts: fasthttp's own
// limit, which with streamed request bodies only decides how much of a
// body it may read ahead (at most 8 KiB) before a handler runs.
const maxBodyBytes = max(MaxGroupBodyBytes, proto.MaxInventoryBodyBytes)

// bodyLimits are the bounds of a route's body, as received and decoded.
func bodyLimits(method, path string) body.Limits {
	switch {
	case method == http.MethodPost && path == "/groups",
		method == http.MethodPut && strings.HasPrefix(path, "/groups/") && strings.HasSuffix(path, "/devices"):
		return body.Limits{Raw: MaxGroupBodyBytes, Decoded: MaxGroupBodyBytes}
	case method == http.MethodPut && strings.HasPrefix(path, "/devices/") && strings.HasSuffix(path, "/inventory"):
		return body.Limits{Raw: proto.MaxInventoryBodyBytes, Decoded: proto.MaxInventoryBytes}
	}
	return body.Limits{Raw: proto.MaxBodyBytes, Decoded: proto.MaxBodyBytes}
}

const localBodyRead = "doorbell.bodyRead"

// LingerBytes is how far over its route's limit a body may be and still be
// read (and dropped) before its 413: a client that writes its whole body
// before reading the answer then sees the 413 instead of a reset. A body
// announced further over is refused without reading it.
const LingerBytes = 256 << 10

// hasBody reports whether a request with fasthttp's Content-Length n has
// a body: a length above 0, or -1 for a chunked one (-2 is none).
func hasBody(n int) bool { return n > 0 || n == -1 }

// guardBody runs first for every request. Request bodies are streamed
// (fiber's StreamRequestBody): the server has read at most 8 KiB of one
// when a handler starts. A body whose Content-Length is above its route's
// limit is refused here, whoever sends it, read and dropped first only
// when it is at most LingerBytes over (so the client sees the answer);
// the rest is read only by readBody, after the caller is authenticated.
// A body left unread (refused before readBody, or sent to a route that
// takes none) may still be on the wire, so the connection is closed after
// the answer instead of parsing those bytes as the next request.
func guardBody(c *fiber.Ctx) error {
	n := c.Request().Header.ContentLength()
	if lim := bodyLimits(c.Method(), c.Path()); n > lim.Raw {
		c.Context().SetConnectionClose()
		if s := c.Request().BodyStream(); s != nil && n <= lim.Raw+LingerBytes {
			io.Copy(io.Discard, io.LimitReader(s, int64(n))) // bounded: at most LingerBytes over the limit
		}
		return errorf("body_too_large", "%s", (&body.TooLargeError{Limit: lim.Raw}).Error())
	}
	err := c.Next()
	if hasBody(n) && c.Locals(localBodyRead) == nil {
		c.Context().SetConnectionClose()
	}
	return err
}

// readBody is the one bounded decoder every request body goes through
// (body.Decode), run after the route's authentication: it reads the
// streamed body up to the route's limit as received, removes at most one
// Content-Encoding layer up to the limit decoded, and replaces the body
// with the decoded one (dropping the header), so neither fasthttp's
// unbounded Body nor fiber's unbounded decompression ever runs.
func readBody(c *fiber.Ctx) error {
	req := c.Request()
	n := req.Header.ContentLength()
	enc := string(req.Header.ContentEncoding())
	if !hasBody(n) && enc == "" {
		return c.Next()
	}
	c.Locals(localBodyRead, true)
	lim := bodyLimits(c.Method(), c.Path())
	var raw []byte
	if s := req.BodyStream(); s != nil {
		var err error
		if raw, err = io.ReadAll(io.LimitReader(s, int64(lim.Raw)+1)); err != nil {
			c.Context().SetConnectionClose()
			return errorf("invalid_body", "reading the request body: %v", err)
		}
		if len(raw) > lim.Raw {
			c.Context().SetConnectionClose() // the rest of a chunked body is still unread
		}
	} else {
		raw = req.Body()
	}
	out, err := body.Decode(raw, enc, lim)
	var tl *body.TooLargeError
	var ee *body.EncodingError
	switch {
	case errors.As(err, &tl):
		return errorf("body_too_large", "%s", tl.Error())
	case errors.As(err, &ee) && ee.Unsupported:
		return errorf("unsupported_encoding", "%s", ee.Msg)
	case errors.As(err, &ee):
		return errorf("invalid_body", "%s", ee.Msg)
	case err != nil:
		return err
	}
	req.SetBodyRaw(out)
	req.Header.Del(fiber.HeaderContentEncoding)
	return c.Next()
}
