// Package testkit holds the helpers every package's tests share: one poll
// helper (Eventually), one fake clock (Clock), one locked buffer for logs
// (LockedBuffer) and one client of the live /events stream
// (OpenEventStream). Tests only: nothing that ships imports it.
package testkit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// pollEvery is how often Eventually looks at its condition.
const pollEvery = 10 * time.Millisecond

// Eventually polls cond until it holds, failing tb with "timed out after
// <timeout> waiting for <what>" once timeout has passed. It waits on an
// observable condition: the timeout is the guard against a hang, not a
// timing assertion.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if err := poll(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}); err != nil {
		tb.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// EventuallyNil polls f until it returns nil, failing tb with f's last error
// once timeout has passed: for a step that may fail while something starts.
func EventuallyNil(tb testing.TB, timeout time.Duration, what string, f func() error) {
	tb.Helper()
	if err := poll(timeout, f); err != nil {
		tb.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
	}
}

var errNotYet = fmt.Errorf("condition not met")

// poll calls f until it returns nil or timeout has passed; it returns f's
// last error.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollEvery)
	}
}

// Clock is the one fake clock: it moves only when told (Advance, Set), and
// then fires the timers that came due. It hands out timers through NewTimer
// and After and records every one's duration, so a test can wait until the
// code under test is waiting (WaitTimer) and check what it waited (Waits).
// With AutoAdvance on, every new timer moves the clock to its deadline and
// fires at once. Safe for concurrent use.
//
// It satisfies the usual injection points: a func() time.Time (Now), an
// After func, and, through a one-line adapter, the agent's Clock.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	auto   bool
	timers []*Timer
	waits  []time.Duration // every timer's duration, in creation order
	seen   int             // how many of waits WaitTimer has looked at
	more   chan struct{}   // closed (and replaced) when a timer is created
}

// NewClock returns a Clock that reads start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, more: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and fires every timer now due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

// Set moves the clock to t (forward or back) and fires every timer due.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.fireLocked()
}

// AutoAdvance makes every new timer move the clock to its deadline and
// fire at once (on), or wait for Advance (off, the default).
func (c *Clock) AutoAdvance(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.auto = on
}

// Timer is a Clock's timer; C and Stop match the agent's Timer.
type Timer struct {
	c     chan time.Time
	when  time.Time
	clock *Clock
	done  bool
}

// NewTimer returns a timer that fires once the clock reaches now+d.
func (c *Clock) NewTimer(d time.Duration) *Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &Timer{c: make(chan time.Time, 1), when: c.now.Add(d), clock: c}
	c.timers = append(c.timers, t)
	c.waits = append(c.waits, d)
	close(c.more)
	c.more = make(chan struct{})
	if c.auto && t.when.After(c.now) {
		c.now = t.when
	}
	c.fireLocked()
	return t
}

// After is NewTimer(d).C(), for code that injects a time.After.
func (c *Clock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

// C receives the clock's time when the timer fires.
func (t *Timer) C() <-chan time.Time { return t.c }

// Stop prevents the timer from firing; it reports whether it was pending.
func (t *Timer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func (c *Clock) fireLocked() {
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.done {
			continue
		}
		if !t.when.After(c.now) {
			t.done = true
			t.c <- c.now
			continue
		}
		kept = append(kept, t)
	}
	clear(c.timers[len(kept):])
	c.timers = kept
}

// Waits returns the duration of every timer created so far, in order.
func (c *Clock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// WaitTimer waits until a timer with a duration in [lo, hi] has been
// created since the last WaitTimer returned, and returns its duration;
// timers outside the range are passed over (several loops may share the
// clock). It fails tb after timeout, the guard against a hang.
func (c *Clock) WaitTimer(tb testing.TB, timeout time.Duration, lo, hi time.Duration) time.Duration {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for c.seen < len(c.waits) {
			d := c.waits[c.seen]
			c.seen++
			if d >= lo && d <= hi {
				c.mu.Unlock()
				return d
			}
		}
		more := c.more
		c.mu.Unlock()
		select {
		case <-more:
		case <-deadline.C:
			tb.Fatalf("timed out after %v waiting for a timer in [%v, %v]", timeout, lo, hi)
		}
	}
}
