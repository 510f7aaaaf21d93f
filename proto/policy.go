package proto

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// SettingNames lists every setting's JSON name in canonical order (the
// catalog's order, see Catalog). It is set from the catalog; read it, never
// modify it.
var SettingNames []string

// IsSetting reports whether name is a setting's JSON name.
func IsSetting(name string) bool { return slices.Contains(SettingNames, name) }

// ParseSetting decodes and checks one setting's JSON value against its
// catalog entry and returns it in canonical form. It fails for an unknown
// name, a wrong type or an out-of-range value; JSON null is not a value
// (callers give null its own meaning).
func ParseSetting(name string, raw json.RawMessage) (json.RawMessage, error) {
	d, ok := LookupSetting(name)
	if !ok {
		return nil, fmt.Errorf("unknown setting %q", name)
	}
	return d.ParseValue(raw)
}

// SettingValues is a partial set of settings by JSON name, each value in
// canonical JSON form (see ParseSetting).
type SettingValues map[string]json.RawMessage

// Values flattens s into the settings it manages (observes): cameraDisabled
// always, every other setting when not nil.
func (s Settings) Values() SettingValues {
	v := reflect.ValueOf(s)
	m := make(SettingValues, len(settingFields))
	for _, f := range settingFields {
		fv := v.Field(f.index)
		if f.omitNil && fv.IsNil() {
			continue
		}
		switch fv.Kind() {
		case reflect.Bool:
			m[f.name] = rawBool(fv.Bool())
			continue
		case reflect.Pointer:
			if e := fv.Elem(); e.Kind() == reflect.Bool {
				m[f.name] = rawBool(e.Bool())
				continue
			}
		}
		b, err := json.Marshal(fv.Interface())
		if err != nil {
			panic("proto: marshalling setting " + f.name + ": " + err.Error()) // plain data: cannot fail
		}
		m[f.name] = b
	}
	return m
}

// rawBool returns the canonical JSON of a bool: a fresh slice, as callers
// own the values they get.
func rawBool(b bool) json.RawMessage {
	if b {
		return json.RawMessage{'t', 'r', 'u', 'e'}
	}
	return json.RawMessage{'f', 'a', 'l', 's', 'e'}
}

// settingField is one field of Settings as encoding/json sees it.
type settingField struct {
	name    string
	index   int
	omitNil bool // a pointer with omitempty: absent when nil
}

// settingFields lists Settings' fields once, so Values (called several
// times per report on the server) flattens a Settings without a JSON round
// trip. TestValuesMatchesJSON checks it against encoding/json.
var settingFields = func() []settingField {
	t := reflect.TypeFor[Settings]()
	var out []settingField
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "-" || name == "" {
			panic("proto: Settings field " + sf.Name + " needs a JSON name")
		}
		omit := slices.Contains(strings.Split(opts, ","), "omitempty")
		if omit && sf.Type.Kind() != reflect.Pointer {
			panic("proto: Settings field " + sf.Name + ": omitempty only on pointers")
		}
		out = append(out, settingField{name: name, index: i, omitNil: omit})
	}
	return out
}()

// ToSettings builds Settings from v. Settings missing from v stay unmanaged
// (cameraDisabled false). Values must be canonical (see ParseSetting).
func (v SettingValues) ToSettings() (Settings, error) {
	var s Settings
	b, err := json.Marshal(map[string]json.RawMessage(v))
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(b, &s)
	return s, err
}

// Mode is a setting's remediation mode.
type Mode string

// The remediation modes. The zero value means ModeEnforce.
const (
	// ModeEnforce: the agent makes the device match (the default).
	ModeEnforce Mode = "enforce"
	// ModeMonitor: the agent only observes and reports; a mismatch makes
	// the device NON_COMPLIANT but nothing on the device changes.
	ModeMonitor Mode = "monitor"
	// ModeGuided: until a deadline (the policy's guided map, counted from
	// when the device first failed the setting) the agent only tells the
	// user what to fix and reports PENDING_USER with remediateBy; at the
	// deadline it enforces (capability 6).
	ModeGuided Mode = "guided"
)

// Valid reports whether m is "enforce", "monitor" or "guided".
func (m Mode) Valid() bool { return m == ModeEnforce || m == ModeMonitor || m == ModeGuided }

