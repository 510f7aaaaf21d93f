// Command benchtable prints the figures scripts/bench.sh collected (one JSON
// object per line: doorbell sim --json results and the broker benchmark's
// line; lines starting with # are headers) as two tables: every figure
// beside its target (issue 18) and the references beside it (mosquitto for
// the broker, the FCM and poll-only rows beside the MQTT doorbell).
//
//	go run ./scripts/benchtable bin/bench.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// result is the union of the fields the lines carry.
type result struct {
	Scenario             string  `json:"scenario"`
	Mode                 string  `json:"mode"`
	TLS                  bool    `json:"tls"`
	Devices              int     `json:"devices"`
	P50Ms                float64 `json:"p50Ms"`
	P90Ms                float64 `json:"p90Ms"`
	P99Ms                float64 `json:"p99Ms"`
	MaxMs                float64 `json:"maxMs"`
	AllCompliantMs       float64 `json:"allCompliantMs"`
	RequestsPerSec       float64 `json:"requestsPerSec"`
	ServerBytesPerDevice float64 `json:"serverBytesPerDevice"`
	ServerHeapPerDevice  float64 `json:"serverHeapPerDevice"`
	ServerStackPerDevice float64 `json:"serverStackPerDevice"`
	ServerGoroutines     float64 `json:"serverGoroutinesPerDevice"`
	ReportsPerSec        float64 `json:"reportsPerSec"`
	ReconnectsPerSec     float64 `json:"reconnectsPerSec"`
	HTTPSHandshakes      int64   `json:"httpsHandshakes"`
	HTTPSResumed         int64   `json:"httpsResumed"`
	TLSHandshakesPerSec  float64 `json:"tlsHandshakesPerSec"`
	Slice                string  `json:"slice"`
	Procs                int     `json:"-"` // simulator processes combined
	ServerCPUSeconds     float64 `json:"serverCpuSeconds"`
	SimCPUSeconds        float64 `json:"simCpuSeconds"`
	EditPath             string  `json:"editPath"`
	Compliant            int     `json:"compliant"`
	LoadAvg              string  `json:"loadAvg"`
	// broker-fanout
	EmbeddedMs              float64 `json:"embeddedMs"`
	MosquittoMs             float64 `json:"mosquittoMs"`
	MosquittoBytesPerClient float64 `json:"mosquittoBytesPerClient"`
}

