// Package store defines the server's storage interfaces. Each consumer asks for
// the narrowest interface it needs; every backend passes storetest.Run.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// ErrNotFound is returned when the named device does not exist.
var ErrNotFound = errors.New("not found")

// ErrExists is returned when creating a device whose id is taken.
var ErrExists = errors.New("already exists")

// ErrVersionAhead is returned when a report claims a policy version the server
// never issued.
var ErrVersionAhead = errors.New("applied version is ahead of the desired version")

// Device is the server's record of one enrolled device.
type Device struct {
	ID           string    `json:"id"`
	SecretHash   []byte    `json:"secretHash"`
	Model        string    `json:"model"`
	OSVersion    string    `json:"osVersion"`
	AgentVersion string    `json:"agentVersion"`
	EnrolledAt   time.Time `json:"enrolledAt"`
	// Policy is the desired policy; its version grows by one per change.
	Policy proto.DevicePolicy `json:"policy"`
	// PolicyChangedAt is when the desired version last grew (set in the
	// same transaction as the bump); zero until the first edit.
	PolicyChangedAt time.Time `json:"policyChangedAt,omitzero"`
	// Report is the last accepted report, nil when the device never reported.
	Report   *Report `json:"report,omitempty"`
	FCMToken string  `json:"fcmToken,omitempty"`
	// Override is the device's own policy layer, which wins over its
	// groups; Policy is derived from it and the groups (see policy.Effective).
	Override Layer `json:"override"`
	// Groups are the ids of the groups the device belongs to, sorted.
	Groups []string `json:"groups,omitempty"`
	// NonCompliantSince is when the device last became NON_COMPLIANT, zero
	// while it is COMPLIANT or never failed; FailingSince is, per failing
	// setting, since when it fails. A policy edit (STALE) keeps both; see
	// policy.TrackFailing, which every change of a device runs.
	NonCompliantSince time.Time            `json:"nonCompliantSince,omitzero"`
	FailingSince      map[string]time.Time `json:"failingSince,omitempty"`
	// ClientCert is true when the device was issued a certificate at
	// enrollment: over TLS it must then present it on every call and MQTT
	// login, besides its secret.
	ClientCert bool `json:"clientCert,omitempty"`
	// LastSeenAt is when the device last made an authenticated request,
	// as last flushed (SeenStore); zero when never.
	LastSeenAt time.Time `json:"lastSeenAt,omitzero"`
	// SyncIntervalSeconds is the sync interval the agent last told (at
	// enrollment or in a report); 0 when never told.
	SyncIntervalSeconds int64 `json:"syncIntervalSeconds,omitempty"`
	// Rev numbers the writes that returned a Change for this device, from
	// 1 at enrollment, in commit order (policy.Apply stamps it): the
	// change stream uses it to never show an older state after a newer.
	Rev int64 `json:"rev,omitempty"`
}

// Report is an accepted compliance report and when it arrived.
type Report struct {
	proto.ComplianceReport
	ReceivedAt time.Time `json:"receivedAt"`
	// SeenNonces holds the nonces of every accepted report whose ReportedAt
	// equals this one's (usually just this report's). Older nonces need no
	// memory: a report older than the last accepted one is refused anyway.
	// The store maintains it; callers leave it empty.
	SeenNonces []string `json:"seenNonces,omitempty"`
}

// DeviceStore holds devices and their credentials.
type DeviceStore interface {
	// CreateDevice stores a new device and returns what it committed. It
	// returns ErrExists when the id or the secret hash is already in use.
	CreateDevice(ctx context.Context, d Device) (Change, error)
	// Device returns one device, or ErrNotFound.
	Device(ctx context.Context, id string) (Device, error)
	// DeviceAuth returns what authenticating a request of device id needs,
	// read without decoding the device's record, or ErrNotFound. It
	// reflects every committed write at once: a deleted (revoked) device
	// is ErrNotFound from the moment its deletion returned.
	DeviceAuth(ctx context.Context, id string) (DeviceAuth, error)
	// DevicePolicy returns device id's desired policy (Device.Policy)
	// without the rest of its record, or ErrNotFound: what an agent's
	// policy poll answers.
	DevicePolicy(ctx context.Context, id string) (proto.DevicePolicy, error)
	// DeviceBySecretHash returns the device whose secret hashes to h, or
	// ErrNotFound.
	DeviceBySecretHash(ctx context.Context, h []byte) (Device, error)
	// Devices returns up to limit devices with ids greater than after, in
	// id order, keeping only those match accepts (nil keeps all). more says
	// whether further matching devices may exist after the last one returned.
	Devices(ctx context.Context, after string, limit int, match func(Device) bool) (devs []Device, more bool, err error)
}

// DeviceAuth is what the hot paths need to authenticate a device's request
// (every report, every policy poll, every MQTT login) and to answer a
// policy poll that carries the current ETag, without the device's record.
type DeviceAuth struct {
	ID         string
	SecretHash []byte
	// ClientCert is Device.ClientCert: over TLS the device must present
	// its certificate.
	ClientCert bool
	// PolicyVersion is the desired policy's version (Device.Policy.Version),
	// which is also the policy's ETag.
	PolicyVersion int64
}

// AuthOf is the DeviceAuth of d.
func AuthOf(d Device) DeviceAuth {
	return DeviceAuth{ID: d.ID, SecretHash: d.SecretHash, ClientCert: d.ClientCert, PolicyVersion: d.Policy.Version}
}

// Change is what one committed write did to one device: the device as
// stored after the write, its derived state then, and the transitions of
// that state the write recorded (none when the state did not change). Every
// write that changes a device returns it, so nothing re-reads after a write.
type Change struct {
	Device      Device
	State       proto.ComplianceState
	Failing     []proto.SettingFailure
	Transitions []proto.Transition
}

// ReportStore accepts compliance reports.
type ReportStore interface {
	// SaveReport stores r as the device's last report. It returns
	// ErrNotFound for an unknown device and ErrVersionAhead, storing nothing,
	// when r.AppliedPolicyVersion is above the desired version. When the
	// last accepted report carried a nonce, it also refuses, storing
	// nothing: a report without one (ErrNonceRequired), a report whose
	// ReportedAt is before the last accepted one (ErrStaleReport), and a
	// nonce already accepted (ErrReplayedNonce). The checks run in the same
	// transaction as the write, so two copies of one report never both
	// succeed. A report's SyncIntervalSeconds, when above 0, becomes the
	// device's. It returns what it committed.
	SaveReport(ctx context.Context, id string, r Report) (Change, error)
}

// TokenStore holds FCM registration tokens.
type TokenStore interface {
	// SetFCMToken sets the device's FCM token, or ErrNotFound.
	SetFCMToken(ctx context.Context, id, token string) error
	// DeleteFCMToken clears the device's token if it is still token, so a
	// late "unregistered" answer never deletes a newer token. An unknown
	// device is not an error.
	DeleteFCMToken(ctx context.Context, id, token string) error
}

// Store is everything the server keeps.
type Store interface {
	DeviceStore
	StateLister
	FailingLister
	ReportStore
	TokenStore
	SeenStore
	OverrideStore
	GroupStore
	HistoryStore
	RevocationStore
	OperatorTokenStore
	EnrollmentTokenStore
	AuditStore
	CommandStore
	RevisionStore
	EscalationStore
	InventoryStore
	Close() error
}