// Monitored reports whether the policy only monitors setting.
func (p DevicePolicy) Monitored(setting string) bool { return slices.Contains(p.Monitor, setting) }

// Reason says why a setting fails.
type Reason string

// The reasons a setting fails, in the order Diff decides them.
const (
	// ReasonUnsupported: the agent said it cannot enforce the setting.
	ReasonUnsupported Reason = "UNSUPPORTED"
	// ReasonEnforcementFailed: the agent tried and the device refused.
	ReasonEnforcementFailed Reason = "ENFORCEMENT_FAILED"
	// ReasonMismatch: the observed value differs from the desired one
	// (drift, or a monitored setting that is not as wanted).
	ReasonMismatch Reason = "MISMATCH"
	// ReasonPendingUser: a guided setting differs and its deadline has
	// not passed: the user was told to fix it by RemediateBy.
	ReasonPendingUser Reason = "PENDING_USER"
)

// SettingFailure is one failing setting of a device.
type SettingFailure struct {
	Setting  string          `json:"setting"`
	Expected json.RawMessage `json:"expected"`
	// Actual is the observed value, null when the agent did not report it.
	Actual json.RawMessage `json:"actual"`
	Reason Reason          `json:"reason"`
	// Detail is the agent's own explanation (why enforcement failed).
	Detail string `json:"detail,omitempty"`
	// Monitored is true when the setting is in monitor mode: the agent
	// was told not to fix it.
	Monitored bool `json:"monitored,omitempty"`
	// RemediateBy is, for PENDING_USER, when the agent enforces if the
	// user has not fixed it.
	RemediateBy *time.Time `json:"remediateBy,omitempty"`
	// FailingSince is, in a device's status, since when this setting has
	// been failing (the server's first failing report of it); absent
	// elsewhere (capability 8).
	FailingSince *time.Time `json:"failingSince,omitempty"`
}

var jsonNull = json.RawMessage("null")

// Diff lists, in catalog order, every setting desired manages that r
// does not satisfy:
//
//	the agent lists it as unsupported          -> UNSUPPORTED
//	observed differs, the agent lists it failed -> ENFORCEMENT_FAILED
//	observed differs                            -> MISMATCH
//
// A monitored setting fails like any other (MISMATCH, with Monitored set).
// Settings desired does not manage are ignored, whatever r reports. Versions
// are not compared; Evaluate does that.
//
// A guided setting that differs while the agent reports it pending (before
// its deadline) is PENDING_USER with RemediateBy.
func Diff(desired DevicePolicy, r ComplianceReport) []SettingFailure {
	out := DiffValues(desired.Settings.Values(), desired.Monitor, r.Settings.Values(), r.Unsupported, r.Failed)
	for i, f := range out {
		if by, ok := r.Pending[f.Setting]; ok && f.Reason == ReasonMismatch {
			if _, guided := desired.Guided[f.Setting]; guided {
				out[i].Reason, out[i].RemediateBy = ReasonPendingUser, &by
			}
		}
	}
	return out
}

// DiffValues is Diff on settings by name: want is what is managed, got what
// was observed, each compared with its catalog entry's Equal.
func DiffValues(want SettingValues, monitor []string, got SettingValues, unsupported []string, failed map[string]string) []SettingFailure {
	var out []SettingFailure
	for _, d := range Catalog() {
		name := d.Name
		exp, managed := want[name]
		if !managed {
			continue
		}
		act, ok := got[name]
		if !ok {
			act = jsonNull
		}
		f := SettingFailure{Setting: name, Expected: exp, Actual: act, Monitored: slices.Contains(monitor, name)}
		switch {
		case slices.Contains(unsupported, name):
			// An agent may say why in failed (capability 6).
			f.Reason, f.Detail = ReasonUnsupported, failed[name]
		case ok && d.EqualValues(exp, act):
			continue
		case failed[name] != "":
			f.Reason, f.Detail = ReasonEnforcementFailed, failed[name]
		default:
			f.Reason = ReasonMismatch
		}
		out = append(out, f)
	}
	return out
}

// Failing returns the failing settings of a device in state NON_COMPLIANT,
// and nil in every other state (a STALE report answers an older policy).
func Failing(desired DevicePolicy, report *ComplianceReport) []SettingFailure {
	_, f := EvaluateFailing(desired, report)
	return f
}

