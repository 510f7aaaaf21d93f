package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/service"
	"github.com/doorbell-mdm/doorbell/server/store"
)

const maxGroupName = 128

var errGroupNotFound = service.ErrGroupNotFound

// layerInput is a parsed policy object: setting names with canonical
// values (nil for JSON null), and the reserved keys "modes" and "mode".
type layerInput struct {
	values map[string]json.RawMessage
	modes  map[string]*proto.Mode
	mode   *proto.Mode
	// deadline is the layer's guided deadline when given ("" for null).
	deadline *string
	// escalation is a group's escalation when given; escalationSet with
	// a nil escalation (null) removes it.
	escalation    *proto.Escalation
	escalationSet bool
}

func invalidSetting(format string, args ...any) error {
	return errorf("invalid_body", format, args...)
}

// parseLayer parses a policy object. allowMode admits the group-wide
// "mode" key.
func parseLayer(raw json.RawMessage, allowMode bool) (layerInput, error) {
	in := layerInput{values: map[string]json.RawMessage{}, modes: map[string]*proto.Mode{}}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return in, errorf("invalid_body", "policy must be a JSON object of settings")
	}
	for k, v := range obj {
		isNull := bytes.Equal(bytes.TrimSpace(v), []byte("null"))
		switch {
		case k == "modes":
			if isNull {
				continue
			}
			var modes map[string]*proto.Mode
			if err := json.Unmarshal(v, &modes); err != nil {
				return in, invalidSetting(`"modes" must map setting names to "enforce", "monitor", "guided" or null`)
			}
			for name, m := range modes {
				if !proto.IsSetting(name) {
					return in, errorf("invalid_body", "modes: unknown setting %q; known: %s", name, strings.Join(proto.SettingNames, ", "))
				}
				if m != nil && !m.Valid() {
					return in, invalidSetting("modes: %q: mode must be \"enforce\", \"monitor\" or \"guided\", not %q", name, *m)
				}
				in.modes[name] = m
			}
		case k == "deadline":
			d := ""
			if !isNull {
				if err := json.Unmarshal(v, &d); err != nil {
					return in, invalidSetting(`"deadline" must be a duration such as "72h"`)
				}
				if _, err := proto.ParseAfter(d); err != nil {
					return in, invalidSetting("deadline: %v", err)
				}
			}
			in.deadline = &d
		case k == "escalation" && allowMode:
			in.escalationSet = true
			if isNull {
				continue
			}
			var e proto.Escalation
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				return in, invalidSetting(`"escalation" must be {"notifyAfter", "commandAfter", "command"}`)
			}
			if err := e.Validate(); err != nil {
				return in, invalidSetting("escalation: %v", err)
			}
			in.escalation = &e
		case k == "mode" && allowMode:
			m, err := parseMode(v)
			if err != nil {
				return in, err
			}
			in.mode = &m
		case !proto.IsSetting(k):
			return in, errorf("invalid_body", "unknown setting %q; known: %s", k, strings.Join(proto.SettingNames, ", "))
		case isNull:
			in.values[k] = nil
		default:
			c, err := proto.ParseSetting(k, v)
			if err != nil {
				return in, invalidSetting("%v", err)
			}
			in.values[k] = c
		}
	}
	return in, nil
}

func parseMode(v json.RawMessage) (proto.Mode, error) {
	var m proto.Mode
	if err := json.Unmarshal(v, &m); err != nil || !m.Valid() {
		return "", invalidSetting(`mode must be "enforce" or "monitor"`)
	}
	return m, nil
}

// apply merges in into l: values and modes given replace, null removes.
func (in layerInput) apply(l store.Layer) store.Layer {
	out := store.Layer{Values: proto.SettingValues{}, Modes: map[string]proto.Mode{}, Deadline: l.Deadline}
	if in.deadline != nil {
		out.Deadline = *in.deadline
	}
	for k, v := range l.Values {
		out.Values[k] = v
	}
	for k, m := range l.Modes {
		out.Modes[k] = m
	}
	for k, v := range in.values {
		if v == nil {
			delete(out.Values, k)
		} else {
			out.Values[k] = v
		}
	}
	for k, m := range in.modes {
		if m == nil {
			delete(out.Modes, k)
		} else {
			out.Modes[k] = *m
		}
	}
	return compactLayer(out)
}

// replace returns the layer in describes alone (null values are omitted).
func (in layerInput) replace() store.Layer {
	return in.apply(store.Layer{})
}

