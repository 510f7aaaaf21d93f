package broker

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Limits for operator sessions, which subscribe to every doorbell: one
// operator that stops reading must cost a bounded amount and must not slow
// down the delivery to devices (issue 17, finding 6).
const (
	// operatorMaxInflight bounds the unacknowledged QoS 1 doorbells kept for
	// one operator session. Beyond it new doorbells are dropped for that
	// session only, before mochi copies them into its inflight store.
	operatorMaxInflight = 64

	// DefaultSlowSubscriberTimeout is how long an operator session may stay
	// behind (dropping every new doorbell) before it is disconnected. A
	// client that reads again within it catches up and is kept.
	DefaultSlowSubscriberTimeout = 30 * time.Second

	// dropLogInterval is how often dropped messages are summarised in the
	// log: one line per interval, never one per message.
	dropLogInterval = 10 * time.Second
)

// slowState is what the broker knows about one operator session that is
// behind.
type slowState struct {
	since        time.Time // when it fell behind
	lastDrop     time.Time
	disconnected bool
}

// caughtUpAfter is how long a session must go without a drop before it
// counts as caught up again.
const caughtUpAfter = time.Second

// slowSubscribers drops doorbells for operator sessions that do not keep
// up, disconnects the ones that stay behind, counts the drops and logs them
// in rate-limited summaries.
type slowSubscribers struct {
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	dropped atomic.Int64 // every doorbell dropped for a slow subscriber

	mu       sync.Mutex
	clients  map[*mqtt.Client]*slowState
	window   int64 // drops since the last summary
	lastLog  time.Time
	droppers map[string]struct{} // sessions that dropped since the last summary
}

func newSlowSubscribers(timeout time.Duration, log *slog.Logger) *slowSubscribers {
	if timeout == 0 {
		timeout = DefaultSlowSubscriberTimeout
	}
	return &slowSubscribers{
		timeout:  timeout,
		log:      log,
		now:      time.Now,
		clients:  map[*mqtt.Client]*slowState{},
		droppers: map[string]struct{}{},
	}
}

// admit reports whether one more doorbell may be queued for the operator
// session cl. It is called on every delivery, so it only reads what mochi
// already keeps for the client.
func (s *slowSubscribers) admit(cl *mqtt.Client) bool {
	if cl.State.Inflight.Len() < operatorMaxInflight {
		s.mu.Lock()
		if st, ok := s.clients[cl]; ok && !st.disconnected && s.now().Sub(st.lastDrop) >= caughtUpAfter {
			delete(s.clients, cl) // caught up
		}
		s.mu.Unlock()
		return true
	}
	s.dropped.Add(1)
	s.drop(cl)
	return false
}

// countQueueDrop records a doorbell mochi dropped because cl's outbound
// queue was full; mochi counts it in its MessagesDropped already.
func (s *slowSubscribers) countQueueDrop(cl *mqtt.Client) {
	s.drop(cl)
}

// drop records one doorbell dropped for cl, disconnects cl once it has been
// behind for longer than the timeout, and logs a summary at most once per
// dropLogInterval.
func (s *slowSubscribers) drop(cl *mqtt.Client) {
	now := s.now()
	s.mu.Lock()
	st, ok := s.clients[cl]
	if !ok {
		st = &slowState{since: now}
		s.clients[cl] = st
	}
	st.lastDrop = now
	disconnect := !st.disconnected && s.timeout > 0 && now.Sub(st.since) >= s.timeout
	if disconnect {
		st.disconnected = true
	}
	s.window++
	s.droppers[cl.ID] = struct{}{}
	var summary int64
	var sessions int
	if now.Sub(s.lastLog) >= dropLogInterval {
		summary, sessions = s.window, len(s.droppers)
		s.window, s.lastLog = 0, now
		clear(s.droppers)
	}
	s.mu.Unlock()

	if summary > 0 {
		s.log.Warn("mqtt messages dropped for slow subscribers", "dropped", summary, "sessions", sessions,
			"interval", dropLogInterval)
	}
	if disconnect {
		s.log.Warn("mqtt slow subscriber disconnected", "client", cl.ID, "remote", cl.Net.Remote,
			"behind_for", now.Sub(st.since).Round(time.Millisecond), "timeout", s.timeout)
		// Stop only closes the connection and cancels the session's
		// context; mochi's own goroutines then clean up. It never writes,
		// so it cannot block on a client that does not read.
		go cl.Stop(packets.ErrServerBusy)
	}
}

// forget drops what is known about cl once its session ends.
func (s *slowSubscribers) forget(cl *mqtt.Client) {
	s.mu.Lock()
	delete(s.clients, cl)
	s.mu.Unlock()
}
