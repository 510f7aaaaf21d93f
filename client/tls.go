package client

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// pinPrefix starts an SPKI pin: sha256/<base64 of the SHA-256 of a
// certificate's SubjectPublicKeyInfo>, the form doorbell serve prints.
const pinPrefix = "sha256/"

// spkiPin is the pin of c.
func spkiPin(c *x509.Certificate) string {
	h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return pinPrefix + base64.StdEncoding.EncodeToString(h[:])
}

// validPin reports whether pin has the form sha256/<base64 of 32 bytes>.
func validPin(pin string) bool {
	b, ok := strings.CutPrefix(pin, pinPrefix)
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(b)
	return err == nil && len(raw) == sha256.Size
}

// pinnedTLS trusts, as the only root, the certificate of the server's chain
// whose key has pin; the leaf must chain to it and name the host dialled,
// as the agent checks (agent.verifyServer).
func pinnedTLS(pin string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server presented no certificate")
		}
		roots := x509.NewCertPool()
		found := false
		for _, c := range cs.PeerCertificates {
			if spkiPin(c) == pin {
				roots.AddCert(c)
				found = true
			}
		}
		if !found {
			return &pinError{pin: pin}
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: inter, DNSName: cs.ServerName,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		return err
	}
	return cfg
}

// pinError says that no certificate of the server's chain has the pin.
type pinError struct{ pin string }

func (e *pinError) Error() string {
	return fmt.Sprintf("no certificate of the server's chain has the pin %s (is it this server's pin? doorbell serve prints it at start)", e.pin)
}

// explainTransport adds a hint to a transport error an operator cannot act
// on as it is: plain HTTP to a TLS server usually ends in a bare EOF, and an
// https:// server with a private CA fails verification.
func explainTransport(err error, https bool) error {
	if err == nil {
		return nil
	}
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	var pe *pinError
	switch {
	case errors.As(err, &pe):
		return err
	case errors.As(err, &ua):
		return fmt.Errorf("%w\nhint: the server's certificate is not from a CA this machine trusts; doorbell serve uses a private CA by default: pass --ca-file <data dir>/tls/ca.pem or --server-pin sha256/... (both printed when the server starts)", err)
	case errors.As(err, &he):
		return fmt.Errorf("%w\nhint: the --server host is not a name on the server's certificate; use the name or address the server was started with", err)
	case errors.As(err, &ci):
		return fmt.Errorf("%w\nhint: the server's certificate is not valid for this use; check --ca-file / --server-pin", err)
	}
	if !https {
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "malformed HTTP response") ||
			strings.Contains(err.Error(), "connection reset") || (errors.As(err, &ne) && strings.Contains(err.Error(), "EOF")) {
			return fmt.Errorf("%w\nhint: the server closed the connection on a plain-HTTP request; if it runs TLS (doorbell serve does by default), use --server https://... with --ca-file or --server-pin", err)
		}
	}
	return err
}
