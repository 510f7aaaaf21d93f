package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"github.com/doorbell-mdm/doorbell/client"
	"github.com/doorbell-mdm/doorbell/proto"
)

const groupsUsage = "doorbell groups [ls] | groups show G | groups create NAME [--priority N] [--mode enforce|monitor] |\n" +
	"       groups set G [--name NAME] [--priority N] | groups policy G SETTING=VALUE... [--mode M] [--monitor SETTING,...] |\n" +
	"       groups add G DEVICE... | groups remove G DEVICE... | groups rm G  [--server URL --token T --json]\n" +
	"  G is a group id or name. policy replaces the group's settings (SETTING=null leaves one out) and its mode."

// runGroups manages groups through /groups.
func runGroups(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args, "ls")
	var o opFlags
	fs := newFlagSet("groups "+sub, stderr, groupsUsage)
	o.register(fs)
	var priority int
	var mode, monitor, name string
	switch sub {
	case "set":
		fs.IntVar(&priority, "priority", 0, "the new precedence: the higher wins when a device is in several groups")
		fs.StringVar(&name, "name", "", "the new name")
	case "create":
		fs.IntVar(&priority, "priority", 0, "precedence: the higher wins when a device is in several groups")
		fs.StringVar(&mode, "mode", "", "remediation mode of the group's settings: enforce (default) or monitor")
	case "policy":
		fs.StringVar(&mode, "mode", "enforce", "remediation mode of the group's settings: enforce or monitor")
		fs.StringVar(&monitor, "monitor", "", "comma-separated settings only observed (monitor mode), whatever --mode says")
	}
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	need := map[string]int{"ls": 0, "show": 1, "create": 1, "rm": 1, "set": 1}
	switch sub {
	case "ls", "show", "create", "rm", "set":
		if err := wantArgs(pos, need[sub], groupsUsage); err != nil {
			return err
		}
	case "policy", "add", "remove":
		if len(pos) < 2 {
			return fmt.Errorf("groups %s: name the group and at least one %s\nusage: %s", sub,
				map[bool]string{true: "SETTING=VALUE", false: "device"}[sub == "policy"], groupsUsage)
		}
	default:
		return fmt.Errorf("unknown groups command %q\nRun 'doorbell groups --help' for usage.", sub)
	}
	if mode != "" && mode != string(proto.ModeEnforce) && mode != string(proto.ModeMonitor) {
		return fmt.Errorf("--mode must be enforce or monitor, not %q", mode)
	}
	var body map[string]any
	if sub == "set" {
		// Only the flags given are sent: the rest of the group is kept.
		body = map[string]any{}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "name":
				body["name"] = name
			case "priority":
				body["priority"] = priority
			}
		})
		if len(body) == 0 {
			return fmt.Errorf("groups set: give --name and/or --priority\nusage: %s", groupsUsage)
		}
	}
	if sub == "policy" {
		if body, err = groupPolicyBody(pos[1:], mode, monitor); err != nil {
			return err
		}
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	if sub == "ls" {
		var gl proto.GroupList
		if err := c.Call(ctx, "GET", "/groups", nil, &gl); err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, gl)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "GROUP\tNAME\tPRIORITY\tMODE\tDEVICES\tSETTINGS")
		for _, g := range gl.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", g.GroupID, safe(g.Name), g.Priority, modeOr(g.Mode), len(g.DeviceIDs), settingsLine(g.Policy))
		}
		return tw.Flush()
	}
	if sub == "create" {
		req := map[string]any{"name": pos[0], "priority": priority}
		if mode != "" {
			req["mode"] = mode
		}
		var g proto.GroupChange
		if err := c.Call(ctx, "POST", "/groups", req, &g); err != nil {
			return err
		}
		return printGroup(stdout, g.Group, o.json)
	}
	id, err := resolveGroup(ctx, c, pos[0])
	if err != nil {
		return err
	}
	path := "/groups/" + url.PathEscape(id)
	switch sub {
	case "show":
		var g proto.Group
		if err := c.Call(ctx, "GET", path, nil, &g); err != nil {
			return err
		}
		return printGroup(stdout, g, o.json)
	case "rm":
		if err := c.Call(ctx, "DELETE", path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted group %s\n", id)
		return nil
	case "set", "policy":
		method, p := "PATCH", path
		if sub == "policy" {
			method, p = "PUT", path+"/policy"
		}
		var g proto.GroupChange
		if err := c.Call(ctx, method, p, body, &g); err != nil {
			return err
		}
		if !o.json {
			fmt.Fprintf(stdout, "%d devices' policies changed\n", g.ChangedDevices)
		}
		return printGroup(stdout, g.Group, o.json)
	}
	// add / remove: the API replaces the member list, so read it first.
	var g proto.Group
	if err := c.Call(ctx, "GET", path, nil, &g); err != nil {
		return err
	}
	members := map[string]bool{}
	for _, d := range g.DeviceIDs {
		members[d] = true
	}
	for _, d := range pos[1:] {
		if sub == "add" {
			members[d] = true
		} else if !members[d] {
			return fmt.Errorf("groups remove: device %s is not in group %s", safe(d), id)
		} else {
			delete(members, d)
		}
	}
	ids := make([]string, 0, len(members))
	for d := range members {
		ids = append(ids, d)
	}
	sort.Strings(ids)
	var ch proto.GroupChange
	if err := c.Call(ctx, "PUT", path+"/devices", proto.GroupMembers{DeviceIDs: ids}, &ch); err != nil {
		return err
	}
	if !o.json {
		fmt.Fprintf(stdout, "%d devices' policies changed\n", ch.ChangedDevices)
	}
	return printGroup(stdout, ch.Group, o.json)
}