func main() {
	in := io.Reader(os.Stdin)
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	if err := run(in, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var headers []string
	got := map[string]result{} // by scenario/mode(/tls); the last line wins
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			headers = append(headers, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		case strings.HasPrefix(line, "{"):
			var r result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return fmt.Errorf("%q: %w", line, err)
			}
			k := key(r.Scenario, r.Mode, r.TLS)
			if prev, ok := got[k]; ok && r.Slice != "" && !strings.HasPrefix(r.Slice, "1/") {
				r = combine(prev, r)
			}
			r.Procs = max(r.Procs, 1)
			got[k] = r
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for _, h := range headers {
		fmt.Fprintln(out, h)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\ttarget\tmeasured\tmet?\treference\tload avg\t")
	fmt.Fprintln(tw, "------\t------\t--------\t----\t---------\t--------\t")
	fanout, haveFanout := got[key("broker-fanout", "", false)]
	for _, tls := range []bool{false, true} {
		via := "HTTP"
		if tls {
			via = "TLS"
			for _, r := range got {
				if r.TLS {
					via = fmt.Sprintf("TLS, %d devices", r.Devices)
					break
				}
			}
		}
		if r, ok := got[key("edit-one", "mqtt", tls)]; ok {
			row(tw, "edit-one -> COMPLIANT p50 ("+via+")", "<= 10 ms", ms(r.P50Ms), r.P50Ms <= 10,
				fmt.Sprintf("p90 %s, max %s", ms(r.P90Ms), ms(r.MaxMs)), r.LoadAvg)
			row(tw, "edit-one -> COMPLIANT p99 ("+via+")", "<= 50 ms", ms(r.P99Ms), r.P99Ms <= 50, "", r.LoadAvg)
		}
		if r, ok := got[key("edit-all", "mqtt", tls)]; ok {
			row(tw, "edit-all ("+r.EditPath+" edit"+procs(r)+") -> all COMPLIANT ("+via+")", "<= 2 s", secs(r.AllCompliantMs),
				r.AllCompliantMs > 0 && r.AllCompliantMs <= 2000, fmt.Sprintf("%.0f requests/s%s", r.RequestsPerSec, cpu(r)), r.LoadAvg)
		}
		if r, ok := got[key("reports", "mqtt", tls)]; ok {
			row(tw, "durable reports/s ("+via+")", ">= 10,000", fmt.Sprintf("%.0f", r.ReportsPerSec), r.ReportsPerSec >= 10000, cpu(r), r.LoadAvg)
		}
		if r, ok := got[key("idle", "mqtt", tls)]; ok {
			ref := ""
			if haveFanout && fanout.MosquittoBytesPerClient > 0 {
				ref = fmt.Sprintf("mosquitto %s (doorbell/mosquitto %.1fx)", kb(fanout.MosquittoBytesPerClient),
					r.ServerBytesPerDevice/fanout.MosquittoBytesPerClient)
			}
			detail := ""
			if r.ServerStackPerDevice != 0 || r.ServerHeapPerDevice != 0 {
				detail = fmt.Sprintf(" (heap %s, stacks %s, %.1f goroutines)", kb(r.ServerHeapPerDevice),
					kb(r.ServerStackPerDevice), r.ServerGoroutines)
			}
			row(tw, "server memory per idle device ("+via+")", "<= 16 KB", kb(r.ServerBytesPerDevice)+detail,
				r.ServerBytesPerDevice > 0 && r.ServerBytesPerDevice <= 16<<10, ref, r.LoadAvg)
		}
		if r, ok := got[key("enroll", "mqtt", tls)]; ok {
			row(tw, "enroll + connect the fleet ("+via+")", "-", secs(r.AllCompliantMs), true,
				fmt.Sprintf("%.0f requests/s", r.RequestsPerSec), r.LoadAvg)
		}
		if r, ok := got[key("restart", "mqtt", tls)]; ok {
			row(tw, "server restart -> fleet reconnected, synced, COMPLIANT ("+via+procs(r)+")", "-", secs(r.AllCompliantMs), true,
				fmt.Sprintf("%d of %d COMPLIANT; %.0f devices/s, %.0f TLS handshakes/s; HTTPS resumed %d of %d",
					r.Compliant, r.Devices, r.ReconnectsPerSec, r.TLSHandshakesPerSec, r.HTTPSResumed, r.HTTPSHandshakes), r.LoadAvg)
		}
	}
	if haveFanout {
		row(tw, fmt.Sprintf("doorbell fan-out, %d devices, embedded broker", fanout.Devices), "-", ms(fanout.EmbeddedMs), true,
			fmt.Sprintf("mosquitto %s (embedded/mosquitto %.2fx)", ms(fanout.MosquittoMs), fanout.EmbeddedMs/fanout.MosquittoMs), fanout.LoadAvg)
	}
	tw.Flush()

	fmt.Fprintln(out)
	fmt.Fprintln(out, "How an edit reaches the devices (same fleet size, each on a fresh server):")
	tw = tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tedit-one p50\tp90\tp99\tmax\tedit-all -> all COMPLIANT\tload avg (edit-one / edit-all)\t")
	for _, m := range []struct{ mode, name string }{{"mqtt", "MQTT doorbell"}, {"fcm", "FCM doorbell (fake FCM)"}, {"poll", "poll only"}} {
		one, ok1 := got[key("edit-one", m.mode, false)]
		all, ok2 := got[key("edit-all", m.mode, false)]
		if !ok1 && !ok2 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s / %s\t\n", m.name, ms(one.P50Ms), ms(one.P90Ms), ms(one.P99Ms), ms(one.MaxMs),
			secs(all.AllCompliantMs), one.LoadAvg, all.LoadAvg)
	}
	return tw.Flush()
}

// combine merges the lines of two simulator processes that ran slices of
// one fleet at the same moment (bench.sh starts them together): devices,
// request and reconnect counts add up; the fleet is done when the slowest
// slice is; the server's CPU is one process's, measured by each over about
// the same span.
func combine(a, b result) result {
	c := a
	c.Procs = max(a.Procs, 1) + 1
	c.Devices = a.Devices + b.Devices
	c.Compliant = a.Compliant + b.Compliant
	c.AllCompliantMs = max(a.AllCompliantMs, b.AllCompliantMs)
	secs := c.AllCompliantMs / 1000
	if secs > 0 {
		c.RequestsPerSec = (a.RequestsPerSec*a.AllCompliantMs + b.RequestsPerSec*b.AllCompliantMs) / 1000 / secs
		if a.ReconnectsPerSec > 0 || b.ReconnectsPerSec > 0 {
			c.ReconnectsPerSec = float64(c.Devices) / secs
		}
		if a.TLSHandshakesPerSec > 0 || b.TLSHandshakesPerSec > 0 {
			c.TLSHandshakesPerSec = (a.TLSHandshakesPerSec*a.AllCompliantMs + b.TLSHandshakesPerSec*b.AllCompliantMs) / 1000 / secs
		}
	}
	c.HTTPSHandshakes = a.HTTPSHandshakes + b.HTTPSHandshakes
	c.HTTPSResumed = a.HTTPSResumed + b.HTTPSResumed
	c.ServerCPUSeconds = max(a.ServerCPUSeconds, b.ServerCPUSeconds)
	c.SimCPUSeconds = a.SimCPUSeconds + b.SimCPUSeconds
	return c
}

// cpu says how the CPU time of a run split between server and simulator.
func cpu(r result) string {
	if r.ServerCPUSeconds <= 0 || r.SimCPUSeconds <= 0 {
		return ""
	}
	return fmt.Sprintf("; CPU server %.1f s, sim %.1f s", r.ServerCPUSeconds, r.SimCPUSeconds)
}

// procs names the simulator processes of a combined row.
func procs(r result) string {
	if r.Procs > 1 {
		return fmt.Sprintf(", %d sim processes", r.Procs)
	}
	return ""
}

func key(scenario, mode string, tls bool) string { return fmt.Sprintf("%s/%s/%v", scenario, mode, tls) }

func row(w io.Writer, figure, target, measured string, met bool, ref, load string) {
	m := "yes"
	if target == "-" {
		m = "-"
	} else if !met {
		m = "NO"
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t\n", figure, target, measured, m, ref, load)
}

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	if v >= 10000 {
		return fmt.Sprintf("%.1f s", v/1000)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func secs(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f s", v/1000)
}

func kb(v float64) string { return fmt.Sprintf("%.1f KB", v/1024) }
