package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/doorbell-mdm/doorbell/client"
	"github.com/doorbell-mdm/doorbell/proto"
)

const commandsUsage = "doorbell commands send ID TYPE [--param k=v ...] [--expires 10m] [--key K] [--wait] | " +
	"doorbell commands send --group GID TYPE [...] | doorbell commands ls ID [--state S] [--limit N] | " +
	"doorbell commands show CID | doorbell commands cancel CID  [--server URL --token T --json]"

// paramFlag collects repeated --param k=v.
type paramFlag map[string]string

func (p paramFlag) String() string { return proto.FormatParams(p) }

func (p paramFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("--param wants k=v, not %q", v)
	}
	p[k] = val
	return nil
}

// runCommands sends, lists, shows and cancels remote commands.
func runCommands(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args, "")
	var o opFlags
	fs := newFlagSet("commands "+sub, stderr, commandsUsage)
	o.register(fs)
	params := paramFlag{}
	var (
		expires, key, group, state string
		wait                       bool
		waitFor                    time.Duration
		limit                      int
	)
	switch sub {
	case "send":
		fs.Var(params, "param", "a command param k=v (repeatable); types and params: "+strings.Join(proto.CommandTypeNames(), ", "))
		fs.StringVar(&expires, "expires", "", "how long the command may wait for the device (1s to 720h; default 10m)")
		fs.StringVar(&key, "key", "", "idempotency key: sending again with it returns the first command")
		fs.StringVar(&group, "group", "", "send to every member of this group (one command each) instead of one device")
		fs.BoolVar(&wait, "wait", false, "wait until the command reaches a final state; exit non-zero unless ACKNOWLEDGED")
		fs.DurationVar(&waitFor, "wait-timeout", 0, "give up waiting after this long (default: the command's expiry plus 10s)")
	case "ls":
		fs.StringVar(&state, "state", "", "only commands in this state: "+commandStatesList())
		fs.IntVar(&limit, "limit", 50, "how many commands (newest first)")
	case "show", "cancel":
	default:
		if wantsHelp(args) || sub == "" && len(args) == 0 {
			printHelp(fs)
			return flag.ErrHelp
		}
		return fmt.Errorf("unknown commands command %q\nRun 'doorbell commands --help' for usage.", sub)
	}
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "send":
		n := 2
		if group != "" {
			n = 1
		}
		if err := wantArgs(pos, n, commandsUsage); err != nil {
			return err
		}
		req := proto.CommandRequest{Type: proto.CommandType(pos[n-1]), ExpiresIn: expires, IdempotencyKey: key}
		if len(params) > 0 {
			req.Params = params
		}
		// The server checks too; checking here gives the same message
		// without a round trip.
		exp, err := req.Validate()
		if err != nil {
			return err
		}
		c, err := o.client()
		if err != nil {
			return err
		}
		if group != "" {
			res, err := c.SendGroupCommand(ctx, group, req)
			if err != nil {
				return err
			}
			if o.json && !wait {
				return printJSON(stdout, res)
			}
			if !o.json {
				fmt.Fprintf(stdout, "queued %d %s commands for group %s\n", len(res.Commands), req.Type, group)
			}
			if !wait {
				return nil
			}
			return waitAll(ctx, c, res.Commands, exp, waitFor, o.json, stdout)
		}
		cmd, err := c.SendCommand(ctx, pos[0], req)
		if err != nil {
			return err
		}
		if !wait {
			if o.json {
				return printJSON(stdout, cmd)
			}
			fmt.Fprintf(stdout, "queued %s command %s for %s (%s, expires %s)\n", cmd.Type, cmd.CommandID, cmd.DeviceID, cmd.State, fmtTime(&cmd.ExpiresAt))
			return nil
		}
		return waitAll(ctx, c, []proto.Command{cmd}, exp, waitFor, o.json, stdout)
	case "ls":
		st := proto.CommandState(strings.ToUpper(state))
		if state != "" && !st.Valid() {
			return fmt.Errorf("--state must be one of %s", commandStatesList())
		}
		if limit < 1 || limit > 1000 {
			return errors.New("--limit must be from 1 to 1000")
		}
		if err := wantArgs(pos, 1, commandsUsage); err != nil {
			return err
		}
		c, err := o.client()
		if err != nil {
			return err
		}
		list, err := c.Commands(ctx, pos[0], client.CommandListOptions{State: st, Limit: limit})
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, list)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "COMMAND\tTYPE\tSTATE\tCREATED\tUPDATED\tRESULT")
		for _, cmd := range list.Commands {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cmd.CommandID, cmd.Type, cmd.State, fmtTime(&cmd.CreatedAt), lastChange(cmd), oneLine(resultText(cmd)))
		}
		return tw.Flush()
	case "show", "cancel":
		if err := wantArgs(pos, 1, commandsUsage); err != nil {
			return err
		}
		c, err := o.client()
		if err != nil {
			return err
		}
		var cmd proto.Command
		if sub == "show" {
			cmd, err = c.Command(ctx, pos[0])
		} else {
			cmd, err = c.CancelCommand(ctx, pos[0])
		}
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, cmd)
		}
		printCommand(stdout, cmd)
		return nil
	}
	return nil
}

