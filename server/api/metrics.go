package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/bridge"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/service"
)

// Metrics is the server's Prometheus registry and the instruments the API
// updates itself. Figures owned by other components (broker, bells,
// database) are read at scrape time by collectors registered with Register.
type Metrics struct {
	// Public serves /metrics without an operator token (for a scraper on
	// a trusted network); false requires one.
	Public bool

	reg       *prometheus.Registry
	httpDur   *prometheus.HistogramVec
	compliant prometheus.Histogram
}

// EditToCompliantBuckets are the buckets of
// doorbell_policy_edit_to_compliant_seconds: from a doorbell answered at once
// (well under a second) to a phone reached only by its periodic sync
// (15 minutes) or a device that was off for a day.
var EditToCompliantBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600}

// NewMetrics returns a registry with the Go runtime and process collectors,
// the HTTP latency histogram and the edit-to-compliant histogram.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "doorbell_http_request_duration_seconds",
			Help:    "Time to answer an API request, by method, route pattern and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "code"}),
		compliant: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "doorbell_policy_edit_to_compliant_seconds",
			Help:    "Time from a policy edit to the report that makes the device COMPLIANT at that version.",
			Buckets: EditToCompliantBuckets,
		}),
	}
	m.reg.MustRegister(m.httpDur, m.compliant,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds collectors to the registry.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Gatherer is the registry, for tests and for serving it elsewhere.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// routeLocal is the fiber local the catch-all handler sets so unmatched
// paths share one route label instead of one label per path.
const routeLocal = "doorbell.route"

// middleware times every request by route pattern. It runs the error
// handler itself so the status code it records is the one sent.
func (m *Metrics) middleware(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			c.Status(http.StatusInternalServerError)
		}
	}
	route := c.Route().Path // the pattern, e.g. /devices/:id/policy; owned by the route
	if r, ok := c.Locals(routeLocal).(string); ok {
		route = r
	}
	m.httpDur.WithLabelValues(strings.Clone(c.Method()), route, strconv.Itoa(c.Response().StatusCode())).
		Observe(time.Since(start).Seconds())
	return nil
}

// observeChange is the metrics' subscription to the change stream: a
// report's committed transition to COMPLIANT after an edit records the
// edit-to-compliant latency. The transition is recorded once, in the
// report's transaction, so two concurrent reports never both count it.
func (m *Metrics) observeChange(ch service.Change) {
	if ch.Cause != proto.CauseReport || ch.Device.PolicyChangedAt.IsZero() {
		return
	}
	for _, t := range ch.Transitions {
		if t.To == proto.StateCompliant {
			m.compliant.Observe(max(0, t.At.Sub(ch.Device.PolicyChangedAt).Seconds()))
		}
	}
}

// --- collectors read at scrape time -----------------------------------------

var devicesDesc = prometheus.NewDesc("doorbell_devices", "Enrolled devices by compliance state (the store's fleet counters).", []string{"state"}, nil)

// DeviceStates is a collector of devices per state, read from the
// counters the store keeps as devices change (the same numbers as GET
// /compliance/summary), so a scrape costs no scan of the fleet.
type DeviceStates struct {
	Summaries interface {
		Summary(ctx context.Context) (proto.ComplianceSummary, error)
	}
}

// Describe implements prometheus.Collector.
func (s *DeviceStates) Describe(ch chan<- *prometheus.Desc) { ch <- devicesDesc }

// Collect implements prometheus.Collector.
func (s *DeviceStates) Collect(ch chan<- prometheus.Metric) {
	sum, err := s.Summaries.Summary(context.Background())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(devicesDesc, err)
		return
	}
	for _, st := range proto.States {
		ch <- prometheus.MustNewConstMetric(devicesDesc, prometheus.GaugeValue, float64(sum.Counts[st]), string(st))
	}
}

var doorbellsDesc = prometheus.NewDesc("doorbell_doorbells_total", "Doorbells rung, by channel (mqtt, fcm) and outcome (sent, failed, retried, invalid_token).", []string{"channel", "outcome"}, nil)
var fcmBatchesDesc = prometheus.NewDesc("doorbell_fcm_batches_total", "FCM SendEach calls.", nil, nil)

// Bells is a collector of the bells' counters; a nil bell is skipped.
type Bells struct {
	MQTT *bridge.MQTTBell
	FCM  *bridge.FCMBell
}

// Describe implements prometheus.Collector.
func (b Bells) Describe(ch chan<- *prometheus.Desc) { ch <- doorbellsDesc; ch <- fcmBatchesDesc }

// Collect implements prometheus.Collector.
func (b Bells) Collect(ch chan<- prometheus.Metric) {
	c := func(v uint64, channel, outcome string) {
		ch <- prometheus.MustNewConstMetric(doorbellsDesc, prometheus.CounterValue, float64(v), channel, outcome)
	}
	if b.MQTT != nil {
		s := b.MQTT.Stats()
		c(s.Rung, "mqtt", "sent")
		c(s.Failed, "mqtt", "failed")
	}
	if b.FCM != nil {
		s := b.FCM.Stats()
		c(s.Sent, "fcm", "sent")
		c(s.Failed, "fcm", "failed")
		c(s.Retried, "fcm", "retried")
		c(s.InvalidTokens, "fcm", "invalid_token")
		ch <- prometheus.MustNewConstMetric(fcmBatchesDesc, prometheus.CounterValue, float64(s.Batches))
	}
}

type constDesc struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func() float64
}

// funcs is a collector of unlabelled values read at scrape time.
type funcs []constDesc

func (f funcs) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range f {
		ch <- d.desc
	}
}

