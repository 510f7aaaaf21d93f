package daemon_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/daemon"
	"github.com/doorbell-mdm/doorbell/server/pki"
	"github.com/doorbell-mdm/doorbell/server/servertest"
)

const (
	tlsAdmin  = "tls-admin-token"
	tlsEnroll = "tls-enroll-token"
	wait      = 20 * time.Second // failure guard only
)

// offsetClock is the real clock moved forward by an adjustable offset; the
// server's PKI and the agent share one to age certificates.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time                       { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) NewTimer(d time.Duration) agent.Timer { return realTimer{time.NewTimer(d)} }
func (c *offsetClock) set(d time.Duration)                  { c.off.Store(int64(d)) }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

type tlsServer struct {
	t         testing.TB
	d         *daemon.Daemon
	url       string
	connected chan string
}

func startTLS(t testing.TB, tc *pki.Config) *tlsServer { return startTLSIn(t, tc, "") }

// startTLSIn is startTLS on data directory dir ("" = a new one).
func startTLSIn(t testing.TB, tc *pki.Config, dir string) *tlsServer {
	t.Helper()
	s := &tlsServer{t: t, connected: make(chan string, 16)}
	s.d = servertest.Start(t, daemon.DaemonConfig{
		DataDir: dir, AdminToken: tlsAdmin, EnrollToken: tlsEnroll, TLS: tc,
		OnPresence: func(id string, up bool) {
			if up {
				s.connected <- id
			}
		},
	})
	s.url = "http://" + s.d.HTTPAddr()
	if tc != nil {
		s.url = "https://" + s.d.HTTPAddr()
	}
	return s
}

