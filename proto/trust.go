package proto

// PinPrefix starts every public-key pin: "sha256/" and the standard base64
// of the SHA-256 of a certificate's SubjectPublicKeyInfo (the HPKP form). A
// pin names a key, so it survives the certificate's renewal with that key.
// agent.SPKIPin and pki.SPKIPin compute it (proto stays free of crypto).
const PinPrefix = "sha256/"

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
