// Package ratelimit is a fixed-window rate limiter with a bounded table,
// keyed by an identity the caller has already authenticated (a device id,
// an operator name) or, before authentication, by a remote address.
package ratelimit

import (
	"sync"
	"time"
)

// DefaultCapacity bounds the keys a Limiter tracks: room for a large fleet,
// about 100 bytes per key.
const DefaultCapacity = 200_000

// Limiter allows each key at most Max requests per Window. It keeps one
// small entry per key seen in the current window and never more than
// Capacity entries: when full, entries of past windows are dropped first;
// if every entry is current, an arbitrary one is dropped (its key starts a
// fresh window: the limiter fails open for it rather than grow). Keys must
// therefore come from authenticated identities, whose number is bounded by
// the fleet, or from remote addresses; never from a raw request field.
type Limiter struct {
	max      int
	window   time.Duration
	capacity int
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
	swept   time.Time
}

type entry struct {
	start time.Time
	n     int
}

// New returns a limiter of max requests per window; capacity <= 0 means
// DefaultCapacity. max <= 0 allows everything.
func New(max int, window time.Duration, capacity int) *Limiter {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Limiter{max: max, window: window, capacity: capacity, now: time.Now, entries: map[string]*entry{}}
}

// WithClock makes l read the time from now (an injected clock in tests)
// and returns l.
func (l *Limiter) WithClock(now func() time.Time) *Limiter {
	if now != nil {
		l.now = now
	}
	return l
}

// Allow counts one request of key and reports whether it is within the
// limit; when not, retryAfter is how long until the key's window ends.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l == nil || l.max <= 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, found := l.entries[key]
	if found && now.Sub(e.start) >= l.window {
		e.start, e.n = now, 0
	}
	if !found {
		if len(l.entries) >= l.capacity {
			l.makeRoom(now)
		}
		e = &entry{start: now}
		l.entries[key] = e
	}
	if e.n >= l.max {
		return false, e.start.Add(l.window).Sub(now)
	}
	e.n++
	return true, 0
}

// Len returns how many keys the limiter tracks.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// makeRoom drops expired entries (at most one sweep per window) and, if the
// table is still full, one arbitrary entry. l.mu is held.
func (l *Limiter) makeRoom(now time.Time) {
	if now.Sub(l.swept) >= l.window {
		l.swept = now
		for k, e := range l.entries {
			if now.Sub(e.start) >= l.window {
				delete(l.entries, k)
			}
		}
	}
	for k := range l.entries {
		if len(l.entries) < l.capacity {
			return
		}
		delete(l.entries, k)
	}
}
