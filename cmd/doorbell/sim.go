package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/doorbell-mdm/doorbell/sim"
)

// simGCPercent is the simulator's GOGC unless the environment sets one.
const simGCPercent = 400

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg            sim.Config
		slice          string
		asJSON, silent bool
	)
	fs.StringVar(&cfg.ServerURL, "server", "http://127.0.0.1:8080", "server base URL; several replicas separated by commas spread the devices over them")
	fs.StringVar(&cfg.EnrollToken, "enroll-token", "", "enrollment token")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "operator token")
	fs.IntVar(&cfg.Devices, "devices", 100, "devices in the whole fleet (with --slice, this process runs its share)")
	fs.StringVar(&slice, "slice", "1/1", "K/N: this process runs the K-th of N equal slices of the devices")
	fs.StringVar(&cfg.Mode, "mode", sim.ModeMQTT, "how edits reach devices: "+strings.Join(sim.Modes, ", "))
	fs.StringVar(&cfg.Scenario, "scenario", sim.ScenarioEnroll, "what to measure: "+strings.Join(sim.Scenarios, ", "))
	fs.DurationVar(&cfg.Interval, "interval", 0, "agents' periodic sync interval (default 30s in poll mode, 1h otherwise)")
	fs.IntVar(&cfg.Edits, "edits", 0, "edit-one: edits to measure (default 100; 20 at once in poll mode)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "reports: how long to send reports")
	fs.IntVar(&cfg.HTTPConns, "http-conns", 128, "HTTP connections to the server, shared by every simulated agent")
	fs.IntVar(&cfg.Ramp, "ramp", 200, "devices enrolling or connecting at the same time")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "idle: the server's pid (default: the process listening on --server's port)")
	fs.StringVar(&cfg.FCMListen, "fcm-listen", "127.0.0.1:4004", "fcm mode: where the fake FCM endpoint listens (serve --fcm-project sim --fcm-endpoint http://<this>/v1)")
	var caFile string
	fs.StringVar(&caFile, "ca-file", "", "https server: its CA certificate (serve's <data>/tls/ca.pem); each device then enrolls with its own key and certificate")
	fs.StringVar(&cfg.ServerDebug, "server-pprof", "", "idle: the server's debug listener (serve --pprof ADDR): free its memory before each reading and report heap, stacks and goroutines per device")
	fs.DurationVar(&cfg.Settle, "settle", 5*time.Second, "idle: wait this long after connecting before reading memory")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "give up on a device after this long")
	var readyFile string
	fs.StringVar(&readyFile, "ready-file", "", "once the fleet is enrolled and connected, create this file and wait for SIGUSR1 before the measured part (several --slice processes start together; not for enroll and idle)")
	fs.BoolVar(&asJSON, "json", false, "print the figures as one JSON object")
	fs.BoolVar(&silent, "quiet", false, "no progress line on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("sim: --ca-file: %w", err)
		}
		cfg.ServerCA = b
	}
	k, n, err := parseSlice(slice)
	if err != nil {
		return err
	}
	total := cfg.Devices
	cfg.First = total * (k - 1) / n
	cfg.Devices = total*k/n - cfg.First
	cfg.Slice, cfg.Slices = k, n
	if readyFile != "" {
		// Registered now: the signal may come as soon as the file exists.
		start := make(chan os.Signal, 1)
		signal.Notify(start, syscall.SIGUSR1)
		defer signal.Stop(start)
		cfg.WaitStart = func(ctx context.Context) error {
			if err := os.WriteFile(readyFile, nil, 0o644); err != nil {
				return fmt.Errorf("sim: --ready-file: %w", err)
			}
			select {
			case <-start:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if !silent {
		cfg.Progress = stderr
	}
	// The simulator shares the machine with the server it measures, and
	// its thousands of agents' goroutines make every GC cycle scan (and
	// shrink, and then regrow) their stacks: fewer cycles leave more CPU to
	// the server, for memory the simulator can spare. GOGC overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(simGCPercent)
	}
	res, err := sim.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	printResult(stdout, res)
	return nil
}

// parseSlice parses "K/N" with 1 <= K <= N.
func parseSlice(s string) (k, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if ok {
		k, err = strconv.Atoi(a)
		if err == nil {
			n, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || n < 1 || k < 1 || k > n {
		return 0, 0, fmt.Errorf("--slice %q: want K/N with 1 <= K <= N, e.g. 2/3", s)
	}
	return k, n, nil
}

func printResult(w io.Writer, r sim.Result) {
	fmt.Fprintf(w, "scenario %s, mode %s, %d devices (%d COMPLIANT at the end), run took %.1fs\n",
		r.Scenario, r.Mode, r.Devices, r.Compliant, r.DurationMs/1000)
	if r.P50Ms > 0 {
		fmt.Fprintf(w, "  latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs)
	}
	if r.AllCompliantMs > 0 {
		fmt.Fprintf(w, "  all COMPLIANT after %.0f ms at %.0f requests/s\n", r.AllCompliantMs, r.RequestsPerSec)
	}
	if r.Scenario == sim.ScenarioCommands {
		fmt.Fprintf(w, "  %d lock commands, each from the request to the server answering ACKNOWLEDGED\n", r.Edits)
	}
	if r.EditPath != "" {
		fmt.Fprintf(w, "  edited %s (%d edit requests)\n", r.EditPath, r.Edits)
	}
	if r.ServerPID > 0 {
		fmt.Fprintf(w, "  server (pid %d): %.0f bytes per connected device; simulator: %.0f bytes per device\n",
			r.ServerPID, r.ServerBytesPerDevice, r.SimBytesPerDevice)
		if r.ServerHeapPerDevice != 0 || r.ServerStackPerDevice != 0 {
			fmt.Fprintf(w, "  server per connected device: heap %.0f B, goroutine stacks %.0f B, %.2f goroutines\n",
				r.ServerHeapPerDevice, r.ServerStackPerDevice, r.ServerGoroutinesPerDevice)
		}
	}
	if r.ServerCPUSeconds > 0 || r.SimCPUSeconds > 0 {
		fmt.Fprintf(w, "  CPU meanwhile: server %.2f s, simulator %.2f s\n", r.ServerCPUSeconds, r.SimCPUSeconds)
	}
	if r.ReconnectsPerSec > 0 {
		fmt.Fprintf(w, "  after the server restart: %.0f devices back per second\n", r.ReconnectsPerSec)
		if r.HTTPSHandshakes > 0 {
			fmt.Fprintf(w, "  HTTPS handshakes after the restart: %d, of which %d resumed a TLS session\n", r.HTTPSHandshakes, r.HTTPSResumed)
		}
	}
	if r.ReportsPerSec > 0 {
		fmt.Fprintf(w, "  %.0f durable reports/s\n", r.ReportsPerSec)
	}
}
