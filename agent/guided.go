package agent

import (
	"encoding/json"
	"maps"
	"os"
	"sort"
	"sync"
	"time"
)

// guidedTracker remembers, for each setting in guided mode, when the agent
// first saw the device fail it: the deadline runs from then. It survives
// restarts in a small JSON file when it has a path.
type guidedTracker struct {
	mu    sync.Mutex
	path  string               // "" keeps it in memory
	since map[string]time.Time // setting -> first seen failing
	// notified is the remediateBy the user was last told for a setting,
	// so a notice goes out once per deadline, not per sync.
	notified map[string]time.Time
	loaded   bool
}

type guidedFile struct {
	Since    map[string]time.Time `json:"since"`
	Notified map[string]time.Time `json:"notified,omitempty"`
}

func (g *guidedTracker) load() {
	if g.loaded {
		return
	}
	g.loaded = true
	g.since, g.notified = map[string]time.Time{}, map[string]time.Time{}
	if g.path == "" {
		return
	}
	b, err := os.ReadFile(g.path)
	if err != nil {
		return
	}
	var f guidedFile
	if json.Unmarshal(b, &f) == nil {
		maps.Copy(g.since, f.Since)
		maps.Copy(g.notified, f.Notified)
	}
}

func (g *guidedTracker) save() error {
	if g.path == "" {
		return nil
	}
	b, err := json.Marshal(guidedFile{Since: g.since, Notified: g.notified})
	if err != nil {
		return err
	}
	return writeFileAtomic(g.path, b, 0o600)
}

// guidedPlan is what a sync does with the guided settings.
type guidedPlan struct {
	// Pending are the failing settings still before their deadline: left
	// alone, reported PENDING_USER with their remediateBy.
	Pending []PendingSetting
	// Due are the failing settings at or past their deadline: enforced.
	Due []string
	// Notify is the part of Pending the user has not been told about.
	Notify []PendingSetting
}

// plan decides, at now, for each guided setting (name -> deadline) whether
// it waits for the user or is enforced, given which of them fail now. A
// setting that no longer fails (or is no longer guided) forgets its start.
func (g *guidedTracker) plan(now time.Time, deadlines map[string]time.Duration, failing map[string]bool) (guidedPlan, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.load()
	changed := false
	for name := range g.since {
		if _, guided := deadlines[name]; !guided || !failing[name] {
			delete(g.since, name)
			delete(g.notified, name)
			changed = true
		}
	}
	names := make([]string, 0, len(deadlines))
	for n := range deadlines {
		names = append(names, n)
	}
	sort.Strings(names)
	var p guidedPlan
	for _, name := range names {
		if !failing[name] {
			continue
		}
		since, ok := g.since[name]
		if !ok {
			since, changed = now, true
			g.since[name] = since
		}
		by := since.Add(deadlines[name])
		if !now.Before(by) {
			p.Due = append(p.Due, name)
			continue
		}
		ps := PendingSetting{Setting: name, RemediateBy: by}
		p.Pending = append(p.Pending, ps)
		if !g.notified[name].Equal(by) {
			p.Notify = append(p.Notify, ps)
		}
	}
	if changed {
		return p, g.save()
	}
	return p, nil
}

// notifiedAt records that the user was told about these settings.
func (g *guidedTracker) notifiedAt(ps []PendingSetting) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.load()
	for _, p := range ps {
		g.notified[p.Setting] = p.RemediateBy
	}
	return g.save()
}