func compactLayer(l store.Layer) store.Layer {
	if len(l.Values) == 0 {
		l.Values = nil
	}
	if len(l.Modes) == 0 {
		l.Modes = nil
	}
	return l
}

// putPolicy is PUT /devices/{id}/policy: the device's own layer. Settings
// given are managed at device level (winning over groups), null removes
// the device's own value, settings not named keep theirs; "modes" sets
// per-setting modes the same way.
func (a *API) putPolicy(c *fiber.Ctx) error {
	op := requestOperator(c)
	if err := checkJSON(c); err != nil {
		return err
	}
	in, err := parseLayer(c.Body(), false)
	if err != nil {
		return err
	}
	if len(in.values) == 0 && len(in.modes) == 0 {
		return errorf("invalid_body", "name at least one setting, e.g. {\"cameraDisabled\": true}")
	}
	id := strings.Clone(c.Params("id"))
	d, err := a.svc.EditOverride(a.audited(c, op, "policy.update", id, bodyDetail(c)), id, in.apply)
	if err != nil {
		return err
	}
	return c.JSON(d.Policy)
}

// checkJSON gives an empty body the same error as decode does.
func checkJSON(c *fiber.Ctx) error {
	if len(bytes.TrimSpace(c.Body())) == 0 {
		return errorf("invalid_body", "request body is empty; want JSON")
	}
	if !json.Valid(c.Body()) {
		return errorf("invalid_body", "malformed JSON")
	}
	return nil
}

func (a *API) explain(c *fiber.Ctx) error {
	ex, err := a.svc.Explain(c.UserContext(), requestDevice(c))
	if err != nil {
		return err
	}
	return c.JSON(ex)
}

