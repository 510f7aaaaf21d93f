package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/doorbell-mdm/doorbell/proto"
)

const enrollTokensUsage = "doorbell enroll-tokens [ls] | enroll-tokens create [--expires-in 1h] [--max-uses N] | enroll-tokens rm ID\n" +
	"       [--server URL --token T --json]\n" +
	"  create prints the secret once; over TLS also the enrollment string (doorbell://enroll?...) that agents and the\n" +
	"  Android app's QR scan take."

// runEnrollTokens manages enrollment tokens through /enrollment-tokens.
func runEnrollTokens(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := subcommand(args, "ls")
	var o opFlags
	fs := newFlagSet("enroll-tokens "+sub, stderr, enrollTokensUsage)
	o.register(fs)
	var expires, qrFile string
	var uses int
	if sub == "create" {
		fs.StringVar(&expires, "expires-in", "", "lifetime, e.g. 30m or 24h (server default when empty)")
		fs.IntVar(&uses, "max-uses", 1, "how many devices may enroll with it")
		fs.StringVar(&qrFile, "qr", "", "also write the enrollment string's QR code (PNG) to this file, for the Android app to scan (TLS servers)")
	}
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	switch sub {
	case "ls", "create":
		err = wantArgs(pos, 0, enrollTokensUsage)
	case "rm":
		err = wantArgs(pos, 1, enrollTokensUsage)
	default:
		err = fmt.Errorf("unknown enroll-tokens command %q\nRun 'doorbell enroll-tokens --help' for usage.", sub)
	}
	if err != nil {
		return err
	}
	if sub == "create" && uses < 1 {
		return fmt.Errorf("--max-uses must be at least 1")
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	switch sub {
	case "ls":
		var l proto.EnrollmentTokenList
		if err := c.Call(ctx, "GET", "/enrollment-tokens", nil, &l); err != nil {
			return err
		}
		if o.json {
			return printJSON(stdout, l)
		}
		tw := newTable(stdout)
		fmt.Fprintln(tw, "ID\tUSES\tMAX\tEXPIRES\tCREATED\tBY")
		for _, t := range l.Tokens {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", t.ID, t.Uses, t.MaxUses, fmtTime(&t.ExpiresAt), fmtTime(&t.CreatedAt), safe(t.CreatedBy))
		}
		return tw.Flush()
	case "create":
		var t struct {
			proto.EnrollmentToken
			EnrollURL string `json:"enrollUrl,omitempty"`
		}
		req := proto.EnrollmentTokenRequest{ExpiresIn: expires, MaxUses: uses}
		if err := c.Call(ctx, "POST", "/enrollment-tokens", req, &t); err != nil {
			return err
		}
		if qrFile != "" {
			if t.EnrollURL == "" {
				return fmt.Errorf("token %s created, but the server runs without TLS: there is no enrollment string to draw as --qr", t.ID)
			}
			png, _, err := c.Raw(ctx, "POST", "/enrollment-tokens/qr", proto.EnrollmentQRRequest{EnrollURL: t.EnrollURL})
			if err == nil {
				err = os.WriteFile(qrFile, png, 0o600)
			}
			if err != nil {
				return fmt.Errorf("token %s created, but its QR code was not written: %w", t.ID, err)
			}
		}
		if o.json {
			return printJSON(stdout, t)
		}
		tw := newTable(stdout)
		fmt.Fprintf(tw, "id:\t%s\n", t.ID)
		fmt.Fprintf(tw, "token:\t%s\t(shown only now)\n", t.Token)
		fmt.Fprintf(tw, "expires:\t%s\n", fmtTime(&t.ExpiresAt))
		fmt.Fprintf(tw, "max uses:\t%d\n", t.MaxUses)
		if t.EnrollURL != "" {
			fmt.Fprintf(tw, "enrollment string:\t%s\n", t.EnrollURL)
		}
		return tw.Flush()
	}
	if err := c.Call(ctx, "DELETE", "/enrollment-tokens/"+url.PathEscape(pos[0]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked enrollment token %s\n", pos[0])
	return nil
}