// waitAll waits for every command to end and prints each; it fails
// unless all were ACKNOWLEDGED.
func waitAll(ctx context.Context, c *client.Client, cmds []proto.Command, expiry, waitFor time.Duration, asJSON bool, w io.Writer) error {
	if waitFor <= 0 {
		waitFor = expiry + 10*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	var done []proto.Command
	failed := 0
	for _, cmd := range cmds {
		final, err := c.WaitCommand(ctx, cmd.CommandID, 0)
		if err != nil {
			return fmt.Errorf("waiting for command %s (last seen %s): %w", cmd.CommandID, final.State, err)
		}
		if final.State != proto.CommandAcknowledged {
			failed++
		}
		done = append(done, final)
		if !asJSON {
			printCommand(w, final)
		}
	}
	if asJSON {
		if len(done) == 1 {
			printJSON(w, done[0])
		} else {
			printJSON(w, done)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d commands did not end ACKNOWLEDGED", failed, len(done))
	}
	return nil
}

func printCommand(w io.Writer, c proto.Command) {
	fmt.Fprintf(w, "command:  %s\ndevice:   %s\ntype:     %s\n", c.CommandID, c.DeviceID, c.Type)
	if len(c.Params) > 0 {
		fmt.Fprintf(w, "params:   %s\n", escapeText(proto.FormatParams(c.Params)))
	}
	fmt.Fprintf(w, "state:    %s\n", c.State)
	for _, st := range proto.CommandStates {
		if at, ok := c.Timestamps[st]; ok {
			fmt.Fprintf(w, "  %-13s %s\n", st, fmtTime(&at))
		}
	}
	fmt.Fprintf(w, "expires:  %s\n", fmtTime(&c.ExpiresAt))
	if c.GroupID != "" {
		fmt.Fprintf(w, "group:    %s\n", c.GroupID)
	}
	if r := c.Result; r != nil {
		if r.ErrorCode != "" {
			fmt.Fprintf(w, "error:    %s\n", escapeText(r.ErrorCode))
		}
		if r.Message != "" {
			fmt.Fprintf(w, "message:  %s\n", escapeText(r.Message))
		}
		if r.Output != "" {
			fmt.Fprintf(w, "output:\n%s\n", escapeText(strings.TrimRight(r.Output, "\n")))
		}
	}
}

func lastChange(c proto.Command) string {
	var last time.Time
	for _, at := range c.Timestamps {
		if at.After(last) {
			last = at
		}
	}
	return fmtTime(&last)
}

func resultText(c proto.Command) string {
	if c.Result == nil {
		return "-"
	}
	s := c.Result.ErrorCode
	if c.Result.Message != "" {
		if s != "" {
			s += ": "
		}
		s += c.Result.Message
	}
	if s == "" {
		return "-"
	}
	return s
}

// oneLine escapes s for a table cell: one line, no control characters,
// at most 60 runes.
func oneLine(s string) string {
	s = escapeText(strings.ReplaceAll(s, "\n", " "))
	if r := []rune(s); len(r) > 60 {
		s = string(r[:59]) + "…"
	}
	return s
}

// escapeText makes text a device sent safe for a terminal: every control
// character but newline and tab is shown escaped (\x1b, \r, \u202e), so a
// device cannot move the cursor or recolour the operator's screen.
func escapeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '\n' || r == '\t' || (unicode.IsPrint(r) && r != utf8RuneError) || r == ' ' {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRuneToASCII(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

const utf8RuneError = '\uFFFD'

func commandStatesList() string {
	var s []string
	for _, st := range proto.CommandStates {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

var _ flag.Value = paramFlag{}
