package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/inventory"
)

// putInventory stores a device's inventory upload. The body is read raw
// (fiber's Body would inflate gzip without a bound) and decoded by
// inventory.DecodeUpload, which stops at proto.MaxInventoryBytes inflated.
func (a *API) putInventory(c *fiber.Ctx) error {
	up, err := inventory.DecodeUpload(c.Request().Body(), c.Get(fiber.HeaderContentEncoding))
	switch {
	case errors.Is(err, inventory.ErrTooLarge):
		return errorf("body_too_large", "%v", err)
	case errors.Is(err, inventory.ErrEncoding):
		return errorf("unsupported_encoding", "%v", err)
	case err != nil:
		return errorf("invalid_body", "%v", err)
	}
	d, err := a.deviceRecord(c)
	if err != nil {
		return err
	}
	ack, err := a.svc.SaveInventory(c.UserContext(), d, up)
	if err != nil {
		return err
	}
	return c.JSON(ack)
}

func (a *API) getInventory(c *fiber.Ctx) error {
	var sections []string
	if s := c.Query("sections"); s != "" {
		sections = strings.Split(s, ",")
	}
	inv, err := a.svc.Inventory(c.UserContext(), requestDevice(c).ID, sections)
	if err != nil {
		return err
	}
	return c.JSON(inv)
}

// refreshInventory is POST /devices/{id}/inventory/refresh (admin): a
// shorthand that queues a refresh_inventory command and answers it.
func (a *API) refreshInventory(c *fiber.Ctx) error {
	op := requestOperator(c)
	id := requestDevice(c).ID
	cmd, err := a.svc.RequestInventory(a.audited(c, op, "command.create", id, string(proto.CommandRefreshInventory)), id, op.name)
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(cmd.Redacted())
}

func (a *API) packageVersions(c *fiber.Ctx) error {
	pv, err := a.svc.PackageVersions(c.UserContext(), c.Query("name"))
	if err != nil {
		return err
	}
	return c.JSON(pv)
}

func (a *API) factDistribution(c *fiber.Ctx) error {
	fd, err := a.svc.FactDistribution(c.UserContext(), c.Params("fact"))
	if err != nil {
		return err
	}
	return c.JSON(fd)
}

// inventoryRefreshHeader sets the header that asks the agent for its whole
// inventory on a policy answer, when an operator asked for it.
func (a *API) inventoryRefreshHeader(c *fiber.Ctx, deviceID string) {
	if a.svc.InventoryRequested(deviceID) {
		c.Set(proto.InventoryRequestHeader, "full")
	}
}
