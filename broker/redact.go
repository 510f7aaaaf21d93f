package broker

import (
	"context"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// redactingHandler wraps the handler of mochi's logger. mochi logs whole
// packets in places (a protocol error logs the offending packet, and a
// second CONNECT carries a password), so every packet attribute is replaced
// by a summary without payload or credentials.
type redactingHandler struct {
	slog.Handler
}

// Handle rewrites the record's packet attributes before passing it on.
func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

// WithAttrs redacts attributes bound to a derived logger too.
func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return redactingHandler{h.Handler.WithAttrs(red)}
}

// WithGroup keeps the wrapper on the derived handler.
func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{h.Handler.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		group := v.Group()
		red := make([]slog.Attr, len(group))
		for i, g := range group {
			red[i] = redactAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindAny:
		switch pk := v.Any().(type) {
		case packets.Packet:
			return slog.Attr{Key: a.Key, Value: packetSummary(&pk)}
		case *packets.Packet:
			if pk != nil {
				return slog.Attr{Key: a.Key, Value: packetSummary(pk)}
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// packetSummary describes a packet by type, id and topic: never payload,
// username or password.
func packetSummary(pk *packets.Packet) slog.Value {
	return slog.GroupValue(
		slog.String("type", packets.PacketNames[pk.FixedHeader.Type]),
		slog.Int("id", int(pk.PacketID)),
		slog.String("topic", pk.TopicName),
	)
}
