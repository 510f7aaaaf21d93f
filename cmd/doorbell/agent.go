package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
)

// Version is the agent version reported at enrollment.
var Version = "0.1.0"

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg       agent.Config
		stateDir  string
		enforcer  string
		once      bool
		logFormat string
		caFile    string
		enrollURL string
		inventory string
	)
	fs.StringVar(&cfg.ServerURL, "server", "", "server URL, e.g. http://mdm.example.com:8080 (required)")
	fs.StringVar(&cfg.EnrollToken, "enroll-token", "", "enrollment token (needed until the agent has enrolled)")
	fs.StringVar(&stateDir, "state", "", "directory for the agent's identity (required)")
	fs.DurationVar(&cfg.Interval, "interval", 15*time.Minute, "periodic sync interval (jittered)")
	fs.StringVar(&enforcer, "enforcer", "", "file:PATH (a JSON file stands in for the device; commands are recorded in it), or linux[:ROOT] (this Linux host, as root; ROOT prefixes every path; commands reboot, lock and run_script of ROOT/etc/doorbell/scripts)")
	fs.BoolVar(&once, "once", false, "sync once and exit")
	fs.BoolVar(&cfg.DisableMQTT, "no-mqtt", false, "do not hold an MQTT connection (periodic sync only)")
	fs.StringVar(&cfg.MQTTURL, "mqtt-url", "", "broker URL (default: the one the server gave at enrollment)")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&cfg.ServerPin, "server-pin", "", "pin of the server's CA key, sha256/<base64> (printed by serve)")
	fs.StringVar(&caFile, "ca-file", "", "PEM file of the CA the server's certificate chains to (e.g. <data>/tls/ca.pem)")
	fs.StringVar(&enrollURL, "enroll-url", "", "the enrollment string doorbell://enroll?server=...&pin=...&token=... (instead of --server, --server-pin, --enroll-token)")
	fs.StringVar(&inventory, "inventory", defaultInventory(), "inventory collector: linux[:ROOT] (this host, read-only; ROOT prefixes every path), file:PATH (a JSON file of inventory sections), or none")
	fs.DurationVar(&cfg.InventoryInterval, "inventory-interval", agent.DefaultInventoryInterval, "how often the inventory is collected to look for changed sections, off the sync path (jittered); changed sections alone are uploaded")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := applyTrustFlags(&cfg, caFile, enrollURL); err != nil {
		return err
	}
	if cfg.ServerURL == "" {
		return errors.New("agent: --server is required")
	}
	if stateDir == "" {
		return errors.New("agent: --state is required")
	}
	if cfg.Interval <= 0 {
		return errors.New("agent: --interval must be positive")
	}
	if cfg.InventoryInterval <= 0 {
		return errors.New("agent: --inventory-interval must be positive")
	}
	var err error
	if cfg.Enforcer, err = newEnforcer(enforcer); err != nil {
		return err
	}
	if cfg.Inventory, err = newCollector(inventory); err != nil {
		return err
	}
	if cfg.Logger, err = newLogger(logFormat, stderr); err != nil {
		return err
	}
	cfg.IDStore = agent.NewFileIDStore(stateDir)
	// Each command is recorded here before it runs, so it runs at most once.
	cfg.CommandJournal = agent.NewFileCommandJournal(stateDir)
	if le, ok := cfg.Enforcer.(*agent.LinuxEnforcer); ok {
		cfg.Executor = agent.NewLinuxExecutor(le.Root())
	}
	cfg.GuidedStatePath = filepath.Join(stateDir, "guided.json")
	if enforcer == "linux" {
		// Guided settings: tell the logged-in users (wall, notify-send).
		cfg.Notifier = agent.LinuxNotifier{Root: "/", Runner: agent.ExecRunner{}}
	}
	cfg.Model = runtime.GOOS + "/" + runtime.GOARCH
	cfg.OSVersion = osVersion()
	cfg.AgentVersion = Version
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if once {
		if err := a.Sync(ctx); err != nil {
			return err
		}
		if r := a.InventoryPass(ctx); r.Err != nil {
			fmt.Fprintln(stderr, "inventory:", r.Err)
		}
		fmt.Fprintln(stdout, "synced device", a.DeviceID())
		return nil
	}
	return a.Run(ctx)
}

func defaultInventory() string {
	if runtime.GOOS == "linux" {
		return "linux"
	}
	return "none"
}

// newCollector builds the --inventory collector; nil for "none".
func newCollector(spec string) (agent.Collector, error) {
	switch {
	case spec == "none" || spec == "":
		return nil, nil
	case spec == "linux":
		return &agent.LinuxCollector{}, nil
	case strings.HasPrefix(spec, "linux:"):
		return &agent.LinuxCollector{Root: strings.TrimPrefix(spec, "linux:")}, nil
	case strings.HasPrefix(spec, "file:"):
		path := strings.TrimPrefix(spec, "file:")
		return agent.JSONCollector(func(context.Context) ([]byte, error) { return os.ReadFile(path) }), nil
	}
	return nil, fmt.Errorf("agent: unknown --inventory %q (want linux[:ROOT], file:PATH or none)", spec)
}

func newEnforcer(spec string) (agent.Enforcer, error) {
	switch {
	case strings.HasPrefix(spec, "file:") && len(spec) > len("file:"):
		return agent.NewFileEnforcer(strings.TrimPrefix(spec, "file:")), nil
	case spec == "linux":
		return agent.NewLinuxEnforcer("/"), nil
	case strings.HasPrefix(spec, "linux:") && len(spec) > len("linux:"):
		return agent.NewLinuxEnforcer(strings.TrimPrefix(spec, "linux:")), nil
	case spec == "":
		return nil, errors.New("agent: --enforcer is required (file:PATH or linux[:ROOT])")
	}
	return nil, fmt.Errorf("agent: unknown --enforcer %q (want file:PATH or linux[:ROOT])", spec)
}

// osVersion is PRETTY_NAME from /etc/os-release, or the OS name.
func osVersion() string {
	b, err := os.ReadFile("/etc/os-release")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"`)
			}
		}
	}
	return runtime.GOOS
}
