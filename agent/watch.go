package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher is implemented by an Enforcer whose device state lives in files.
// While the agent runs it watches those files and syncs within a moment of
// any change, so drift is re-enforced and reported at once instead of at the
// next periodic sync.
type Watcher interface {
	// WatchPaths returns the files whose change means drift. They need
	// not exist, nor their directories.
	WatchPaths() []string
}

// DriftDebounce is how long the agent waits after the first change of a
// watched file before it syncs, so an editor's burst of writes (or a
// temp-file-and-rename) costs one sync.
const DriftDebounce = 100 * time.Millisecond

// watchLoop watches w's files until ctx is done and triggers a sync on every
// change. The agent's own writes trigger one sync too; it finds the device
// matching and costs a 304, and since enforcers do not rewrite files that
// already match, it does not loop.
func (a *Agent) watchLoop(ctx context.Context, w Watcher) {
	paths := w.WatchPaths()
	err := watchFiles(ctx, paths, DriftDebounce, a.clock,
		func() { a.log.Info("watching for drift", "paths", paths) },
		func(path string) {
			a.log.Info("watched file changed; syncing", "path", path)
			a.Trigger()
		})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("watching for drift failed; only the periodic sync will see drift", "err", err)
	}
}

// watchFiles calls onChange, debounced, whenever one of paths is created,
// written, removed or renamed, until ctx is done (then it returns nil). It
// watches each file's directory rather than the file, since editors and
// enforcers replace files by renaming a new one over them; a directory that
// does not exist yet is waited for by watching its nearest existing
// ancestor. ready is called once the watches are in place.
func watchFiles(ctx context.Context, paths []string, debounce time.Duration, clock Clock, ready func(), onChange func(path string)) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()

	targets := map[string]bool{}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		targets[abs] = true
	}
	// isAncestor reports whether dir lies on the way to a target.
	isAncestor := func(dir string) bool {
		for t := range targets {
			if strings.HasPrefix(t, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator)) {
				return true
			}
		}
		return false
	}
	watched := map[string]bool{}
	// rewatch watches the nearest existing directory of every target. It
	// returns a target that already exists in a directory it has just
	// started watching: its creation happened before the watch and would
	// otherwise go unseen.
	rewatch := func() (appeared string, err error) {
		for t := range targets {
			// Descend as far as the directories exist. After each new
			// watch, look again: a directory created between the look and
			// the watch sent its event before the watch existed.
			for {
				dir := filepath.Dir(t)
				for {
					if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
						break
					}
					parent := filepath.Dir(dir)
					if parent == dir {
						break
					}
					dir = parent
				}
				if watched[dir] {
					break
				}
				if err := fw.Add(dir); err != nil {
					if errors.Is(err, os.ErrNotExist) {
						continue // removed meanwhile: look again
					}
					return "", err
				}
				watched[dir] = true
				if dir == filepath.Dir(t) {
					if _, err := os.Stat(t); err == nil {
						appeared = t
					}
					break
				}
			}
		}
		return appeared, nil
	}
	if _, err := rewatch(); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}

	var timer Timer
	var fire <-chan time.Time
	changed := ""
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			name := filepath.Clean(ev.Name)
			switch {
			case targets[name]:
				if ev.Op == fsnotify.Chmod {
					continue // attributes only: the content is unchanged
				}
			case isAncestor(name):
				// A directory on the way appeared or went: watch the
				// deepest one that exists now. The file may have been
				// written before the new watch, so count it as a change.
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					delete(watched, name)
				}
				appeared, err := rewatch()
				if err != nil {
					return err
				}
				if appeared != "" {
					name = appeared
				}
			default:
				continue
			}
			// One sync per debounce window; it names a watched file
			// when one changed in the window, else the directory.
			if fire == nil {
				changed = name
				timer = clock.NewTimer(debounce)
				fire = timer.C()
			} else if targets[name] {
				changed = name
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return err
			}
			// Events were lost: assume the worst and sync.
			if fire == nil {
				changed = "(event overflow)"
				timer = clock.NewTimer(debounce)
				fire = timer.C()
			}
		case <-fire:
			timer, fire = nil, nil
			onChange(changed)
		}
	}
}
