package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/doorbell-mdm/doorbell/proto"
)

// FileCommandsKey is the key of FileEnforcer's file under which executed
// commands are recorded, oldest first, at most fileCommandsLimit of them.
const FileCommandsKey = "commands"

const fileCommandsLimit = 100

// ExecutedCommand is a command a stand-in device (FileEnforcer,
// MemoryEnforcer) carried out.
type ExecutedCommand struct {
	CommandID string            `json:"commandId"`
	Type      proto.CommandType `json:"type"`
	Params    map[string]string `json:"params,omitempty"`
}

var (
	_ Executor = (*FileEnforcer)(nil)
	_ Executor = (*MemoryEnforcer)(nil)
)

// Execute implements Executor: the stand-in device carries out every
// command type by recording it in its file under FileCommandsKey (so tests
// and a watching operator see it) and acknowledging it. A file that says
// "locked": true answers NOT_NOW, like a device that cannot now.
func (e *FileEnforcer) Execute(ctx context.Context, cmd proto.Command) proto.CommandResult {
	if err := ctx.Err(); err != nil {
		return proto.CommandResult{State: proto.CommandNotNow, Message: err.Error()}
	}
	if _, ok := proto.LookupCommand(cmd.Type); !ok {
		return Unsupported(cmd.Type)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	doc, err := e.read()
	if err != nil {
		return failed(fmt.Sprintf("reading %s: %v", e.path, err))
	}
	if raw, ok := doc["locked"]; ok {
		var locked bool
		if json.Unmarshal(raw, &locked) == nil && locked {
			return proto.CommandResult{State: proto.CommandNotNow, Message: "the device is locked"}
		}
	}
	var done []ExecutedCommand
	if raw, ok := doc[FileCommandsKey]; ok {
		if err := json.Unmarshal(raw, &done); err != nil {
			done = nil // not ours: start over
		}
	}
	done = append(done, ExecutedCommand{CommandID: cmd.CommandID, Type: cmd.Type, Params: cmd.Params})
	if len(done) > fileCommandsLimit {
		done = done[len(done)-fileCommandsLimit:]
	}
	raw, err := json.Marshal(done)
	if err != nil {
		return failed(err.Error())
	}
	doc[FileCommandsKey] = raw
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return failed(err.Error())
	}
	if err := writeFileAtomic(e.path, append(out, '\n'), 0o644); err != nil {
		return failed(fmt.Sprintf("writing %s: %v", e.path, err))
	}
	return Acknowledged("recorded in " + e.path)
}

// ExecutedCommands reads the commands recorded in the file, oldest first.
func (e *FileEnforcer) ExecutedCommands() ([]ExecutedCommand, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	doc, err := e.read()
	if err != nil {
		return nil, err
	}
	var done []ExecutedCommand
	if raw, ok := doc[FileCommandsKey]; ok {
		if err := json.Unmarshal(raw, &done); err != nil {
			return nil, fmt.Errorf("%s: %q is not a list of commands: %w", e.path, FileCommandsKey, err)
		}
	}
	return done, nil
}

// memCommands is MemoryEnforcer's record of executed commands.
type memCommands struct {
	mu   sync.Mutex
	done []ExecutedCommand
}

// Execute implements Executor: it records every command type and
// acknowledges it; a locked device answers NOT_NOW.
func (m *MemoryEnforcer) Execute(ctx context.Context, cmd proto.Command) proto.CommandResult {
	if err := ctx.Err(); err != nil {
		return proto.CommandResult{State: proto.CommandNotNow, Message: err.Error()}
	}
	if _, ok := proto.LookupCommand(cmd.Type); !ok {
		return Unsupported(cmd.Type)
	}
	m.mu.Lock()
	locked := m.locked
	m.mu.Unlock()
	if locked {
		return proto.CommandResult{State: proto.CommandNotNow, Message: "the device is locked"}
	}
	m.cmds.mu.Lock()
	defer m.cmds.mu.Unlock()
	m.cmds.done = append(m.cmds.done, ExecutedCommand{CommandID: cmd.CommandID, Type: cmd.Type, Params: cmd.Params})
	if len(m.cmds.done) > fileCommandsLimit {
		m.cmds.done = m.cmds.done[len(m.cmds.done)-fileCommandsLimit:]
	}
	return Acknowledged("")
}

// ExecutedCommands returns the commands carried out, oldest first (the
// newest 100).
func (m *MemoryEnforcer) ExecutedCommands() []ExecutedCommand {
	m.cmds.mu.Lock()
	defer m.cmds.mu.Unlock()
	return append([]ExecutedCommand(nil), m.cmds.done...)
}
