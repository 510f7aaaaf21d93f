package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/api"
	"github.com/doorbell-mdm/doorbell/server/store"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
)

// scrape fetches /metrics and parses the Prometheus text format.
func scrape(t *testing.T, url, token string) map[string]*dto.MetricFamily {
	t.Helper()
	code, hdr, body := send(t, "GET", url+"/metrics", token, "", nil)
	if code != 200 {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !bytes.HasPrefix([]byte(ct), []byte("text/plain")) {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return mfs
}

// value returns the value of the series of family name whose labels include
// all of labels, or NaN when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return math.NaN()
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return math.NaN()
}

func TestMetricsAfterEnrollEditReport(t *testing.T) {
	_, url := startDaemon(t, DaemonConfig{})

	// Without the operator token /metrics is refused.
	if code, _, body := send(t, "GET", url+"/metrics", "", "", nil); code != 401 || !bytes.Contains(body, []byte(`"unauthorized"`)) {
		t.Fatalf("GET /metrics without a token: %d %s", code, body)
	}

	var enr proto.EnrollResponse
	if code, _, b := send(t, "POST", url+"/enroll", enrollToken, `{"model":"m","osVersion":"1","agentVersion":"0"}`, &enr); code != 201 {
		t.Fatalf("enroll: %d %s", code, b)
	}
	var other proto.EnrollResponse
	send(t, "POST", url+"/enroll", enrollToken, `{"model":"m2"}`, &other)
	dev := url + "/devices/" + enr.DeviceID
	// Compliant at version 1: no edit yet, so no edit-to-compliant sample.
	if code, _, b := send(t, "POST", dev+"/report", enr.DeviceSecret, `{"appliedPolicyVersion":1,"cameraDisabled":false,"compliant":true}`, nil); code != 204 {
		t.Fatalf("report: %d %s", code, b)
	}
	edited := time.Now()
	if code, _, b := send(t, "PUT", dev+"/policy", adminToken, `{"cameraDisabled":true}`, nil); code != 200 {
		t.Fatalf("edit: %d %s", code, b)
	}
	// A report that is still at version 1 leaves the device STALE: no sample.
	send(t, "POST", dev+"/report", enr.DeviceSecret, `{"appliedPolicyVersion":1,"cameraDisabled":false}`, nil)
	if code, _, b := send(t, "POST", dev+"/report", enr.DeviceSecret, `{"appliedPolicyVersion":2,"cameraDisabled":true,"compliant":true}`, nil); code != 204 {
		t.Fatalf("report: %d %s", code, b)
	}
	converged := time.Since(edited).Seconds()
	// A second compliant report at the same version is not a new convergence.
	send(t, "POST", dev+"/report", enr.DeviceSecret, `{"appliedPolicyVersion":2,"cameraDisabled":true,"compliant":true}`, nil)
	send(t, "GET", url+"/devices/nope/status", adminToken, "", nil)
	send(t, "GET", url+"/no/such/route", adminToken, "", nil)

	var mfs map[string]*dto.MetricFamily
	// The MQTT bell publishes off the request path: poll until it has.
	testkit.Eventually(t, 20*time.Second, "the MQTT doorbell counted as sent", func() bool {
		mfs = scrape(t, url, adminToken)
		return value(mfs, "doorbell_doorbells_total", "channel", "mqtt", "outcome", "sent") == 1
	})

	for _, tc := range []struct {
		name   string
		series string
		labels []string
		want   float64
	}{
		{"compliant devices", "doorbell_devices", []string{"state", "COMPLIANT"}, 1},
		{"unknown devices", "doorbell_devices", []string{"state", "UNKNOWN"}, 1},
		{"stale devices", "doorbell_devices", []string{"state", "STALE"}, 0},
		{"non-compliant devices", "doorbell_devices", []string{"state", "NON_COMPLIANT"}, 0},
		{"connected devices", "doorbell_devices_connected", nil, 0},
		{"mqtt doorbells sent", "doorbell_doorbells_total", []string{"channel", "mqtt", "outcome", "sent"}, 1},
		{"mqtt doorbells failed", "doorbell_doorbells_total", []string{"channel", "mqtt", "outcome", "failed"}, 0},
		{"edit-to-compliant samples", "doorbell_policy_edit_to_compliant_seconds", nil, 1},
		{"policy edits timed by route", "doorbell_http_request_duration_seconds", []string{"method", "PUT", "route", "/devices/:id/policy", "code", "200"}, 1},
		{"reports timed by route", "doorbell_http_request_duration_seconds", []string{"method", "POST", "route", "/devices/:id/report", "code", "204"}, 4},
		{"enrollments", "doorbell_http_request_duration_seconds", []string{"method", "POST", "route", "/enroll", "code", "201"}, 2},
		{"errors carry the status sent", "doorbell_http_request_duration_seconds", []string{"route", "/devices/:id/status", "code", "404"}, 1},
		{"unmatched paths share one label", "doorbell_http_request_duration_seconds", []string{"route", "unmatched", "code", "404"}, 1},
		{"refused scrape", "doorbell_http_request_duration_seconds", []string{"route", "/metrics", "code", "401"}, 1},
		{"mqtt messages sent by the broker", "doorbell_mqtt_messages_sent_total", nil, 0},
		{"bbolt free pages exist", "doorbell_bolt_free_pages", nil, value(mfs, "doorbell_bolt_free_pages")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := value(mfs, tc.series, tc.labels...); got != tc.want || math.IsNaN(got) {
				t.Fatalf("%s%v = %v, want %v", tc.series, tc.labels, got, tc.want)
			}
		})
	}
	// The database wrote: the bbolt write counters moved.
	if v := value(mfs, "doorbell_bolt_writes_total"); !(v > 0) {
		t.Fatalf("doorbell_bolt_writes_total = %v, want > 0", v)
	}
	if v := value(mfs, "doorbell_bolt_read_tx_total"); !(v > 0) {
		t.Fatalf("doorbell_bolt_read_tx_total = %v, want > 0", v)
	}
	h := mfs["doorbell_policy_edit_to_compliant_seconds"].Metric[0].Histogram
	if s := h.GetSampleSum(); s < 0 || s > converged+1 {
		t.Fatalf("edit-to-compliant sum %v s, want between 0 and %v s (PolicyChangedAt is stored with the bump)", s, converged)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds", "doorbell_mqtt_clients_connected", "doorbell_mqtt_received_bytes_total", "doorbell_mqtt_subscriptions"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("series %s missing", name)
		}
	}
}

