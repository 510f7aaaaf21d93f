package agent

import (
	"time"

	"github.com/doorbell-mdm/doorbell/internal/backoff"
)

// Clock is the agent's source of time, injectable so tests drive the
// scheduler without sleeping.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends on C once d has passed.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the agent uses.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Scheduling constants.
const (
	// DefaultInterval is the periodic sync interval when Config.Interval is 0.
	DefaultInterval = 15 * time.Minute
	// syncBackoffBase is the first retry delay after a failed sync.
	syncBackoffBase = 30 * time.Second
	// busyBackoffBase is the first retry delay after the server answered
	// that it is busy (503, 429): a fleet-wide doorbell can bring more
	// devices at once than the server takes connections, and those turned
	// away come back within seconds, spread ±50%, not after 30 s.
	busyBackoffBase = 2 * time.Second
	busyJitter      = 0.5
	// syncJitter spreads every sync delay by ±10%.
	syncJitter = 0.10
	// mqttBackoffBase and mqttBackoffMax bound MQTT reconnect delays.
	mqttBackoffBase = time.Second
	mqttBackoffMax  = 2 * time.Minute
	// mqttJitter is wider than syncJitter: a broker restart drops every
	// device at the same instant, and the reconnects must spread out.
	mqttJitter = 0.5
)

// nextSyncDelay is how long the scheduler waits before the next periodic
// sync: the interval after a success (failures == 0), otherwise an
// exponential backoff from 30s doubling per consecutive failure and capped at
// the interval; always jittered ±10%. When the last failure was the server
// saying it is busy the backoff starts at 2s, jittered ±50%.
func nextSyncDelay(failures int, busy bool, interval time.Duration, rnd func() float64) time.Duration {
	b := backoff.Backoff{Min: syncBackoffBase, Max: interval, Jitter: syncJitter, Rand: rnd}
	if failures <= 0 {
		return b.Spread(interval)
	}
	if busy {
		b.Min, b.Jitter = busyBackoffBase, busyJitter
	}
	return b.Delay(failures)
}

// mqttBackoff is the MQTT loop's wait between consecutive reconnects: from
// 1s doubling to 2m, jittered ±50%, drawn from rnd.
func mqttBackoff(rnd func() float64) backoff.Backoff {
	return backoff.Backoff{Min: mqttBackoffBase, Max: mqttBackoffMax, Jitter: mqttJitter, Rand: rnd}
}
