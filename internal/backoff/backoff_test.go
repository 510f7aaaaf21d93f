package backoff

import (
	"math/rand/v2"
	"testing"
	"time"
)

func fixed(v float64) func() float64 { return func() float64 { return v } }

func TestDelay(t *testing.T) {
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		want    time.Duration
	}{
		{name: "first is Min", b: Backoff{Min: time.Second, Max: time.Minute}, attempt: 1, want: time.Second},
		{name: "attempt 0 is the first", b: Backoff{Min: time.Second, Max: time.Minute}, attempt: 0, want: time.Second},
		{name: "negative attempt is the first", b: Backoff{Min: time.Second, Max: time.Minute}, attempt: -3, want: time.Second},
		{name: "doubles", b: Backoff{Min: time.Second, Max: time.Minute}, attempt: 4, want: 8 * time.Second},
		{name: "capped at Max", b: Backoff{Min: time.Second, Max: time.Minute}, attempt: 7, want: time.Minute},
		{name: "many attempts do not overflow", b: Backoff{Min: time.Second, Max: time.Minute}, attempt: 1 << 30, want: time.Minute},
		{name: "Max below Min", b: Backoff{Min: 30 * time.Second, Max: 10 * time.Second}, attempt: 1, want: 10 * time.Second},
		{name: "middle of the jitter", b: Backoff{Min: time.Second, Max: time.Minute, Jitter: 0.5, Rand: fixed(0.5)}, attempt: 2, want: 2 * time.Second},
		{name: "lowest jitter", b: Backoff{Min: time.Second, Max: time.Minute, Jitter: 0.5, Rand: fixed(0)}, attempt: 1, want: 500 * time.Millisecond},
		{name: "highest jitter", b: Backoff{Min: time.Second, Max: 2 * time.Minute, Jitter: 0.5, Rand: fixed(1)}, attempt: 4, want: 12 * time.Second},
		{name: "full jitter, top", b: Backoff{Min: time.Second, Max: time.Minute, Jitter: 1, Rand: fixed(1)}, attempt: 3, want: 8 * time.Second},
		{name: "full jitter, bottom", b: Backoff{Min: time.Second, Max: time.Minute, Jitter: 1, Rand: fixed(0)}, attempt: 3, want: 0},
		{name: "jitter above 1 is clamped", b: Backoff{Min: time.Second, Max: time.Minute, Jitter: 3, Rand: fixed(0)}, attempt: 1, want: 0},
		{name: "negative jitter is none", b: Backoff{Min: time.Second, Max: time.Minute, Jitter: -1, Rand: fixed(0)}, attempt: 1, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.attempt); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
			if tt.b.Attempts() != 0 {
				t.Errorf("Delay counted an attempt")
			}
		})
	}
}

func TestNextAndReset(t *testing.T) {
	b := Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("Next #%d = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if b.Attempts() != len(want) {
		t.Fatalf("Attempts = %d, want %d", b.Attempts(), len(want))
	}
	b.Reset()
	if b.Attempts() != 0 {
		t.Fatalf("Attempts after Reset = %d", b.Attempts())
	}
	if got := b.Next(); got != 5*time.Millisecond {
		t.Fatalf("Next after Reset = %v, want Min", got)
	}
}

// TestJitterSpreads draws many delays from a seeded source: every one stays
// within ±Jitter of the nominal delay, they differ, and they cover both
// halves of the range (a fleet does not come back in lockstep).
func TestJitterSpreads(t *testing.T) {
	src := rand.New(rand.NewPCG(1, 2))
	b := Backoff{Min: time.Second, Max: time.Minute, Jitter: 0.5, Rand: src.Float64}
	seen := map[time.Duration]bool{}
	below, above := 0, 0
	for range 1000 {
		d := b.Delay(3)
		if d < 2*time.Second || d > 6*time.Second {
			t.Fatalf("delay %v outside 4s ±50%%", d)
		}
		if d < 4*time.Second {
			below++
		} else {
			above++
		}
		seen[d] = true
	}
	if len(seen) < 900 || below < 300 || above < 300 {
		t.Errorf("%d distinct delays, %d below and %d above the middle: not spread", len(seen), below, above)
	}
}

func TestSpreadWithoutJitterIsExact(t *testing.T) {
	b := Backoff{Rand: func() float64 { t.Fatal("Rand called without jitter"); return 0 }}
	if got := b.Spread(15 * time.Minute); got != 15*time.Minute {
		t.Fatalf("Spread = %v", got)
	}
}

// TestDelayConcurrent: Delay only reads, so goroutines may share a Backoff
// (the FCM bell's workers do); the race detector checks it.
func TestDelayConcurrent(t *testing.T) {
	b := &Backoff{Min: time.Millisecond, Max: time.Second, Jitter: 1}
	done := make(chan time.Duration)
	for i := range 8 {
		go func() { done <- b.Delay(i + 1) }()
	}
	for i := range 8 {
		if d := <-done; d < 0 || d > 2*time.Second {
			t.Errorf("delay %d = %v", i, d)
		}
	}
}
