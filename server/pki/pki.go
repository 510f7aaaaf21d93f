// Package pki is the server's private certificate authority: it creates and
// keeps a CA and the server certificate in the data dir, renews the server
// certificate before it expires, issues device certificates from CSRs and
// checks the client certificates devices present.
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Defaults for the zero values of Config.
const (
	DefaultServerCertTTL = 90 * 24 * time.Hour
	DefaultDeviceCertTTL = 90 * 24 * time.Hour
	DefaultCheckInterval = time.Hour
	caTTL                = 10 * 365 * 24 * time.Hour
	// backdate covers clocks a little behind ours.
	backdate = 5 * time.Minute
)

// File names inside Config.Dir. Keys are mode 0600.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// Config configures an Authority. Zero values are documented per field.
type Config struct {
	// Dir keeps the CA and the generated server certificate; required
	// unless Files is set.
	Dir string
	// Files, when set, keeps them instead of Dir: replicas sharing a
	// database keep one CA and one server certificate there. When it is
	// also a Locker, creating the CA and renewing the certificate run
	// under its lock, so one replica does it and the others adopt it.
	Files Files
	// Hosts are the DNS names and IP addresses the generated server
	// certificate must cover. A certificate on disk that misses one is
	// replaced at Open.
	Hosts []string
	// CertFile and KeyFile are the operator's own server certificate chain
	// and key (PEM). Empty means the CA issues the server certificate. The
	// CA still issues device certificates either way.
	CertFile, KeyFile string
	// ServerCertTTL is the generated server certificate's lifetime; 0 = 90
	// days. It is renewed once less than a third of it remains.
	ServerCertTTL time.Duration
	// DeviceCertTTL is a device certificate's lifetime; 0 = 90 days.
	DeviceCertTTL time.Duration
	// CheckInterval is how often Run looks for a due renewal (or a changed
	// operator certificate) and a due session-ticket key; 0 = 1h.
	CheckInterval time.Duration
	// TicketKeyRotation is how often a new TLS session-ticket key starts
	// encrypting tickets; 0 = 24h. The keys are kept in Files
	// (TicketKeysFile) and the last three decrypt, so a client resumes its
	// session for up to three rotations, across restarts and replicas.
	// Whoever reads the file can decrypt sessions resumed with those
	// tickets: it is as secret as the CA key beside it.
	TicketKeyRotation time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Logger: nil discards.
	Logger *slog.Logger
}

// Files keeps the PEM files by name (CAFile, ...). Read returns an error
// wrapping os.ErrNotExist for a file never written.
type Files interface {
	Read(name string) ([]byte, error)
	Write(name string, data []byte, perm os.FileMode) error
}

// Locker is implemented by Files shared between processes: WithLock runs
// fn while holding a lock the other processes also take.
type Locker interface {
	WithLock(fn func() error) error
}

// dirFiles is Files in a directory; WithLock is this process's mutex only.
type dirFiles string

func (d dirFiles) Read(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(d), name))
}
func (d dirFiles) Write(name string, data []byte, perm os.FileMode) error {
	return writeFile(filepath.Join(string(d), name), data, perm)
}

func (a *Authority) withLock(fn func() error) error {
	if l, ok := a.cfg.Files.(Locker); ok {
		return l.WithLock(fn)
	}
	return fn()
}

// ErrBadCSR is wrapped by SignDeviceCSR's errors about the request itself.
var ErrBadCSR = errors.New("invalid certificate signing request")

// Authority is the CA plus the server certificate in force. Its methods are
// safe for concurrent use.
type Authority struct {
	cfg   Config
	log   *slog.Logger
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	caPEM []byte
	roots *x509.CertPool

	mu       sync.Mutex // serialises renewals
	cert     atomic.Pointer[tls.Certificate]
	modTime  time.Time // of the operator's files when loaded
	trustPEM atomic.Pointer[[]byte]

	tmu        sync.Mutex    // guards ticketKeys and configs
	ticketKeys [][32]byte    // newest first
	configs    []*tls.Config // handed out by TLSConfig, rotated with the keys
}

