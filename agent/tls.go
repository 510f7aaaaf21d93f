package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/proto"
)

// ErrPinMismatch is wrapped by the error of a connection refused because no
// certificate of the server's chain has the configured pin.
var ErrPinMismatch = errors.New("server certificate does not match the pinned key")

// ValidPin reports whether pin has the form sha256/<base64 of 32 bytes>.
func ValidPin(pin string) bool {
	b64, ok := strings.CutPrefix(pin, proto.PinPrefix)
	return ok && len(b64) == 44 && strings.HasSuffix(b64, "=")
}

// EnrollURL is the parsed QR-friendly enrollment string
// doorbell://enroll?server=<URL>&pin=<pin>&token=<token>.
type EnrollURL struct {
	Server, Pin, Token string
}

// ParseEnrollURL parses an enrollment string. Server is required; pin and
// token are optional.
func ParseEnrollURL(s string) (EnrollURL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != proto.EnrollURLScheme || u.Host != "enroll" {
		return EnrollURL{}, fmt.Errorf("enrollment string %q: want %s://enroll?server=...&pin=...&token=...", s, proto.EnrollURLScheme)
	}
	q := u.Query()
	e := EnrollURL{Server: q.Get("server"), Pin: q.Get("pin"), Token: q.Get("token")}
	if e.Server == "" {
		return EnrollURL{}, errors.New("enrollment string has no server")
	}
	if e.Pin != "" && !ValidPin(e.Pin) {
		return EnrollURL{}, fmt.Errorf("enrollment string: pin %q: want sha256/<base64>", e.Pin)
	}
	return e, nil
}

// tlsConfigFor is the configuration the agent dials host with (the API
// server or the broker): the server is verified against the CA learned at
// enrollment, else Config.ServerCA, else Config.ServerPin, else the system's
// roots, and must be named host; the device certificate, when the agent has
// one, is presented.
func (a *Agent) tlsConfigFor(host string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		// Verification is VerifyConnection's, which knows pins.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return a.verifyServer(cs, host)
		},
		GetClientCertificate: a.clientCertificate,
		// Reconnections (a new HTTP connection after an idle one closed,
		// MQTT after a drop or a server restart) resume the TLS session:
		// no certificate chains exchanged or verified, no signatures.
		ClientSessionCache: a.sessionCache(),
	}
}

// tlsState caches, per device certificate, the parsed key pair presented in
// every handshake and the client sessions resumed with it. A session
// resumes the identity of the certificate it was made with, so a new
// certificate (renewal, re-enrollment) starts with an empty cache.
type tlsState struct {
	mu       sync.Mutex
	certPEM  string           // the certificate cert and sessions belong to
	cert     *tls.Certificate // parsed certPEM; nil when unusable
	sessions tls.ClientSessionCache

	// users counts the HTTP work running (holdConnections).
	usersMu sync.Mutex
	users   int
}

// sessionCache is the agent's tls.ClientSessionCache: it forgets every
// session when the device certificate changes.
func (a *Agent) sessionCache() tls.ClientSessionCache { return agentSessions{a} }

type agentSessions struct{ a *Agent }

// tlsStateFor returns the sessions of the current certificate (creating
// them after a change) and its parsed key pair.
func (a *Agent) tlsStateFor() (tls.ClientSessionCache, *tls.Certificate, error) {
	id, _ := a.currentIdentity()
	st := &a.tlsState
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.sessions == nil || st.certPEM != id.CertPEM {
		st.certPEM, st.cert = id.CertPEM, nil
		st.sessions = tls.NewLRUClientSessionCache(4)
		if id.CertPEM != "" && id.KeyPEM != "" {
			c, err := tls.X509KeyPair([]byte(id.CertPEM), []byte(id.KeyPEM))
			if err != nil {
				return st.sessions, nil, err
			}
			st.cert = &c
		}
	}
	return st.sessions, st.cert, nil
}

func (s agentSessions) Get(key string) (*tls.ClientSessionState, bool) {
	c, _, _ := s.a.tlsStateFor()
	return c.Get(key)
}

func (s agentSessions) Put(key string, cs *tls.ClientSessionState) {
	c, _, _ := s.a.tlsStateFor()
	c.Put(key, cs)
}

// DialTLSContext dials addr and completes a TLS handshake verified as
// described on Config.ServerPin, presenting the device certificate. A caller
// that brings its own Config.HTTPClient should set it as its transport's
// DialTLSContext, and the transport should have a CloseIdleConnections
// method, so a new certificate is presented at once.
func (a *Agent) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: DefaultHTTPTimeout}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, a.tlsConfigFor(host))
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// openMQTT is paho's connection opener: TLS schemes through DialTLSContext,
// plain ones through net.Dialer; ctx cancels the dial.
func (a *Agent) openMQTT(ctx context.Context) func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
	return func(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, mqttConnectTimeout)
		defer cancel()
		switch u.Scheme {
		case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
			return a.DialTLSContext(ctx, "tcp", u.Host)
		case "tcp", "mqtt":
			var d net.Dialer
			return d.DialContext(ctx, "tcp", u.Host)
		}
		return nil, fmt.Errorf("unsupported broker URL scheme %q", u.Scheme)
	}
}

