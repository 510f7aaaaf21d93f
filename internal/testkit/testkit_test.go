package testkit

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder on its own goroutine and returns what Fatalf
// said ("" when f returned normally).
func run(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r.msg
}

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	var calls atomic.Int32
	msg := run(t, func(tb testing.TB) {
		Eventually(tb, time.Minute, "the third call", func() bool { return calls.Add(1) >= 3 })
	})
	if msg != "" || calls.Load() != 3 {
		t.Fatalf("failed %q after %d calls; want success on the third", msg, calls.Load())
	}
}

func TestEventuallyFailsAfterTheTimeout(t *testing.T) {
	msg := run(t, func(tb testing.TB) {
		Eventually(tb, 30*time.Millisecond, "never", func() bool { return false })
	})
	if !strings.Contains(msg, "timed out after 30ms waiting for never") {
		t.Fatalf("message %q", msg)
	}
}

func TestEventuallyNilReportsTheLastError(t *testing.T) {
	n := 0
	msg := run(t, func(tb testing.TB) {
		EventuallyNil(tb, 30*time.Millisecond, "the server", func() error { n++; return fmt.Errorf("attempt %d refused", n) })
	})
	if !strings.Contains(msg, "waiting for the server: attempt ") || !strings.HasSuffix(msg, fmt.Sprintf("attempt %d refused", n)) {
		t.Fatalf("message %q after %d attempts; want the last error", msg, n)
	}
	if msg := run(t, func(tb testing.TB) { EventuallyNil(tb, time.Minute, "x", func() error { return nil }) }); msg != "" {
		t.Fatalf("a nil first answer failed: %q", msg)
	}
}

var start = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func fired(t *Timer) bool {
	select {
	case <-t.C():
		return true
	default:
		return false
	}
}

func TestClockFiresDueTimers(t *testing.T) {
	c := NewClock(start)
	a, b, s := c.NewTimer(time.Second), c.NewTimer(time.Minute), c.NewTimer(time.Second)
	if !s.Stop() || s.Stop() {
		t.Fatal("Stop: want true for a pending timer, then false")
	}
	if fired(a) || fired(b) {
		t.Fatal("a timer fired before the clock moved")
	}
	c.Advance(time.Second)
	if !fired(a) || fired(b) || fired(s) {
		t.Fatal("after 1s: want only the 1s timer fired")
	}
	if a.Stop() {
		t.Fatal("Stop of a fired timer reported pending")
	}
	c.Set(start.Add(time.Hour))
	if !fired(b) {
		t.Fatal("Set past the deadline did not fire the 1m timer")
	}
	if got := c.Now(); !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("Now = %v", got)
	}
	if got, want := c.Waits(), []time.Duration{time.Second, time.Minute, time.Second}; !slices.Equal(got, want) {
		t.Fatalf("Waits = %v, want %v", got, want)
	}
}

func TestClockAutoAdvance(t *testing.T) {
	c := NewClock(start)
	c.AutoAdvance(true)
	select {
	case now := <-c.After(5 * time.Second):
		if !now.Equal(start.Add(5 * time.Second)) {
			t.Fatalf("fired at %v", now)
		}
	default:
		t.Fatal("an auto-advancing clock did not fire at once")
	}
	c.AutoAdvance(false)
	if fired(c.NewTimer(time.Second)) {
		t.Fatal("fired with AutoAdvance off")
	}
}

func TestClockWaitTimer(t *testing.T) {
	c := NewClock(start)
	go func() {
		c.NewTimer(time.Hour)       // outside the range: passed over
		c.NewTimer(2 * time.Second) // the one
	}()
	if d := c.WaitTimer(t, time.Minute, time.Second, 3*time.Second); d != 2*time.Second {
		t.Fatalf("WaitTimer = %v", d)
	}
	msg := run(t, func(tb testing.TB) { c.WaitTimer(tb, 20*time.Millisecond, 0, time.Hour) })
	if !strings.Contains(msg, "waiting for a timer in [0s, 1h0m0s]") {
		t.Fatalf("WaitTimer with no new timer: %q", msg)
	}
}