// Open loads the CA from cfg.Dir or creates it, then loads, issues or renews
// the server certificate.
func Open(cfg Config) (*Authority, error) {
	if cfg.Dir == "" && cfg.Files == nil {
		return nil, errors.New("pki: Dir is required")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("pki: the certificate file and the key file go together")
	}
	if cfg.ServerCertTTL <= 0 {
		cfg.ServerCertTTL = DefaultServerCertTTL
	}
	if cfg.DeviceCertTTL <= 0 {
		cfg.DeviceCertTTL = DefaultDeviceCertTTL
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.TicketKeyRotation <= 0 {
		cfg.TicketKeyRotation = DefaultTicketKeyRotation
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Files == nil {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", cfg.Dir, err)
		}
		cfg.Files = dirFiles(cfg.Dir)
	}
	a := &Authority{cfg: cfg, log: cfg.Logger.With("component", "pki")}
	if err := a.withLock(a.loadOrCreateCA); err != nil {
		return nil, err
	}
	if _, err := a.Check(); err != nil {
		return nil, err
	}
	if err := a.withLock(a.rotateTicketKeys); err != nil {
		return nil, fmt.Errorf("session-ticket keys: %w", err)
	}
	return a, nil
}

func (a *Authority) path(name string) string { return filepath.Join(a.cfg.Dir, name) }

func (a *Authority) loadOrCreateCA() error {
	certPEM, err1 := a.cfg.Files.Read(CAFile)
	keyPEM, err2 := a.cfg.Files.Read(CAKeyFile)
	switch {
	case err1 == nil && err2 == nil:
		cert, key, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("loading the CA from %s: %w", a.cfg.Dir, err)
		}
		a.ca, a.caKey, a.caPEM = cert, key, certPEM
	case errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist):
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		now := a.cfg.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "Doorbell MDM CA", Organization: []string{"Doorbell MDM"}},
			NotBefore:             now.Add(-backdate),
			NotAfter:              now.Add(caTTL),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return fmt.Errorf("creating the CA: %w", err)
		}
		cert, _ := x509.ParseCertificate(der)
		keyDER, _ := x509.MarshalECPrivateKey(key)
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := a.cfg.Files.Write(CAKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return err
		}
		if err := a.cfg.Files.Write(CAFile, certPEM, 0o644); err != nil {
			return err
		}
		a.ca, a.caKey, a.caPEM = cert, key, certPEM
		a.log.Info("created a private CA", "file", a.path(CAFile), "pin", proto.SPKIPin(cert))
	default:
		return fmt.Errorf("loading the CA from %s: %w", a.cfg.Dir, errors.Join(err1, err2))
	}
	a.roots = x509.NewCertPool()
	a.roots.AddCert(a.ca)
	return nil
}

// CAPEM is the private CA's certificate (PEM).
func (a *Authority) CAPEM() []byte { return a.caPEM }

// TrustPEM is the certificate agents pin for the server: the private CA, or
// with the operator's own certificate the last certificate of its chain.
func (a *Authority) TrustPEM() []byte { return *a.trustPEM.Load() }

// Pin is the SPKI pin of TrustPEM.
func (a *Authority) Pin() string {
	b, _ := pem.Decode(a.TrustPEM())
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return ""
	}
	return proto.SPKIPin(c)
}

// Certificate is the server certificate in force.
func (a *Authority) Certificate() *tls.Certificate { return a.cert.Load() }

// TLSConfig is the listeners' configuration: the server certificate in force
// (so a renewal takes effect on the next handshake), TLS 1.2 or later, and a
// client certificate asked for but not required. Client certificates are
// checked by the API and the broker (VerifyDevice), which answer with a clear
// refusal instead of a failed handshake.
//
// Its session tickets are encrypted with the stored keys (TicketKeysFile):
// a client resumes its session after a restart of the server, or on
// another replica.
func (a *Authority) TLSConfig() *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return a.cert.Load(), nil
		},
		ClientAuth: tls.RequestClientCert,
	}
	a.useTicketKeys(c)
	return c
}

