// Command doorbell is the single Doorbell MDM binary: the server, the agent
// and the operator tools. It only parses flags and wires packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/doorbell-mdm/doorbell/proto"
)

// commands maps each subcommand to its entry point.
var commands = map[string]struct {
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	short string
}{
	"serve":         {runServe, "run the server: REST API, embedded MQTT broker and doorbells"},
	"agent":         {runAgent, "run the device agent"},
	"sim":           {runSim, "simulate a fleet of agents against a server and measure it"},
	"devices":       {runDevices, "list the fleet or show one device (operator)"},
	"policy":        {runPolicy, "show or set a device's desired policy (operator)"},
	"watch":         {runWatch, "print device state changes live (operator)"},
	"tokens":        {runTokens, "list, create or revoke operator tokens (operator)"},
	"version":       {runVersion, "print the version of this binary"},
	"groups":        {runGroups, "list, create, edit or delete groups and their members (operator)"},
	"explain":       {runExplain, "say where each setting of a device's policy comes from (operator)"},
	"history":       {runHistory, "a device's compliance state changes (operator)"},
	"audit":         {runAudit, "the audit log of operator actions (operator)"},
	"enroll-tokens": {runEnrollTokens, "list, create or revoke enrollment tokens (operator)"},
	"backup":        {runBackup, "write a consistent copy of the database (a stopped server's data dir, or a running server as admin)"},
	"commands":      {runCommands, "send, list, show or cancel remote commands: lock, reboot, wipe… (operator)"},
	"revisions":     {runRevisions, "list, show or roll back policy revisions of a group or a device (operator)"},
	"inventory":     {runInventory, "show a device's inventory, or package versions and facts across the fleet (operator)"},
	"migrate":       {runMigrate, "copy a bbolt data dir into PostgreSQL (see docs/SCALING.md)"},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0) // --help was asked for and printed
		}
		fmt.Fprintln(os.Stderr, "doorbell:", err)
		os.Exit(2)
	}
}

// run runs the command args names. An error is printed first, with a
// one-line hint, never buried under the usage; asked-for help returns
// flag.ErrHelp after printing it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no command given\nRun 'doorbell help' for the list of commands.")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if cmd, ok := commands[args[1]]; ok {
				return cmd.run(ctx, []string{"--help"}, stdout, stderr)
			}
			return fmt.Errorf("help: unknown command %q\nRun 'doorbell help' for the list of commands.", args[1])
		}
		usage(stdout)
		return nil
	case "-v", "-version", "--version":
		args = []string{"version"}
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q\nRun 'doorbell help' for the list of commands.", args[0])
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

// runVersion prints the binary's version and the contract's capability
// version.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr, "doorbell version")
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("version: unexpected argument %q", pos[0])
	}
	_, err = fmt.Fprintf(stdout, "doorbell %s (capability version %d, %s)\n", Version, proto.CapabilityVersion, runtime.Version())
	return err
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: doorbell <command> [flags]\n\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].short)
	}
	fmt.Fprintln(w, "\nRun 'doorbell <command> --help' for a command's flags and examples.")
	fmt.Fprintln(w, "Every flag can also be set as DOORBELL_<FLAG> (upper snake case), e.g. DOORBELL_ADMIN_TOKEN.")
}

// parse parses args into fs; a flag not given on the command line is taken
// from DOORBELL_<FLAG> when that is set.
func parse(fs *flag.FlagSet, args []string) error {
	if wantsHelp(args) {
		printHelp(fs)
		return flag.ErrHelp
	}
	if err := parseQuiet(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		env := EnvName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// EnvName is the environment variable for a flag: admin-token ->
// DOORBELL_ADMIN_TOKEN.
func EnvName(flagName string) string {
	return "DOORBELL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newLogger returns the process logger: text or JSON on stderr.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}