func (a *Agent) httpsEnabled() bool {
	return strings.HasPrefix(strings.ToLower(a.cfg.ServerURL), "https:")
}

// verifyServer checks the server's chain and name. With a pin, the trusted
// root is the certificate of the presented chain whose key has that pin; the
// leaf must still chain to it, be valid now, be meant for servers and name
// the host dialled, so a device certificate from the same CA or a stranger's
// leaf next to our CA certificate is refused.
//
// A resumed session was verified when it was made (a session is kept only
// after a handshake this accepted, and only for the device certificate it
// was made with); like crypto/tls's own verification, resuming it only
// checks that the leaf has not expired and names host. That saves a chain
// verification per connection, and the agent connects anew for every sync.
func (a *Agent) verifyServer(cs tls.ConnectionState, host string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("server presented no certificate")
	}
	if cs.DidResume {
		leaf := cs.PeerCertificates[0]
		if time.Now().After(leaf.NotAfter) {
			return errors.New("the resumed session's server certificate has expired")
		}
		return leaf.VerifyHostname(host)
	}
	id, _ := a.currentIdentity()
	var roots *x509.CertPool
	switch {
	case id.CAPEM != "":
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(id.CAPEM)) {
			return errors.New("the CA pinned at enrollment is unreadable")
		}
	case len(a.cfg.ServerCA) > 0:
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(a.cfg.ServerCA) {
			return errors.New("the server CA file holds no PEM certificate")
		}
	case a.cfg.ServerPin != "":
		var seen []string
		for _, c := range cs.PeerCertificates {
			p := proto.SPKIPin(c)
			if p == a.cfg.ServerPin {
				roots = x509.NewCertPool()
				roots.AddCert(c)
				break
			}
			seen = append(seen, p)
		}
		if roots == nil {
			return fmt.Errorf("%w: want %s, the server's chain has %s", ErrPinMismatch, a.cfg.ServerPin, strings.Join(seen, ", "))
		}
	}
	return verifyChain(cs, host, roots)
}

func verifyChain(cs tls.ConnectionState, host string, roots *x509.CertPool) error {
	if host == "" {
		return errors.New("no server name to verify the certificate against")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       host,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("verifying the server certificate: %w", err)
	}
	return nil
}

// clientCertificate presents the device certificate, or none.
func (a *Agent) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	_, c, err := a.tlsStateFor()
	if err != nil {
		a.log.Warn("the stored device certificate is unusable; connecting without it", "err", err)
	}
	if c == nil {
		return &tls.Certificate{}, nil
	}
	return c, nil
}

