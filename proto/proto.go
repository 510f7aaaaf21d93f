// Package proto is the Doorbell MDM wire contract: the JSON types exchanged over
// the REST API and MQTT, the compliance rules, and topic names. It imports only
// the standard library so every other package, the mobile library included, may
// depend on it.
package proto

import (
	"fmt"
	"reflect"
	"time"
)

// CapabilityVersion is the version of the contract this code speaks. It only
// ever grows; each change is noted here with its date.
//
//   - 1 (2026-11-23): enroll, token registration, policy with cameraDisabled,
//     compliance report, status, MQTT doorbell, FCM doorbell.
//   - 2 (2026-11-23): optional settings, per-setting verdicts (report
//     unsupported/failed, status failing), monitor mode (policy monitor),
//     groups, history, compliance summary, webhook events;
//     TLS and device certificates: EnrollRequest.csr,
//     EnrollResponse.caCert and .certificate, POST /devices/{id}/certificate;
//     reports carry reportedAt and a random nonce (replay
//     resistance) and the agent binary's SHA-256 (agentSha256);
//     DeviceStatus carries integrity; operator tokens with roles,
//     enrollment tokens, audit log and device revocation in the API.
//   - 3 (2026-11-29): the agent tells its sync interval
//     (syncIntervalSeconds on EnrollRequest and ComplianceReport);
//     DeviceStatus carries lastSeenAt and overdue; GET /devices?seen=overdue.
//   - 4 (2026-11-29): remote commands (docs/COMMANDS.md): POST/GET
//     /devices/{id}/commands, GET/DELETE /commands/{id}, POST
//     /groups/{id}/commands, POST /devices/{id}/commands/{cid}/result;
//     the command doorbell {"type":"command_pending"} on the device's
//     doorbell topic and over FCM (collapse key "command_pending"); the
//     "command" event on /events and the command.state_changed webhook.
//   - 5 (2026-11-29): inventory (proto/inventory.go): PUT and GET
//     /devices/{id}/inventory with per-section hashes (only changed sections
//     are sent), gzip bodies up to MaxInventoryBodyBytes/MaxInventoryBytes,
//     POST /devices/{id}/inventory/refresh with the Doorbell-Inventory
//     header on policy answers, the "refresh_inventory" doorbell type,
//     fleet filters on GET /devices, GET /inventory/packages and
//     GET /inventory/facts/{fact}.
//   - 6 (2026-11-29): the Linux host settings (packages, services,
//     firewallEnabled, sshRootLoginDisabled, passwordQuality, macEnforcing,
//     auditdRunning, diskEncryptionRequired); an agent may give an
//     unsupported setting's reason in the report's failed map; policy
//     revisions and rollback (GET /groups/{id}/revisions, POST
//     /groups/{id}/rollback and the same for devices); escalation rules
//     per group; remediation mode guided (policy guided, report pending,
//     reason PENDING_USER with remediateBy, a layer's deadline).
//   - 7 (2026-11-29): the refresh_inventory command type: the agent
//     collects and uploads its whole inventory, then answers ACKNOWLEDGED;
//     POST /devices/{id}/inventory/refresh queues it (and still sets the
//     Doorbell-Inventory header for older agents) and answers the command.
//     Agents collect the inventory off the sync path, on their own timer.
//   - 8 (2026-11-29): DeviceStatus carries nonCompliantSince and each
//     failing setting its failingSince; GET /devices?failingSince.lt=
//     (an RFC 3339 time, or a duration ago such as 72h or 7d).
//   - 9 (2026-11-29): policy answers (200 and 304) carry the
//     Doorbell-Commands header, "pending" or "none": an agent that reads
//     "none" does not ask for its commands in that sync (older servers send
//     no header, and the agent asks as before).
const CapabilityVersion = 9

// MaxBodyBytes is the largest request body the server accepts.
const MaxBodyBytes = 64 << 10

// ComplianceState is the server's verdict on a device. It is derived on read
// by Evaluate and never stored as the source of truth.
type ComplianceState string

// The four compliance states, in the order Evaluate decides them.
const (
	StateUnknown      ComplianceState = "UNKNOWN"
	StateStale        ComplianceState = "STALE"
	StateNonCompliant ComplianceState = "NON_COMPLIANT"
	StateCompliant    ComplianceState = "COMPLIANT"
)

// States lists every ComplianceState.
var States = []ComplianceState{StateUnknown, StateStale, StateNonCompliant, StateCompliant}

