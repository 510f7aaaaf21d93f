package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/doorbell-mdm/doorbell/client"
	"github.com/doorbell-mdm/doorbell/proto"
)

// opFlags are the flags every operator command shares.
type opFlags struct {
	server, token, caFile, pin string
	json                       bool
}

func (o *opFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.server, "server", "http://127.0.0.1:8080", "server base URL")
	fs.StringVar(&o.token, "token", "", "operator token")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM file of CA certificates to trust for an https:// server with a private CA")
	fs.StringVar(&o.pin, "server-pin", "", "trust the server whose chain holds a key with this SPKI pin (sha256/..., printed by doorbell serve)")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of a table")
}

func (o *opFlags) client() (*client.Client, error) {
	if o.token == "" {
		return nil, errors.New("no operator token given (--token or DOORBELL_TOKEN)")
	}
	return client.New(client.Config{Server: o.server, Token: o.token, CAFile: o.caFile, ServerPin: o.pin})
}

// parseCLI parses flags that may come before, between or after positional
// arguments, applies the DOORBELL_<FLAG> fallback, and returns the
// positional arguments.
func parseCLI(fs *flag.FlagSet, args []string) ([]string, error) {
	if wantsHelp(args) {
		printHelp(fs)
		return nil, flag.ErrHelp
	}
	var pos []string
	for {
		if err := parseQuiet(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, parse(fs, nil)
}

// subcommand splits "ls", "show ID"... off args; def is used when args has
// no subcommand (starts with a flag or is empty).
func subcommand(args []string, def string) (string, []string) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return def, args
	}
	return args[0], args[1:]
}

func newFlagSet(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nflags (each also DOORBELL_<FLAG>):\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

func wantArgs(pos []string, n int, usage string) error {
	if len(pos) != n {
		return fmt.Errorf("usage: %s", usage)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// fmtTime formats t for a table: "-" for none, else RFC 3339 in UTC.
func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// --- devices -----------------------------------------------------------------

const devicesUsage = "doorbell devices [ls] [--state STATE] [--seen overdue] [--failing-since 72h|7d|TIME] [--limit N] [--where 'kernel<6.1' ...] | doorbell devices show ID | doorbell devices rm ID\n" +
	"       [--server URL --token T --json]\n" +
	"  show says which settings are failing and why; rm forgets a device (admin): it must enroll again."

func runDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args, "ls")
	var o opFlags
	fs := newFlagSet("devices "+sub, stderr, devicesUsage)
	o.register(fs)
	var state, seen, failingSince string
	var limit int
	var where whereFlag
	if sub == "ls" {
		fs.StringVar(&state, "state", "", "only devices in this state: "+statesList())
		fs.StringVar(&seen, "seen", "", "overdue: only devices not seen within two of their sync intervals")
		fs.StringVar(&failingSince, "failing-since", "", "only devices NON_COMPLIANT since before this: a duration ago (72h, 90m, 7d) or an RFC 3339 time")
		fs.IntVar(&limit, "limit", 0, "show at most this many devices (0 = all; pages through the fleet)")
		fs.Var(&where, "where", "inventory filter, repeatable, all must hold: FACT=V, FACT~TEXT, FACT<V (<=, >, >=), package:NAME[<V] (docs/INVENTORY.md)")
	}
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	switch sub {
	case "ls":
		if err := wantArgs(pos, 0, devicesUsage); err != nil {
			return err
		}
		st := proto.ComplianceState(strings.ToUpper(state))
		if state != "" && !st.Valid() {
			return fmt.Errorf("--state must be one of %s", statesList())
		}
		if limit < 0 {
			return errors.New("--limit must not be negative")
		}
		if seen != "" && seen != "overdue" {
			return errors.New(`--seen must be "overdue"`)
		}
		filters, err := where.values()
		if err != nil {
			return err
		}
		return listDevices(ctx, c, client.ListOptions{State: st, Seen: seen, FailingSinceLT: failingSince, Where: filters}, limit, o.json, stdout)
	case "show":
		if err := wantArgs(pos, 1, devicesUsage); err != nil {
			return err
		}
		s, err := c.Status(ctx, pos[0])
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, s)
		}
		tw := newTable(stdout)
		for _, row := range [][2]string{
			{"device", safe(s.DeviceID)},
			{"state", safe(string(s.State))},
			{"desired version", fmt.Sprint(s.DesiredVersion)},
			{"applied version", fmt.Sprint(s.AppliedVersion)},
			{"connected", yesNo(s.Connected)},
			{"fcm registered", yesNo(s.FCMRegistered)},
			{"last report", fmtTime(s.LastReportAt)},
			{"last seen", fmtTime(s.LastSeenAt)},
			{"overdue", yesNo(s.Overdue)},
			{"failing since", fmtTime(s.NonCompliantSince)},
			{"enrolled", fmtTime(&s.EnrolledAt)},
			{"model", safe(s.Model)},
			{"os version", safe(s.OSVersion)},
			{"agent version", safe(s.AgentVersion)},
		} {
			fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return printFailing(stdout, s)
	case "rm":
		if err := wantArgs(pos, 1, devicesUsage); err != nil {
			return err
		}
		if err := c.Call(ctx, "DELETE", "/devices/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted device %s\n", pos[0])
		return nil
	}
	return fmt.Errorf("unknown devices command %q\nRun 'doorbell devices --help' for usage.", sub)
}

