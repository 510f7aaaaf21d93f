package broker

import "github.com/mochi-mqtt/server/v2/system"

// Info returns a copy of mochi's running figures: clients, messages and
// bytes sent and received, subscriptions. MessagesDropped counts every
// message not delivered to a subscriber that did not keep up, whichever
// limit dropped it: mochi's outbound queue, mochi's inflight quota
// (mochi's own InflightDropped, included here) or the operator session
// limit.
func (b *Broker) Info() system.Info {
	i := *b.server.Info.Clone()
	i.MessagesDropped += i.InflightDropped + b.hook.slow.dropped.Load()
	return i
}
