package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/server/store"
)

// routes declares every route with who may call it. A route's caller is
// checked by the group's middleware, which puts it in the context
// (requestDevice, requestOperator); handlers never check credentials.
func (a *API) routes() {
	r := a.app
	r.Use(a.metrics.middleware)
	r.Use(guardBody)

	// Anyone.
	r.Get("/metrics", a.metricsHandler()) // operator unless Metrics.Public
	r.Get("/openapi.json", serveOpenAPI)
	r.Get("/healthz", a.healthz)
	r.Get("/", a.consoleFile)
	r.Get("/ui/*", a.consoleFile)
	r.Post("/enroll", a.enrollLimiter(), readBody, a.enroll) // an enrollment token, checked by the service

	// A device, on its own id (one rate budget per device for all of them,
	// counted after authentication: a caller that is not the device
	// cannot spend its budget).
	devLimit := a.deviceLimiter()
	device := newGroup(r, a.asDevice, devLimit)
	device.post("/devices/:id/report", a.report)
	device.post("/devices/:id/token", a.registerToken)
	device.post("/devices/:id/commands/:cid/result", a.commandResult)
	device.put("/devices/:id/inventory", a.putInventory)
	renew := newGroup(r, lapsedCertOK, a.asDevice, devLimit)
	renew.post("/devices/:id/certificate", a.renewCertificate)
	deviceOrOperator := newGroup(r, a.asDeviceOrOperator, devLimit)
	deviceOrOperator.get("/devices/:id/policy", a.getPolicy)
	// An operator lists the device's commands; the device fetches what it
	// may still run.
	newGroup(r, a.asDeviceOrOperatorReader, devLimit).get("/devices/:id/commands", a.deviceCommands)

	// Any operator (admin or viewer): reads.
	op := newGroup(r, a.asOperator)
	op.get("/devices", a.listDevices)
	op.get("/devices/:id/history", a.history)
	op.get("/compliance/summary", a.summary)
	op.get("/settings", a.settingsCatalog)
	op.get("/command-types", a.commandCatalog)
	op.get("/groups", a.listGroups)
	op.get("/groups/:id", a.getGroup)
	op.get("/tokens", a.listOperatorTokens)
	op.get("/enrollment-tokens", a.listEnrollTokens)
	op.get("/audit", a.audit)
	op.get("/events", a.streamEvents)
	op.get("/commands/:id", a.getCommand)
	op.get("/inventory/packages", a.packageVersions)
	op.get("/inventory/facts/:fact", a.factDistribution)
	opDevice := newGroup(r, a.asOperator, a.loadDevice)
	opDevice.get("/devices/:id/status", a.status)
	opDevice.get("/devices/:id/policy/explain", a.explain)
	opDevice.get("/devices/:id/report", a.lastReport)
	opDevice.get("/devices/:id/inventory", a.getInventory)

	// An admin operator: changes.
	admin := newGroup(r, a.asAdmin)
	admin.put("/devices/:id/policy", a.putPolicy)
	admin.delete("/devices/:id", a.deleteDevice)
	adminDevice := newGroup(r, a.asAdmin, a.loadDevice)
	adminDevice.post("/devices/:id/inventory/refresh", a.refreshInventory)
	admin.post("/groups", a.createGroup)
	admin.delete("/groups/:id", a.deleteGroup)
	admin.patch("/groups/:id", a.patchGroup)
	admin.put("/groups/:id/policy", a.putGroupPolicy)
	admin.put("/groups/:id/devices", a.putGroupDevices)
	a.revisionRoutes(op, opDevice, admin)
	admin.post("/tokens", a.createOperatorToken)
	admin.delete("/tokens/:name", a.deleteOperatorToken)
	admin.post("/enrollment-tokens", a.createEnrollToken)
	admin.post("/enrollment-tokens/qr", a.enrollmentQR)
	admin.delete("/enrollment-tokens/:id", a.revokeEnrollToken)
	admin.get("/backup", a.backup)
	admin.post("/devices/:id/commands", a.sendCommand)
	admin.post("/groups/:id/commands", a.sendGroupCommand)
	admin.delete("/commands/:id", a.cancelCommand)

	r.Use(func(c *fiber.Ctx) error {
		c.Locals(routeLocal, "unmatched")
		return errorf("not_found", "no route %s %s", c.Method(), c.Path())
	})
}

// group is a set of routes sharing who may call them: its handlers run,
// in order, before each route's own. (Not fiber's Group, whose middleware
// would also run for every other route under the same prefix.)
type group struct {
	r  fiber.Router
	mw []fiber.Handler
}

