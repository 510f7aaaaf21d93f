package broker

import mqtt "github.com/mochi-mqtt/server/v2"

// SetAfterDisconnect makes b call f with the client id at the end of every
// OnDisconnect, stale takeover disconnects included, which OnPresence does
// not report. Call it before Serve.
func SetAfterDisconnect(b *Broker, f func(clientID string)) {
	b.hook.afterDisconnect = func(cl *mqtt.Client) { f(cl.ID) }
}

// OperatorMaxInflight is the per-operator-session inflight bound.
const OperatorMaxInflight = operatorMaxInflight
