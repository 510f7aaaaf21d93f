package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Executor carries out remote commands on the device. Implementations must
// be safe for concurrent use; the agent runs one command at a time.
type Executor interface {
	// Execute runs cmd and returns the result to report: ACKNOWLEDGED,
	// ERROR with an ErrorCode, or NOT_NOW (the device cannot now; the
	// command is offered again later and may then run). A type the
	// executor does not carry out is answered ERROR
	// proto.ErrorCodeUnsupported at once, with no effect. The server
	// validated the params against the catalog; the executor checks what
	// only the device can (that a script exists). The agent cuts Output
	// and Message to the contract's limits.
	Execute(ctx context.Context, cmd proto.Command) proto.CommandResult
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, cmd proto.Command) proto.CommandResult

// Execute implements Executor.
func (f ExecutorFunc) Execute(ctx context.Context, cmd proto.Command) proto.CommandResult {
	return f(ctx, cmd)
}

// NewJSONExecutor adapts an executor that speaks strings, as a gomobile
// binding can: execute(commandType, paramsJSON) gets the type and the params
// as a JSON object of strings ("{}" when none) and returns the result as
// JSON ({"state","errorCode"?,"message"?,"output"?}), or an error, which is
// reported as ERROR "failed" with its text. An unreadable or invalid result
// is reported as ERROR "failed" too.
func NewJSONExecutor(execute func(commandType, paramsJSON string) (resultJSON string, err error)) Executor {
	return ExecutorFunc(func(_ context.Context, cmd proto.Command) proto.CommandResult {
		params := cmd.Params
		if params == nil {
			params = map[string]string{}
		}
		pj, err := json.Marshal(params)
		if err != nil {
			return failed(err.Error())
		}
		out, err := execute(string(cmd.Type), string(pj))
		if err != nil {
			return failed(err.Error())
		}
		var r proto.CommandResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return failed("the executor's result is not JSON: " + err.Error())
		}
		r = clampResult(r)
		if err := r.Validate(); err != nil {
			return failed("the executor's result is invalid: " + err.Error())
		}
		return r
	})
}

// Unsupported is the result for a command type the device does not carry
// out.
func Unsupported(t proto.CommandType) proto.CommandResult {
	return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeUnsupported,
		Message: fmt.Sprintf("this device does not support %q", string(t))}
}

// Acknowledged is the result of a command carried out.
func Acknowledged(output string) proto.CommandResult {
	return proto.CommandResult{State: proto.CommandAcknowledged, Output: output}
}

func failed(msg string) proto.CommandResult {
	return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeFailed, Message: msg}
}

// clampResult cuts a result's text to the contract's limits.
func clampResult(r proto.CommandResult) proto.CommandResult {
	r.Output = proto.Truncate(r.Output, proto.MaxCommandOutput)
	r.Message = proto.Truncate(r.Message, proto.MaxCommandMessage)
	r.ErrorCode = proto.Truncate(r.ErrorCode, 64)
	return r
}

// CommandJournal keeps the agent's command journal, one small document,
// across restarts: which commands were started and the results not yet
// reported. A command is recorded there, durably, before it runs, so a
// reboot or a crash while it runs never runs it twice.
type CommandJournal interface {
	// Load returns the saved document, nil when there is none.
	Load() ([]byte, error)
	// Save replaces the document; when it returns nil the document
	// survives a crash or power loss.
	Save([]byte) error
}

// FileCommandJournal is a CommandJournal in a file of the agent's state
// directory, written atomically and synced.
type FileCommandJournal struct{ path string }

// NewFileCommandJournal returns the journal <dir>/commands.json.
func NewFileCommandJournal(dir string) *FileCommandJournal {
	return &FileCommandJournal{path: filepath.Join(dir, "commands.json")}
}

