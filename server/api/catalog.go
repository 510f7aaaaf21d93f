package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
)

// settingsCatalog answers GET /settings: every setting the server knows,
// from the catalog (proto.CatalogInfo), for the console's policy editor,
// the CLI and scripts. Any operator may read it.
func (a *API) settingsCatalog(c *fiber.Ctx) error {
	return c.JSON(proto.CatalogInfo())
}

// commandCatalog answers GET /command-types: the command catalog
// (proto.CommandTypes) with each type's params, for the console's command
// forms, the CLI and scripts. Any operator may read it.
func (a *API) commandCatalog(c *fiber.Ctx) error {
	return c.JSON(proto.CommandCatalogInfo())
}
