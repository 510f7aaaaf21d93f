package main

import (
	"encoding/json"
	"errors"
	"flag"
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	qrreader "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/doorbell-mdm/doorbell/agent"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/pki"
	"github.com/doorbell-mdm/doorbell/server/servertest"
)

// subcommands lists, per command, the subcommands whose --help is checked;
// "" is the command itself.
var subcommands = map[string][]string{
	"devices":       {"", "ls", "show", "rm"},
	"policy":        {"", "show", "set", "unset"},
	"tokens":        {"", "ls", "create", "rm"},
	"groups":        {"", "ls", "show", "create", "set", "policy", "add", "remove", "rm"},
	"enroll-tokens": {"", "ls", "create", "rm"},
	"commands":      {"", "send", "ls", "show", "cancel"},
}

// TestEveryCommandsHelp: --help of every command and subcommand prints its
// usage and flags (and examples) and is not an error to the shell (main
// exits 0 on flag.ErrHelp); nothing is sent anywhere.
func TestEveryCommandsHelp(t *testing.T) {
	for name := range commands {
		subs := subcommands[name]
		if subs == nil {
			subs = []string{""}
		}
		for _, sub := range subs {
			args := []string{name}
			if sub != "" {
				args = append(args, sub)
			}
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				out, errOut, err := cli(t, append(args, "--help")...)
				if !errors.Is(err, flag.ErrHelp) {
					t.Fatalf("err = %v, want flag.ErrHelp (exit 0)", err)
				}
				help := out + errOut
				if !strings.Contains(strings.ToLower(help), "usage") {
					t.Fatalf("no usage in help:\n%s", help)
				}
				if examples[name] == "" || !strings.Contains(help, "examples:\n"+examples[name]) {
					t.Fatalf("help of %s has no examples:\n%s", name, help)
				}
			})
		}
	}
	t.Run("help COMMAND", func(t *testing.T) {
		_, errOut, err := cli(t, "help", "groups")
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut, "groups create NAME") {
			t.Fatalf("err %v, help %q", err, errOut)
		}
	})
	t.Run("help lists every command", func(t *testing.T) {
		out, _, err := cli(t, "help")
		if err != nil {
			t.Fatal(err)
		}
		for name := range commands {
			if !strings.Contains(out, "  "+name+" ") {
				t.Errorf("help lacks %s:\n%s", name, out)
			}
		}
	})
}

