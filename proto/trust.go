package proto

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"time"
)

// Integrity is the server's verdict on the agent binary a device reported.
type Integrity string

// The integrity verdicts.
const (
	// IntegrityUnchecked: the server has no agent allowlist.
	IntegrityUnchecked Integrity = "unchecked"
	// IntegrityOK: the last report's agentSha256 is on the allowlist.
	IntegrityOK Integrity = "ok"
	// IntegrityUnknownBinary: the last report's agentSha256 is not on the
	// allowlist: the device runs an agent the operator did not approve.
	IntegrityUnknownBinary Integrity = "unknown_binary"
	// IntegrityUnreported: the device never reported, or its last report
	// carried no agentSha256.
	IntegrityUnreported Integrity = "unreported"
)

// Operator roles. An admin may do everything; a viewer may read everything
// (every GET, MQTT watch) and change nothing.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// OperatorTokenRequest is the body of POST /tokens.
type OperatorTokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// OperatorToken describes a named operator token. Token, the secret, is set
// only in the 201 answer to POST /tokens; the server keeps only its hash.
type OperatorToken struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Token     string    `json:"token,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// OperatorTokenList is the answer to GET /tokens.
type OperatorTokenList struct {
	Tokens []OperatorToken `json:"tokens"`
}

// EnrollmentTokenRequest is the body of POST /enrollment-tokens. ExpiresIn
// is a Go duration ("1h", "30m"); empty means 24h. MaxUses 0 means 1.
type EnrollmentTokenRequest struct {
	ExpiresIn string `json:"expiresIn"`
	MaxUses   int    `json:"maxUses"`
}

// EnrollmentToken describes an enrollment token. Token, the secret, is set
// only in the 201 answer to POST /enrollment-tokens; the server keeps only
// its hash.
type EnrollmentToken struct {
	Token     string    `json:"token,omitempty"`
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expiresAt"`
	MaxUses   int       `json:"maxUses"`
	Uses      int       `json:"uses"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
	// EnrollURL is the enrollment string with the secret
	// (doorbell://enroll?server=...&pin=...&token=...), set with Token
	// when the server runs TLS.
	EnrollURL string `json:"enrollUrl,omitempty"`
}

// EnrollmentQRRequest is the body of POST /enrollment-tokens/qr: the
// enrollment string to draw as a QR code.
type EnrollmentQRRequest struct {
	EnrollURL string `json:"enrollUrl"`
}

// EnrollmentTokenList is the answer to GET /enrollment-tokens: every token
// not revoked, expired and used-up ones included, without secrets.
type EnrollmentTokenList struct {
	Tokens []EnrollmentToken `json:"tokens"`
}

// AuditEntry is one change an operator made.
type AuditEntry struct {
	// ID is the entry's position in the log; it only grows.
	ID string `json:"id"`
	// At is when the change was committed.
	At time.Time `json:"at"`
	// Actor is the operator token's name ("admin" for --admin-token).
	Actor string `json:"actor"`
	// Action names the change, e.g. "policy.update", "token.create".
	Action string `json:"action"`
	// Target is what was changed: a device id, a token name or id.
	Target string `json:"target"`
	// Detail is a short description; it never holds a secret.
	Detail string `json:"detail,omitempty"`
	// RemoteIP is the address the request came from.
	RemoteIP string `json:"remoteIp"`
}

// AuditList is one page of GET /audit, oldest first. NextAfter is the cursor
// for the next page, empty on the last one.
type AuditList struct {
	Entries   []AuditEntry `json:"entries"`
	NextAfter string       `json:"nextAfter"`
}

// PinPrefix starts every public-key pin: "sha256/" and the standard base64
// of the SHA-256 of a certificate's SubjectPublicKeyInfo (the HPKP form). A
// pin names a key, so it survives the certificate's renewal with that key.
// SPKIPin computes it, for the agent and the server alike.
const PinPrefix = "sha256/"

// SPKIPin is the pin of a certificate's public key (see PinPrefix).
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
