package broker

import (
	"crypto/sha256"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// operatorSessions remembers which token each operator session logged in
// with, as its SHA-256 (the form the server keeps), never the token.
type operatorSessions struct {
	mu       sync.Mutex
	byClient map[*mqtt.Client][sha256.Size]byte
}

func (o *operatorSessions) add(cl *mqtt.Client, token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byClient == nil {
		o.byClient = map[*mqtt.Client][sha256.Size]byte{}
	}
	o.byClient[cl] = sha256.Sum256([]byte(token))
}

func (o *operatorSessions) remove(cl *mqtt.Client) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.byClient, cl)
}

// DisconnectOperator closes, at once, every operator session that logged in
// with the token whose SHA-256 is tokenHash, and returns how many it
// closed. Revoke the token first, or the session may log straight back in.
func (b *Broker) DisconnectOperator(tokenHash []byte) int {
	var hit []*mqtt.Client
	o := &b.hook.operators
	o.mu.Lock()
	for cl, h := range o.byClient {
		if string(h[:]) == string(tokenHash) {
			hit = append(hit, cl)
		}
	}
	o.mu.Unlock()
	for _, cl := range hit {
		// DisconnectClient writes a DISCONNECT packet; Stop closes the
		// connection even if the client does not read.
		_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized)
		cl.Stop(packets.ErrNotAuthorized)
		o.remove(cl)
	}
	if len(hit) > 0 {
		b.log.Info("mqtt operator sessions closed: token revoked", "sessions", len(hit))
	}
	return len(hit)
}
