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
	"sort"
	"strings"
	"syscall"
)

// commands maps each subcommand to its entry point.
var commands = map[string]struct {
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	short string
}{
	"serve":     {runServe, "run the server: REST API, embedded MQTT broker and doorbells"},
	"agent":     {runAgent, "run the device agent"},
	"sim":       {runSim, "simulate a fleet of agents against a server and measure it"},
	"devices":   {runDevices, "list the fleet or show one device (operator)"},
	"policy":    {runPolicy, "show or set a device's desired policy (operator)"},
	"watch":     {runWatch, "print device state changes live (operator)"},
	"tokens":    {runTokens, "list, create or revoke operator tokens (operator)"},
	"backup":    {runBackup, "write a consistent copy of the database (a stopped server's data dir, or a running server as admin)"},
	"commands":  {runCommands, "send, list, show or cancel remote commands: lock, reboot, wipe… (operator)"},
	"revisions": {runRevisions, "list, show or roll back policy revisions of a group or a device (operator)"},
	"migrate":   {runMigrate, "copy a bbolt data dir into PostgreSQL (see docs/SCALING.md)"},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "doorbell:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: doorbell <command> [flags]\n\ncommands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].short)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set as DOORBELL_<FLAG> (upper snake case), e.g. DOORBELL_ADMIN_TOKEN.")
}

// parse parses args into fs; a flag not given on the command line is taken
// from DOORBELL_<FLAG> when that is set.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
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
