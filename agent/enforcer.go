package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
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

// PartialEnforcer is an Enforcer that can be told to leave settings alone
// whatever desired holds for them. The agent uses it for the settings it
// only monitors, cannot enforce, or waits on the user for: an Enforcer
// without it gets the always-managed cameraDisabled with the value observed
// at the start of the sync, so a change made on the device between that
// observation and the write would be written back.
type PartialEnforcer interface {
	EnforceExcept(ctx context.Context, desired proto.Settings, leave []string) error
}

// ErrLocked is returned by Enforce when the device refuses to change.
var ErrLocked = errors.New("device is locked: settings not changed")

// FileEnforcer stands in for a device: a JSON file holds the device's actual
// settings under the policy's own field names ({"cameraDisabled": true,
// "sshPasswordAuthDisabled": false, "lockTaskPackages": ["com.example"]}).
// It supports every setting. Enforce writes the managed settings and keeps
// every other key as it is: a nil optional setting is not managed, so its
// key is left alone, as are keys the policy does not know. It writes
// atomically, and only when a value changes, so enforcing a matching device
// does not touch the file. "locked": true in the file makes Enforce fail with
// ErrLocked and change nothing, like a device that refuses. It is a Watcher
// of its file.
type FileEnforcer struct {
	path string
	mu   sync.Mutex
}

var (
	_ Enforcer = (*FileEnforcer)(nil)
	_ Watcher  = (*FileEnforcer)(nil)
)

// WatchPaths implements Watcher.
func (e *FileEnforcer) WatchPaths() []string { return []string{e.path} }

// NewFileEnforcer returns an enforcer backed by the file at path. The file
// need not exist: a missing file is a device with zero settings.
func NewFileEnforcer(path string) *FileEnforcer {
	return &FileEnforcer{path: path}
}

// Enforce implements Enforcer.
func (e *FileEnforcer) Enforce(ctx context.Context, desired proto.Settings) error {
	return e.EnforceExcept(ctx, desired, nil)
}

// EnforceExcept implements PartialEnforcer: the keys named in leave are
// not written, whatever desired holds.
func (e *FileEnforcer) EnforceExcept(ctx context.Context, desired proto.Settings, leave []string) error {
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
	changed := false
	for k, v := range managed {
		if slices.Contains(leave, k) {
			continue
		}
		if old, ok := doc[k]; !ok || !sameJSON(old, v) {
			doc[k], changed = v, true
		}
	}
	if !changed {
		return nil
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

// sameJSON reports whether two JSON values are equal, whatever their
// formatting.
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// mergeSettings returns base with every setting desired manages (cameraDisabled
// and the non-nil optional ones) replaced, sharing no memory with either.
func mergeSettings(base, desired proto.Settings) proto.Settings {
	// Each managed setting replaces base's value whole: decoding onto
	// base would merge a list of objects element by element, keeping
	// fields the new value does not have.
	vals := base.Values()
	for k, v := range desired.Values() { // nil settings are omitted
		vals[k] = v
	}
	out, err := vals.ToSettings()
	if err != nil {
		panic("agent: settings do not round-trip through JSON: " + err.Error())
	}
	return out
}

// cloneSettings returns a deep copy of s.
func cloneSettings(s proto.Settings) proto.Settings {
	var out proto.Settings
	b, err := json.Marshal(s)
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		panic("agent: settings do not round-trip through JSON: " + err.Error())
	}
	return out
}

// MemoryEnforcer is a device held in memory, for simulators and tests. Like
// a real device it supports every setting and keeps the settings a policy
// does not manage. Set changes its state behind the agent's back (drift);
// SetLocked makes it refuse like a locked device.
type MemoryEnforcer struct {
	mu     sync.Mutex
	state  proto.Settings
	locked bool
	cmds   memCommands
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
	m.state = mergeSettings(m.state, desired)
	return nil
}

// Observe implements Enforcer.
func (m *MemoryEnforcer) Observe(ctx context.Context) (proto.Settings, error) {
	if err := ctx.Err(); err != nil {
		return proto.Settings{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneSettings(m.state), nil
}

// Set replaces the device's actual settings.
func (m *MemoryEnforcer) Set(s proto.Settings) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = cloneSettings(s)
}

// SetLocked makes Enforce fail with ErrLocked (true) or work again (false).
func (m *MemoryEnforcer) SetLocked(locked bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.locked = locked
}