// newCSR makes a fresh P-256 key pair and a CSR for it when the agent talks
// HTTPS; it returns empty strings over plain HTTP. The key stays here: only
// the CSR is sent.
func (a *Agent) newCSR() (csrPEM, keyPEM string, err error) {
	if !a.httpsEnabled() {
		return "", "", nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generating the device key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "doorbell-device"}}, key)
	if err != nil {
		return "", "", fmt.Errorf("creating the CSR: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})), nil
}

// adoptEnrollment adds the enrollment's key, certificate and CA to id. The
// CA is pinned only when it verifies the chain the enrollment arrived on, so
// a server that hands out the wrong certificate cannot lock the agent out.
func (a *Agent) adoptEnrollment(id *Identity, resp proto.EnrollResponse, keyPEM string, cs *tls.ConnectionState) {
	if resp.Certificate != "" && keyPEM != "" {
		if _, err := tls.X509KeyPair([]byte(resp.Certificate), []byte(keyPEM)); err == nil {
			id.CertPEM, id.KeyPEM = resp.Certificate, keyPEM
			a.closeIdleConnections()
		} else {
			a.log.Warn("the server issued a certificate that does not match our key; going on without", "err", err)
		}
	}
	if resp.CACert == "" || cs == nil {
		return
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(resp.CACert)) {
		a.log.Warn("the server sent an unreadable CA certificate; not pinning it")
		return
	}
	if err := verifyChain(*cs, a.client.base.Hostname(), roots); err != nil {
		a.log.Warn("the server's CA certificate does not verify its own chain; not pinning it", "err", err)
		return
	}
	id.CAPEM = resp.CACert
}

// maybeRenewCert gets a new device certificate (for a new key) when less
// than a third of the current one's lifetime remains, or when the device has
// none while talking HTTPS. A failure is logged and retried by the next
// sync; the current certificate keeps working until it expires.
func (a *Agent) maybeRenewCert(ctx context.Context, id Identity) Identity {
	if !a.httpsEnabled() {
		return id
	}
	if id.CertPEM != "" {
		b, _ := pem.Decode([]byte(id.CertPEM))
		if b != nil {
			if c, err := x509.ParseCertificate(b.Bytes); err == nil {
				life := c.NotAfter.Sub(c.NotBefore)
				if c.NotAfter.Sub(a.clock.Now()) > life/3 {
					return id
				}
			}
		}
	}
	csr, keyPEM, err := a.newCSR()
	if err != nil {
		a.log.Warn("renewing the device certificate", "err", err)
		return id
	}
	cert, err := a.client.RenewCertificate(ctx, id.Credentials(), csr)
	if err != nil {
		if StatusOf(err) != http.StatusConflict { // 409: the server runs without TLS
			a.log.Warn("renewing the device certificate", "deviceId", id.DeviceID, "err", err)
		}
		return id
	}
	if _, err := tls.X509KeyPair([]byte(cert), []byte(keyPEM)); err != nil {
		a.log.Warn("the renewed certificate does not match our key; keeping the old one", "err", err)
		return id
	}
	id.CertPEM, id.KeyPEM = cert, keyPEM
	if err := a.cfg.IDStore.Save(id); err != nil {
		a.log.Warn("saving the renewed certificate", "err", err)
		return id
	}
	a.mu.Lock()
	if a.haveID && a.id.DeviceID == id.DeviceID {
		a.id.CertPEM, a.id.KeyPEM = id.CertPEM, id.KeyPEM
	}
	a.mu.Unlock()
	a.closeIdleConnections()
	a.log.Info("device certificate renewed", "deviceId", id.DeviceID)
	return id
}

// RenewCertificate asks for a new device certificate for the key of csrPEM
// (POST /devices/{id}/certificate) and returns it (PEM).
func (c *Client) RenewCertificate(ctx context.Context, cred Credentials, csrPEM string) (string, error) {
	var out proto.CertificateResponse
	if _, err := c.do(ctx, http.MethodPost, devicePath(cred.DeviceID, "certificate"), cred.Secret, nil,
		proto.CertificateRequest{CSR: csrPEM}, &out, http.StatusOK); err != nil {
		return "", fmt.Errorf("renewing certificate: %w", err)
	}
	if out.Certificate == "" {
		return "", errors.New("renewing certificate: server answered without a certificate")
	}
	return out.Certificate, nil
}

// enroll is Enroll that also returns the TLS state of the answer (nil over
// plain HTTP).
func (c *Client) enroll(ctx context.Context, enrollToken string, req proto.EnrollRequest) (proto.EnrollResponse, *tls.ConnectionState, error) {
	var resp proto.EnrollResponse
	r, err := c.do(ctx, http.MethodPost, "/enroll", enrollToken, nil, req, &resp, http.StatusCreated)
	if err != nil {
		return proto.EnrollResponse{}, nil, fmt.Errorf("enrolling device: %w", err)
	}
	if resp.DeviceID == "" || resp.DeviceSecret == "" {
		return proto.EnrollResponse{}, nil, errors.New("enrolling device: server answered without a device id or secret")
	}
	return resp, r.TLS, nil
}

// newHTTPClient is the default client: DefaultHTTPTimeout, and TLSConfig.
func (a *Agent) newHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialTLSContext = a.DialTLSContext
	// Through a proxy the transport does the handshake itself: with the
	// same verification, for the one host the agent talks to.
	tr.TLSClientConfig = a.tlsConfigFor(a.client.base.Hostname())
	return &http.Client{Timeout: DefaultHTTPTimeout, Transport: tr}
}

// holdConnections marks the start of HTTP work: a sync (with what runs
// right after it: command results, the inventory upload), an inventory
// pass, a push-token registration. The agent keeps its HTTP connections
// only while such work runs: release ends it, and when the last running
// one ends the agent closes its idle connections. So an idle device holds
// no connection to the API (only its MQTT one, or none), and the server's
// HTTP connections are bounded by the devices syncing at the moment, not
// by those that synced within a keep-alive timeout; the next sync's
// connection resumes the TLS session (abbreviated handshake, no
// certificates), which docs/PERFORMANCE.md measures.
func (a *Agent) holdConnections() (release func()) {
	st := &a.tlsState
	st.usersMu.Lock()
	st.users++
	st.usersMu.Unlock()
	return func() {
		st.usersMu.Lock()
		st.users--
		last := st.users == 0
		st.usersMu.Unlock()
		if last {
			a.closeIdleConnections()
		}
	}
}

// closeIdleConnections makes the next request open a connection that
// presents the device certificate now held (kept-alive connections were
// opened with the previous one, or none).
func (a *Agent) closeIdleConnections() {
	a.client.http.CloseIdleConnections()
}
