package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Enforcer makes a device match its desired settings and reads back what the
// device actually does. Implementations must be safe for concurrent use.
type Enforcer interface {
	// Enforce makes the device match desired. An error means the device
	// may not match; the agent still observes and reports.
	Enforce(ctx context.Context, desired proto.Settings) error
	// Observe reads the device's actual settings.
	Observe(ctx context.Context) (proto.Settings, error)
}

// ErrLocked is returned by Enforce when the device refuses to change.
var ErrLocked = errors.New("device is locked: settings not changed")

// FileEnforcer stands in for a device: a JSON file holds the device's actual
// settings under the policy's own field names ({"cameraDisabled": true}).
// Enforce writes the file atomically and keeps keys it does not manage;
// "locked": true in the file makes Enforce fail with ErrLocked and change
// nothing, like a device that refuses.
type FileEnforcer struct {
	path string
	mu   sync.Mutex
}

var _ Enforcer = (*FileEnforcer)(nil)

// NewFileEnforcer returns an enforcer backed by the file at path. The file
// need not exist: a missing file is a device with zero settings.
func NewFileEnforcer(path string) *FileEnforcer {
	return &FileEnforcer{path: path}
}

// Enforce implements Enforcer.
func (e *FileEnforcer) Enforce(ctx context.Context, desired proto.Settings) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	doc, err := e.read()
	if err != nil {
		return fmt.Errorf("enforcing %s: %w", e.path, err)
	}
	if raw, ok := doc["locked"]; ok {
		var locked bool
		if err := json.Unmarshal(raw, &locked); err != nil {
			return fmt.Errorf("enforcing %s: \"locked\" is not a boolean", e.path)
		}
		if locked {
			return fmt.Errorf("enforcing %s: %w", e.path, ErrLocked)
		}
	}
	// Merge the managed fields through their JSON form, so a field added to
	// proto.Settings is managed here without a change.
	b, err := json.Marshal(desired)
	if err != nil {
		return err
	}
	var managed map[string]json.RawMessage
	if err := json.Unmarshal(b, &managed); err != nil {
		return err
	}
	for k, v := range managed {
		doc[k] = v
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(e.path, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("enforcing %s: %w", e.path, err)
	}
	return nil
}

// Observe implements Enforcer.
func (e *FileEnforcer) Observe(ctx context.Context) (proto.Settings, error) {
	if err := ctx.Err(); err != nil {
		return proto.Settings{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b, err := os.ReadFile(e.path)
	if errors.Is(err, fs.ErrNotExist) {
		return proto.Settings{}, nil
	}
	if err != nil {
		return proto.Settings{}, fmt.Errorf("observing %s: %w", e.path, err)
	}
	var s proto.Settings
	if len(bytes.TrimSpace(b)) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return proto.Settings{}, fmt.Errorf("observing %s: %w", e.path, err)
	}
	return s, nil
}

// read returns the file as a JSON object; a missing or empty file is an
// empty object.
func (e *FileEnforcer) read() (map[string]json.RawMessage, error) {
	doc := map[string]json.RawMessage{}
	b, err := os.ReadFile(e.path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return doc, nil
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if doc == nil { // the file held "null"
		doc = map[string]json.RawMessage{}
	}
	return doc, nil
}

// MemoryEnforcer is a device held in memory, for simulators and tests. Set
// changes its state behind the agent's back (drift); SetLocked makes it
// refuse like a locked device.
type MemoryEnforcer struct {
	mu     sync.Mutex
	state  proto.Settings
	locked bool
}

var _ Enforcer = (*MemoryEnforcer)(nil)

// Enforce implements Enforcer.
func (m *MemoryEnforcer) Enforce(ctx context.Context, desired proto.Settings) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locked {
		return ErrLocked
	}
	// Like a device (and FileEnforcer), only managed settings change:
	// an optional setting that is nil is left as it is.
	vals := m.state.Values()
	for k, v := range desired.Values() {
		vals[k] = v
	}
	s, err := vals.ToSettings()
	if err != nil {
		return err
	}
	m.state = s
	return nil
}

// Observe implements Enforcer.
func (m *MemoryEnforcer) Observe(ctx context.Context) (proto.Settings, error) {
	if err := ctx.Err(); err != nil {
		return proto.Settings{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

// Set replaces the device's actual settings.
func (m *MemoryEnforcer) Set(s proto.Settings) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = s
}

// SetLocked makes Enforce fail with ErrLocked (true) or work again (false).
func (m *MemoryEnforcer) SetLocked(locked bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.locked = locked
}
