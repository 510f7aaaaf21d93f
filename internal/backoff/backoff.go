// Package backoff is the project's one jittered exponential backoff: the
// agent's sync retries and MQTT reconnects, the FCM bell's retries, the
// webhook's retries, the event stream's reconnects, the PostgreSQL bus and
// the accept loops all wait the delays a Backoff hands out.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff hands out delays that start at Min, double per attempt up to Max
// and are spread by Jitter. Configure it with a composite literal; the
// attempt count starts at zero. Next and Reset change the count and are not
// safe for concurrent use; Delay and Spread only read the configuration (and
// Rand), so several goroutines may call them on one Backoff.
type Backoff struct {
	// Min is the first delay before jitter.
	Min time.Duration
	// Max caps the delay before jitter. When Max is below Min every delay
	// is Max.
	Max time.Duration
	// Jitter spreads each delay d uniformly over [d·(1−Jitter),
	// d·(1+Jitter)]: 0 is no jitter, 0.5 is ±50 %, and 1 draws from [0, 2d]
	// ("full jitter" below a ceiling of 2d). Values outside [0, 1] are
	// clamped.
	Jitter float64
	// Rand returns a value in [0, 1]; nil means math/rand/v2's Float64.
	// Tests inject a fixed value: 0 gives the lowest delay, 1 the highest.
	Rand func() float64

	attempts int
}

// Delay returns the delay before the attempt-th consecutive retry (1 is the
// first; anything below counts as 1): Min·2^(attempt−1), capped at Max, then
// spread. It does not change the attempt count.
func (b *Backoff) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := b.Min
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	return b.Spread(d)
}

// Next counts one more attempt and returns the delay to wait before it.
func (b *Backoff) Next() time.Duration {
	b.attempts++
	return b.Delay(b.attempts)
}

// Reset starts the next Next from Min again: call it after a success.
func (b *Backoff) Reset() { b.attempts = 0 }

// Attempts is how many delays Next has handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Spread returns d spread by Jitter, without growth: for a periodic wait
// that must not line up across a fleet.
func (b *Backoff) Spread(d time.Duration) time.Duration {
	j := min(max(b.Jitter, 0), 1)
	if j == 0 || d <= 0 {
		return d
	}
	rnd := b.Rand
	if rnd == nil {
		rnd = rand.Float64
	}
	return time.Duration(float64(d) * (1 + j*(2*rnd()-1)))
}
