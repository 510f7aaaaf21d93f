package doorbell

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/proto"
)

// CommandJournalKey is the Store key of the agent's command journal (which
// commands it started, and the results not yet reported): a command is
// written there, with a durable Put, before the Executor runs it.
const CommandJournalKey = "commands"

// AfterReportKey is the Store key of the commands whose deferred part
// (Executor.RunAfterReport) has not run yet.
const AfterReportKey = "commands.afterReport"

// journalAdapter keeps the agent's command journal in the app's Store.
type journalAdapter struct{ s Store }

var _ agent.CommandJournal = journalAdapter{}

// Load implements agent.CommandJournal.
func (j journalAdapter) Load() (b []byte, err error) {
	defer recoverTo(&err)
	v, err := j.s.Get(CommandJournalKey)
	if err != nil || v == "" {
		return nil, err
	}
	return []byte(v), nil
}

// Save implements agent.CommandJournal. Store.Put is durable when it
// returns (SharedPreferences.commit).
func (j journalAdapter) Save(b []byte) (err error) {
	defer recoverTo(&err)
	return j.s.Put(CommandJournalKey, string(b))
}

// afterReport is a command whose result asked for RunAfterReport.
type afterReport struct {
	Type   string `json:"type"`
	Params string `json:"params"`
}

// executorAdapter turns the app's Executor into an agent.Executor: types the
// app does not support are answered unsupported without calling it; the rest
// go through agent.NewJSONExecutor. A result with "runAfterReport" is kept in
// the Store and its deferred part run by afterSync, at the end of the sync
// that reported it.
type executorAdapter struct {
	e     Executor // nil: no executor (afterSync does nothing)
	store Store
	log   Logger
	json  agent.Executor

	mu sync.Mutex // orders Store reads and writes of AfterReportKey
}

var _ agent.Executor = (*executorAdapter)(nil)

func newExecutorAdapter(e Executor, store Store, log Logger) *executorAdapter {
	x := &executorAdapter{e: e, store: store, log: log}
	x.json = agent.NewJSONExecutor(x.execute)
	return x
}

// Execute implements agent.Executor.
func (x *executorAdapter) Execute(ctx context.Context, cmd proto.Command) proto.CommandResult {
	if !x.supports(string(cmd.Type)) {
		return agent.Unsupported(cmd.Type)
	}
	return x.json.Execute(ctx, cmd)
}

func (x *executorAdapter) supports(t string) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ok = false
		}
	}()
	return x.e.Supports(t)
}

// execute calls the app, and records a deferred part before the result is
// returned (and so before it is reported): a result that says the work
// will be done is only reported once that work is sure to be attempted.
func (x *executorAdapter) execute(commandType, paramsJSON string) (out string, err error) {
	defer recoverTo(&err)
	out, err = x.e.Execute(commandType, paramsJSON)
	if err != nil {
		return "", err
	}
	var r struct {
		State          proto.CommandState `json:"state"`
		RunAfterReport bool               `json:"runAfterReport"`
	}
	if json.Unmarshal([]byte(out), &r) != nil || !r.RunAfterReport || r.State != proto.CommandAcknowledged {
		return out, nil // NewJSONExecutor judges the result
	}
	if secretParams(commandType) {
		// Its params would be kept in the Store until it runs.
		return "", fmt.Errorf("%s takes a secret param and cannot be deferred (runAfterReport)", commandType)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	pending, err := x.loadPending()
	if err != nil {
		return "", err
	}
	pending = append(pending, afterReport{Type: commandType, Params: paramsJSON})
	if err := x.savePending(pending); err != nil {
		return "", fmt.Errorf("not running %s: cannot record it first: %w", commandType, err)
	}
	return out, nil
}

// afterSync runs the deferred parts waiting in the Store, each at most
// once: it is removed from the Store before it runs.
func (x *executorAdapter) afterSync() {
	if x.e == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	pending, err := x.loadPending()
	if err != nil {
		x.logf("WARN", "reading the deferred commands: %v", err)
		return
	}
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		if err := x.savePending(pending); err != nil {
			x.logf("WARN", "not running the deferred part of %s: cannot record it first: %v", c.Type, err)
			return
		}
		x.logf("INFO", "running the deferred part of a command type=%s", c.Type)
		if err := x.runAfterReport(c); err != nil {
			x.logf("ERROR", "the deferred part of %s failed: %v", c.Type, err)
		}
	}
}

func (x *executorAdapter) runAfterReport(c afterReport) (err error) {
	defer recoverTo(&err)
	return x.e.RunAfterReport(c.Type, c.Params)
}

func (x *executorAdapter) loadPending() (p []afterReport, err error) {
	defer recoverTo(&err)
	v, err := x.store.Get(AfterReportKey)
	if err != nil || v == "" {
		return nil, err
	}
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return nil, fmt.Errorf("reading %s: %w", AfterReportKey, err)
	}
	return p, nil
}

func (x *executorAdapter) savePending(p []afterReport) (err error) {
	defer recoverTo(&err)
	if len(p) == 0 {
		return x.store.Delete(AfterReportKey)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return x.store.Put(AfterReportKey, string(b))
}

func (x *executorAdapter) logf(level, format string, args ...any) {
	if x.log == nil {
		return
	}
	defer func() { _ = recover() }()
	x.log.Log(level, fmt.Sprintf(format, args...))
}

// secretParams reports whether the command type has a secret param (a
// password), which must never be written to the Store.
func secretParams(commandType string) bool {
	spec, _ := proto.LookupCommand(proto.CommandType(commandType))
	for _, p := range spec.Params {
		if p.Secret {
			return true
		}
	}
	return false
}
