package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/doorbell-mdm/doorbell/proto"
)

const explainUsage = "doorbell explain DEVICE  [--server URL --token T --json]\n" +
	"  each managed setting's value, mode and source: device, group:<id> or default"

// runExplain prints GET /devices/{id}/policy/explain.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o opFlags
	fs := newFlagSet("explain", stderr, explainUsage)
	o.register(fs)
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, explainUsage); err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	var x proto.PolicyExplanation
	if err := c.Call(ctx, "GET", "/devices/"+url.PathEscape(pos[0])+"/policy/explain", nil, &x); err != nil {
		return err
	}
	if o.json {
		return printJSON(stdout, x)
	}
	tw := newTable(stdout)
	fmt.Fprintf(tw, "policy version:\t%d\n", x.Policy.Version)
	fmt.Fprintln(tw, "SETTING\tVALUE\tMODE\tSOURCE")
	names := make([]string, 0, len(x.Settings))
	for k := range x.Settings {
		names = append(names, k)
	}
	ordered := proto.SettingNames
	seen := map[string]bool{}
	for _, k := range append(append([]string{}, ordered...), names...) {
		s, ok := x.Settings[k]
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k, s.Value, modeOr(s.Mode), s.Source)
	}
	return tw.Flush()
}

const historyUsage = "doorbell history DEVICE [--limit N]  [--server URL --token T --json]"

// runHistory prints GET /devices/{id}/history, oldest first.
func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o opFlags
	fs := newFlagSet("history", stderr, historyUsage)
	o.register(fs)
	limit := fs.Int("limit", 0, "show at most the newest N transitions (0 = what the server keeps)")
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, historyUsage); err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("--limit must not be negative")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	var h proto.History
	if err := c.Call(ctx, "GET", "/devices/"+url.PathEscape(pos[0])+"/history", nil, &h); err != nil {
		return err
	}
	if *limit > 0 && len(h.Transitions) > *limit {
		h.Transitions = h.Transitions[len(h.Transitions)-*limit:]
	}
	if o.json {
		return printJSON(stdout, h)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "AT\tFROM\tTO\tCAUSE\tFAILING")
	for _, t := range h.Transitions {
		from := string(t.From)
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", fmtTime(&t.At), from, t.To, t.Cause, failingLine(t.Failing))
	}
	return tw.Flush()
}

// failingLine is "setting (reason), ..." or "-".
func failingLine(fs []proto.SettingFailure) string {
	if len(fs) == 0 {
		return "-"
	}
	s := ""
	for i, f := range fs {
		if i > 0 {
			s += ", "
		}
		s += f.Setting + " (" + string(f.Reason) + ")"
	}
	return s
}

const auditUsage = "doorbell audit [--limit N] [--after ID]  [--server URL --token T --json]\n" +
	"  the newest operator changes first is not promised: entries come in log order from --after"

// runAudit prints GET /audit, paging until --limit entries.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o opFlags
	fs := newFlagSet("audit", stderr, auditUsage)
	o.register(fs)
	limit := fs.Int("limit", 100, "show at most N entries (1-100000)")
	after := fs.String("after", "", "start after this entry id (the nextAfter of an earlier listing)")
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, auditUsage); err != nil {
		return err
	}
	if *limit < 1 || *limit > 100000 {
		return fmt.Errorf("--limit must be from 1 to 100000")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	var all []proto.AuditEntry
	cur := *after
	next := ""
	for len(all) < *limit {
		n := min(*limit-len(all), 1000)
		q := url.Values{"limit": {strconv.Itoa(n)}}
		if cur != "" {
			q.Set("after", cur)
		}
		var page proto.AuditList
		if err := c.Call(ctx, "GET", "/audit?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		all = append(all, page.Entries...)
		next = page.NextAfter
		if next == "" || len(page.Entries) == 0 {
			break
		}
		cur = next
	}
	if o.json {
		if all == nil {
			all = []proto.AuditEntry{}
		}
		return printJSON(stdout, proto.AuditList{Entries: all, NextAfter: next})
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "ID\tAT\tACTOR\tACTION\tTARGET\tFROM\tDETAIL")
	for _, e := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, fmtTime(&e.At), safe(e.Actor), e.Action, safe(e.Target), e.RemoteIP, safe(e.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(stdout, "more: doorbell audit --after %s\n", next)
	}
	return nil
}