// Run checks for a due renewal and a due session-ticket key every
// CheckInterval until ctx is done (a replica also picks up the keys
// another one rotated).
func (a *Authority) Run(ctx context.Context) {
	t := time.NewTicker(a.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.Check(); err != nil {
				a.log.Error("checking the server certificate", "err", err)
			}
			if err := a.withLock(a.rotateTicketKeys); err != nil {
				a.log.Error("rotating the session-ticket keys", "err", err)
			}
		}
	}
}

// Check renews the generated server certificate when less than a third of
// its lifetime remains, or when it does not cover Config.Hosts; with the
// operator's files it reloads them when they changed. It reports whether a
// new certificate took effect.
func (a *Authority) Check() (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.CertFile != "" {
		return a.loadOperatorFiles()
	}
	var renewed bool
	err := a.withLock(func() (err error) {
		renewed, err = a.check()
		return err
	})
	return renewed, err
}

func (a *Authority) check() (bool, error) {
	loaded := a.cert.Load()
	cur := loaded
	// The stored certificate wins over ours when it differs and is good:
	// another replica sharing Files renewed it.
	certPEM, err1 := a.cfg.Files.Read(ServerFile)
	keyPEM, err2 := a.cfg.Files.Read(ServerKeyFile)
	if err1 == nil && err2 == nil {
		if c, err := tls.X509KeyPair(certPEM, keyPEM); err == nil && c.Leaf.CheckSignatureFrom(a.ca) == nil {
			if cur == nil || (!bytes.Equal(c.Certificate[0], cur.Certificate[0]) && !a.due(c.Leaf)) {
				cur = &c
			}
		} else if cur == nil {
			a.log.Warn("the stored server certificate is unusable; issuing a new one")
		}
	}
	if cur != nil && !a.due(cur.Leaf) {
		if cur != loaded {
			a.cert.Store(cur)
			a.setTrust(a.caPEM)
			return loaded != nil, nil
		}
		return false, nil
	}
	var keep []string
	if _, shared := a.cfg.Files.(Locker); shared && cur != nil {
		// Replicas differ in host names and addresses: the certificate
		// they share covers each one's, rather than each renewing it for
		// its own in turn.
		keep = append(keep, cur.Leaf.DNSNames...)
		for _, ip := range cur.Leaf.IPAddresses {
			keep = append(keep, ip.String())
		}
	}
	c, err := a.issueServer(keep...)
	if err != nil {
		return false, err
	}
	a.cert.Store(c)
	a.setTrust(a.caPEM)
	a.log.Info("issued the server certificate", "hosts", a.cfg.Hosts, "notAfter", c.Leaf.NotAfter)
	return true, nil
}

func (a *Authority) setTrust(b []byte) { a.trustPEM.Store(&b) }

// due reports whether leaf must be replaced.
func (a *Authority) due(leaf *x509.Certificate) bool {
	now := a.cfg.Now()
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if now.After(leaf.NotAfter.Add(-life/3)) || now.Before(leaf.NotBefore) {
		return true
	}
	for _, h := range a.cfg.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
				return true
			}
		} else if !slices.Contains(leaf.DNSNames, h) {
			return true
		}
	}
	return false
}

