package broker

import "github.com/mochi-mqtt/server/v2/system"

// Info returns a copy of mochi's running figures: clients, messages and
// bytes sent and received, subscriptions.
func (b *Broker) Info() system.Info { return *b.server.Info.Clone() }