// printFailing says what is failing on a NON_COMPLIANT device: each
// setting, what the policy wants, what the device reported and why.
func printFailing(w io.Writer, s proto.DeviceStatus) error {
	if len(s.Failing) == 0 {
		if s.State == proto.StateNonCompliant {
			_, err := fmt.Fprintln(w, "failing: (the server did not say which settings)")
			return err
		}
		return nil
	}
	fmt.Fprintln(w, "failing:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  SETTING\tWANTED\tREPORTED\tREASON\tSINCE\tDETAIL")
	for _, f := range s.Failing {
		actual := string(f.Actual)
		if actual == "" {
			actual = "null"
		}
		detail := safe(f.Detail)
		if detail == "" {
			detail = "-"
		}
		if f.Monitored {
			detail += " (monitored: not enforced)"
		}
		if f.RemediateBy != nil {
			detail += " (fix by " + fmtTime(f.RemediateBy) + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", f.Setting, f.Expected, safe(actual), f.Reason, fmtTime(f.FailingSince), detail)
	}
	return tw.Flush()
}

func statesList() string {
	s := make([]string, len(proto.States))
	for i, st := range proto.States {
		s[i] = string(st)
	}
	return strings.Join(s, "|")
}

// listDevices streams the fleet page by page: a table row or a JSON array
// element as each page arrives, so 100,000 devices never sit in memory.
func listDevices(ctx context.Context, c *client.Client, lo client.ListOptions, limit int, asJSON bool, w io.Writer) error {
	var tw *tabwriter.Writer
	n := 0
	if asJSON {
		fmt.Fprint(w, "[")
	} else {
		tw = newTable(w)
		fmt.Fprintln(tw, "DEVICE\tSTATE\tDESIRED\tAPPLIED\tCONNECTED\tLAST REPORT\tLAST SEEN\tFAILING SINCE\tMODEL")
	}
	var werr error
	err := c.AllDevices(ctx, lo, limit, func(d proto.DeviceStatus) bool {
		if asJSON {
			b, err := json.Marshal(d)
			if err != nil {
				werr = err
				return false
			}
			sep := ",\n  "
			if n == 0 {
				sep = "\n  "
			}
			_, werr = fmt.Fprint(w, sep, string(b))
		} else {
			lastSeen := fmtTime(d.LastSeenAt)
			if d.Overdue {
				lastSeen += " (overdue)"
			}
			_, werr = fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", safe(d.DeviceID), safe(string(d.State)), d.DesiredVersion,
				d.AppliedVersion, yesNo(d.Connected), fmtTime(d.LastReportAt), lastSeen, fmtTime(d.NonCompliantSince), safe(d.Model))
		}
		n++
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	if asJSON {
		if n > 0 {
			fmt.Fprint(w, "\n")
		}
		_, err = fmt.Fprintln(w, "]")
		return err
	}
	return tw.Flush()
}

// --- policy ------------------------------------------------------------------

const policyUsage = "doorbell policy show ID | doorbell policy set ID SETTING=VALUE... | doorbell policy unset ID SETTING...  [--server URL --token T --json]\n" +
	"  set manages each SETTING at device level (bool: true/false; int: decimal; list: a,b,c; structured: JSON);\n" +
	"  unset removes the device's own value, so a group's or the default applies again (inherit).\n" +
	"  --camera-disabled=true|false is kept as a shorthand for cameraDisabled=..."

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args, "")
	var o opFlags
	fs := newFlagSet("policy "+sub, stderr, policyUsage)
	o.register(fs)
	var camera bool
	if sub == "set" {
		fs.BoolVar(&camera, "camera-disabled", false, "disable the camera (same as cameraDisabled=true)")
	}
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if sub != "show" && sub != "set" && sub != "unset" {
		return fmt.Errorf("usage: %s", policyUsage)
	}
	if sub == "show" {
		if err := wantArgs(pos, 1, policyUsage); err != nil {
			return err
		}
	} else if len(pos) < 1 {
		return fmt.Errorf("usage: %s", policyUsage)
	}
	var edit map[string]json.RawMessage
	if sub != "show" {
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "camera-disabled" {
				pos = append(pos, fmt.Sprintf("%s=%v", proto.SettingCameraDisabled, camera))
			}
		})
		if edit, err = policyEdit(sub, pos[1:]); err != nil {
			return err
		}
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	var p proto.DevicePolicy
	if sub == "show" {
		p, err = c.Policy(ctx, pos[0])
	} else {
		p, err = c.EditPolicy(ctx, pos[0], edit)
	}
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(stdout, p)
	}
	return printPolicy(stdout, p)
}