// issueServer issues a certificate for Config.Hosts and extra.
func (a *Authority) issueServer(extra ...string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := a.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "Doorbell MDM server"},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(a.cfg.ServerCertTTL),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range append(slices.Clone(a.cfg.Hosts), extra...) {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" && !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, &key.PublicKey, a.caKey)
	if err != nil {
		return nil, fmt.Errorf("issuing the server certificate: %w", err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	// The chain carries the CA, so an agent holding only a pin finds it.
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), a.caPEM...)
	// The key first: a crash between the two writes leaves a pair that does
	// not match, which the next start replaces.
	if err := a.cfg.Files.Write(ServerKeyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := a.cfg.Files.Write(ServerFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func (a *Authority) loadOperatorFiles() (bool, error) {
	st1, err1 := os.Stat(a.cfg.CertFile)
	st2, err2 := os.Stat(a.cfg.KeyFile)
	if err := errors.Join(err1, err2); err != nil {
		return false, fmt.Errorf("reading the TLS certificate: %w", err)
	}
	mod := st1.ModTime()
	if st2.ModTime().After(mod) {
		mod = st2.ModTime()
	}
	if a.cert.Load() != nil && mod.Equal(a.modTime) {
		return false, nil
	}
	c, err := tls.LoadX509KeyPair(a.cfg.CertFile, a.cfg.KeyFile)
	if err != nil {
		return false, fmt.Errorf("loading --tls-cert/--tls-key: %w", err)
	}
	top, err := x509.ParseCertificate(c.Certificate[len(c.Certificate)-1])
	if err != nil {
		return false, err
	}
	a.cert.Store(&c)
	a.modTime = mod
	a.setTrust(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: top.Raw}))
	a.log.Info("loaded the operator's server certificate", "file", a.cfg.CertFile, "notAfter", c.Leaf.NotAfter)
	return true, nil
}

// SignDeviceCSR issues a device certificate for deviceID (CN = deviceID,
// client authentication only, DeviceCertTTL) over the public key of csrPEM.
// The CSR's own subject is ignored. Errors about the CSR wrap ErrBadCSR.
func (a *Authority) SignDeviceCSR(csrPEM, deviceID string) (string, error) {
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return "", fmt.Errorf("%w: want one PEM CERTIFICATE REQUEST block", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return "", fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	if err := acceptableKey(csr.PublicKey); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	now := a.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: deviceID},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(a.cfg.DeviceCertTTL),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, csr.PublicKey, a.caKey)
	if err != nil {
		return "", fmt.Errorf("issuing a device certificate: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

func acceptableKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return errors.New("ECDSA keys must use P-256 or P-384")
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return nil
		}
		return errors.New("RSA keys must have at least 2048 bits")
	}
	return fmt.Errorf("unsupported key type %T", k)
}

// VerifyDevice checks a presented client certificate chain: the first
// certificate must chain to the CA, be valid now, allow client
// authentication and name deviceID as its common name.
func (a *Authority) VerifyDevice(chain []*x509.Certificate, deviceID string) error {
	return a.verifyDevice(chain, deviceID, a.cfg.Now())
}

// VerifyLapsedDevice is VerifyDevice that also accepts a certificate past
// its expiry (but not one not yet valid): renewal takes it, with the device
// secret, so a device that was offline longer than its certificate lives
// can still renew instead of going dark.
func (a *Authority) VerifyLapsedDevice(chain []*x509.Certificate, deviceID string) error {
	now := a.cfg.Now()
	if len(chain) > 0 && now.After(chain[0].NotAfter) {
		now = chain[0].NotAfter
	}
	return a.verifyDevice(chain, deviceID, now)
}

func (a *Authority) verifyDevice(chain []*x509.Certificate, deviceID string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("no client certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         a.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("client certificate not issued by this server's CA: %w", err)
	}
	if cn := chain[0].Subject.CommonName; cn != deviceID {
		return fmt.Errorf("client certificate is for device %q, not %q", cn, deviceID)
	}
	return nil
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	k, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("the CA key is a %T, want ECDSA", c.PrivateKey)
	}
	return c.Leaf, k, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return n.Add(n, big.NewInt(1))
}

// writeFile replaces path atomically with data at mode perm.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}

// DefaultHosts returns the names a generated server certificate covers for
// a listener on listenHost: that host, localhost, 127.0.0.1, ::1, the
// machine's hostname and, when listenHost is unspecified, the machine's
// interface addresses, followed by extra.
func DefaultHosts(listenHost string, extra ...string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	ip := net.ParseIP(listenHost)
	switch {
	case listenHost == "" || ip != nil && ip.IsUnspecified():
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
					hosts = append(hosts, n.IP.String())
				}
			}
		}
	default:
		hosts = append(hosts, listenHost)
	}
	hosts = append(hosts, extra...)
	var out []string
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// Dir is the directory the CA and the generated certificate are kept in.
func (a *Authority) Dir() string { return a.cfg.Dir }
