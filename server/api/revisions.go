package api

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// revisionRoutes registers the revision routes: reads for any operator,
// rollbacks for admins.
func (a *API) revisionRoutes(op, opDevice, admin group) {
	op.get("/groups/:id/revisions", a.listRevisions(store.RevisionGroup))
	op.get("/groups/:id/revisions/:n", a.getRevision(store.RevisionGroup))
	opDevice.get("/devices/:id/revisions", a.listRevisions(store.RevisionDevice))
	opDevice.get("/devices/:id/revisions/:n", a.getRevision(store.RevisionDevice))
	admin.post("/groups/:id/rollback", a.rollbackGroup)
	admin.post("/devices/:id/rollback", a.rollbackDevice)
}

func (a *API) listRevisions(kind store.RevisionKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		revs, err := a.svc.Revisions(c.UserContext(), kind, c.Params("id"))
		if err != nil {
			return err
		}
		out := proto.RevisionList{Revisions: make([]proto.Revision, 0, len(revs))}
		for _, r := range revs {
			out.Revisions = append(out.Revisions, r.ToProto())
		}
		return c.JSON(out)
	}
}

func revisionNumber(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errorf("invalid_revision", "a revision is a positive whole number, not %q", s)
	}
	return n, nil
}

func (a *API) getRevision(kind store.RevisionKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		n, err := revisionNumber(c.Params("n"))
		if err != nil {
			return err
		}
		r, err := a.svc.Revision(c.UserContext(), kind, c.Params("id"), n)
		if err != nil {
			return err
		}
		return c.JSON(r.ToProto())
	}
}

// parseRollback reads {"revision": n}.
func parseRollback(c *fiber.Ctx) (int64, error) {
	var in proto.Rollback
	if err := decode(c, &in, true); err != nil {
		return 0, err
	}
	if in.Revision <= 0 {
		return 0, errorf("invalid_body", `name the revision to roll back to: {"revision": n}, n from 1`)
	}
	return in.Revision, nil
}

// rollbackGroup is POST /groups/{id}/rollback: revision n's policy becomes
// the group's current one, as a new revision.
func (a *API) rollbackGroup(c *fiber.Ctx) error {
	op := requestOperator(c)
	n, err := parseRollback(c)
	if err != nil {
		return err
	}
	id := strings.Clone(c.Params("id"))
	g, changed, err := a.svc.RollbackGroup(a.audited(c, op, "group.rollback", id, "revision "+strconv.FormatInt(n, 10)), id, n)
	if err != nil {
		return err
	}
	return c.JSON(proto.GroupChange{Group: groupView(g), ChangedDevices: changed})
}

// rollbackDevice is POST /devices/{id}/rollback: revision n of the
// device's own layer becomes current, as a new revision.
func (a *API) rollbackDevice(c *fiber.Ctx) error {
	op := requestOperator(c)
	n, err := parseRollback(c)
	if err != nil {
		return err
	}
	id := strings.Clone(c.Params("id"))
	d, err := a.svc.RollbackDevice(a.audited(c, op, "policy.rollback", id, "revision "+strconv.FormatInt(n, 10)), id, n)
	if err != nil {
		return err
	}
	return c.JSON(d.Policy)
}
