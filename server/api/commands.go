package api

import (
	"github.com/doorbell-mdm/doorbell/server/service"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Command list paging.
const (
	defaultCommandLimit = 50
	maxCommandLimit     = 1000
)

// asDeviceOrOperatorReader admits an operator (any role), with the device
// loaded, or else the device itself. Handlers tell them apart by whether an
// operator is in the context (callerOperator).
func (a *API) asDeviceOrOperatorReader(c *fiber.Ctx) error {
	// Not principal: for a device's secret it would look the device up a
	// second time only to learn that the caller is not an operator.
	if op, ok := a.Operator(c.UserContext(), bearer(c)); ok {
		c.Locals(localOperator, operator{name: op.Name, role: op.Role})
		return a.loadDevice(c)
	}
	return a.asDevice(c)
}

// callerOperator returns the operator the middleware admitted, if the
// caller is one.
func callerOperator(c *fiber.Ctx) (operator, bool) {
	op, ok := c.Locals(localOperator).(operator)
	return op, ok
}

// sendCommand is POST /devices/{id}/commands (admin).
func (a *API) sendCommand(c *fiber.Ctx) error {
	op := requestOperator(c)
	var req proto.CommandRequest
	if err := decode(c, &req, true); err != nil {
		return err
	}
	id := strings.Clone(c.Params("id"))
	cmd, err := a.svc.SendCommand(a.audited(c, op, "command.create", id, string(req.Type)), id, req, op.name)
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(cmd.Redacted())
}

// sendGroupCommand is POST /groups/{id}/commands (admin).
func (a *API) sendGroupCommand(c *fiber.Ctx) error {
	op := requestOperator(c)
	var req proto.CommandRequest
	if err := decode(c, &req, true); err != nil {
		return err
	}
	gid := strings.Clone(c.Params("id"))
	cmds, err := a.svc.SendGroupCommand(a.audited(c, op, "command.create", "group:"+gid, string(req.Type)), gid, req, op.name)
	if err != nil {
		return err
	}
	for i := range cmds {
		cmds[i] = cmds[i].Redacted()
	}
	return c.Status(http.StatusAccepted).JSON(proto.GroupCommandResponse{GroupID: gid, Commands: cmds})
}

// deviceCommands is GET /devices/{id}/commands: for an operator one page
// of the device's commands, newest first; for the device itself what it
// may still run, which it thereby fetched (DELIVERED).
func (a *API) deviceCommands(c *fiber.Ctx) error {
	d, err := a.deviceRecord(c)
	if err != nil {
		return err
	}
	if _, ok := callerOperator(c); !ok {
		cmds, err := a.svc.DeliverCommands(service.WithAudit(c.UserContext(), deviceAudit(c, a, d.ID, "command.deliver", d.ID)), d)
		if err != nil {
			return err
		}
		if cmds == nil {
			cmds = []proto.Command{}
		}
		return c.JSON(proto.CommandList{Commands: cmds})
	}
	limit := defaultCommandLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxCommandLimit {
			return errorf("invalid_query", "limit must be a whole number from 1 to %d", maxCommandLimit)
		}
		limit = n
	}
	st := proto.CommandState(c.Query("state"))
	if st != "" && !st.Valid() {
		return errorf("invalid_query", "state must be one of %s", commandStateNames())
	}
	list, err := a.svc.DeviceCommands(c.UserContext(), d.ID, strings.Clone(c.Query("after")), limit, st)
	if err != nil {
		return err
	}
	return c.JSON(list)
}

func commandStateNames() string {
	var s []string
	for _, st := range proto.CommandStates {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

// getCommand is GET /commands/{id} (operator).
func (a *API) getCommand(c *fiber.Ctx) error {
	cmd, err := a.svc.Command(c.UserContext(), strings.Clone(c.Params("id")))
	if err != nil {
		return err
	}
	return c.JSON(cmd.Redacted())
}

// cancelCommand is DELETE /commands/{id} (admin).
func (a *API) cancelCommand(c *fiber.Ctx) error {
	op := requestOperator(c)
	id := strings.Clone(c.Params("id"))
	cmd, err := a.svc.CancelCommand(a.audited(c, op, "command.cancel", id, ""), id)
	if err != nil {
		return err
	}
	return c.JSON(cmd.Redacted())
}

// commandResult is POST /devices/{id}/commands/{cid}/result (the device).
func (a *API) commandResult(c *fiber.Ctx) error {
	d, err := a.deviceRecord(c)
	if err != nil {
		return err
	}
	var r proto.CommandResult
	if err := decode(c, &r, false); err != nil {
		return err
	}
	cid := strings.Clone(c.Params("cid"))
	ctx := service.WithAudit(c.UserContext(), deviceAudit(c, a, d.ID, "command.result", cid, string(r.State)))
	cmd, err := a.svc.CommandResult(ctx, d, cid, r)
	if err != nil {
		return err
	}
	return c.JSON(cmd.Redacted())
}

// deviceAudit is the audit entry of a device's own step.
func deviceAudit(c *fiber.Ctx, a *API, deviceID, action, target string, detail ...string) proto.AuditEntry {
	return proto.AuditEntry{
		At:       a.cfg.Now().UTC(),
		Actor:    "device:" + deviceID,
		Action:   action,
		Target:   target,
		Detail:   strings.Join(detail, " "),
		RemoteIP: c.IP(),
	}
}