// TestErrorsBeforeUsage: a mistake is one error line and a one-line hint,
// never the whole usage, and nothing is sent to a server.
func TestErrorsBeforeUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frob"}, `unknown command "frob"`},
		{"no command", nil, "no command given"},
		{"bad flag", []string{"devices", "ls", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad flag of serve", []string{"serve", "--nope"}, "flag provided but not defined: -nope"},
		{"unknown groups command", []string{"groups", "frob"}, `unknown groups command "frob"`},
		{"unknown devices command", []string{"devices", "frob", "--token", "t"}, `unknown devices command "frob"`},
		{"unknown enroll-tokens command", []string{"enroll-tokens", "frob"}, `unknown enroll-tokens command "frob"`},
		{"groups policy unknown setting", []string{"groups", "policy", "g", "warpDrive=true", "--token", "t"}, `unknown setting "warpDrive"`},
		{"groups policy bad value", []string{"groups", "policy", "g", "passwordMinLength=many", "--token", "t"}, "passwordMinLength"},
		{"groups bad mode", []string{"groups", "create", "g", "--mode", "loud", "--token", "t"}, "--mode must be enforce or monitor"},
		{"groups set without a change", []string{"groups", "set", "g", "--token", "t"}, "give --name and/or --priority"},
		{"groups set without a group", []string{"groups", "set", "--priority", "3", "--token", "t"}, "usage"},
		{"groups add without devices", []string{"groups", "add", "g", "--token", "t"}, "at least one device"},
		{"explain without device", []string{"explain", "--token", "t"}, "usage: doorbell explain"},
		{"history negative limit", []string{"history", "d", "--limit", "-1", "--token", "t"}, "--limit must not be negative"},
		{"audit bad limit", []string{"audit", "--limit", "0", "--token", "t"}, "--limit must be from 1"},
		{"enroll-tokens bad uses", []string{"enroll-tokens", "create", "--max-uses", "0", "--token", "t"}, "--max-uses must be at least 1"},
		{"no token", []string{"audit"}, "no operator token"},
		{"bad pin", []string{"audit", "--token", "t", "--server-pin", "md5/x"}, "want sha256/"},
		{"version takes no argument", []string{"version", "x"}, "unexpected argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if len(args) > 1 && args[0] != "version" && args[0] != "serve" {
				// Nothing may reach a server: this one does not exist.
				args = append(args, "--server", "http://127.0.0.1:1")
			}
			out, errOut, err := cli(t, args...)
			if err == nil || errors.Is(err, flag.ErrHelp) {
				t.Fatalf("err = %v, want an error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to contain %q", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") > 4 || strings.Contains(err.Error(), "flags (each") {
				t.Fatalf("error is not short:\n%s", err)
			}
			if strings.Contains(errOut, "flags (each") || strings.Contains(errOut, "commands:") || out != "" {
				t.Fatalf("usage printed with the error: stdout %q stderr %q", out, errOut)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, _, err := cli(t, "version")
	if err != nil || !strings.HasPrefix(out, "doorbell "+Version+" ") || !strings.Contains(out, "capability version") {
		t.Fatalf("version: %q %v", out, err)
	}
	out2, _, err := cli(t, "--version")
	if err != nil || out2 != out {
		t.Fatalf("--version: %q %v", out2, err)
	}
}

// TestOperatorResourcesAgainstRealServer drives groups, explain, history,
// audit, enrollment tokens and device deletion against a real server and
// checks each through the API.
func TestOperatorResourcesAgainstRealServer(t *testing.T) {
	f := startFleet(t, 2)
	id0, id1 := f.devices[0].DeviceID, f.devices[1].DeviceID
	auth := []string{"--server", f.url, "--token", f.admin}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, err := cli(t, append(args, auth...)...)
		if err != nil {
			t.Fatalf("doorbell %s: %v (%s)", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	var g proto.Group
	if err := json.Unmarshal([]byte(ok("groups", "create", "kiosks", "--priority", "7", "--json")), &g); err != nil || g.Name != "kiosks" || g.Priority != 7 {
		t.Fatalf("create: %+v %v", g, err)
	}
	ok("groups", "add", "kiosks", id0, id1)
	ok("groups", "remove", "kiosks", id1)
	ok("groups", "policy", "kiosks", "cameraDisabled=true", "passwordMinLength=6", "--monitor", "passwordMinLength")
	if err := json.Unmarshal([]byte(ok("groups", "show", g.GroupID, "--json")), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.DeviceIDs) != 1 || g.DeviceIDs[0] != id0 || string(g.Policy["cameraDisabled"]) != "true" || g.Modes["passwordMinLength"] != proto.ModeMonitor {
		t.Fatalf("group after edits: %+v", g)
	}
	if out := ok("groups"); !strings.Contains(out, "kiosks") || !strings.Contains(out, "cameraDisabled=true") {
		t.Fatalf("groups ls:\n%s", out)
	}
	// set: the priority alone keeps the name; then a rename keeps the priority.
	if err := json.Unmarshal([]byte(ok("groups", "set", "kiosks", "--priority", "0", "--json")), &g); err != nil || g.Priority != 0 || g.Name != "kiosks" {
		t.Fatalf("groups set --priority 0: %+v %v", g, err)
	}
	if err := json.Unmarshal([]byte(ok("groups", "set", g.GroupID, "--name", "lobby", "--json")), &g); err != nil || g.Priority != 0 || g.Name != "lobby" {
		t.Fatalf("groups set --name: %+v %v", g, err)
	}
	ok("groups", "set", "lobby", "--name", "kiosks", "--priority", "7")
	if out := ok("explain", id0); !strings.Contains(out, "group:"+g.GroupID) || !strings.Contains(out, "monitor") {
		t.Fatalf("explain:\n%s", out)
	}
	if out := ok("history", id0); !strings.Contains(out, "COMPLIANT") {
		t.Fatalf("history:\n%s", out)
	}
	var et struct {
		proto.EnrollmentToken
	}
	if err := json.Unmarshal([]byte(ok("enroll-tokens", "create", "--max-uses", "3", "--expires-in", "1h", "--json")), &et); err != nil || et.Token == "" || et.MaxUses != 3 {
		t.Fatalf("enroll-tokens create: %+v %v", et, err)
	}
	if out := ok("enroll-tokens"); !strings.Contains(out, et.ID) {
		t.Fatalf("enroll-tokens ls:\n%s", out)
	}
	ok("enroll-tokens", "rm", et.ID)
	ok("groups", "rm", "kiosks")
	ok("devices", "rm", id1)
	if _, _, err := cli(t, append([]string{"devices", "show", id1}, auth...)...); err == nil || !strings.Contains(err.Error(), "device_not_found") {
		t.Fatalf("deleted device still shown: %v", err)
	}
	var al proto.AuditList
	if err := json.Unmarshal([]byte(ok("audit", "--json")), &al); err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, e := range al.Entries {
		actions[e.Action] = true
	}
	for _, want := range []string{"enrollment_token.create", "enrollment_token.revoke"} {
		if !actions[want] {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
	if out := ok("audit", "--limit", "1"); !strings.Contains(out, "more: doorbell audit --after") {
		t.Fatalf("audit paging hint missing:\n%s", out)
	}
}

// TestDevicesShowSaysWhatFails: a NON_COMPLIANT device's show lists the
// failing setting with the wanted and reported values.
func TestDevicesShowSaysWhatFails(t *testing.T) {
	f := startFleet(t, 1)
	id := f.devices[0].DeviceID
	auth := []string{"--server", f.url, "--token", f.admin}
	if _, _, err := cli(t, append([]string{"policy", "set", id, "cameraDisabled=true"}, auth...)...); err != nil {
		t.Fatal(err)
	}
	if err := f.dev.Report(t.Context(), f.devices[0], proto.ComplianceReport{AppliedPolicyVersion: 2}); err != nil {
		t.Fatal(err)
	}
	out, _, err := cli(t, append([]string{"devices", "show", id}, auth...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "NON_COMPLIANT") || !strings.Contains(out, "failing:") || !strings.Contains(out, "cameraDisabled") {
		t.Fatalf("show does not say what fails:\n%s", out)
	}
}

// TestTLSHints: plain HTTP against the TLS server, and https without the
// private CA, fail with a hint naming the fix instead of a bare EOF; the
// pin the server prints makes the call succeed.
func TestTLSHints(t *testing.T) {
	d := servertest.Start(t, daemon.DaemonConfig{AdminToken: "tls-admin", TLS: &pki.Config{}})
	addr := d.HTTPAddr()
	_, _, err := cli(t, "audit", "--server", "http://"+addr, "--token", "tls-admin")
	if err == nil || !strings.Contains(err.Error(), "hint:") || !strings.Contains(err.Error(), "https://") {
		t.Fatalf("plain HTTP to TLS: %v", err)
	}
	_, _, err = cli(t, "audit", "--server", "https://"+addr, "--token", "tls-admin")
	if err == nil || !strings.Contains(err.Error(), "--ca-file") || !strings.Contains(err.Error(), "--server-pin") {
		t.Fatalf("https without CA: %v", err)
	}
	_, _, err = cli(t, "audit", "--server", "https://"+addr, "--token", "tls-admin", "--server-pin", "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err == nil || !strings.Contains(err.Error(), "no certificate of the server's chain has the pin") {
		t.Fatalf("wrong pin: %v", err)
	}
	if _, _, err := cli(t, "audit", "--server", "https://"+addr, "--token", "tls-admin", "--server-pin", d.Pin()); err != nil {
		t.Fatalf("with the pin: %v", err)
	}

	// A new enrollment token's QR code decodes back to its enrollment
	// string, which an agent parses to this server, its pin and the secret.
	qrFile := filepath.Join(t.TempDir(), "enroll.png")
	out, _, err := cli(t, "enroll-tokens", "create", "--json", "--qr", qrFile, "--server", "https://"+addr, "--token", "tls-admin", "--server-pin", d.Pin())
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token     string `json:"token"`
		EnrollURL string `json:"enrollUrl"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.EnrollURL == "" {
		t.Fatalf("create: %s %v", out, err)
	}
	e, err := agent.ParseEnrollURL(tok.EnrollURL)
	if err != nil || e.Token != tok.Token || e.Pin != d.Pin() || e.Server != "https://"+addr {
		t.Fatalf("enrollment string %q parses to %+v, %v", tok.EnrollURL, e, err)
	}
	if got := decodeQR(t, qrFile); got != tok.EnrollURL {
		t.Fatalf("QR decodes to %q, want %q", got, tok.EnrollURL)
	}
}

// decodeQR reads a PNG file's QR code with gozxing, an independent decoder.
func decodeQR(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrreader.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{
		// The image is the served PNG itself, nothing around the code: a pure
		// barcode (without the hint gozxing's finder-pattern search misses
		// about 1 in 50 codes that decode fine with it).
		gozxing.DecodeHintType_PURE_BARCODE: true,
	})
	if err != nil {
		t.Fatalf("decoding the QR code: %v", err)
	}
	return res.GetText()
}