// Load implements CommandJournal.
func (j *FileCommandJournal) Load() ([]byte, error) {
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Save implements CommandJournal.
func (j *FileCommandJournal) Save(b []byte) error {
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(j.path, b, 0o600)
}

// memJournal is the journal of an agent configured without one: commands
// run at most once per process only.
type memJournal struct {
	mu sync.Mutex
	b  []byte
}

func (m *memJournal) Load() ([]byte, error) { m.mu.Lock(); defer m.mu.Unlock(); return m.b, nil }
func (m *memJournal) Save(b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.b = append([]byte(nil), b...)
	return nil
}

// journalLimit bounds the journal: beyond it, the oldest reported entries
// are forgotten (the server never offers a finished command again).
const journalLimit = 256

// journalEntry is one command the agent started.
type journalEntry struct {
	ID       string               `json:"id"`
	DeviceID string               `json:"deviceId"`
	Type     proto.CommandType    `json:"type"`
	Started  time.Time            `json:"started"`
	Result   *proto.CommandResult `json:"result,omitempty"` // nil: started, never finished
	Reported bool                 `json:"reported,omitempty"`
}

type journalDoc struct {
	Entries []journalEntry `json:"entries"` // oldest first
}

// journal is the loaded CommandJournal. Only the goroutine holding the
// agent's sem uses it.
type journal struct {
	store  CommandJournal
	loaded bool
	doc    journalDoc
}

func (j *journal) load() error {
	if j.loaded {
		return nil
	}
	b, err := j.store.Load()
	if err != nil {
		return fmt.Errorf("loading the command journal: %w", err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &j.doc); err != nil {
			return fmt.Errorf("reading the command journal: %w", err)
		}
	}
	j.loaded = true
	return nil
}

func (j *journal) find(id string) *journalEntry {
	for i := range j.doc.Entries {
		if j.doc.Entries[i].ID == id {
			return &j.doc.Entries[i]
		}
	}
	return nil
}

func (j *journal) remove(id string) {
	out := j.doc.Entries[:0]
	for _, e := range j.doc.Entries {
		if e.ID != id {
			out = append(out, e)
		}
	}
	j.doc.Entries = out
}

func (j *journal) save() error {
	for len(j.doc.Entries) > journalLimit {
		i := 0
		for i < len(j.doc.Entries) && !j.doc.Entries[i].Reported {
			i++
		}
		if i == len(j.doc.Entries) {
			i = 0 // all unreported: forget the oldest anyway, memory stays bounded
		}
		j.doc.Entries = append(j.doc.Entries[:i], j.doc.Entries[i+1:]...)
	}
	b, err := json.Marshal(j.doc)
	if err != nil {
		return err
	}
	if err := j.store.Save(b); err != nil {
		return fmt.Errorf("saving the command journal: %w", err)
	}
	return nil
}

// interruptedResult is what a command the journal says was started but
// never finished reports after a restart: a reboot that restarted the
// agent did its job; anything else may or may not have happened, and is
// never run again.
func interruptedResult(e journalEntry) proto.CommandResult {
	if e.Type == proto.CommandReboot {
		return proto.CommandResult{State: proto.CommandAcknowledged, Message: "the device restarted"}
	}
	return proto.CommandResult{State: proto.CommandError, ErrorCode: proto.ErrorCodeInterrupted,
		Message: "the agent stopped while the command ran; it is not run again"}
}

// maxCommandRounds bounds the fetches of one sync when the server keeps
// answering full pages.
const maxCommandRounds = 8

// runCommands reports the results a previous run could not, then, when
// fetch is set, fetches the device's commands and runs each new one at
// most once, reporting every result. The caller holds sem. It returns how
// many commands ran.
func (a *Agent) runCommands(ctx context.Context, id Identity, fetch bool) (int, error) {
	if err := a.journal.load(); err != nil {
		return 0, err
	}
	cred := id.Credentials()
	// Results a previous run could not report.
	for _, e := range a.journal.doc.Entries {
		if e.DeviceID == id.DeviceID && e.Result != nil && !e.Reported {
			a.report(ctx, cred, e.ID, *e.Result)
		}
	}
	ran := 0
	if !fetch {
		return ran, nil
	}
	for range maxCommandRounds {
		cmds, err := a.client.Commands(ctx, cred)
		if err != nil {
			return ran, err
		}
		for _, c := range cmds {
			if ctx.Err() != nil {
				return ran, ctx.Err()
			}
			if a.runCommand(ctx, cred, c) {
				ran++
			}
		}
		if len(cmds) < proto.MaxDeliveredCommands {
			break
		}
	}
	return ran, nil
}

// runCommand runs one delivered command unless the journal knows it, and
// reports its result. It reports whether the command ran now.
func (a *Agent) runCommand(ctx context.Context, cred Credentials, c proto.Command) bool {
	log := a.log.With("deviceId", cred.DeviceID, "commandId", c.CommandID, "type", string(c.Type))
	if e := a.journal.find(c.CommandID); e != nil {
		if e.Result == nil {
			r := interruptedResult(*e)
			e.Result = &r
			log.Warn("command was interrupted by a restart; not running it again", "result", string(r.State))
			if err := a.journal.save(); err != nil {
				log.Warn("saving the command journal", "err", err)
			}
		}
		a.report(ctx, cred, c.CommandID, *e.Result)
		return false
	}
	// Recorded, durably, before it runs: a crash from here on never runs
	// it again.
	a.journal.doc.Entries = append(a.journal.doc.Entries, journalEntry{ID: c.CommandID, DeviceID: cred.DeviceID, Type: c.Type, Started: a.clock.Now().UTC()})
	if err := a.journal.save(); err != nil {
		a.journal.remove(c.CommandID)
		log.Warn("not running the command: cannot record it first", "err", err)
		return false
	}
	log.Info("running command")
	start := a.clock.Now()
	r := a.execute(ctx, c)
	log.Info("command done", "state", string(r.State), "errorCode", r.ErrorCode, "took", a.clock.Now().Sub(start))
	if r.State == proto.CommandNotNow {
		// It did not run: the next offer may run it.
		a.journal.remove(c.CommandID)
	} else if e := a.journal.find(c.CommandID); e != nil {
		e.Result = &r
	}
	if err := a.journal.save(); err != nil {
		log.Warn("saving the command journal", "err", err)
	}
	a.report(ctx, cred, c.CommandID, r)
	return true
}

// execute runs c through the executor, or answers unsupported without one.
// The agent carries out refresh_inventory itself, with its Collector.
func (a *Agent) execute(ctx context.Context, c proto.Command) (r proto.CommandResult) {
	if c.Type == proto.CommandRefreshInventory {
		return clampResult(a.refreshInventoryCommand(ctx))
	}
	if a.executor == nil {
		return Unsupported(c.Type)
	}
	defer func() {
		if p := recover(); p != nil {
			r = failed(fmt.Sprintf("the executor panicked: %v", p))
		}
	}()
	r = clampResult(a.executor.Execute(ctx, c))
	if err := r.Validate(); err != nil {
		return failed("the executor's result is invalid: " + err.Error())
	}
	return r
}

// report posts a result and marks it reported in the journal once the
// server took it, or refused it for good (a 4xx: the command was cancelled,
// expired, or is unknown); a transient failure is retried by the next sync.
func (a *Agent) report(ctx context.Context, cred Credentials, commandID string, r proto.CommandResult) {
	err := a.client.PostCommandResult(ctx, cred, commandID, r)
	if err != nil {
		if s := StatusOf(err); s == 0 || s >= 500 || s == http.StatusTooManyRequests {
			a.log.Warn("reporting a command result; retrying at the next sync", "commandId", commandID, "err", err)
			return
		}
		a.log.Warn("the server refused a command result", "commandId", commandID, "err", err)
	}
	if e := a.journal.find(commandID); e != nil && !e.Reported {
		e.Reported = true
		if err := a.journal.save(); err != nil {
			a.log.Warn("saving the command journal", "err", err)
		}
	}
}

// Commands fetches the commands the device may still execute (GET
// /devices/{id}/commands with the device's credentials), oldest first; the
// server marks them DELIVERED.
func (c *Client) Commands(ctx context.Context, cred Credentials) ([]proto.Command, error) {
	var list proto.CommandList
	if _, err := c.do(ctx, http.MethodGet, devicePath(cred.DeviceID, "commands"), cred.Secret, nil, nil, &list, http.StatusOK); err != nil {
		return nil, fmt.Errorf("fetching commands: %w", err)
	}
	return list.Commands, nil
}

// PostCommandResult reports a command's result (POST
// /devices/{id}/commands/{commandId}/result).
func (c *Client) PostCommandResult(ctx context.Context, cred Credentials, commandID string, r proto.CommandResult) error {
	path := devicePath(cred.DeviceID, "commands/"+url.PathEscape(commandID)+"/result")
	if _, err := c.do(ctx, http.MethodPost, path, cred.Secret, nil, r, nil, http.StatusOK, http.StatusNoContent); err != nil {
		return fmt.Errorf("reporting command %s: %w", commandID, err)
	}
	return nil
}
