package postgres

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doorbell-mdm/doorbell/internal/backoff"
	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/cluster"
)

// BusChannel is the NOTIFY channel replicas talk on.
const BusChannel = "doorbell"

// MaxPayload bounds one NOTIFY payload: PostgreSQL refuses 8,000 bytes
// and more (default build); messages are packed into payloads below it.
const MaxPayload = 7900

// Tuning of the listener.
var (
	// busPing is how often an idle listener checks its connection, so a
	// silently dead one is replaced (and resynced) within about this long.
	busPing = 10 * time.Second
	// busResyncMargin is subtracted from the last moment the listener was
	// known to hear everything, for clocks of replicas that disagree.
	busResyncMargin = 30 * time.Second
	busRetryMax     = 5 * time.Second
)

// Bus is cluster.Bus over PostgreSQL LISTEN/NOTIFY. Publish sends through
// the store's pool, outside any transaction; Run listens on a dedicated
// connection of its own (a pooled one would be handed to other work).
type Bus struct {
	s      *Store
	origin string
	log    *slog.Logger

	listening     chan struct{}
	listeningOnce sync.Once
}

var _ cluster.Bus = (*Bus)(nil)

// NewBus returns the bus of the replica named origin (unique per process).
func (s *Store) NewBus(origin string, logger *slog.Logger) *Bus {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Bus{s: s, origin: origin, log: logger.With("component", "bus"), listening: make(chan struct{})}
}

// Listening is closed once Run first listens: from then on, nothing
// another replica publishes is missed without a Resync.
func (b *Bus) Listening() <-chan struct{} { return b.listening }

// payload is the JSON of one NOTIFY: the sender and its messages, each
// [kind, device, version], [kind, device, cause], [kind, operator token
// name, hex token hash] or [kind, "", streams open].
type payload struct {
	Origin   string            `json:"o"`
	Messages []json.RawMessage `json:"m"`
}

func encodeMessage(m cluster.Message) ([]byte, error) {
	switch m.Kind {
	case cluster.KindRing:
		return json.Marshal([]any{m.Kind, m.DeviceID, m.Version})
	case cluster.KindEvent:
		return json.Marshal([]any{m.Kind, m.DeviceID, m.Cause})
	case cluster.KindRevokeOperator:
		return json.Marshal([]any{m.Kind, m.Name, hex.EncodeToString(m.TokenHash)})
	case cluster.KindStreams:
		return json.Marshal([]any{m.Kind, "", m.Streams})
	default:
		return json.Marshal([]any{m.Kind, m.DeviceID})
	}
}

func decodeMessage(raw json.RawMessage) (cluster.Message, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) < 2 {
		return cluster.Message{}, fmt.Errorf("bad bus message %q", raw)
	}
	var m cluster.Message
	if err := json.Unmarshal(parts[0], &m.Kind); err != nil {
		return m, err
	}
	if err := json.Unmarshal(parts[1], &m.DeviceID); err != nil {
		return m, err
	}
	if len(parts) > 2 {
		switch m.Kind {
		case cluster.KindRevokeOperator:
			m.Name, m.DeviceID = m.DeviceID, ""
			var h string
			if err := json.Unmarshal(parts[2], &h); err != nil {
				return m, err
			}
			var err error
			m.TokenHash, err = hex.DecodeString(h)
			return m, err
		case cluster.KindStreams:
			return m, json.Unmarshal(parts[2], &m.Streams)
		case cluster.KindRing:
			return m, json.Unmarshal(parts[2], &m.Version)
		case cluster.KindEvent:
			var c string
			err := json.Unmarshal(parts[2], &c)
			m.Cause = proto.EventCause(c)
			return m, err
		}
	}
	return m, nil
}

// Pack encodes msgs from origin into NOTIFY payloads, each below
// MaxPayload bytes, in order.
func Pack(origin string, msgs []cluster.Message) ([]string, error) {
	head, err := json.Marshal(origin)
	if err != nil {
		return nil, err
	}
	prefix := `{"o":` + string(head) + `,"m":[`
	var out []string
	cur := []byte(prefix)
	n := 0
	for _, m := range msgs {
		b, err := encodeMessage(m)
		if err != nil {
			return nil, err
		}
		if len(prefix)+len(b)+2 > MaxPayload {
			return nil, fmt.Errorf("bus message for %q does not fit a payload", m.DeviceID)
		}
		if len(cur)+1+len(b)+2 > MaxPayload {
			out = append(out, string(cur)+"]}")
			cur, n = []byte(prefix), 0
		}
		if n > 0 {
			cur = append(cur, ',')
		}
		cur = append(cur, b...)
		n++
	}
	if n > 0 {
		out = append(out, string(cur)+"]}")
	}
	return out, nil
}

// Publish implements cluster.Bus: msgs are packed into as few payloads as
// fit and sent in one round trip.
func (b *Bus) Publish(ctx context.Context, msgs ...cluster.Message) error {
	payloads, err := Pack(b.origin, msgs)
	if err != nil || len(payloads) == 0 {
		return err
	}
	batch := &pgx.Batch{}
	for _, p := range payloads {
		batch.Queue("SELECT pg_notify($1, $2)", BusChannel, p)
	}
	return b.s.pool.SendBatch(ctx, batch).Close()
}

// Run listens until ctx is done, handing other replicas' messages to r.
// After a lost connection it reconnects (with backoff) and calls r.Resync
// with the last moment it was known to be listening.
func (b *Bus) Run(ctx context.Context, r cluster.Receiver) error {
	var lastAlive time.Time
	retry := backoff.Backoff{Min: 100 * time.Millisecond, Max: busRetryMax}
	for ctx.Err() == nil {
		conn, err := b.listen(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			d := retry.Next()
			b.log.Warn("bus: cannot listen; retrying", "err", err, "in", d)
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			continue
		}
		retry.Reset()
		b.listeningOnce.Do(func() { close(b.listening) })
		if !lastAlive.IsZero() {
			since := lastAlive.Add(-busResyncMargin)
			b.log.Info("bus: listening again; re-ringing changes since the loss", "since", since)
			r.Resync(since)
		}
		lastAlive = time.Now()
		err = b.serve(ctx, conn, r, &lastAlive)
		conn.Close(context.Background())
		if ctx.Err() == nil {
			b.log.Warn("bus: connection lost", "err", err)
		}
	}
	return nil
}

func (b *Bus) listen(ctx context.Context) (*pgx.Conn, error) {
	cfg := b.s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = "doorbell-bus " + b.origin
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+BusChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// serve receives notifications until the connection fails or ctx is done,
// pinging when idle.
func (b *Bus) serve(ctx context.Context, conn *pgx.Conn, r cluster.Receiver, lastAlive *time.Time) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, busPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			idle := errors.Is(err, context.DeadlineExceeded) || isTimeout(err)
			if !idle || conn.PgConn().IsClosed() {
				return err
			}
			pctx, cancel := context.WithTimeout(ctx, busPing)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
			*lastAlive = time.Now()
			continue
		}
		*lastAlive = time.Now()
		var p payload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			b.log.Warn("bus: undecodable payload", "err", err)
			continue
		}
		if p.Origin == b.origin {
			continue
		}
		msgs := make([]cluster.Message, 0, len(p.Messages))
		for _, raw := range p.Messages {
			m, err := decodeMessage(raw)
			if err != nil {
				b.log.Warn("bus: undecodable message", "err", err)
				continue
			}
			m.Origin = p.Origin
			msgs = append(msgs, m)
		}
		r.Receive(msgs)
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
