package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/pki"
)

func open(t *testing.T, dir string, c *testkit.Clock, hosts ...string) *pki.Authority {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	a, err := pki.Open(pki.Config{Dir: dir, Hosts: hosts, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func serialOf(a *pki.Authority) string { return a.Certificate().Leaf.SerialNumber.String() }

func TestOpenCreatesAndReuses(t *testing.T) {
	dir := t.TempDir()
	c := testkit.NewClock(time.Now())
	a := open(t, dir, c)
	for name, mode := range map[string]os.FileMode{pki.CAFile: 0o644, pki.CAKeyFile: 0o600, pki.ServerFile: 0o644, pki.ServerKeyFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), mode)
		}
	}
	leaf := a.Certificate().Leaf
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	if got, want := len(a.Certificate().Certificate), 2; got != want {
		t.Errorf("served chain has %d certificates, want %d (leaf and CA)", got, want)
	}
	if a.Pin() == "" || a.Pin()[:7] != proto.PinPrefix {
		t.Errorf("pin %q", a.Pin())
	}

	// A restart within the renewal window reuses both.
	c.Advance(30 * 24 * time.Hour)
	b := open(t, dir, c)
	if !bytes.Equal(a.CAPEM(), b.CAPEM()) || a.Pin() != b.Pin() {
		t.Error("the CA changed across a restart")
	}
	if serialOf(a) != serialOf(b) {
		t.Error("the server certificate was reissued, but it is not due")
	}
}

func TestRenewalOnOpenAndByCheck(t *testing.T) {
	dir := t.TempDir()
	c := testkit.NewClock(time.Now())
	a := open(t, dir, c)
	first := serialOf(a)

	// Less than a third of 90 days left: renewed at start.
	c.Advance(61 * 24 * time.Hour)
	b := open(t, dir, c)
	if serialOf(b) == first {
		t.Fatal("a nearly expired server certificate was not renewed at start")
	}
	if !bytes.Equal(a.CAPEM(), b.CAPEM()) {
		t.Fatal("renewal changed the CA")
	}
	second := serialOf(b)

	// While running, Check renews when due and not before.
	if renewed, err := b.Check(); err != nil || renewed {
		t.Fatalf("Check on a fresh certificate: renewed=%v err=%v", renewed, err)
	}
	c.Advance(61 * 24 * time.Hour)
	renewed, err := b.Check()
	if err != nil || !renewed {
		t.Fatalf("Check on a due certificate: renewed=%v err=%v", renewed, err)
	}
	if serialOf(b) == second {
		t.Fatal("Check reported a renewal but the certificate in force is the same")
	}
	if got := b.Certificate().Leaf.NotAfter; !got.After(c.Now().Add(80 * 24 * time.Hour)) {
		t.Fatalf("renewed certificate expires %v", got)
	}
	// The renewed certificate is the one a restart loads.
	if serialOf(open(t, dir, c)) != serialOf(b) {
		t.Fatal("the renewed certificate was not kept on disk")
	}
}

func TestNewHostReissues(t *testing.T) {
	dir := t.TempDir()
	c := testkit.NewClock(time.Now())
	a := open(t, dir, c)
	b := open(t, dir, c, "localhost", "127.0.0.1", "mdm.example.com")
	if serialOf(a) == serialOf(b) {
		t.Fatal("a new --tls-san did not reissue the certificate")
	}
	if err := b.Certificate().Leaf.VerifyHostname("mdm.example.com"); err != nil {
		t.Fatal(err)
	}
}

