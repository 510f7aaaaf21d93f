package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
)

func TestWindow(t *testing.T) {
	c := testkit.NewClock(time.Unix(1000, 0))
	l := New(3, time.Minute, 0)
	l.now = c.Now
	for i := range 3 {
		if ok, _ := l.Allow("dev"); !ok {
			t.Fatalf("request %d refused", i+1)
		}
	}
	ok, retry := l.Allow("dev")
	if ok || retry != time.Minute {
		t.Fatalf("4th request: ok=%v retry=%v; want refused, retry 1m", ok, retry)
	}
	if ok, _ := l.Allow("other"); !ok {
		t.Error("another key shares the budget")
	}
	c.Advance(time.Minute)
	if ok, _ := l.Allow("dev"); !ok {
		t.Error("refused in a new window")
	}
}

// TestTableBounded: a flood of distinct keys never grows the table beyond
// its capacity (issue 17, finding 3: one entry per unauthenticated id).
func TestTableBounded(t *testing.T) {
	c := testkit.NewClock(time.Unix(1000, 0))
	l := New(5, time.Minute, 1000)
	l.now = c.Now
	for i := range 100_000 {
		l.Allow(fmt.Sprintf("key-%d", i))
		if i%997 == 0 {
			c.Advance(time.Second)
		}
	}
	if n := l.Len(); n > 1000 {
		t.Fatalf("%d entries, capacity 1000", n)
	}
}