// groupPolicyBody is the body of PUT /groups/{id}/policy from SETTING=VALUE
// arguments, each checked against the catalog before anything is sent.
func groupPolicyBody(args []string, mode, monitor string) (map[string]any, error) {
	body := map[string]any{}
	for _, arg := range args {
		name, text, ok := strings.Cut(arg, "=")
		d, known := proto.LookupSetting(name)
		if !known {
			return nil, fmt.Errorf("groups policy: unknown setting %q (known: %s)", name, strings.Join(proto.SettingNames, ", "))
		}
		if !ok {
			return nil, fmt.Errorf("groups policy: %q needs a value, e.g. %s=%s", arg, name, exampleValue(d))
		}
		if text == "null" {
			continue
		}
		v, err := d.ParseText(text)
		if err != nil {
			return nil, fmt.Errorf("groups policy: %w", err)
		}
		body[name] = v
	}
	body["mode"] = mode
	if monitor != "" {
		modes := map[string]string{}
		for _, m := range strings.Split(monitor, ",") {
			m = strings.TrimSpace(m)
			if _, ok := proto.LookupSetting(m); !ok {
				return nil, fmt.Errorf("--monitor: unknown setting %q", m)
			}
			modes[m] = string(proto.ModeMonitor)
		}
		body["modes"] = modes
	}
	return body, nil
}

// resolveGroup takes a group id or a group name to the group's id.
func resolveGroup(ctx context.Context, c *client.Client, g string) (string, error) {
	var gl proto.GroupList
	if err := c.Call(ctx, "GET", "/groups", nil, &gl); err != nil {
		return "", err
	}
	for _, x := range gl.Groups {
		if x.GroupID == g {
			return g, nil
		}
	}
	for _, x := range gl.Groups {
		if x.Name == g {
			return x.GroupID, nil
		}
	}
	return "", fmt.Errorf("no group with id or name %q (see 'doorbell groups')", g)
}

func printGroup(w io.Writer, g proto.Group, asJSON bool) error {
	if asJSON {
		return printJSON(w, g)
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "group:\t%s\n", g.GroupID)
	fmt.Fprintf(tw, "name:\t%s\n", safe(g.Name))
	fmt.Fprintf(tw, "priority:\t%d\n", g.Priority)
	fmt.Fprintf(tw, "mode:\t%s\n", modeOr(g.Mode))
	for _, k := range sortedKeys(g.Policy) {
		m := ""
		if md, ok := g.Modes[k]; ok {
			m = " (" + string(md) + ")"
		}
		fmt.Fprintf(tw, "  %s:\t%s%s\n", k, g.Policy[k], m)
	}
	fmt.Fprintf(tw, "devices:\t%d\n", len(g.DeviceIDs))
	for _, d := range g.DeviceIDs {
		fmt.Fprintf(tw, "  %s\t\n", d)
	}
	return tw.Flush()
}

func modeOr(m proto.Mode) string {
	if m == "" {
		return string(proto.ModeEnforce)
	}
	return string(m)
}

func sortedKeys(m map[string]json.RawMessage) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func settingsLine(p proto.SettingValues) string {
	var parts []string
	for _, k := range sortedKeys(p) {
		parts = append(parts, k+"="+string(p[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
