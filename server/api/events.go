package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/service"
)

// Tuning of the live stream, GET /events.
const (
	// eventBuffer is how many events a subscriber may fall behind before
	// events are dropped for it and it is told to resync. A browser keeps up
	// with thousands of events a second; 1024 absorbs a group edit's burst.
	eventBuffer = 1024
	// eventKeepAlive is how often an idle stream sends a comment line, so
	// proxies keep it open and a vanished client is noticed.
	eventKeepAlive = 15 * time.Second
	// eventWriteTimeout bounds each write to a stream; a client that reads
	// nothing for this long is dropped.
	eventWriteTimeout = 10 * time.Second
)

// eventHub fans device events out to the live streams. The zero value is
// ready to use. Publishing never blocks: a subscriber whose buffer is full
// loses the event and is told to resync.
type eventHub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
	// onCount, when set, hears the number of open streams after each
	// change. It is called with mu held, so calls arrive in the order of
	// the changes; it must not block or call back into the hub.
	onCount func(open int)
}

// counted calls onCount with the number of streams; mu is held.
func (h *eventHub) counted() {
	if h.onCount != nil {
		h.onCount(len(h.subs))
	}
}

// hubEvent is one server-sent event: its name and its data.
type hubEvent struct {
	name string
	data any
}

// subscriber is one live stream's queue.
type subscriber struct {
	events chan hubEvent
	// lost holds a token when events were dropped since the last resync.
	lost chan struct{}
	// operator is the name of the token the stream was opened with;
	// revoked is closed when that token is deleted, ending the stream.
	operator string
	revoked  chan struct{}
}

func (h *eventHub) subscribe(operator string) *subscriber {
	s := &subscriber{events: make(chan hubEvent, eventBuffer), lost: make(chan struct{}, 1),
		operator: operator, revoked: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[*subscriber]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.counted()
	return s
}

func (h *eventHub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		h.counted()
	}
}

// revoke ends every stream opened with the operator token name.
func (h *eventHub) revoke(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for s := range h.subs {
		if s.operator == name {
			close(s.revoked)
			delete(h.subs, s)
			n++
		}
	}
	if n > 0 {
		h.counted()
	}
	return n
}

// active reports whether anyone is listening, so that nobody pays for
// events nobody reads.
func (h *eventHub) active() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

// publish queues a device event for every subscriber without ever
// blocking.
func (h *eventHub) publish(ev proto.DeviceEvent) { h.publishNamed(hubEvent{proto.EventDevice, ev}) }

// publishNamed queues ev for every subscriber without ever blocking.
func (h *eventHub) publishNamed(ev hubEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.events <- ev:
		default:
			select {
			case s.lost <- struct{}{}:
			default:
			}
		}
	}
}

// publishChange is the live stream's subscription to the service's change
// stream: it turns a committed change into a device event, without
// reading the store again.
func (a *API) publishChange(ch service.Change) {
	if !a.events.active() {
		return
	}
	if ch.Late {
		return // a newer state of the device was already shown
	}
	if ch.Command != nil {
		a.events.publishNamed(hubEvent{proto.EventCommand, proto.CommandEvent{Command: ch.Command.Command.Redacted(), From: ch.Command.From}})
		return
	}
	d := ch.Device
	ev := proto.DeviceEvent{
		DeviceID:       d.ID,
		State:          ch.State,
		DesiredVersion: d.Policy.Version,
		Connected:      a.cfg.Presence.Connected(d.ID),
		Cause:          ch.Cause,
	}
	if d.Report != nil {
		t := d.Report.ReceivedAt
		ev.LastReportAt = &t
		ev.AppliedVersion = d.Report.AppliedPolicyVersion
	}
	a.events.publish(ev)
}

// RemoteChanged shows another replica's device event on this replica's
// live streams. It does not go on the change stream: the replica that
// committed the change published it there.
func (a *API) RemoteChanged(deviceID string, cause proto.EventCause) {
	if !a.events.active() {
		return
	}
	c, err := a.svc.Current(context.Background(), deviceID)
	if err != nil {
		return // deleted since; the revocation is its own event
	}
	a.publishChange(service.Change{Change: c, Cause: cause})
}

// OnStreams registers f to hear the number of open live streams (GET
// /events) whenever it changes, in order: a replicated daemon tells the
// other replicas whether to send it device events. f must not block. Call
// it before serving.
func (a *API) OnStreams(f func(open int)) {
	a.events.mu.Lock()
	defer a.events.mu.Unlock()
	a.events.onCount = f
}

// PresenceChanged tells the live streams that a device connected or
// disconnected. The daemon calls it from the broker's presence callback.
func (a *API) PresenceChanged(deviceID string, connected bool) {
	if !a.events.active() {
		return
	}
	a.svc.PresenceChanged(deviceID, connected)
}

// events streams device events as server-sent events (GET /events,
// operator). It sends "ready" once the subscription is in place, then a
// "device" event after every enroll, edit, report, connect and disconnect,
// and "resync" when the client fell behind and events were dropped. The
// stream ends when the client goes away or the server shuts down.
func (a *API) streamEvents(c *fiber.Ctx) error {
	op := requestOperator(c)
	sub := a.events.subscribe(op.name)
	a.logger.Info("live stream opened", "operator", op.name, "remote", c.IP())
	// Captured here, on the handler's goroutine: the stream writer runs on
	// its own goroutine after the handler returns.
	done := c.Context().Done()
	conn := c.Context().Conn()
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer a.logger.Info("live stream closed", "operator", op.name)
		defer a.events.unsubscribe(sub)
		a.writeEvents(w, conn, sub, done)
	})
	return nil
}

// writeEvents is the body of one stream. It returns when a write fails or
// done is closed.
func (a *API) writeEvents(w *bufio.Writer, conn net.Conn, sub *subscriber, done <-chan struct{}) {
	send := func(s string) bool {
		// fasthttp's WriteTimeout is one deadline for the whole response;
		// a stream needs it to roll with every write.
		if conn != nil {
			conn.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
		}
		w.WriteString(s)
		return w.Flush() == nil
	}
	ping := time.NewTicker(eventKeepAlive)
	defer ping.Stop()
	if !send("retry: 2000\nevent: " + proto.EventReady + "\ndata: {}\n\n") {
		return
	}
	for {
		select {
		case <-done:
			return
		case <-sub.revoked:
			return
		case ev := <-sub.events:
			b, err := json.Marshal(ev.data)
			if err != nil {
				a.logger.Error("encoding event", "event", ev.name, "err", err)
				continue
			}
			if !send("event: " + ev.name + "\ndata: " + string(b) + "\n\n") {
				return
			}
		case <-sub.lost:
			// Whatever is still queued is older than the reload the client
			// is about to do.
			for drained := false; !drained; {
				select {
				case <-sub.events:
				default:
					drained = true
				}
			}
			if !send("event: " + proto.EventResync + "\ndata: {}\n\n") {
				return
			}
		case <-ping.C:
			if !send(": keep-alive\n\n") {
				return
			}
		}
	}
}
