package api

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/console"
)

// consoleFile serves the embedded console. The files are public: they hold
// no data, and every call they make carries the operator's token.
func (a *API) consoleFile(c *fiber.Ctx) error {
	f, ok := console.Lookup(c.Path())
	if !ok {
		return errorf("not_found", "no route %s %s", c.Method(), c.Path())
	}
	for k, v := range console.SecurityHeaders {
		c.Set(k, v)
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, f.ETag)
	if c.Get(fiber.HeaderIfNoneMatch) == f.ETag {
		return c.SendStatus(http.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, f.ContentType)
	return c.Send(f.Body)
}

// LastReport is the answer to GET /devices/{id}/report: the device's last
// accepted report, as it sent it, and when it arrived.
type LastReport struct {
	proto.ComplianceReport
	ReceivedAt time.Time `json:"receivedAt"`
}

// lastReport answers GET /devices/{id}/report (operator): what the device
// observed, for comparing with what it was told. 404 "no_report" when it
// never reported.
func (a *API) lastReport(c *fiber.Ctx) error {
	d := requestDevice(c)
	if d.Report == nil {
		return errorf("no_report", "the device has not reported yet")
	}
	return c.JSON(LastReport{ComplianceReport: d.Report.ComplianceReport, ReceivedAt: d.Report.ReceivedAt})
}