func (a *API) history(c *fiber.Ctx) error {
	ts, err := a.svc.History(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(proto.History{Transitions: ts})
}

func (a *API) summary(c *fiber.Ctx) error {
	s, err := a.svc.Summary(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(s)
}

func groupView(g store.Group) proto.Group {
	mode := g.Mode
	if mode == "" {
		mode = proto.ModeEnforce
	}
	values := g.Values
	if values == nil {
		values = proto.SettingValues{}
	}
	members := g.Members
	if members == nil {
		members = []string{}
	}
	return proto.Group{GroupID: g.ID, Name: g.Name, Priority: g.Priority, Policy: values, Mode: mode, Modes: g.Modes, DeviceIDs: members,
		Deadline: g.Deadline, Escalation: g.Escalation}
}

func checkGroupName(name string) error {
	if strings.TrimSpace(name) == "" || len(name) > maxGroupName || !utf8.ValidString(name) {
		return errorf("invalid_body", "name is required, at most %d bytes", maxGroupName)
	}
	return nil
}

// GroupRequest is the body of POST /groups.
type GroupRequest struct {
	Name      *string         `json:"name"`
	Priority  *int            `json:"priority"`
	Policy    json.RawMessage `json:"policy"`
	Mode      json.RawMessage `json:"mode"`
	DeviceIDs []string        `json:"deviceIds"`
}

func (a *API) createGroup(c *fiber.Ctx) error {
	op := requestOperator(c)
	var req GroupRequest
	if err := decode(c, &req, true); err != nil {
		return err
	}
	if req.Name == nil {
		return errorf("invalid_body", "name is required")
	}
	if err := checkGroupName(*req.Name); err != nil {
		return err
	}
	g := store.Group{ID: randomHex(8), Name: *req.Name, Mode: proto.ModeEnforce, Members: req.DeviceIDs}
	if req.Priority != nil {
		g.Priority = *req.Priority
	}
	if len(req.Policy) > 0 && !bytes.Equal(req.Policy, []byte("null")) {
		in, err := parseLayer(req.Policy, true)
		if err != nil {
			return err
		}
		g.Layer = in.replace()
		if in.mode != nil {
			g.Mode = *in.mode
		}
		g.Escalation = in.escalation
	}
	if len(req.Mode) > 0 {
		m, err := parseMode(req.Mode)
		if err != nil {
			return err
		}
		g.Mode = m
	}
	n, err := a.svc.CreateGroup(a.audited(c, op, "group.create", g.Name, bodyDetail(c)), g)
	if err != nil {
		return err
	}
	g.Members = normalized(g.Members)
	return c.Status(http.StatusCreated).JSON(proto.GroupChange{Group: groupView(g), ChangedDevices: n})
}

// normalized returns ids sorted without duplicates, as the store keeps them.
func normalized(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func (a *API) listGroups(c *fiber.Ctx) error {
	gs, err := a.svc.Groups(c.UserContext())
	if err != nil {
		return err
	}
	out := proto.GroupList{Groups: make([]proto.Group, 0, len(gs))}
	for _, g := range gs {
		out.Groups = append(out.Groups, groupView(g))
	}
	return c.JSON(out)
}

func (a *API) getGroup(c *fiber.Ctx) error {
	g, err := a.svc.Group(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(groupView(g))
}

func (a *API) deleteGroup(c *fiber.Ctx) error {
	op := requestOperator(c)
	id := strings.Clone(c.Params("id"))
	g, err := a.svc.Group(c.UserContext(), id)
	if err != nil {
		return err
	}
	n, err := a.svc.DeleteGroup(a.audited(c, op, "group.delete", id, g.Name), id)
	if err != nil {
		return err
	}
	return c.JSON(proto.GroupChange{Group: groupView(g), ChangedDevices: n})
}

// patchGroup is PATCH /groups/{id}: a new name and/or priority. Members
// whose effective policy changes (another group now wins a setting) get a
// new version and a ring, as for any group change.
func (a *API) patchGroup(c *fiber.Ctx) error {
	op := requestOperator(c)
	var req proto.GroupUpdate
	if err := decode(c, &req, true); err != nil {
		return err
	}
	if req.Name == nil && req.Priority == nil {
		return errorf("invalid_body", "give name and/or priority")
	}
	if req.Name != nil {
		if err := checkGroupName(*req.Name); err != nil {
			return err
		}
	}
	id := strings.Clone(c.Params("id"))
	g, n, err := a.svc.UpdateGroup(a.audited(c, op, "group.update", id, bodyDetail(c)), id, func(g store.Group) (store.Group, error) {
		if req.Name != nil {
			g.Name = *req.Name
		}
		if req.Priority != nil {
			g.Priority = *req.Priority
		}
		return g, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(proto.GroupChange{Group: groupView(g), ChangedDevices: n})
}

// putGroupPolicy is PUT /groups/{id}/policy: the body replaces the group's
// settings and per-setting modes; "mode", when given, replaces the group's
// mode, which is kept otherwise.
func (a *API) putGroupPolicy(c *fiber.Ctx) error {
	op := requestOperator(c)
	if err := checkJSON(c); err != nil {
		return err
	}
	in, err := parseLayer(c.Body(), true)
	if err != nil {
		return err
	}
	id := strings.Clone(c.Params("id"))
	g, n, err := a.svc.UpdateGroup(a.audited(c, op, "group.policy", id, bodyDetail(c)), id, func(g store.Group) (store.Group, error) {
		// The body replaces the group's policy as a whole, its mode
		// included: no "mode" means the default, enforce, as in POST /groups.
		g.Layer = in.replace()
		g.Mode = proto.ModeEnforce
		if in.mode != nil {
			g.Mode = *in.mode
		}
		if in.escalationSet {
			g.Escalation = in.escalation
		}
		return g, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(proto.GroupChange{Group: groupView(g), ChangedDevices: n})
}

func (a *API) putGroupDevices(c *fiber.Ctx) error {
	op := requestOperator(c)
	var req struct {
		DeviceIDs *[]string `json:"deviceIds"`
	}
	if err := decode(c, &req, true); err != nil {
		return err
	}
	if req.DeviceIDs == nil {
		return errorf("invalid_body", "deviceIds is required (a list, [] for none)")
	}
	g, n, err := a.svc.SetGroupMembers(a.audited(c, op, "group.devices", c.Params("id"), fmt.Sprintf("%d devices", len(*req.DeviceIDs))), strings.Clone(c.Params("id")), *req.DeviceIDs)
	if err != nil {
		return err
	}
	return c.JSON(proto.GroupChange{Group: groupView(g), ChangedDevices: n})
}

// bodyDetail is a JSON object body as an audit detail: its keys, sorted,
// as key=value (the settings an operator sent; never a secret), cut to 256
// bytes.
func bodyDetail(c *fiber.Ctx) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(c.Body(), &m) != nil {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		var buf bytes.Buffer
		if json.Compact(&buf, m[k]) != nil {
			return ""
		}
		parts = append(parts, k+"="+buf.String())
	}
	d := strings.Join(parts, " ")
	if len(d) > 256 {
		d = d[:256] + "..."
	}
	return d
}
