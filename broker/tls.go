package broker

import (
	"crypto/tls"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// certRefusal returns why the client certificate of a login over TLS is
// refused, or "" when it is accepted (or the connection is plain). By the
// time CONNECT is read the handshake is complete.
func (h *hook) certRefusal(cl *mqtt.Client, pk packets.Packet) string {
	if h.checkCert == nil {
		return ""
	}
	tc, ok := cl.Net.Conn.(*tls.Conn)
	if !ok {
		return ""
	}
	user := string(pk.Connect.Username)
	if err := h.checkCert(user, user != operatorUsername, tc.ConnectionState()); err != nil {
		return "client certificate: " + err.Error()
	}
	return ""
}
