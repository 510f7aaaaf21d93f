package proto

import (
	"fmt"
	"time"
)

// Escalation is a group's rule for its members that stay NON_COMPLIANT:
// NotifyAfter that long, the server posts a device.escalated webhook;
// CommandAfter that long, it queues Command for the device (e.g. "lock").
// Each fires once per stretch of non-compliance. Durations are Go
// durations ("72h", "30m"); empty means no such step.
type Escalation struct {
	NotifyAfter  string `json:"notifyAfter,omitempty"`
	CommandAfter string `json:"commandAfter,omitempty"`
	Command      string `json:"command,omitempty"`
}

// MaxEscalationAfter bounds an escalation's delays.
const MaxEscalationAfter = 366 * 24 * time.Hour

// EscalationCommands are the commands an escalation may queue.
var EscalationCommands = []string{"lock"}

// ParseAfter returns an escalation delay; 0 for "".
func ParseAfter(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > MaxEscalationAfter {
		return 0, fmt.Errorf("%q is not a duration from 1s to %v (e.g. \"72h\")", s, MaxEscalationAfter)
	}
	return d, nil
}

// Validate checks the delays and that a command comes with commandAfter.
func (e Escalation) Validate() error {
	if _, err := ParseAfter(e.NotifyAfter); err != nil {
		return fmt.Errorf("notifyAfter: %w", err)
	}
	if _, err := ParseAfter(e.CommandAfter); err != nil {
		return fmt.Errorf("commandAfter: %w", err)
	}
	if (e.CommandAfter == "") != (e.Command == "") {
		return fmt.Errorf("commandAfter and command go together")
	}
	if e.Command != "" {
		ok := false
		for _, c := range EscalationCommands {
			ok = ok || c == e.Command
		}
		if !ok {
			return fmt.Errorf("command %q: the escalation commands are %v", e.Command, EscalationCommands)
		}
	}
	return nil
}

// EscalationEvent is the body of the device.escalated webhook.
type EscalationEvent struct {
	Type     string `json:"type"` // "device.escalated"
	DeviceID string `json:"deviceId"`
	GroupID  string `json:"groupId"`
	// Step is "notify" or "command".
	Step              string    `json:"step"`
	Command           string    `json:"command,omitempty"`
	NonCompliantSince time.Time `json:"nonCompliantSince"`
	At                time.Time `json:"at"`
}
