package main

import (
	"context"
	"fmt"
	"io"

	"github.com/doorbell-mdm/doorbell/client"
)

const tokensUsage = "doorbell tokens [ls] | doorbell tokens create NAME --role admin|viewer | doorbell tokens rm NAME  [--server URL --token T --json]"

// runTokens manages operator tokens through /tokens.
func runTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args, "ls")
	var o opFlags
	fs := newFlagSet("tokens "+sub, stderr, tokensUsage)
	o.register(fs)
	var role string
	if sub == "create" {
		fs.StringVar(&role, "role", "viewer", "role of the new token: admin or viewer")
	}
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	var c *client.Client
	switch sub {
	case "ls":
		if err = wantArgs(pos, 0, tokensUsage); err == nil {
			c, err = o.client()
		}
		if err != nil {
			return err
		}
		toks, err := c.Tokens(ctx)
		if err != nil {
			return err
		}
		if o.json {
			if toks == nil {
				toks = []client.OperatorToken{}
			}
			return printJSON(stdout, toks)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
		for _, t := range toks {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", safe(t.Name), safe(t.Role), fmtTime(&t.CreatedAt))
		}
		return tw.Flush()
	case "create":
		if role != "admin" && role != "viewer" {
			return fmt.Errorf("--role must be admin or viewer, not %q", role)
		}
		if err = wantArgs(pos, 1, tokensUsage); err == nil {
			c, err = o.client()
		}
		if err != nil {
			return err
		}
		t, err := c.CreateToken(ctx, pos[0], role)
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, t)
		}
		fmt.Fprintf(stdout, "created %s token %q; it is shown only now:\n%s\n", t.Role, t.Name, t.Token)
		return nil
	case "rm":
		if err = wantArgs(pos, 1, tokensUsage); err == nil {
			c, err = o.client()
		}
		if err != nil {
			return err
		}
		if err := c.DeleteToken(ctx, pos[0]); err != nil {
			return err
		}
		if !o.json {
			fmt.Fprintf(stdout, "revoked token %q\n", pos[0])
		}
		return nil
	}
	return fmt.Errorf("unknown tokens command %q; usage: %s", sub, tokensUsage)
}
