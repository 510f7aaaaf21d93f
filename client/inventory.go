package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Inventory returns a device's latest inventory and when each section
// changed (GET /devices/{id}/inventory).
func (c *Client) Inventory(ctx context.Context, id string) (proto.DeviceInventory, error) {
	var inv proto.DeviceInventory
	err := c.do(ctx, http.MethodGet, "/devices/"+url.PathEscape(id)+"/inventory", nil, &inv)
	return inv, err
}

// RefreshInventory asks the device for its whole inventory now (POST
// /devices/{id}/inventory/refresh) and returns the refresh_inventory
// command it queued.
func (c *Client) RefreshInventory(ctx context.Context, id string) (proto.Command, error) {
	var out proto.Command
	err := c.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(id)+"/inventory/refresh", nil, &out)
	return out, err
}

// PackageVersions returns the installed versions of a package across the
// fleet with device counts (GET /inventory/packages?name=).
func (c *Client) PackageVersions(ctx context.Context, name string) (proto.PackageVersions, error) {
	var pv proto.PackageVersions
	err := c.do(ctx, http.MethodGet, "/inventory/packages?"+url.Values{"name": {name}}.Encode(), nil, &pv)
	return pv, err
}

// FactDistribution returns how the fleet spreads over a fact's values (GET
// /inventory/facts/{fact}).
func (c *Client) FactDistribution(ctx context.Context, fact string) (proto.FactDistribution, error) {
	var fd proto.FactDistribution
	err := c.do(ctx, http.MethodGet, "/inventory/facts/"+url.PathEscape(fact), nil, &fd)
	return fd, err
}

// whereOps maps the operators of a --where expression to the suffix of the
// query parameter, longest first so "<=" is not read as "<".
var whereOps = []struct{ op, suffix string }{
	{"<=", ".le"}, {">=", ".ge"}, {"~", "~"}, {"<", ".lt"}, {">", ".gt"}, {"=", ""},
}

// ParseWhere turns one filter expression into the query parameters of GET
// /devices (docs/INVENTORY.md): FACT=VALUE, FACT~TEXT, FACT<V (also <=, >,
// >=) compare facts; package:NAME alone means installed in any version, and
// package:NAME<V (also <=, >, >=, =) in a version compared by the package's
// format. Examples: 'kernel<6.1', 'os=debian 12', 'hostname~kiosk',
// 'package:openssl<3.0.11'.
func ParseWhere(expr string) (url.Values, error) {
	expr = strings.TrimSpace(expr)
	if name, ok := strings.CutPrefix(expr, "package:"); ok {
		for _, o := range whereOps {
			if i := strings.Index(name, o.op); i >= 0 {
				n, v := strings.TrimSpace(name[:i]), strings.TrimSpace(name[i+len(o.op):])
				if n == "" || v == "" || o.op == "~" {
					return nil, fmt.Errorf("filter %q: want package:NAME, or package:NAME followed by <, <=, >, >= or = and a version", expr)
				}
				suffix := o.suffix
				if suffix == "" {
					suffix = ".eq"
				}
				return url.Values{"package": {n}, "package" + suffix: {v}}, nil
			}
		}
		if strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("filter %q: no package name", expr)
		}
		return url.Values{"package": {strings.TrimSpace(name)}}, nil
	}
	for _, o := range whereOps {
		if i := strings.Index(expr, o.op); i > 0 {
			fact, v := strings.TrimSpace(expr[:i]), strings.TrimSpace(expr[i+len(o.op):])
			if v == "" {
				return nil, fmt.Errorf("filter %q: no value", expr)
			}
			return url.Values{fact + o.suffix: {v}}, nil
		}
	}
	return nil, fmt.Errorf("filter %q: want FACT=VALUE, FACT~TEXT, FACT<VERSION (<=, >, >=) or package:NAME[<VERSION]", expr)
}
