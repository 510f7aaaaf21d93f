package proto

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CommandsHeader is the response header of GET /devices/{id}/policy (200
// and 304) that tells the agent whether it has commands to fetch:
// CommandsPending or CommandsNone (capability 9). Without it (an older
// server) the agent fetches its commands at every sync.
const CommandsHeader = "Doorbell-Commands"

// The values of CommandsHeader.
const (
	CommandsPending = "pending"
	CommandsNone    = "none"
)

// CommandType names what a remote command asks a device to do. The
// CommandTypes catalog is the one definition of the types and their params:
// validation, the API schema and the docs follow from it.
type CommandType string

// The command types. Which ones a device carries out depends on its agent
// (see docs/COMMANDS.md); an agent answers ERROR ErrorCodeUnsupported at once
// for the rest.
const (
	CommandLock          CommandType = "lock"
	CommandReboot        CommandType = "reboot"
	CommandWipe          CommandType = "wipe"
	CommandResetPassword CommandType = "reset_password"
	CommandClearAppData  CommandType = "clear_app_data"
	CommandEnterKiosk    CommandType = "enter_kiosk"
	CommandExitKiosk     CommandType = "exit_kiosk"
	CommandRunScript     CommandType = "run_script"
	// CommandRefreshInventory asks for the whole inventory now
	// (capability 7); the agent carries it out with its collector.
	CommandRefreshInventory CommandType = "refresh_inventory"
)

// ParamKind is how a command param's value is checked. Every value travels as
// a JSON string.
type ParamKind string

// The param kinds.
const (
	ParamString     ParamKind = "string"     // any text up to MaxParamValue bytes
	ParamBool       ParamKind = "bool"       // "true" or "false"
	ParamDuration   ParamKind = "duration"   // a Go duration, within the spec's bounds
	ParamPackage    ParamKind = "package"    // an Android package name
	ParamScriptName ParamKind = "scriptName" // a file name in the agent's script directory
)

// ParamSpec describes one param of a command type.
type ParamSpec struct {
	Name     string
	Kind     ParamKind
	Required bool
	// Min and Max bound a ParamDuration.
	Min, Max time.Duration
	// Secret params are never shown back: Command.Redacted replaces them.
	Secret bool
	Doc    string
}

// CommandSpec is the catalog entry of one command type.
type CommandSpec struct {
	Type CommandType
	// Exclusive types allow one unfinished command of the type per device:
	// a second one is refused (409) while the first is not final.
	Exclusive bool
	// CancelsOthers: creating one cancels every other unfinished command
	// of the device (a wipe makes the rest pointless).
	CancelsOthers bool
	// Destructive types lose the device's data: the console and the CLI
	// ask the operator to type a confirmation first.
	Destructive bool
	Params      []ParamSpec
	Doc         string
}

// Limits of the command contract.
const (
	// MaxParamValue bounds one param value, in bytes.
	MaxParamValue = 1024
	// MaxCommandOutput bounds CommandResult.Output, in bytes; agents
	// truncate to it (run_script's output is cut there).
	MaxCommandOutput = 16 << 10
	// MaxCommandMessage bounds CommandResult.Message, in bytes.
	MaxCommandMessage = 1024
	// MaxDeliveredCommands is how many commands one device fetch returns
	// at most (oldest first); the agent fetches again after running them.
	MaxDeliveredCommands = 16
	// MaxIdempotencyKey bounds CommandRequest.IdempotencyKey, in bytes.
	MaxIdempotencyKey = 128
	// MinCommandExpiry, MaxCommandExpiry and DefaultCommandExpiry bound
	// CommandRequest.ExpiresIn.
	MinCommandExpiry     = time.Second
	MaxCommandExpiry     = 30 * 24 * time.Hour
	DefaultCommandExpiry = 10 * time.Minute
	// DefaultScriptTimeout and MaxScriptTimeout bound run_script's
	// "timeout" param.
	DefaultScriptTimeout = time.Minute
	MaxScriptTimeout     = 10 * time.Minute
)

// CommandTypes is the catalog of command types, in display order.
var CommandTypes = []CommandSpec{
	{Type: CommandLock, Exclusive: true,
		Doc: "Lock the screen now (Android lockNow; Linux loginctl lock-sessions)."},
	{Type: CommandReboot,
		Doc: "Reboot the device (Android reboot, device owner only; Linux systemctl reboot)."},
	{Type: CommandWipe, Exclusive: true, CancelsOthers: true, Destructive: true,
		Params: []ParamSpec{{Name: "keepFactoryResetProtection", Kind: ParamBool, Doc: "keep factory-reset protection data (Android); default false"}},
		Doc:    "Erase the device (Android wipeData). Cancels every other unfinished command of the device."},
	{Type: CommandResetPassword,
		Params: []ParamSpec{{Name: "password", Kind: ParamString, Required: true, Secret: true, Doc: "the new password; never shown back"}},
		Doc:    "Set a new device password (Android resetPasswordWithToken)."},
	{Type: CommandClearAppData,
		Params: []ParamSpec{{Name: "package", Kind: ParamPackage, Required: true, Doc: "the app's package name"}},
		Doc:    "Clear one app's data (Android clearApplicationUserData)."},
	{Type: CommandEnterKiosk, Doc: "Enter lock task (kiosk) mode (Android)."},
	{Type: CommandExitKiosk, Doc: "Leave lock task (kiosk) mode (Android)."},
	{Type: CommandRunScript,
		Params: []ParamSpec{
			{Name: "script", Kind: ParamScriptName, Required: true, Doc: "the name of a script an administrator placed in the agent's script directory"},
			{Name: "timeout", Kind: ParamDuration, Min: time.Second, Max: MaxScriptTimeout, Doc: "how long the script may run; default 1m"},
		},
		Doc: "Run a script an administrator placed in the agent's script directory, by name (Linux); never a command line from the server."},
	{Type: CommandRefreshInventory,
		Doc: "Collect and upload the whole inventory now, then answer ACKNOWLEDGED (docs/INVENTORY.md; agents of capability 7; older ones answer unsupported and upload through the Doorbell-Inventory header)."},
}

// CommandParamInfo is one param of a command type as GET /command-types
// shows it.
type CommandParamInfo struct {
	Name     string    `json:"name"`
	Kind     ParamKind `json:"kind"`
	Required bool      `json:"required"`
	// Secret params are never shown back (a password).
	Secret bool   `json:"secret"`
	Doc    string `json:"doc"`
	// Min and Max bound a duration param, as Go durations ("1s").
	Min string `json:"min,omitempty"`
	Max string `json:"max,omitempty"`
}

// CommandTypeInfo is one catalog entry as GET /command-types shows it.
type CommandTypeInfo struct {
	Type          CommandType        `json:"type"`
	Doc           string             `json:"doc"`
	Exclusive     bool               `json:"exclusive"`
	CancelsOthers bool               `json:"cancelsOthers"`
	Destructive   bool               `json:"destructive"`
	Params        []CommandParamInfo `json:"params"`
}

// CommandCatalog is the answer to GET /command-types: the command
// catalog in display order, from which the console's and the CLI's
// command forms are built.
type CommandCatalog struct {
	Commands []CommandTypeInfo `json:"commands"`
}

// CommandCatalogInfo returns CommandTypes as GET /command-types shows it.
func CommandCatalogInfo() CommandCatalog {
	out := CommandCatalog{Commands: make([]CommandTypeInfo, 0, len(CommandTypes))}
	for _, s := range CommandTypes {
		info := CommandTypeInfo{Type: s.Type, Doc: s.Doc, Exclusive: s.Exclusive, CancelsOthers: s.CancelsOthers,
			Destructive: s.Destructive, Params: make([]CommandParamInfo, 0, len(s.Params))}
		for _, p := range s.Params {
			pi := CommandParamInfo{Name: p.Name, Kind: p.Kind, Required: p.Required, Secret: p.Secret, Doc: p.Doc}
			if p.Min > 0 {
				pi.Min = p.Min.String()
			}
			if p.Max > 0 {
				pi.Max = p.Max.String()
			}
			info.Params = append(info.Params, pi)
		}
		out.Commands = append(out.Commands, info)
	}
	return out
}

// LookupCommand returns the catalog entry of t.
func LookupCommand(t CommandType) (CommandSpec, bool) {
	for _, s := range CommandTypes {
		if s.Type == t {
			return s, true
		}
	}
	return CommandSpec{}, false
}

// CommandTypeNames lists the command types in catalog order.
func CommandTypeNames() []string {
	out := make([]string, len(CommandTypes))
	for i, s := range CommandTypes {
		out[i] = string(s.Type)
	}
	return out
}

var (
	packageRE    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$`)
	scriptNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// ValidScriptName reports whether name may name a script: letters, digits,
// '.', '_' and '-', not starting with '.', no path separators, at most 128
// bytes.
func ValidScriptName(name string) bool { return scriptNameRE.MatchString(name) }

// ValidateParams checks params against the spec: no unknown names, every
// required one present, every value of its kind.
func (s CommandSpec) ValidateParams(params map[string]string) error {
	for name := range params {
		if !slices.ContainsFunc(s.Params, func(p ParamSpec) bool { return p.Name == name }) {
			return fmt.Errorf("%s takes no param %q", s.Type, name)
		}
	}
	for _, p := range s.Params {
		v, ok := params[p.Name]
		if !ok {
			if p.Required {
				return fmt.Errorf("%s needs param %q", s.Type, p.Name)
			}
			continue
		}
		if err := p.check(v); err != nil {
			return fmt.Errorf("%s param %q: %w", s.Type, p.Name, err)
		}
	}
	return nil
}

func (p ParamSpec) check(v string) error {
	if len(v) > MaxParamValue {
		return fmt.Errorf("longer than %d bytes", MaxParamValue)
	}
	switch p.Kind {
	case ParamString:
		if v == "" && p.Required {
			return errors.New("is empty")
		}
	case ParamBool:
		if v != "true" && v != "false" {
			return errors.New(`must be "true" or "false"`)
		}
	case ParamDuration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("not a duration such as 30s or 5m")
		}
		if d < p.Min || d > p.Max {
			return fmt.Errorf("must be from %v to %v", p.Min, p.Max)
		}
	case ParamPackage:
		if !packageRE.MatchString(v) {
			return errors.New("not a package name such as com.example.app")
		}
	case ParamScriptName:
		if !ValidScriptName(v) {
			return errors.New("not a script name (letters, digits, '.', '_', '-'; no '/')")
		}
	}
	return nil
}

// CommandState is where a command is in its life.
//
//	PENDING ─▶ DELIVERED ─▶ ACKNOWLEDGED | ERROR | NOT_NOW
//	   │           │                                 │ (offered again)
//	   └───────────┴──────▶ EXPIRED | CANCELLED ◀───┘
//
// PENDING: queued, the device has not fetched it. DELIVERED: the device
// fetched it. NOT_NOW: the device cannot run it now and will be offered it
// again. ACKNOWLEDGED, ERROR, EXPIRED and CANCELLED are final.
type CommandState string

// The command states.
const (
	CommandPending      CommandState = "PENDING"
	CommandDelivered    CommandState = "DELIVERED"
	CommandAcknowledged CommandState = "ACKNOWLEDGED"
	CommandError        CommandState = "ERROR"
	CommandNotNow       CommandState = "NOT_NOW"
	CommandExpired      CommandState = "EXPIRED"
	CommandCancelled    CommandState = "CANCELLED"
)

// CommandStates lists every CommandState in life order.
var CommandStates = []CommandState{CommandPending, CommandDelivered, CommandNotNow, CommandAcknowledged, CommandError, CommandExpired, CommandCancelled}

// Valid reports whether s is a command state.
func (s CommandState) Valid() bool { return slices.Contains(CommandStates, s) }

// Final reports whether s is an end state: nothing changes a command after.
func (s CommandState) Final() bool {
	switch s {
	case CommandAcknowledged, CommandError, CommandExpired, CommandCancelled:
		return true
	}
	return false
}

// Executable reports whether a device may still run a command in s.
func (s CommandState) Executable() bool {
	return s == CommandPending || s == CommandDelivered || s == CommandNotNow
}

// IsResult reports whether a device may answer with s.
func (s CommandState) IsResult() bool {
	return s == CommandAcknowledged || s == CommandError || s == CommandNotNow
}

// Error codes agents put in CommandResult.ErrorCode.
const (
	// ErrorCodeUnsupported: this agent cannot run this type.
	ErrorCodeUnsupported = "unsupported"
	// ErrorCodeBadParams: the params are unusable on this device.
	ErrorCodeBadParams = "bad_params"
	// ErrorCodeFailed: the device tried and failed.
	ErrorCodeFailed = "failed"
	// ErrorCodeTimeout: run_script's script ran past its timeout.
	ErrorCodeTimeout = "timeout"
	// ErrorCodeInterrupted: the agent stopped while running the command
	// (a crash or a power loss); it is never run again.
	ErrorCodeInterrupted = "interrupted"
)

// CommandRequest is the body of POST /devices/{id}/commands and POST
// /groups/{id}/commands.
type CommandRequest struct {
	Type   CommandType       `json:"type"`
	Params map[string]string `json:"params,omitempty"`
	// ExpiresIn is a Go duration from MinCommandExpiry to
	// MaxCommandExpiry; empty means DefaultCommandExpiry.
	ExpiresIn string `json:"expiresIn,omitempty"`
	// IdempotencyKey, when set, makes a repeated request (same device,
	// same key) return the command the first one created.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// Validate checks r and returns its expiry.
func (r CommandRequest) Validate() (time.Duration, error) {
	spec, ok := LookupCommand(r.Type)
	if !ok {
		return 0, fmt.Errorf("unknown command type %q; one of %s", r.Type, strings.Join(CommandTypeNames(), ", "))
	}
	if err := spec.ValidateParams(r.Params); err != nil {
		return 0, err
	}
	if len(r.IdempotencyKey) > MaxIdempotencyKey {
		return 0, fmt.Errorf("idempotencyKey is longer than %d bytes", MaxIdempotencyKey)
	}
	if r.ExpiresIn == "" {
		return DefaultCommandExpiry, nil
	}
	d, err := time.ParseDuration(r.ExpiresIn)
	if err != nil {
		return 0, fmt.Errorf("expiresIn %q is not a duration such as 10m or 24h", r.ExpiresIn)
	}
	if d < MinCommandExpiry || d > MaxCommandExpiry {
		return 0, fmt.Errorf("expiresIn must be from %v to %v (30 days)", MinCommandExpiry, MaxCommandExpiry)
	}
	return d, nil
}

// Command is one remote command as the API shows it.
type Command struct {
	CommandID string            `json:"commandId"`
	DeviceID  string            `json:"deviceId"`
	Type      CommandType       `json:"type"`
	Params    map[string]string `json:"params,omitempty"`
	State     CommandState      `json:"state"`
	CreatedAt time.Time         `json:"createdAt"`
	ExpiresAt time.Time         `json:"expiresAt"`
	// Timestamps holds when the command last entered each state it
	// reached (PENDING is its creation).
	Timestamps map[CommandState]time.Time `json:"timestamps"`
	// GroupID is set on commands created by POST /groups/{id}/commands.
	GroupID        string `json:"groupId,omitempty"`
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// CreatedBy is the operator token's name.
	CreatedBy string `json:"createdBy,omitempty"`
	// Result is the device's last answer (ACKNOWLEDGED, ERROR, NOT_NOW).
	Result *CommandResult `json:"result,omitempty"`
}

// Redacted returns c with its secret params replaced by "***": what every
// answer but the one to its device shows.
func (c Command) Redacted() Command {
	spec, _ := LookupCommand(c.Type)
	for _, p := range spec.Params {
		if _, ok := c.Params[p.Name]; ok && p.Secret {
			params := make(map[string]string, len(c.Params))
			for k, v := range c.Params {
				params[k] = v
			}
			params[p.Name] = "***"
			c.Params = params
		}
	}
	return c
}

// CommandResult is the body a device posts to POST
// /devices/{id}/commands/{commandId}/result: ACKNOWLEDGED, ERROR (with an
// ErrorCode) or NOT_NOW.
type CommandResult struct {
	State     CommandState `json:"state"`
	ErrorCode string       `json:"errorCode,omitempty"`
	Message   string       `json:"message,omitempty"`
	Output    string       `json:"output,omitempty"`
}

// Validate checks a result a device sent.
func (r CommandResult) Validate() error {
	if !r.State.IsResult() {
		return fmt.Errorf("state must be ACKNOWLEDGED, ERROR or NOT_NOW, not %q", r.State)
	}
	if r.State == CommandError && r.ErrorCode == "" {
		return errors.New("an ERROR result needs an errorCode")
	}
	if len(r.ErrorCode) > 64 {
		return errors.New("errorCode is longer than 64 bytes")
	}
	if len(r.Message) > MaxCommandMessage {
		return fmt.Errorf("message is longer than %d bytes", MaxCommandMessage)
	}
	if len(r.Output) > MaxCommandOutput {
		return fmt.Errorf("output is longer than %d bytes", MaxCommandOutput)
	}
	return nil
}

// Truncate cuts s to at most n bytes on a UTF-8 boundary, marking a cut
// with a trailing "…[truncated]" within the n bytes.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…[truncated]"
	cut := n - len(mark)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + mark
}

// CommandList is one page of GET /devices/{id}/commands, newest first.
// NextAfter is the cursor for the next page, empty on the last one.
type CommandList struct {
	Commands  []Command `json:"commands"`
	NextAfter string    `json:"nextAfter"`
}

// GroupCommandResponse is the 202 answer to POST /groups/{id}/commands: one
// command per member, in member order.
type GroupCommandResponse struct {
	GroupID  string    `json:"groupId"`
	Commands []Command `json:"commands"`
}

// CommandEvent is the data of a "command" event on GET /events and the
// body of a "command.state_changed" webhook: the command after a change.
type CommandEvent struct {
	Type    string  `json:"type,omitempty"` // "command.state_changed" in a webhook
	Command Command `json:"command"`
	// From is the state before the change; empty for a new command.
	From CommandState `json:"from"`
}

// EventCommand is the server-sent event name carrying a CommandEvent.
const EventCommand = "command"

// WebhookCommandStateChanged is the webhook type of a CommandEvent.
const WebhookCommandStateChanged = "command.state_changed"

// CommandDoorbellType is the type of the doorbell that says a command is
// waiting. It rings on the device's doorbell topic (PolicyChangedTopic;
// the name is historical) and over FCM with its own collapse key,
// CommandCollapseKey, so it never displaces a policy doorbell. It carries
// nothing else: the agent fetches its commands over HTTPS. Agents before
// capability 4 ignore it.
const CommandDoorbellType = "command_pending"

// CommandCollapseKey is the FCM collapse key of command doorbells.
const CommandCollapseKey = "command_pending"

// CommandDoorbell is the MQTT payload (and the FCM data) of a command
// doorbell: {"type":"command_pending"}.
type CommandDoorbell struct {
	Type string `json:"type"`
}

// FormatParams renders params as "k=v" pairs in name order, for the CLI and
// logs (values quoted).
func FormatParams(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(params[k])
	}
	return strings.Join(parts, " ")
}