// client trusts the server's CA and presents certs.
func (s *tlsServer) client(certs ...tls.Certificate) *http.Client {
	cfg := &tls.Config{Certificates: certs}
	if s.d.PKI() != nil {
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(s.d.PKI().CAPEM())
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

// call makes a request and returns the status, the error code and the body.
func (s *tlsServer) call(c *http.Client, method, path, token, body string) (int, string, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e proto.ErrorBody
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error.Code, b
}

func (s *tlsServer) status(id string) proto.DeviceStatus {
	s.t.Helper()
	var st proto.DeviceStatus
	code, _, b := s.call(s.client(), "GET", "/devices/"+id+"/status", tlsAdmin, "")
	if code != 200 || json.Unmarshal(b, &st) != nil {
		s.t.Fatalf("status: %d %s", code, b)
	}
	return st
}

func (s *tlsServer) deviceCount() int {
	s.t.Helper()
	var l proto.DeviceList
	code, _, b := s.call(s.client(), "GET", "/devices", tlsAdmin, "")
	if code != 200 || json.Unmarshal(b, &l) != nil {
		s.t.Fatalf("list: %d %s", code, b)
	}
	return len(l.Devices)
}

// newCSR returns a CSR and the key pair it is for.
func newCSR(t testing.TB) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
}

func keyPair(t testing.TB, certPEM string, key *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	der, _ := x509.MarshalECPrivateKey(key)
	c, err := tls.X509KeyPair([]byte(certPEM), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// enrolled is a device enrolled over HTTPS, with its certificate when it
// sent a CSR.
type enrolled struct {
	proto.EnrollResponse
	cert []tls.Certificate
}

func (s *tlsServer) enroll(withCSR bool) enrolled {
	s.t.Helper()
	var req proto.EnrollRequest
	var key *ecdsa.PrivateKey
	if withCSR {
		req.CSR, key = newCSR(s.t)
	}
	body, _ := json.Marshal(req)
	code, _, b := s.call(s.client(), "POST", "/enroll", tlsEnroll, string(body))
	var e enrolled
	if code != 201 || json.Unmarshal(b, &e.EnrollResponse) != nil {
		s.t.Fatalf("enroll: %d %s", code, b)
	}
	if withCSR {
		if e.Certificate == "" {
			s.t.Fatal("enrollment with a CSR over TLS returned no certificate")
		}
		e.cert = []tls.Certificate{keyPair(s.t, e.Certificate, key)}
	}
	return e
}

// recorder keeps every request body the agent sends.
type recorder struct {
	next   http.RoundTripper
	mu     sync.Mutex
	bodies map[string][]string // path -> bodies
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	r.mu.Lock()
	r.bodies[req.URL.Path] = append(r.bodies[req.URL.Path], string(b))
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// CloseIdleConnections lets the agent drop connections opened with an old
// (or no) certificate.
func (r *recorder) CloseIdleConnections() { r.next.(*http.Transport).CloseIdleConnections() }

func (r *recorder) get(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies[path]...)
}

func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sb strings.Builder
	for _, bs := range r.bodies {
		for _, b := range bs {
			sb.WriteString(b)
		}
	}
	return sb.String()
}

func certSerial(t *testing.T, certPEM string) string {
	t.Helper()
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil {
		t.Fatal("no certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestTLSAgent runs a real agent against a TLS daemon: it verifies the server
// by pin, enrolls with a CSR (its key never leaves it), pins the CA, converges
// over HTTPS and MQTT/TLS, and renews its certificate when a third of its
// life remains, then uses the new one.
func TestTLSAgent(t *testing.T) {
	clk := &offsetClock{}
	s := startTLS(t, &pki.Config{Now: clk.Now})
	ids := agent.NewFileIDStore(t.TempDir())
	syncs := make(chan agent.SyncResult, 16)
	hc := &http.Client{Timeout: wait}
	a, err := agent.New(agent.Config{
		ServerURL: s.url, ServerPin: s.d.Pin(), EnrollToken: tlsEnroll,
		Enforcer: &agent.MemoryEnforcer{}, IDStore: ids, Interval: time.Hour,
		HTTPClient: hc, Clock: clk,
		OnSync: func(r agent.SyncResult) { syncs <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: &http.Transport{DialTLSContext: a.DialTLSContext}, bodies: map[string][]string{}}
	hc.Transport = rec

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// Connected over MQTT/TLS: the broker admitted its certificate.
	var id string
	select {
	case id = <-s.connected:
	case <-time.After(wait):
		t.Fatal("the agent never connected over MQTT/TLS")
	}
	stored, ok, err := ids.Load()
	if err != nil || !ok || stored.DeviceID != id {
		t.Fatalf("identity %+v ok=%v err=%v, want device %s", stored.LogValue(), ok, err, id)
	}
	if b, _ := pem.Decode([]byte(stored.CAPEM)); b == nil || proto.SPKIPin(mustParse(t, b.Bytes)) != s.d.Pin() {
		t.Error("the agent and the server compute different pins for the CA")
	}
	if stored.CertPEM == "" || stored.KeyPEM == "" || stored.CAPEM != string(s.d.PKI().CAPEM()) {
		t.Fatal("the agent did not keep its certificate, its key and the server's CA")
	}

	// An edit rings the doorbell over MQTT/TLS; the agent converges.
	code, _, b := s.call(s.client(), "PUT", "/devices/"+id+"/policy", tlsAdmin, `{"cameraDisabled":true}`)
	if code != 200 {
		t.Fatalf("edit: %d %s", code, b)
	}
	waitSync(t, syncs, func(r agent.SyncResult) bool { return r.Err == nil && r.PolicyVersion == 2 && !r.Skipped })

	// Two thirds of the certificate's life gone: the next sync renews it.
	oldSerial := certSerial(t, stored.CertPEM)
	clk.set(61 * 24 * time.Hour)
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("sync at +61 days: %v", err)
	}
	renewed, _, _ := ids.Load()
	if certSerial(t, renewed.CertPEM) == oldSerial {
		t.Fatal("the certificate was not renewed")
	}
	if renewed.KeyPEM == stored.KeyPEM {
		t.Error("the renewal reused the old key")
	}
	if n := len(rec.get("/devices/" + id + "/certificate")); n != 1 {
		t.Fatalf("%d renewal requests, want 1", n)
	}
	// Past the old certificate's expiry only the new one is accepted: a
	// sync that succeeds shows the agent presents it.
	clk.set(91 * 24 * time.Hour)
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("sync after the old certificate expired: %v", err)
	}

	// Offline past the new certificate's expiry too (it was issued at +61
	// days for 90): the renewal endpoint takes the lapsed certificate with
	// the secret, so the device does not go dark.
	lapsed, _, _ := ids.Load()
	clk.set(200 * 24 * time.Hour)
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("sync with a lapsed certificate: %v", err)
	}
	if again, _, _ := ids.Load(); certSerial(t, again.CertPEM) == certSerial(t, lapsed.CertPEM) {
		t.Fatal("a lapsed certificate was not renewed")
	}
	// Elsewhere a lapsed certificate is refused.
	code, ecode, _ := s.call(s.client(keyPairPEM(t, lapsed)), "GET", "/devices/"+id+"/policy", lapsed.DeviceSecret, "")
	if code != 401 || ecode != "bad_client_certificate" {
		t.Fatalf("policy with a lapsed certificate: %d %s, want 401 bad_client_certificate", code, ecode)
	}

	// Only CSRs travelled; the private key never did.
	if !strings.Contains(rec.get("/enroll")[0], "CERTIFICATE REQUEST") {
		t.Error("the enrollment carried no CSR")
	}
	if strings.Contains(rec.all(), "PRIVATE KEY") {
		t.Fatal("a request body contains a private key")
	}
}

func waitSync(t *testing.T, syncs <-chan agent.SyncResult, ok func(agent.SyncResult) bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case r := <-syncs:
			t.Logf("sync: version %d skipped %v err %v", r.PolicyVersion, r.Skipped, r.Err)
			if ok(r) {
				return
			}
		case <-deadline:
			t.Fatal("timed out waiting for the sync")
		}
	}
}

// TestTLSWrongPin: an agent whose pin matches no certificate of the server
// refuses to talk to it; nothing is enrolled.
func TestTLSWrongPin(t *testing.T) {
	s := startTLS(t, &pki.Config{})
	other := startTLS(t, &pki.Config{})
	for name, pin := range map[string]string{
		"another server's CA": other.d.Pin(),
		"made up":             "sha256/" + strings.Repeat("A", 43) + "=",
	} {
		t.Run(name, func(t *testing.T) {
			a, err := agent.New(agent.Config{
				ServerURL: s.url, ServerPin: pin, EnrollToken: tlsEnroll,
				Enforcer: &agent.MemoryEnforcer{}, IDStore: agent.NewFileIDStore(t.TempDir()),
			})
			if err != nil {
				t.Fatal(err)
			}
			err = a.Sync(context.Background())
			if !errors.Is(err, agent.ErrPinMismatch) {
				t.Fatalf("sync: %v, want ErrPinMismatch", err)
			}
			if !strings.Contains(err.Error(), pin) {
				t.Errorf("the error does not name the expected pin: %v", err)
			}
			if n := s.deviceCount(); n != 0 {
				t.Fatalf("%d devices enrolled through a refused connection", n)
			}
		})
	}
	if _, err := agent.New(agent.Config{ServerURL: s.url, ServerPin: "md5/abc", Enforcer: &agent.MemoryEnforcer{}, IDStore: agent.NewFileIDStore(t.TempDir())}); err == nil {
		t.Error("a malformed pin was accepted")
	}
}

// TestTLSClientCertificates: over HTTPS and MQTT/TLS a device's certificate
// must be its own from this server's CA, and a device that was issued one
// must present it.
func TestTLSClientCertificates(t *testing.T) {
	s := startTLS(t, &pki.Config{})
	devA, devB := s.enroll(true), s.enroll(true)
	legacy := s.enroll(false) // bearer-only, as enrolled before TLS

	// A certificate for A's id from another CA.
	otherCA, err := pki.Open(pki.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	csr, key := newCSR(t)
	foreignPEM, err := otherCA.SignDeviceCSR(csr, devA.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	foreign := []tls.Certificate{keyPair(t, foreignPEM, key)}

	tests := []struct {
		name     string
		id       string // the device in the path and the MQTT login
		secret   string
		cert     []tls.Certificate
		wantCode string // "" = accepted
	}{
		{"own certificate", devA.DeviceID, devA.DeviceSecret, devA.cert, ""},
		{"another CA", devA.DeviceID, devA.DeviceSecret, foreign, "bad_client_certificate"},
		{"A's certificate on B", devB.DeviceID, devB.DeviceSecret, devA.cert, "bad_client_certificate"},
		{"no certificate", devA.DeviceID, devA.DeviceSecret, nil, "client_certificate_required"},
		{"bearer-only device", legacy.DeviceID, legacy.DeviceSecret, nil, ""},
		{"bearer-only device, A's certificate", legacy.DeviceID, legacy.DeviceSecret, devA.cert, "bad_client_certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// HTTPS: a report is refused and changes nothing.
			before := s.status(tc.id)
			c := s.client(tc.cert...)
			code, ecode, b := s.call(c, "POST", "/devices/"+tc.id+"/report", tc.secret, `{"appliedPolicyVersion":1,"cameraDisabled":false}`)
			st := s.status(tc.id)
			if tc.wantCode == "" {
				if code != 204 || st.LastReportAt == nil {
					t.Fatalf("report: %d %s, want 204 (status %+v)", code, b, st)
				}
			} else {
				if code != 401 || ecode != tc.wantCode {
					t.Fatalf("report: %d %s, want 401 %s", code, b, tc.wantCode)
				}
				if (st.LastReportAt == nil) != (before.LastReportAt == nil) || st.LastReportAt != nil && !st.LastReportAt.Equal(*before.LastReportAt) {
					t.Fatal("a refused report was stored")
				}
			}
			// MQTT over TLS.
			cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tls://" + s.d.MQTTAddr()).
				SetTLSConfig(c.Transport.(*http.Transport).TLSClientConfig).
				SetClientID(tc.id).SetUsername(tc.id).SetPassword(tc.secret).
				SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(wait))
			tok := cl.Connect()
			if !tok.WaitTimeout(wait) {
				t.Fatal("MQTT connect did not finish")
			}
			if accepted := tok.Error() == nil; accepted != (tc.wantCode == "") {
				t.Fatalf("MQTT login accepted=%v (%v), want %v", accepted, tok.Error(), tc.wantCode == "")
			}
			cl.Disconnect(0)
		})
	}

	t.Run("operator without a certificate on MQTT", func(t *testing.T) {
		cl := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tls://" + s.d.MQTTAddr()).
			SetTLSConfig(s.client().Transport.(*http.Transport).TLSClientConfig).
			SetUsername("operator").SetPassword(tlsAdmin).SetAutoReconnect(false))
		if tok := cl.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("operator refused: %v", tok.Error())
		}
		cl.Disconnect(0)
	})

	t.Run("certificate renewal endpoint", func(t *testing.T) {
		c := s.client(devA.cert...)
		csr, key := newCSR(t)
		body, _ := json.Marshal(proto.CertificateRequest{CSR: csr})
		code, _, b := s.call(c, "POST", "/devices/"+devA.DeviceID+"/certificate", devA.DeviceSecret, string(body))
		var out proto.CertificateResponse
		if code != 200 || json.Unmarshal(b, &out) != nil || out.Certificate == "" {
			t.Fatalf("renewal: %d %s", code, b)
		}
		renewed := keyPair(t, out.Certificate, key) // fails unless it is for our key
		code, _, b = s.call(s.client(renewed), "GET", "/devices/"+devA.DeviceID+"/policy", devA.DeviceSecret, "")
		if code != 200 {
			t.Fatalf("policy with the renewed certificate: %d %s", code, b)
		}
		for name, tc := range map[string]struct {
			client     *http.Client
			id, secret string
			body       string
			status     int
			code       string
		}{
			"empty csr":       {c, devA.DeviceID, devA.DeviceSecret, `{"csr":""}`, 400, "invalid_body"},
			"bad csr":         {c, devA.DeviceID, devA.DeviceSecret, `{"csr":"nope"}`, 400, "invalid_csr"},
			"wrong secret":    {c, devA.DeviceID, "nope", string(body), 401, "unauthorized"},
			"B's certificate": {s.client(devB.cert...), devA.DeviceID, devA.DeviceSecret, string(body), 401, "bad_client_certificate"},
			"unknown device":  {c, "nope", devA.DeviceSecret, string(body), 404, "device_not_found"},
		} {
			status, code, b := s.call(tc.client, "POST", "/devices/"+tc.id+"/certificate", tc.secret, tc.body)
			if status != tc.status || code != tc.code {
				t.Errorf("%s: %d %s, want %d %s", name, status, b, tc.status, tc.code)
			}
		}
	})
}