// Valid reports whether s is one of the four states.
func (s ComplianceState) Valid() bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// Settings are the managed device settings. They appear, flattened, both in
// the desired DevicePolicy and in the observed ComplianceReport.
// CameraDisabled is always managed. Every other setting is optional: nil
// means "not managed" in a policy and "not observed" in a report, and it is
// omitted from the JSON, so a policy that only manages the camera looks
// exactly as it did in capability version 1.
type Settings struct {
	CameraDisabled          bool      `json:"cameraDisabled"`
	ScreenCaptureDisabled   *bool     `json:"screenCaptureDisabled,omitempty"`
	StatusBarDisabled       *bool     `json:"statusBarDisabled,omitempty"`
	LockTaskPackages        *[]string `json:"lockTaskPackages,omitempty"`
	USBFileTransferDisabled *bool     `json:"usbFileTransferDisabled,omitempty"`
	PasswordMinLength       *int      `json:"passwordMinLength,omitempty"`
	SSHPasswordAuthDisabled *bool     `json:"sshPasswordAuthDisabled,omitempty"`
	AutoUpdatesEnabled      *bool     `json:"autoUpdatesEnabled,omitempty"`
	// The Linux host settings (capability version 6; docs/LINUX.md).
	Packages               *[]Package       `json:"packages,omitempty"`
	Services               *[]Service       `json:"services,omitempty"`
	FirewallEnabled        *bool            `json:"firewallEnabled,omitempty"`
	SSHRootLoginDisabled   *bool            `json:"sshRootLoginDisabled,omitempty"`
	PasswordQuality        *PasswordQuality `json:"passwordQuality,omitempty"`
	MACEnforcing           *bool            `json:"macEnforcing,omitempty"`
	AuditdRunning          *bool            `json:"auditdRunning,omitempty"`
	DiskEncryptionRequired *bool            `json:"diskEncryptionRequired,omitempty"`
}

// Equal reports whether s and o manage the same settings with the same
// values.
func (s Settings) Equal(o Settings) bool { return reflect.DeepEqual(s, o) }

// DevicePolicy is the desired state of one device. Version is owned by the
// server and grows by exactly one with every edit.
type DevicePolicy struct {
	Version int64 `json:"version"`
	Settings
	// Monitor names the managed settings the agent must only observe and
	// report, never change (remediation mode "monitor"), in SettingNames
	// order. Omitted when empty, so an all-enforced policy looks exactly as
	// in capability version 1.
	Monitor []string `json:"monitor,omitempty"`
	// Guided maps each setting in guided mode to its deadline, a Go
	// duration counted from when the device first failed it ("72h").
	// Omitted when empty (capability 6).
	Guided map[string]string `json:"guided,omitempty"`
}

// IsSatisfiedBy reports whether r satisfies every setting p manages (Diff
// finds nothing failing). Settings p does not manage are ignored. It does not
// look at versions; Evaluate does that first.
func (p DevicePolicy) IsSatisfiedBy(r ComplianceReport) bool {
	return len(Diff(p, r)) == 0
}

// PolicyUpdate is the capability-1 body of PUT /devices/{id}/policy: the
// camera setting alone, and no version (the server assigns one). The server
// also accepts any subset of the settings, null to stop managing one at
// device level, and "modes" (docs/POLICY.md); the CLI sends this form.
type PolicyUpdate struct {
	CameraDisabled *bool `json:"cameraDisabled"`
}

// Validate reports a missing field.
func (u PolicyUpdate) Validate() error {
	if u.CameraDisabled == nil {
		return fmt.Errorf("cameraDisabled is required")
	}
	return nil
}

// Apply returns the settings u describes.
func (u PolicyUpdate) Apply(s Settings) Settings {
	if u.CameraDisabled != nil {
		s.CameraDisabled = *u.CameraDisabled
	}
	return s
}

// ComplianceReport is what an agent observed after enforcing a policy.
// Compliant is the agent's own opinion: stored, never trusted.
//
// ReportedAt and Nonce (capability 2) make a captured report useless to
// replay: the server refuses a nonce it has accepted, a report older than
// the last one it accepted, and a time outside its allowed clock skew.
// AgentSHA256 is the hex SHA-256 of the agent's own binary, checked against
// the server's optional allowlist; empty when the agent cannot tell.
type ComplianceReport struct {
	AppliedPolicyVersion int64 `json:"appliedPolicyVersion"`
	Settings
	Compliant bool `json:"compliant"`
	// Unsupported names the managed settings this agent cannot enforce.
	Unsupported []string `json:"unsupported,omitempty"`
	// Failed maps each setting whose enforcement failed to why.
	Failed map[string]string `json:"failed,omitempty"`
	// Pending maps each guided setting the agent leaves to the user to
	// when it will enforce it (remediateBy), capability 6.
	Pending     map[string]time.Time `json:"pending,omitempty"`
	ReportedAt  time.Time            `json:"reportedAt,omitzero"`
	Nonce       string               `json:"nonce,omitempty"`
	AgentSHA256 string               `json:"agentSha256,omitempty"`
	// SyncIntervalSeconds is the agent's periodic sync interval; the
	// server calls a device overdue when it is not seen within two of
	// them. 0: not told (the server assumes DefaultSyncInterval).
	SyncIntervalSeconds int64 `json:"syncIntervalSeconds,omitempty"`
}