func (f funcs) Collect(ch chan<- prometheus.Metric) {
	for _, d := range f {
		ch <- prometheus.MustNewConstMetric(d.desc, d.typ, d.value())
	}
}

// BoltStats is a collector of the database's figures, read from stats (bbolt's
// DB.Stats) once per scrape.
func BoltStats(stats func() bbolt.Stats) prometheus.Collector {
	var (
		mu   sync.Mutex
		last bbolt.Stats
	)
	get := func(f func(s *bbolt.Stats) float64) func() float64 {
		return func() float64 { mu.Lock(); defer mu.Unlock(); return f(&last) }
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("doorbell_bolt_"+name, help, nil, nil)
	}
	fs := funcs{
		{d("read_tx_total", "Read transactions started."), prometheus.CounterValue, get(func(s *bbolt.Stats) float64 { return float64(s.TxN) })},
		{d("open_read_tx", "Read transactions open now."), prometheus.GaugeValue, get(func(s *bbolt.Stats) float64 { return float64(s.OpenTxN) })},
		{d("free_pages", "Pages on the freelist."), prometheus.GaugeValue, get(func(s *bbolt.Stats) float64 { return float64(s.FreePageN) })},
		{d("pending_pages", "Pages freed but still held by open read transactions."), prometheus.GaugeValue, get(func(s *bbolt.Stats) float64 { return float64(s.PendingPageN) })},
		{d("free_alloc_bytes", "Bytes in free pages."), prometheus.GaugeValue, get(func(s *bbolt.Stats) float64 { return float64(s.FreeAlloc) })},
		{d("freelist_inuse_bytes", "Bytes the freelist itself uses."), prometheus.GaugeValue, get(func(s *bbolt.Stats) float64 { return float64(s.FreelistInuse) })},
		{d("page_allocs_total", "Page allocations by write transactions."), prometheus.CounterValue, get(func(s *bbolt.Stats) float64 { return float64(s.TxStats.GetPageCount()) })},
		{d("writes_total", "Page writes (each write transaction's commit writes pages and fsyncs)."), prometheus.CounterValue, get(func(s *bbolt.Stats) float64 { return float64(s.TxStats.GetWrite()) })},
		{d("write_seconds_total", "Time spent writing pages to disk."), prometheus.CounterValue, get(func(s *bbolt.Stats) float64 { return s.TxStats.GetWriteTime().Seconds() })},
	}
	return &refreshCollector{funcs: fs, refresh: func() { mu.Lock(); last = stats(); mu.Unlock() }}
}

type refreshCollector struct {
	funcs
	refresh func()
}

func (b *refreshCollector) Collect(ch chan<- prometheus.Metric) {
	b.refresh()
	b.funcs.Collect(ch)
}

// BrokerInfo is what the broker collector reads; broker.Info satisfies it.
type BrokerInfo struct {
	ClientsConnected, BytesReceived, BytesSent, MessagesReceived, MessagesSent,
	MessagesDropped, Inflight, Subscriptions int64
}

// BrokerStats is a collector of the embedded broker's figures (mochi's
// server.Info) and of connected devices, read once per scrape.
func BrokerStats(info func() BrokerInfo, connectedDevices func() int) prometheus.Collector {
	var (
		mu   sync.Mutex
		last BrokerInfo
	)
	get := func(f func(i *BrokerInfo) int64) func() float64 {
		return func() float64 { mu.Lock(); defer mu.Unlock(); return float64(f(&last)) }
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("doorbell_mqtt_"+name, help, nil, nil)
	}
	fs := funcs{
		{prometheus.NewDesc("doorbell_devices_connected", "Devices holding an MQTT session now.", nil, nil), prometheus.GaugeValue,
			func() float64 { return float64(connectedDevices()) }},
		{d("clients_connected", "MQTT clients connected now, operators included."), prometheus.GaugeValue, get(func(i *BrokerInfo) int64 { return i.ClientsConnected })},
		{d("received_bytes_total", "Bytes received by the broker."), prometheus.CounterValue, get(func(i *BrokerInfo) int64 { return i.BytesReceived })},
		{d("sent_bytes_total", "Bytes sent by the broker."), prometheus.CounterValue, get(func(i *BrokerInfo) int64 { return i.BytesSent })},
		{d("messages_received_total", "PUBLISH packets received."), prometheus.CounterValue, get(func(i *BrokerInfo) int64 { return i.MessagesReceived })},
		{d("messages_sent_total", "PUBLISH packets sent."), prometheus.CounterValue, get(func(i *BrokerInfo) int64 { return i.MessagesSent })},
		{d("messages_dropped_total", "PUBLISH packets dropped for a slow subscriber."), prometheus.CounterValue, get(func(i *BrokerInfo) int64 { return i.MessagesDropped })},
		{d("inflight_messages", "QoS 1/2 messages in flight now."), prometheus.GaugeValue, get(func(i *BrokerInfo) int64 { return i.Inflight })},
		{d("subscriptions", "Active subscriptions."), prometheus.GaugeValue, get(func(i *BrokerInfo) int64 { return i.Subscriptions })},
	}
	return &refreshCollector{funcs: fs, refresh: func() { mu.Lock(); last = info(); mu.Unlock() }}
}

// metricsHandler serves /metrics. It needs an operator token unless
// Metrics.Public is set.
func (a *API) metricsHandler() fiber.Handler {
	h := adaptor.HTTPHandler(promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{ErrorLog: nil}))
	return func(c *fiber.Ctx) error {
		if !a.metrics.Public {
			if _, err := a.principal(c); err != nil {
				return err
			}
		}
		return h(c)
	}
}