// policyEdit turns "policy set" SETTING=VALUE or "policy unset" SETTING
// arguments into the body of PUT /devices/{id}/policy, checking each value
// against the settings catalog so a typo fails before anything is sent.
func policyEdit(sub string, args []string) (map[string]json.RawMessage, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("policy %s: name at least one setting (known: %s)", sub, strings.Join(proto.SettingNames, ", "))
	}
	edit := map[string]json.RawMessage{}
	for _, arg := range args {
		name, text, hasValue := strings.Cut(arg, "=")
		d, ok := proto.LookupSetting(name)
		if !ok {
			return nil, fmt.Errorf("policy %s: unknown setting %q (known: %s)", sub, name, strings.Join(proto.SettingNames, ", "))
		}
		if sub == "unset" {
			if hasValue {
				return nil, fmt.Errorf("policy unset: give only the setting name, not %q", arg)
			}
			edit[name] = json.RawMessage("null")
			continue
		}
		if !hasValue {
			return nil, fmt.Errorf("policy set: %q needs a value, e.g. %s=%s", arg, name, exampleValue(d))
		}
		v, err := d.ParseText(text)
		if err != nil {
			return nil, fmt.Errorf("policy set: %w", err)
		}
		edit[name] = v
	}
	return edit, nil
}

func exampleValue(d proto.SettingDef) string {
	switch d.Type {
	case proto.TypeBool:
		return "true"
	case proto.TypeInt:
		return strconv.Itoa(d.Max)
	case proto.TypeStrings:
		return "a,b"
	default:
		return "'[...]'"
	}
}

// printPolicy prints a policy as SETTING / VALUE rows, taking the names from
// the policy's own JSON so every setting, optional ones included, shows.
func printPolicy(w io.Writer, p proto.DevicePolicy) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "version:\t%d\n", p.Version)
	names := make([]string, 0, len(fields))
	for k := range fields {
		if k != "version" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(tw, "%s:\t%s\n", safe(k), safe(string(fields[k])))
	}
	return tw.Flush()
}
