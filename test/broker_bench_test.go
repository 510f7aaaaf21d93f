package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/broker"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// allowAll lets every device and operator in: the benchmark measures
// delivery, not authentication.
type allowAll struct{}

func (allowAll) AuthenticateDevice(string, string) bool { return true }
func (allowAll) AuthenticateOperator(string) bool       { return true }

// fanout is one broker with n subscribed devices, each on its own topic, and
// a way to publish one doorbell to every device.
type fanout struct {
	name     string
	ids      []string
	subs     []mqtt.Client
	received atomic.Int64
	all      chan struct{} // signalled when received reaches want
	want     atomic.Int64
	publish  func(topic string, payload []byte) error
	flush    func() error // waits for the publishes to be acknowledged
}

func (f *fanout) onMessage(mqtt.Client, mqtt.Message) {
	if f.received.Add(1) == f.want.Load() {
		f.all <- struct{}{}
	}
}

// subscribe connects n paho subscribers to addr (100 at a time), each
// subscribed to its own doorbell topic at QoS 1, as agents do.
func (f *fanout) subscribe(tb testing.TB, addr string, n int) {
	tb.Helper()
	f.all = make(chan struct{}, 1)
	f.ids = make([]string, n)
	f.subs = make([]mqtt.Client, n)
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := range n {
		f.ids[i] = fmt.Sprintf("bench-%s-%05d", f.name, i)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id := f.ids[i]
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
				SetUsername(id).SetPassword("x").SetCleanSession(true).SetProtocolVersion(4).
				SetAutoReconnect(false).SetKeepAlive(5 * time.Minute))
			if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				failed.CompareAndSwap(nil, fmt.Errorf("connect %s: %v", id, tok.Error()))
				return
			}
			if tok := c.Subscribe(proto.PolicyChangedTopic(id), 1, f.onMessage); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				failed.CompareAndSwap(nil, fmt.Errorf("subscribe %s: %v", id, tok.Error()))
				return
			}
			f.subs[i] = c
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatalf("%s: %v", f.name, err)
	}
	tb.Cleanup(f.disconnect)
}

// disconnect disconnects every subscriber; calling it again does nothing.
func (f *fanout) disconnect() {
	for _, c := range f.subs {
		if c != nil && c.IsConnected() {
			c.Disconnect(0)
		}
	}
}

// ring publishes one doorbell per device and returns the time until every
// subscriber received its own.
func (f *fanout) ring(tb testing.TB, version int) time.Duration {
	tb.Helper()
	f.received.Store(0)
	f.want.Store(int64(len(f.ids)))
	payload := fmt.Appendf(nil, `{"type":%q,"version":%d}`, proto.DoorbellType, version)
	t0 := time.Now()
	for _, id := range f.ids {
		if err := f.publish(proto.PolicyChangedTopic(id), payload); err != nil {
			tb.Fatalf("%s: publish: %v", f.name, err)
		}
	}
	if err := f.flush(); err != nil {
		tb.Fatalf("%s: %v", f.name, err)
	}
	select {
	case <-f.all:
	case <-time.After(time.Minute):
		tb.Fatalf("%s: only %d of %d doorbells arrived within a minute", f.name, f.received.Load(), len(f.ids))
	}
	return time.Since(t0)
}