// EvaluateFailing is Evaluate and Failing together, comparing the settings
// once.
func EvaluateFailing(desired DevicePolicy, report *ComplianceReport) (ComplianceState, []SettingFailure) {
	switch {
	case report == nil:
		return StateUnknown, nil
	case report.AppliedPolicyVersion < desired.Version:
		return StateStale, nil
	}
	if f := Diff(desired, *report); len(f) > 0 {
		return StateNonCompliant, f
	}
	return StateCompliant, nil
}

// CauseGroup: a group change altered the device's effective policy. With
// CauseEnroll, CauseReport and CauseEdit (events.go) it names what changed
// a device's derived state in its history.
const CauseGroup EventCause = "group"

// Transition is one change of a device's derived compliance state. From is
// empty for the first state of a newly enrolled device.
type Transition struct {
	DeviceID string          `json:"deviceId,omitempty"`
	From     ComplianceState `json:"from"`
	To       ComplianceState `json:"to"`
	At       time.Time       `json:"at"`
	Cause    EventCause      `json:"cause"`
	// Failing is the failing settings after the transition (NON_COMPLIANT).
	Failing []SettingFailure `json:"failing,omitempty"`
}

// History is the answer to GET /devices/{id}/history: the newest
// transitions, oldest first.
type History struct {
	Transitions []Transition `json:"transitions"`
}

// DriftingSetting is how many NON_COMPLIANT devices fail one setting.
type DriftingSetting struct {
	Setting string `json:"setting"`
	Devices int64  `json:"devices"`
}

// ComplianceSummary is the answer to GET /compliance/summary. Counts has an
// entry for each of the four states; DriftingSettings is sorted by devices,
// most first, then by setting name, and lists only settings with devices.
type ComplianceSummary struct {
	Counts           map[ComplianceState]int64 `json:"counts"`
	DriftingSettings []DriftingSetting         `json:"driftingSettings"`
}

// PolicyExplanation is the answer to GET /devices/{id}/policy/explain: the
// effective policy and, per managed setting, its value, mode and source.
type PolicyExplanation struct {
	DeviceID string                        `json:"deviceId"`
	Policy   DevicePolicy                  `json:"policy"`
	Settings map[string]SettingExplanation `json:"settings"`
}

// SettingExplanation says where an effective setting comes from. Source is
// "device" (the device's own override), "group:<groupId>" or "default".
type SettingExplanation struct {
	Value  json.RawMessage `json:"value"`
	Mode   Mode            `json:"mode"`
	Source string          `json:"source"`
	// Deadline is a guided setting's deadline, from the layer that made
	// it guided.
	Deadline string `json:"deadline,omitempty"`
}

// Group is a named policy applied to its member devices. Higher Priority
// wins; on equal priority the group whose name sorts first (byte order)
// wins. Mode is the remediation mode of every setting of the group that
// Modes does not name.
type Group struct {
	GroupID   string          `json:"groupId"`
	Name      string          `json:"name"`
	Priority  int             `json:"priority"`
	Policy    SettingValues   `json:"policy"`
	Mode      Mode            `json:"mode"`
	Modes     map[string]Mode `json:"modes,omitempty"`
	DeviceIDs []string        `json:"deviceIds"`
	// Deadline is the deadline of the group's guided settings (capability
	// 6); Escalation what happens to members that stay NON_COMPLIANT.
	Deadline   string      `json:"deadline,omitempty"`
	Escalation *Escalation `json:"escalation,omitempty"`
}

// GroupList is the answer to GET /groups, groups in precedence order
// (winning group first).
type GroupList struct {
	Groups []Group `json:"groups"`
}

// GroupChange is the answer to every group edit: the group as stored and
// how many devices' effective policies changed (each bumped by one and rung).
type GroupChange struct {
	Group
	ChangedDevices int `json:"changedDevices"`
}

// GroupUpdate is the body of PATCH /groups/{id}: what is given changes,
// what is absent is kept. A new priority re-decides which group wins each
// setting for the members; a name or priority is no policy revision.
type GroupUpdate struct {
	Name     *string `json:"name,omitempty"`
	Priority *int    `json:"priority,omitempty"`
}

// GroupMembers is the body of PUT /groups/{id}/devices: the new member list,
// replacing the old one.
type GroupMembers struct {
	DeviceIDs []string `json:"deviceIds"`
}