func csr(t *testing.T, key any) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func parse(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("no PEM in %q", s)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDeviceCertificates(t *testing.T) {
	c := testkit.NewClock(time.Now())
	a := open(t, t.TempDir(), c)
	other := open(t, t.TempDir(), c)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	certPEM, err := a.SignDeviceCSR(csr(t, key), "dev-a")
	if err != nil {
		t.Fatal(err)
	}
	cert := parse(t, certPEM)
	if cert.Subject.CommonName != "dev-a" {
		t.Errorf("CN %q, want the device id (the CSR's subject is ignored)", cert.Subject.CommonName)
	}
	if life := cert.NotAfter.Sub(c.Now()); life < 89*24*time.Hour || life > 91*24*time.Hour {
		t.Errorf("lifetime %v, want 90 days", life)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("the certificate is not for the CSR's key")
	}
	foreign, err := other.SignDeviceCSR(csr(t, key), "dev-a")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		chain []*x509.Certificate
		id    string
		ok    bool
	}{
		{"own certificate", []*x509.Certificate{cert}, "dev-a", true},
		{"another device's path", []*x509.Certificate{cert}, "dev-b", false},
		{"another CA", []*x509.Certificate{parse(t, foreign)}, "dev-a", false},
		{"the server certificate", []*x509.Certificate{a.Certificate().Leaf}, "Doorbell MDM server", false},
		{"none", nil, "dev-a", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := a.VerifyDevice(tc.chain, tc.id)
			if (err == nil) != tc.ok {
				t.Fatalf("VerifyDevice: %v, want ok=%v", err, tc.ok)
			}
		})
	}

	c.Advance(91 * 24 * time.Hour)
	if err := a.VerifyDevice([]*x509.Certificate{cert}, "dev-a"); err == nil {
		t.Error("an expired device certificate was accepted")
	}
}

func TestBadCSRs(t *testing.T) {
	a := open(t, t.TempDir(), testkit.NewClock(time.Now()))
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	good, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tampered := []byte(csr(t, good))
	b, _ := pem.Decode(tampered)
	b.Bytes[len(b.Bytes)-5] ^= 0xff
	for name, in := range map[string]string{
		"empty":          "",
		"not PEM":        "hello",
		"a key":          "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
		"weak RSA":       csr(t, weak),
		"bad signature":  string(pem.EncodeToMemory(b)),
		"garbage in PEM": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
	} {
		if _, err := a.SignDeviceCSR(in, "dev"); !errors.Is(err, pki.ErrBadCSR) {
			t.Errorf("%s: %v, want ErrBadCSR", name, err)
		}
	}
}

// TestOperatorCertificate: with --tls-cert/--tls-key the operator's chain is
// served and pinned (its last certificate), reloaded when the files change,
// while our own CA still issues device certificates.
func TestOperatorCertificate(t *testing.T) {
	c := testkit.NewClock(time.Now())
	publicDir := t.TempDir()
	public := open(t, publicDir, c) // stands in for the operator's CA
	a, err := pki.Open(pki.Config{
		Dir:      t.TempDir(),
		CertFile: filepath.Join(publicDir, pki.ServerFile),
		KeyFile:  filepath.Join(publicDir, pki.ServerKeyFile),
		Now:      c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if serialOf(a) != serialOf(public) {
		t.Fatal("the operator's certificate is not the one served")
	}
	if a.Pin() != public.Pin() || !bytes.Equal(a.TrustPEM(), public.CAPEM()) {
		t.Fatal("agents are not told to pin the top of the operator's chain")
	}
	if bytes.Equal(a.CAPEM(), public.CAPEM()) {
		t.Fatal("device certificates would be issued by the operator's CA")
	}
	if renewed, err := a.Check(); err != nil || renewed {
		t.Fatalf("Check with unchanged files: renewed=%v err=%v", renewed, err)
	}
	// The operator replaces the files (here: the stand-in renews them).
	c.Advance(61 * 24 * time.Hour)
	if renewed, err := public.Check(); err != nil || !renewed {
		t.Fatalf("stand-in renewal: %v %v", renewed, err)
	}
	if renewed, err := a.Check(); err != nil || !renewed {
		t.Fatalf("Check after the files changed: renewed=%v err=%v", renewed, err)
	}
	if serialOf(a) != serialOf(public) {
		t.Fatal("the replaced files were not loaded")
	}
	if _, err := pki.Open(pki.Config{Dir: t.TempDir(), CertFile: filepath.Join(publicDir, pki.ServerFile)}); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}