func TestMetricsPublic(t *testing.T) {
	_, url := startDaemon(t, DaemonConfig{MetricsPublic: true})
	mfs := scrape(t, url, "")
	if v := value(mfs, "doorbell_devices", "state", "UNKNOWN"); v != 0 {
		t.Fatalf("doorbell_devices{state=UNKNOWN} = %v on an empty server", v)
	}
	// FCM is off: no fcm series.
	if v := value(mfs, "doorbell_doorbells_total", "channel", "fcm"); !math.IsNaN(v) {
		t.Fatalf("fcm series without an FCM bell: %v", v)
	}
}

// seedDevices writes n devices straight into a bbolt file in one
// transaction (CreateDevice's fsync per device would take minutes), a
// quarter in each compliance state.
func seedDevices(b *testing.B, path string, n int) {
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	err = db.Update(func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("devices"))
		if err != nil {
			return err
		}
		for i := range n {
			d := store.Device{ID: fmt.Sprintf("%032x", i), SecretHash: []byte(fmt.Sprint(i)), Model: "Pixel 8", OSVersion: "14",
				AgentVersion: "0.1.0", EnrolledAt: now, Policy: proto.DevicePolicy{Version: 3}, PolicyChangedAt: now}
			switch i % 4 {
			case 1:
				d.Report = &store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 2}, ReceivedAt: now}
			case 2:
				d.Report = &store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 3}, ReceivedAt: now}
			case 3:
				d.Report = &store.Report{ComplianceReport: proto.ComplianceReport{AppliedPolicyVersion: 3, Settings: proto.Settings{CameraDisabled: true}}, ReceivedAt: now}
			}
			v, _ := json.Marshal(d)
			if err := bk.Put([]byte(d.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDeviceStatesCollect measures one scrape of doorbell_devices over
// 100,000 devices in a real bbolt file.
func BenchmarkDeviceStatesCollect(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "doorbell.db")
	seedDevices(b, path, n)
	st, err := bolt.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m := api.NewMetrics()
	m.Register(&api.DeviceStates{Summaries: st})
	b.ResetTimer()
	for b.Loop() {
		mfs, err := m.Gatherer().Gather()
		if err != nil {
			b.Fatal(err)
		}
		total := 0.0
		for _, mf := range mfs {
			if mf.GetName() == "doorbell_devices" {
				for _, m := range mf.Metric {
					total += m.Gauge.GetValue()
				}
			}
		}
		if total != n {
			b.Fatalf("counted %v devices, want %d", total, n)
		}
	}
	b.ReportMetric(float64(n), "devices")
}
