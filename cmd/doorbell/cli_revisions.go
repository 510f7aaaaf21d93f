package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/doorbell-mdm/doorbell/client"
	"github.com/doorbell-mdm/doorbell/proto"
)

const revisionsUsage = "doorbell revisions [ls] group|device ID | doorbell revisions show group|device ID N | doorbell revisions rollback group|device ID N  [--server URL --token T --json]"

// runRevisions lists, shows and rolls back the policy revisions of a group
// or of a device's own settings.
func runRevisions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args, "ls")
	if sub == "group" || sub == "device" { // "revisions group ID" is ls
		sub, args = "ls", append([]string{sub}, args...)
	}
	var o opFlags
	fs := newFlagSet("revisions "+sub, stderr, revisionsUsage)
	o.register(fs)
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"ls": 2, "show": 3, "rollback": 3}[sub]
	if want == 0 {
		return fmt.Errorf("unknown subcommand %q; usage: %s", sub, revisionsUsage)
	}
	if err := wantArgs(pos, want, revisionsUsage); err != nil {
		return err
	}
	owner := client.GroupRevisions
	switch pos[0] {
	case "group":
	case "device":
		owner = client.DeviceRevisions
	default:
		return fmt.Errorf("revisions belong to a group or a device, not %q; usage: %s", pos[0], revisionsUsage)
	}
	var n int64
	if want == 3 {
		if n, err = strconv.ParseInt(pos[2], 10, 64); err != nil || n <= 0 {
			return fmt.Errorf("revision must be a positive number, not %q", pos[2])
		}
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	id := pos[1]
	switch sub {
	case "ls":
		l, err := c.Revisions(ctx, owner, id)
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, l)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "REVISION\tAT\tACTOR\tACTION\tCHANGES")
		for _, r := range l.Revisions {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.N, fmtTime(&r.At), cliText(r.Actor), cliText(r.Action), changesText(r.Changes))
		}
		return tw.Flush()
	case "show":
		r, err := c.Revision(ctx, owner, id, n)
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, r)
		}
		fmt.Fprintf(stdout, "revision %d at %s by %s (%s)\n", r.N, fmtTime(&r.At), cliText(r.Actor), cliText(r.Action))
		for _, ch := range r.Changes {
			fmt.Fprintf(stdout, "  %s: %s -> %s\n", cliText(ch.Setting), ch.From, ch.To)
		}
		return nil
	default: // rollback
		if owner == client.GroupRevisions {
			g, err := c.RollbackGroup(ctx, id, n)
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(stdout, g)
			}
			fmt.Fprintf(stdout, "group %s is back to revision %d; %d devices' policies changed\n", cliText(g.Name), n, g.ChangedDevices)
			return nil
		}
		p, err := c.RollbackDevice(ctx, id, n)
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, p)
		}
		fmt.Fprintf(stdout, "device %s is back to revision %d; policy version %d\n", cliText(id), n, p.Version)
		return nil
	}
}

// changesText summarises a revision's changes on one line.
func changesText(chs []proto.RevisionChange) string {
	parts := make([]string, 0, len(chs))
	for _, ch := range chs {
		parts = append(parts, fmt.Sprintf("%s: %s -> %s", cliText(ch.Setting), ch.From, ch.To))
	}
	s := strings.Join(parts, "; ")
	if r := []rune(s); len(r) > 120 {
		s = string(r[:117]) + "..."
	}
	return s
}

// cliText prints a string as it is when it is plain printable text, and
// quoted with escapes otherwise, so no value can move the cursor or forge
// a table row.
func cliText(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '\t' {
			return strconv.Quote(s)
		}
	}
	return s
}
