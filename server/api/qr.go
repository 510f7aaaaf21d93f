package api

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/doorbell-mdm/doorbell/proto"
)

// maxEnrollURL bounds an enrollment string drawn as a QR code: a server
// URL, a pin and a token fit in far less.
const maxEnrollURL = 1024

// enrollURLFor is the enrollment string for a new enrollment token's
// secret: doorbell://enroll?server=https://<host of this request>&pin=...&
// token=... (docs/TRUST.md). The server is the name the operator reached
// this server by. It is "" when TLS is off: agents then take --server and
// --enroll-token.
func (a *API) enrollURLFor(c *fiber.Ctx, secret string) string {
	if a.cfg.PKI == nil {
		return ""
	}
	return proto.EnrollURLScheme + "://enroll?server=" + url.QueryEscape("https://"+c.Hostname()) +
		"&pin=" + url.QueryEscape(a.cfg.PKI.Pin()) + "&token=" + url.QueryEscape(secret)
}

// enrollmentQR draws an enrollment string as a QR code (PNG) for the
// Android app to scan at provisioning. The string comes in the body, never
// the URL, since it holds the secret; it is neither stored nor logged.
func (a *API) enrollmentQR(c *fiber.Ctx) error {
	var req proto.EnrollmentQRRequest
	if err := decode(c, &req, true); err != nil {
		return err
	}
	u, err := url.Parse(req.EnrollURL)
	if len(req.EnrollURL) > maxEnrollURL || err != nil || u.Scheme != proto.EnrollURLScheme || u.Host != "enroll" ||
		u.Query().Get("server") == "" || strings.ContainsAny(req.EnrollURL, "\r\n") {
		return errorf("invalid_body", "enrollUrl must be an enrollment string %s://enroll?server=...&pin=...&token=... of at most %d bytes",
			proto.EnrollURLScheme, maxEnrollURL)
	}
	png, err := qrcode.Encode(req.EnrollURL, qrcode.Medium, 512)
	if err != nil {
		return errorf("invalid_body", "enrollUrl cannot be drawn as a QR code: %v", err)
	}
	c.Set(fiber.HeaderContentType, "image/png")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(png)
}
