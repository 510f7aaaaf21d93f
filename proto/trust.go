package proto

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
)

// PinPrefix starts every public-key pin.
const PinPrefix = "sha256/"

// SPKIPin is the pin of a certificate's public key: "sha256/" and the
// standard base64 of the SHA-256 of its SubjectPublicKeyInfo (the HPKP form).
// A pin names a key, so it survives the certificate's renewal with that key.
func SPKIPin(c *x509.Certificate) string {
	h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return PinPrefix + base64.StdEncoding.EncodeToString(h[:])
}

// CertificateRequest is the body of POST /devices/{id}/certificate: a PEM
// certificate signing request for the device's (new) key pair.
type CertificateRequest struct {
	CSR string `json:"csr"`
}

// CertificateResponse is the 200 answer to POST /devices/{id}/certificate.
type CertificateResponse struct {
	Certificate string `json:"certificate"`
}

// EnrollURLScheme is the scheme of the QR-friendly enrollment string
// doorbell://enroll?server=<URL>&pin=<pin>&token=<enrollment token>.
const EnrollURLScheme = "doorbell"
