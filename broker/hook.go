package broker

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/doorbell-mdm/doorbell/proto"
)

// operatorUsername is the MQTT username of an operator login.
const operatorUsername = "operator"

// role is what an authenticated client may do, derived from its username.
type role int

const (
	roleDevice role = iota
	roleOperator
	roleInline
)

// roleOf derives the role from what mochi already holds for the client, so
// it costs no lookup. A device's username equals its client id (enforced at
// login), so cl.ID is the device id.
func roleOf(cl *mqtt.Client) role {
	switch {
	case cl.Net.Inline:
		return roleInline
	case string(cl.Properties.Username) == operatorUsername:
		return roleOperator
	default:
		return roleDevice
	}
}

// hook is the broker's only hook: authentication, ACL and presence. mochi ORs
// the answers of its hooks, so no other auth hook may ever be registered.
type hook struct {
	mqtt.HookBase
	creds    Credentials
	server   *mqtt.Server
	log      *slog.Logger
	presence presence
	// slow limits operator sessions that do not keep up.
	slow *slowSubscribers
	// operators maps each operator session to its token's hash, so a
	// revoked token's sessions can be found.
	operators operatorSessions
	// checkCert is Config.CheckClientCert.
	checkCert func(username string, device bool, cs tls.ConnectionState) error

	// afterDisconnect, set only by tests before Serve, is called at the end
	// of every OnDisconnect.
	afterDisconnect func(cl *mqtt.Client)
}

// ID names the hook in mochi's logs.
func (h *hook) ID() string { return "doorbell-auth" }

// Provides declares the events the hook handles.
func (h *hook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{
		mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnPublishDropped,
	}, b) >= 0
}

// OnConnect runs before authentication. It drops any will message: a will is
// a publish that mochi sends without an ACL check, and nobody may publish.
// It also bounds the keepalive of MQTT 5 clients (see maxKeepalive).
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.Connect.WillFlag {
		cl.Properties.Will = mqtt.Will{}
		h.log.Debug("mqtt will message dropped", "client", cl.ID)
	}
	if cl.Properties.ProtocolVersion == 5 && (cl.State.Keepalive == 0 || cl.State.Keepalive > maxKeepalive) {
		cl.State.Keepalive = maxKeepalive
		cl.State.ServerKeepalive = true
	}
	return nil
}

// OnConnectAuthenticate accepts a device (client id = username = device id,
// password = device secret) or an operator (username "operator", password =
// operator token) and refuses anything else.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	reason := h.refusal(cl, pk)
	if reason == "" {
		reason = h.certRefusal(cl, pk)
	}
	if reason == "" {
		if string(pk.Connect.Username) == operatorUsername {
			h.operators.add(cl, string(pk.Connect.Password))
		}
		return true
	}
	// Neither the username nor the password is logged: a user who swapped
	// them would leak a secret.
	h.log.Info("mqtt login refused", "client", pk.Connect.ClientIdentifier, "remote", cl.Net.Remote, "reason", reason)
	return false
}

// refusal returns why the login in pk is refused, or "" when it is accepted.
func (h *hook) refusal(cl *mqtt.Client, pk packets.Packet) string {
	user := string(pk.Connect.Username)
	clientID := pk.Connect.ClientIdentifier
	password := pk.Connect.Password
	switch {
	case clientID == mqtt.InlineClientId:
		return "reserved client id" // would take over the broker's own client
	case user == operatorUsername:
		if len(password) == 0 || !h.creds.AuthenticateOperator(string(password)) {
			return "bad operator credentials"
		}
		if existing, ok := h.server.Clients.Get(cl.ID); ok && !existing.Closed() && roleOf(existing) == roleDevice {
			return "client id in use by a device" // an operator must not kick a device off
		}
		return ""
	case user == "":
		return "no username"
	case clientID != user:
		return "client id differs from username"
	case len(password) == 0 || !h.creds.AuthenticateDevice(user, string(password)):
		return "bad device credentials"
	default:
		return ""
	}
}

// OnACLCheck runs on every subscribe and on every delivery, so it only looks
// at the client in hand. Nobody may publish; a device may subscribe to and
// receive exactly its own doorbell topic; an operator may read anything. The
// inline client (the server's own publishes) may do anything.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	switch roleOf(cl) {
	case roleInline:
		return true
	case roleOperator:
		if write {
			return false
		}
		// A delivery (subscribing is always allowed): refuse it when the
		// session is too far behind.
		return h.slow == nil || h.slow.admit(cl)
	default:
		return !write && topic == proto.PolicyChangedTopic(cl.ID)
	}
}

// OnPublishDropped counts a message mochi dropped because the client's
// outbound queue was full (a QoS 0 subscriber that does not read).
func (h *hook) OnPublishDropped(cl *mqtt.Client, _ packets.Packet) {
	if h.slow != nil && roleOf(cl) == roleOperator {
		h.slow.countQueueDrop(cl)
	}
}

// OnSessionEstablished marks a device connected. It runs once the CONNACK is
// sent, and is always paired with an OnDisconnect.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if roleOf(cl) == roleDevice {
		h.presence.set(cl.ID, cl)
	}
}

// OnDisconnect marks a device disconnected, unless the session that ended was
// already replaced by a newer connection of the same device (a takeover).
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	switch roleOf(cl) {
	case roleDevice:
		h.presence.remove(cl.ID, cl)
	case roleOperator:
		if h.slow != nil {
			h.slow.forget(cl)
		}
		h.operators.remove(cl)
	}
	if h.afterDisconnect != nil {
		h.afterDisconnect(cl)
	}
}

// presence tracks the current session of every connected device. Keying the
// session's *mqtt.Client lets a stale disconnect (the old connection of a
// takeover) be told apart from the device going away.
type presence struct {
	notify   sync.Mutex // serialises changes with their callbacks, keeping them in order
	mu       sync.RWMutex
	clients  map[string]*mqtt.Client
	onChange func(deviceID string, connected bool)
}

// set records cl as deviceID's current session.
func (p *presence) set(deviceID string, cl *mqtt.Client) {
	p.notify.Lock()
	defer p.notify.Unlock()
	p.mu.Lock()
	p.clients[deviceID] = cl
	p.mu.Unlock()
	if p.onChange != nil {
		p.onChange(deviceID, true)
	}
}

// remove marks deviceID disconnected if cl is still its current session.
func (p *presence) remove(deviceID string, cl *mqtt.Client) {
	p.notify.Lock()
	defer p.notify.Unlock()
	p.mu.Lock()
	current, ok := p.clients[deviceID]
	if !ok || current != cl {
		p.mu.Unlock()
		return
	}
	delete(p.clients, deviceID)
	p.mu.Unlock()
	if p.onChange != nil {
		p.onChange(deviceID, false)
	}
}

func (p *presence) connected(deviceID string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.clients[deviceID]
	return ok
}

func (p *presence) count() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.clients)
}
