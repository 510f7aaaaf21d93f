package agent

import (
	"fmt"
	"sort"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
)

// SettingsError is returned by an Enforcer's Enforce when some settings
// could not be enforced. Failed maps each such setting's JSON name (e.g.
// "cameraDisabled") to why; the agent still observes and reports, and the
// server lists those settings as ENFORCEMENT_FAILED.
type SettingsError struct {
	Failed map[string]string
}

func (e *SettingsError) Error() string {
	names := make([]string, 0, len(e.Failed))
	for n := range e.Failed {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s: %s", n, e.Failed[n]))
	}
	return "enforcing settings: " + strings.Join(parts, "; ")
}

// Supporter is implemented by an Enforcer that cannot enforce every setting
// (a Linux host has no status bar). The agent reports the managed settings it
// does not support as unsupported instead of trying them.
type Supporter interface {
	// Supports reports whether the enforcer can enforce the setting with
	// this JSON name.
	Supports(setting string) bool
}

// UnsupportedReasoner is a Supporter that can say why it does not support
// a setting on this device ("systemd is not running this host"). The agent
// sends the reason with the setting's name in the report's failed map, and
// the server shows it as the UNSUPPORTED setting's detail.
type UnsupportedReasoner interface {
	UnsupportedReason(setting string) string
}

// Scoper is implemented by an Enforcer whose read-back depends on what the
// policy names: a Linux host reports the packages and units the policy
// lists, and the host settings the policy manages, monitored ones included
// (which Enforce receives as unmanaged). The agent calls Scope with the
// whole desired policy before every Enforce and Observe of a sync.
type Scoper interface {
	Scope(policy proto.Settings)
}