// startMosquitto runs Debian's mosquitto on a free loopback port with a
// generated config and returns its address and pid.
func startMosquitto(tb testing.TB) (string, int) {
	tb.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/mosquitto"); err != nil {
			tb.Skip("mosquitto is not installed (make deps installs it)")
		}
		bin = "/usr/sbin/mosquitto"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(tb.TempDir(), "mosquitto.conf")
	err = os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\n"+
		"allow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\n"+
		"max_queued_messages 1000\nmax_inflight_messages 20\n"), 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("starting mosquitto: %v", err)
	}
	tb.Cleanup(func() { cancel(); cmd.Wait() })
	testkit.EventuallyNil(tb, 10*time.Second, "mosquitto to listen on "+addr, func() error {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	return addr, cmd.Process.Pid
}

// BenchmarkBrokerFanout rings one doorbell for each of N devices (N =
// $DOORBELL_BENCH_FANOUT, default 1000), each subscribed on its own topic,
// through the embedded broker (published by the server's inline client, as
// the MQTT bell does) and through Debian's mosquitto (published by a paho
// client at QoS 1) in the same run, one broker after the other, and reports
// the time until every device received its doorbell on each, and their
// ratio.
func BenchmarkBrokerFanout(b *testing.B) {
	n := 1000
	if s := os.Getenv("DOORBELL_BENCH_FANOUT"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("DOORBELL_BENCH_FANOUT=%q: want a positive number", s)
		}
	}
	// The brokers take turns, each with its own N subscribers, so one
	// process holds at most 2N sockets (the embedded broker's side and the
	// subscribers'), within the 20,000 open files a process may have.
	if lim := (20000 - 200) / 2; n > lim {
		b.Fatalf("DOORBELL_BENCH_FANOUT=%d: at most %d subscribers fit in one process's 20,000 open files", n, lim)
	}
	mosqAddr, mosqPid := startMosquitto(b)
	load := ""
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(l)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}

	b.ResetTimer()
	b.StopTimer()
	var tEmb, tMosq time.Duration
	var mosqIdle float64
	{
		brk, err := broker.New(allowAll{}, broker.Config{Addr: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		if err := brk.Serve(); err != nil {
			b.Fatal(err)
		}
		embedded := &fanout{name: "embedded",
			publish: func(topic string, payload []byte) error { return brk.Publish(topic, payload, false, 1) },
			flush:   func() error { return nil }}
		embedded.subscribe(b, brk.Addr(), n)
		b.StartTimer()
		for i := range b.N {
			tEmb += embedded.ring(b, i+2)
		}
		b.StopTimer()
		embedded.disconnect()
		brk.Close()
	}
	{
		pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + mosqAddr).SetClientID("bench-publisher").
			SetCleanSession(true).SetProtocolVersion(4).SetAutoReconnect(false))
		if tok := pub.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			b.Fatalf("publisher connect: %v", tok.Error())
		}
		var toks []mqtt.Token
		mosq := &fanout{name: "mosquitto",
			publish: func(topic string, payload []byte) error {
				toks = append(toks, pub.Publish(topic, 1, false, payload))
				return nil
			},
			flush: func() error {
				defer func() { toks = toks[:0] }()
				for _, t := range toks {
					if !t.WaitTimeout(time.Minute) || t.Error() != nil {
						return fmt.Errorf("publish not acknowledged: %v", t.Error())
					}
				}
				return nil
			}}
		rss0, err := rssOf(mosqPid)
		if err != nil {
			b.Fatal(err)
		}
		mosq.subscribe(b, mosqAddr, n)
		// The same idle-memory figure as doorbell sim's idle scenario: the
		// broker process's resident size with every subscriber connected,
		// minus before any, per subscriber, read after the same settle.
		time.Sleep(idleSettle) // a measurement interval, not synchronisation
		rss1, err := rssOf(mosqPid)
		if err != nil {
			b.Fatal(err)
		}
		mosqIdle = float64(rss1-rss0) / float64(n)
		b.StartTimer()
		for i := range b.N {
			tMosq += mosq.ring(b, i+2)
		}
		b.StopTimer()
		mosq.disconnect()
		pub.Disconnect(0)
	}
	emb := float64(tEmb.Microseconds()) / 1000 / float64(b.N)
	mq := float64(tMosq.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(emb, "embedded-ms/fanout")
	b.ReportMetric(mq, "mosquitto-ms/fanout")
	b.ReportMetric(emb/mq, "embedded/mosquitto")
	b.ReportMetric(mosqIdle, "mosquitto-idle-B/client")
	b.Logf("%d devices: embedded %.1f ms, mosquitto %.1f ms per fan-out; ratio %.2f; mosquitto %.0f B per idle client",
		n, emb, mq, emb/mq, mosqIdle)
	// scripts/bench.sh collects every figure as JSON lines for its table.
	if out := os.Getenv("DOORBELL_BENCH_JSON"); out != "" {
		line, _ := json.Marshal(map[string]any{"scenario": "broker-fanout", "devices": n,
			"embeddedMs": emb, "mosquittoMs": mq, "mosquittoBytesPerClient": mosqIdle, "loadAvg": load})
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(append(line, '\n')); err != nil {
			b.Fatal(err)
		}
	}
}

// idleSettle is how long the idle-memory figures wait after connecting
// before reading the resident size (doorbell sim's --settle default).
const idleSettle = 5 * time.Second

// rssOf returns VmRSS of process pid, in bytes.
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS line", pid)
}
