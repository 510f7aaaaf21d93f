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
}

// Report is an accepted compliance report and when it arrived.
type Report struct {
	proto.ComplianceReport
	ReceivedAt time.Time `json:"receivedAt"`
}

// DeviceStore holds devices and their credentials.
type DeviceStore interface {
	// CreateDevice stores a new device. It returns ErrExists when the id or
	// the secret hash is already in use.
	CreateDevice(ctx context.Context, d Device) error
	// Device returns one device, or ErrNotFound.
	Device(ctx context.Context, id string) (Device, error)
	// DeviceBySecretHash returns the device whose secret hashes to h, or
	// ErrNotFound.
	DeviceBySecretHash(ctx context.Context, h []byte) (Device, error)
	// Devices returns up to limit devices with ids greater than after, in
	// id order, keeping only those match accepts (nil keeps all). more says
	// whether further matching devices may exist after the last one returned.
	Devices(ctx context.Context, after string, limit int, match func(Device) bool) (devs []Device, more bool, err error)
}

// PolicyStore changes desired policies.
type PolicyStore interface {
	// UpdatePolicy replaces the device's desired settings with
	// change(current). When the result differs, the version grows by exactly
	// one and PolicyChangedAt is set to now in the same transaction; when it
	// does not, nothing is written and
	// changed is false. It returns the device as stored, or ErrNotFound.
	UpdatePolicy(ctx context.Context, id string, change func(proto.Settings) proto.Settings) (d Device, changed bool, err error)
}

// ReportStore accepts compliance reports.
type ReportStore interface {
	// SaveReport stores r as the device's last report. It returns
	// ErrNotFound for an unknown device and ErrVersionAhead, storing nothing,
	// when r.AppliedPolicyVersion is above the desired version.
	SaveReport(ctx context.Context, id string, r Report) error
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
	PolicyStore
	ReportStore
	TokenStore
	Close() error
}
