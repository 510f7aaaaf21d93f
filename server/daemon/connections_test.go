package daemon_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"math"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/pki"
	"github.com/doorbell-mdm/doorbell/server/servertest"
)

// serverFigures is what the server says of its HTTP listener on /metrics:
// the connections open now (the scrape's own included) and the TLS
// handshakes completed, full and resumed.
type serverFigures struct {
	open, full, resumed float64
}

// figures scrapes /metrics on a connection of its own that is closed after
// the answer and resumes nothing: each scrape adds one open connection
// (itself) and one full handshake to what it reads.
func (s *tlsServer) figures() serverFigures {
	s.t.Helper()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(s.d.PKI().CAPEM())
	c := &http.Client{Timeout: wait, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: roots}}}
	code, _, body := s.call(c, "GET", "/metrics", tlsAdmin, "")
	if code != 200 {
		s.t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		s.t.Fatalf("parsing /metrics: %v", err)
	}
	return serverFigures{
		open:    metric(mfs, "doorbell_http_connections", nil),
		full:    metric(mfs, "doorbell_tls_handshakes_total", map[string]string{"listener": "http", "resumed": "false"}),
		resumed: metric(mfs, "doorbell_tls_handshakes_total", map[string]string{"listener": "http", "resumed": "true"}),
	}
}

// metric is the value of the series of family name with labels, NaN when
// there is none.
func metric(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return math.NaN()
	}
next:
	for _, m := range mf.Metric {
		for _, lp := range m.Label {
			if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	return math.NaN()
}

// inventoryFunc is an agent.Collector.
type inventoryFunc func(ctx context.Context) (proto.Inventory, error)

func (f inventoryFunc) Collect(ctx context.Context) (proto.Inventory, error) { return f(ctx) }

// TestTLSAgentReleasesConnectionAfterSync: an agent (its own HTTP client)
// holds no HTTPS connection to the server once its sync is done (with the
// inventory upload that follows the enrolling sync), as the server sees it
// (its open connections), and its next sync connects again on a resumed
// TLS session. Before, the agent kept the connection alive
// for 90 s after every sync, so a fleet-wide edit held one server
// connection per device.
func TestTLSAgentReleasesConnectionAfterSync(t *testing.T) {
	// The server keeps idle connections longer than the test waits: only
	// the agent closing its own makes them go.
	s := &tlsServer{t: t, d: servertest.Start(t, daemon.DaemonConfig{
		AdminToken: tlsAdmin, EnrollToken: tlsEnroll, TLS: &pki.Config{}, HTTPIdleTimeout: time.Hour,
	})}
	s.url = "https://" + s.d.HTTPAddr()
	uploads := make(chan agent.InventoryResult, 4)
	a, err := agent.New(agent.Config{
		ServerURL: s.url, ServerPin: s.d.Pin(), EnrollToken: tlsEnroll,
		Enforcer: &agent.MemoryEnforcer{}, IDStore: agent.NewFileIDStore(t.TempDir()),
		Interval: time.Hour, DisableMQTT: true,
		Inventory: inventoryFunc(func(context.Context) (proto.Inventory, error) {
			return proto.Inventory{System: &proto.InventorySystem{Hostname: "release-test"}}, nil
		}),
		OnInventory: func(r agent.InventoryResult) { uploads <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	scrapes := 0 // each one a full handshake of its own
	figures := func() serverFigures { scrapes++; return s.figures() }
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("enrolling sync: %v", err)
	}
	// The enrolling sync uploaded the inventory right after, on the
	// same connection.
	select {
	case r := <-uploads:
		if r.Err != nil || len(r.Sent) == 0 {
			t.Fatalf("inventory after the enrolling sync: sent %v, err %v", r.Sent, r.Err)
		}
	default:
		t.Fatal("the enrolling sync did not upload the inventory")
	}
	// The agent's connection goes once it closed it: only the scrape's
	// own stays open.
	var before serverFigures
	testkit.Eventually(t, wait, "the server holding no connection of the agent after its sync", func() bool {
		before = figures()
		return before.open == 1
	})
	scrapesBefore := scrapes

	if err := a.Sync(ctx); err != nil {
		t.Fatalf("second sync: %v", err)
	}
	var after serverFigures
	testkit.Eventually(t, wait, "the server holding no connection of the agent after its second sync", func() bool {
		after = figures()
		return after.open == 1
	})
	// The second sync made one new connection, and it resumed the
	// session: a kept-alive connection would have made none, a full
	// handshake would count beside the scrapes' own.
	if got := after.resumed - before.resumed; got != 1 {
		t.Errorf("the second sync made %v resumed handshakes; want 1 (a new connection on a resumed session)", got)
	}
	if got, want := after.full-before.full, float64(scrapes-scrapesBefore); got != want {
		t.Errorf("full handshakes grew by %v; want %v, the scrapes' own", got, want)
	}
}