// TestTLSServerCertificateRenewedWhileRunning: the background check replaces
// a server certificate that entered its renewal window, and both listeners
// serve the new one without a restart.
func TestTLSServerCertificateRenewedWhileRunning(t *testing.T) {
	clk := &offsetClock{}
	s := startTLS(t, &pki.Config{Now: clk.Now, CheckInterval: 10 * time.Millisecond})
	served := func(addr string) string {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // only the serial is looked at
		if err != nil {
			t.Fatalf("dialing %s: %v", addr, err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := served(s.d.HTTPAddr())
	if served(s.d.MQTTAddr()) != first {
		t.Fatal("the listeners serve different certificates")
	}
	clk.set(61 * 24 * time.Hour)
	testkit.Eventually(t, wait, "the server certificate renewed while running", func() bool {
		return served(s.d.HTTPAddr()) != first
	})
	if served(s.d.MQTTAddr()) == first {
		t.Fatal("the broker still serves the old certificate")
	}
}

// TestPlainDaemonIgnoresCSR: the zero DaemonConfig is plain; a CSR gets no
// certificate and no CA, and renewal says TLS is off.
func TestPlainDaemonIgnoresCSR(t *testing.T) {
	s := startTLS(t, nil)
	e := s.enroll(false)
	csr, _ := newCSR(t)
	body, _ := json.Marshal(proto.EnrollRequest{CSR: csr})
	code, _, b := s.call(s.client(), "POST", "/enroll", tlsEnroll, string(body))
	var r proto.EnrollResponse
	if code != 201 || json.Unmarshal(b, &r) != nil || r.Certificate != "" || r.CACert != "" || !strings.HasPrefix(r.MQTT.URL, "tcp://") {
		t.Fatalf("plain enroll with a CSR: %d %s", code, b)
	}
	body, _ = json.Marshal(proto.CertificateRequest{CSR: csr})
	if code, ecode, b := s.call(s.client(), "POST", "/devices/"+e.DeviceID+"/certificate", e.DeviceSecret, string(body)); code != 409 || ecode != "tls_off" {
		t.Fatalf("renewal on a plain server: %d %s", code, b)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keyPairPEM(t *testing.T, id agent.Identity) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair([]byte(id.CertPEM), []byte(id.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLSAgentResumesSessions: an agent's second connection resumes the TLS
// session of its first (no certificates exchanged again), is still
// authenticated as the device.
func TestTLSAgentResumesSessions(t *testing.T) {
	s := startTLS(t, &pki.Config{})
	ids := agent.NewFileIDStore(t.TempDir())
	a, err := agent.New(agent.Config{
		ServerURL: s.url, ServerPin: s.d.Pin(), EnrollToken: tlsEnroll,
		Enforcer: &agent.MemoryEnforcer{}, IDStore: ids, Interval: time.Hour, DisableMQTT: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("enrolling sync: %v", err)
	}
	id, _, _ := ids.Load()
	// get makes one request on a fresh connection of the agent's own
	// dialer and returns the status and whether the session resumed.
	get := func() (int, bool) {
		t.Helper()
		var resumed bool
		tr := &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := a.DialTLSContext(ctx, network, addr)
			if err == nil {
				resumed = c.(*tls.Conn).ConnectionState().DidResume
			}
			return c, err
		}}
		defer tr.CloseIdleConnections()
		code, _, _ := s.call(&http.Client{Transport: tr, Timeout: wait}, "GET", "/devices/"+id.DeviceID+"/policy", id.DeviceSecret, "")
		return code, resumed
	}
	if code, _ := get(); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	code, resumed := get()
	if code != 200 || !resumed {
		t.Fatalf("second connection: %d, resumed %v; want 200 on a resumed session", code, resumed)
	}
	// A renewed certificate starts a fresh session cache: TestTLSAgent's
	// sync after the old certificate expired would be refused otherwise.
}