// DefaultSyncInterval is the agent's default periodic sync interval, which
// the server assumes for an agent that did not tell its own.
const DefaultSyncInterval = 15 * time.Minute

// MaxSyncInterval bounds SyncIntervalSeconds.
const MaxSyncInterval = 7 * 24 * time.Hour

// Evaluate derives the compliance state of a device from its desired policy
// and its last accepted report (nil when it never reported), in exactly the
// order of the contract.
func Evaluate(desired DevicePolicy, report *ComplianceReport) ComplianceState {
	switch {
	case report == nil:
		return StateUnknown
	case report.AppliedPolicyVersion < desired.Version:
		return StateStale
	case desired.IsSatisfiedBy(*report):
		return StateCompliant
	default:
		return StateNonCompliant
	}
}

// EnrollRequest is the body of POST /enroll.
type EnrollRequest struct {
	Model        string `json:"model"`
	OSVersion    string `json:"osVersion"`
	AgentVersion string `json:"agentVersion"`
	// CSR is a PEM certificate signing request for the device's own key
	// pair; over TLS the server answers with a device certificate. Optional.
	CSR string `json:"csr,omitempty"`
	// SyncIntervalSeconds: see ComplianceReport.SyncIntervalSeconds.
	SyncIntervalSeconds int64 `json:"syncIntervalSeconds,omitempty"`
}

// MQTTInfo tells an enrolled agent where to listen for its doorbell.
type MQTTInfo struct {
	URL   string `json:"url"`
	Topic string `json:"topic"`
}

// EnrollResponse is the 201 answer to POST /enroll. DeviceSecret is shown
// only here; the server keeps only its hash.
type EnrollResponse struct {
	DeviceID     string       `json:"deviceId"`
	DeviceSecret string       `json:"deviceSecret"`
	Policy       DevicePolicy `json:"policy"`
	MQTT         MQTTInfo     `json:"mqtt"`
	// CACert is the PEM certificate the agent pins for every later
	// connection; sent only over TLS.
	CACert string `json:"caCert,omitempty"`
	// Certificate is the PEM device certificate issued for EnrollRequest.CSR.
	Certificate string `json:"certificate,omitempty"`
}

// TokenRegistration is the body of POST /devices/{id}/token.
type TokenRegistration struct {
	FCMToken string `json:"fcmToken"`
}

// DeviceStatus is the operator's view of one device. State is evaluated on
// every read.
type DeviceStatus struct {
	DeviceID       string          `json:"deviceId"`
	Model          string          `json:"model"`
	OSVersion      string          `json:"osVersion"`
	AgentVersion   string          `json:"agentVersion"`
	EnrolledAt     time.Time       `json:"enrolledAt"`
	LastReportAt   *time.Time      `json:"lastReportAt,omitempty"`
	DesiredVersion int64           `json:"desiredVersion"`
	AppliedVersion int64           `json:"appliedVersion"`
	State          ComplianceState `json:"state"`
	Connected      bool            `json:"connected"`
	FCMRegistered  bool            `json:"fcmRegistered"`
	// Failing lists, for a NON_COMPLIANT device, each setting that does not
	// match and why (see Diff); empty in every other state.
	Failing []SettingFailure `json:"failing,omitempty"`
	// Integrity says whether the agent binary is on the server's
	// allowlist; see the Integrity constants.
	Integrity Integrity `json:"integrity"`
	// LastSeenAt is when the device last made an authenticated request
	// (kept to within a few seconds); absent when never seen since
	// enrollment.
	LastSeenAt *time.Time `json:"lastSeenAt,omitempty"`
	// Overdue is true when the device was not seen within two of its sync
	// intervals (since enrollment when never seen).
	Overdue bool `json:"overdue,omitempty"`
	// NonCompliantSince is when the device became NON_COMPLIANT, absent
	// while it is not failing. A policy edit that makes it STALE keeps it
	// (a deadline or an escalation does not restart with each edit); a
	// COMPLIANT report clears it. GET /devices?failingSince.lt= filters on
	// it (capability 8).
	NonCompliantSince *time.Time `json:"nonCompliantSince,omitempty"`
}

// DeviceList is one page of GET /devices. NextAfter is the cursor for the
// next page, empty on the last one.
type DeviceList struct {
	Devices   []DeviceStatus `json:"devices"`
	NextAfter string         `json:"nextAfter"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a machine-readable code and a human message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// DoorbellType is the type of every doorbell message.
const DoorbellType = "policy_changed"

// Doorbell is the MQTT payload that wakes an agent. It never carries policy
// content: the agent fetches the policy over HTTPS.
type Doorbell struct {
	Type    string `json:"type"`
	Version int64  `json:"version"`
}

// PolicyChangedTopic is the MQTT topic on which deviceID's doorbell rings.
func PolicyChangedTopic(deviceID string) string {
	return "devices/" + deviceID + "/policy_changed"
}

// PolicyChangedWildcard matches every device's doorbell topic.
const PolicyChangedWildcard = "devices/+/policy_changed"
