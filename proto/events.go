package proto

import "time"

// DeviceEvent is one message of the operator's live stream, GET /events:
// the device as the server knows it just after something about it changed.
// It carries state, not a delta, so a client that misses one event is right
// again with the next one for the same device.
type DeviceEvent struct {
	DeviceID       string          `json:"deviceId"`
	State          ComplianceState `json:"state"`
	DesiredVersion int64           `json:"desiredVersion"`
	AppliedVersion int64           `json:"appliedVersion"`
	Connected      bool            `json:"connected"`
	LastReportAt   *time.Time      `json:"lastReportAt,omitempty"`
	// Cause says what happened: one of the EventCause values.
	Cause EventCause `json:"cause"`
}

// EventCause names what produced a DeviceEvent.
type EventCause string

// The causes of a DeviceEvent.
const (
	CauseEnroll     EventCause = "enroll"     // the device enrolled
	CauseEdit       EventCause = "edit"       // an operator changed its desired policy
	CauseReport     EventCause = "report"     // the device reported
	CauseConnect    EventCause = "connect"    // the device opened an MQTT session
	CauseDisconnect EventCause = "disconnect" // the device's MQTT session ended
)

// Server-sent event names on GET /events. The stream opens with a
// "retry: <ms>" line; every message is "event: <name>\ndata: <JSON>\n\n".
const (
	// EventReady is sent once, first, when the subscription is in place:
	// every change after it will be streamed, so a client loads its view
	// after receiving it. Data: {}.
	EventReady = "ready"
	// EventDevice carries a DeviceEvent.
	EventDevice = "device"
	// EventResync says the client fell behind and events were dropped; it
	// must reload what it shows. Data: {}.
	EventResync = "resync"
)
