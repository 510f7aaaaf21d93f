package agent

import (
	"math/rand/v2"
	"testing"
	"time"
)

func constRand(v float64) func() float64 { return func() float64 { return v } }

func TestNextSyncDelay(t *testing.T) {
	const interval = 15 * time.Minute
	tests := []struct {
		name     string
		failures int
		busy     bool
		interval time.Duration
		rnd      float64
		want     time.Duration
	}{
		{name: "success waits the interval", failures: 0, interval: interval, rnd: 0.5, want: interval},
		{name: "success, lowest jitter", failures: 0, interval: interval, rnd: 0, want: interval * 9 / 10},
		{name: "first failure", failures: 1, interval: interval, rnd: 0.5, want: 30 * time.Second},
		{name: "first failure, lowest jitter", failures: 1, interval: interval, rnd: 0, want: 27 * time.Second},
		{name: "second failure", failures: 2, interval: interval, rnd: 0.5, want: 60 * time.Second},
		{name: "third failure", failures: 3, interval: interval, rnd: 0.5, want: 120 * time.Second},
		{name: "fifth failure", failures: 5, interval: interval, rnd: 0.5, want: 480 * time.Second},
		{name: "capped at the interval", failures: 6, interval: interval, rnd: 0.5, want: interval},
		{name: "capped, highest jitter", failures: 6, interval: interval, rnd: 1, want: interval * 11 / 10},
		{name: "many failures do not overflow", failures: 10000, interval: interval, rnd: 0.5, want: interval},
		{name: "interval below the base", failures: 1, interval: 10 * time.Second, rnd: 0.5, want: 10 * time.Second},
		{name: "busy server, first failure", failures: 1, busy: true, interval: interval, rnd: 0.5, want: 2 * time.Second},
		{name: "busy server, lowest jitter", failures: 1, busy: true, interval: interval, rnd: 0, want: time.Second},
		{name: "busy server, third failure", failures: 3, busy: true, interval: interval, rnd: 0.5, want: 8 * time.Second},
		{name: "busy server, capped", failures: 20, busy: true, interval: interval, rnd: 0.5, want: interval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextSyncDelay(tt.failures, tt.busy, tt.interval, constRand(tt.rnd)); got != tt.want {
				t.Errorf("nextSyncDelay(%d, %v) = %v, want %v", tt.failures, tt.interval, got, tt.want)
			}
		})
	}
}

func TestNextSyncDelaySchedule(t *testing.T) {
	// A fixed source gives a reproducible schedule; every delay stays within
	// ±10% of 30s, 60s, 120s, ... capped at the interval.
	rnd := rand.New(rand.NewPCG(1, 2))
	const interval = 10 * time.Minute
	base := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, interval, interval}
	seen := map[time.Duration]bool{}
	for round := range 50 {
		for i, b := range base {
			d := nextSyncDelay(i+1, false, interval, rnd.Float64)
			if d < b*9/10 || d > b*11/10 {
				t.Fatalf("round %d failure %d: delay %v, want %v ±10%%", round, i+1, d, b)
			}
			seen[d] = true
		}
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct delays in 350: not jittered", len(seen))
	}
	// Reproducible.
	a, b := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for i := 1; i < 8; i++ {
		if x, y := nextSyncDelay(i, false, interval, a.Float64), nextSyncDelay(i, false, interval, b.Float64); x != y {
			t.Fatalf("same seed, different delays: %v, %v", x, y)
		}
	}
}

func TestMQTTReconnectDelay(t *testing.T) {
	tests := []struct {
		name    string
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{name: "first", attempt: 1, rnd: 0.5, want: time.Second},
		{name: "first, lowest jitter", attempt: 1, rnd: 0, want: 500 * time.Millisecond},
		{name: "second", attempt: 2, rnd: 0.5, want: 2 * time.Second},
		{name: "fourth, highest jitter", attempt: 4, rnd: 1, want: 12 * time.Second},
		{name: "capped", attempt: 30, rnd: 0.5, want: 2 * time.Minute},
		{name: "attempt 0 is the first", attempt: 0, rnd: 0.5, want: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mqttBackoff(constRand(tt.rnd))
			if got := b.Delay(tt.attempt); got != tt.want {
				t.Errorf("MQTT reconnect delay %d = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}