func newGroup(r fiber.Router, mw ...fiber.Handler) group { return group{r, mw} }

// handlers are the group's middleware, then readBody (a body is read
// only once its caller is known), then the route's own.
func (g group) handlers(h fiber.Handler) []fiber.Handler {
	return append(append([]fiber.Handler(nil), g.mw...), readBody, h)
}

func (g group) get(path string, h fiber.Handler)    { g.r.Get(path, g.handlers(h)...) }
func (g group) post(path string, h fiber.Handler)   { g.r.Post(path, g.handlers(h)...) }
func (g group) put(path string, h fiber.Handler)    { g.r.Put(path, g.handlers(h)...) }
func (g group) delete(path string, h fiber.Handler) { g.r.Delete(path, g.handlers(h)...) }
func (g group) patch(path string, h fiber.Handler)  { g.r.Patch(path, g.handlers(h)...) }

// Where the middleware keeps the caller.
const (
	localDevice     = "doorbell.device"
	localDeviceAuth = "doorbell.deviceAuth"
	localOperator   = "doorbell.operator"
)

// requestDevice is the device the path names, loaded by the route's
// middleware (loadDevice, on operator routes).
func requestDevice(c *fiber.Ctx) store.Device { return c.Locals(localDevice).(store.Device) }

// requestAuth is the device the path names as authenticated on device
// routes: its id, credentials and policy version, without its record.
func requestAuth(c *fiber.Ctx) store.DeviceAuth { return c.Locals(localDeviceAuth).(store.DeviceAuth) }

// requestDeviceID is the id of the device the route's middleware admitted
// or loaded.
func requestDeviceID(c *fiber.Ctx) string {
	if a, ok := c.Locals(localDeviceAuth).(store.DeviceAuth); ok {
		return a.ID
	}
	return requestDevice(c).ID
}

// deviceRecord is the whole record of the request's device: the one
// loadDevice loaded, or, on a device route (whose middleware authenticates
// without reading the record), read now, once per request.
func (a *API) deviceRecord(c *fiber.Ctx) (store.Device, error) {
	if d, ok := c.Locals(localDevice).(store.Device); ok {
		return d, nil
	}
	d, err := a.svc.Device(c.UserContext(), requestAuth(c).ID)
	if err != nil {
		return d, err
	}
	c.Locals(localDevice, d)
	return d, nil
}

// requestOperator is the operator the route's middleware admitted.
func requestOperator(c *fiber.Ctx) operator { return c.Locals(localOperator).(operator) }

// asDevice admits the device the path names, with its own secret. An
// unknown device is 404 before any credential check, so a revoked agent
// learns to re-enroll.
func (a *API) asDevice(c *fiber.Ctx) error { return a.deviceCaller(c, false) }

// asDeviceOrOperator is asDevice that also admits any operator.
func (a *API) asDeviceOrOperator(c *fiber.Ctx) error { return a.deviceCaller(c, true) }

func (a *API) deviceCaller(c *fiber.Ctx, allowOperator bool) error {
	d, asOperator, err := a.device(c, allowOperator)
	if err != nil {
		return err
	}
	c.Locals(localDeviceAuth, d)
	if err := c.Next(); err != nil {
		return err // a refused request changes nothing, not even lastSeenAt
	}
	if !asOperator {
		a.svc.Seen(d.ID) // batched in memory: no write per poll
	}
	return nil
}

// lapsedCertOK lets a device present an expired certificate (renewal).
func lapsedCertOK(c *fiber.Ctx) error {
	c.Locals(localLapsedCertOK, true)
	return c.Next()
}

// asOperator admits any operator token (admin or viewer). Any other valid
// credential (a device's) is authenticated but not allowed: 403.
func (a *API) asOperator(c *fiber.Ctx) error {
	op, err := a.principal(c)
	if err != nil {
		return err
	}
	c.Locals(localOperator, op)
	return c.Next()
}

// asAdmin admits an operator who may change things; a viewer is 403.
func (a *API) asAdmin(c *fiber.Ctx) error {
	op, err := a.admin(c)
	if err != nil {
		return err
	}
	c.Locals(localOperator, op)
	return c.Next()
}

// loadDevice loads the device the path names for an admitted operator.
func (a *API) loadDevice(c *fiber.Ctx) error {
	d, err := a.svc.Device(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	c.Locals(localDevice, d)
	return c.Next()
}
