package pki

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// TicketKeysFile keeps the TLS session-ticket keys (a secret, mode 0600,
// beside the CA key; in the database when Files is shared by replicas).
const TicketKeysFile = "session-ticket-keys.json"

const (
	// DefaultTicketKeyRotation is Config.TicketKeyRotation's zero value.
	DefaultTicketKeyRotation = 24 * time.Hour
	// ticketKeysKept is how many keys decrypt tickets: a ticket resumes a
	// session for up to this many rotations.
	ticketKeysKept = 3
)

// ticketKey is one session-ticket key and when it was made.
type ticketKey struct {
	Created time.Time `json:"created"`
	Key     []byte    `json:"key"` // 32 bytes
}

// rotateTicketKeys loads the stored session-ticket keys, adds a new one
// when the newest is older than TicketKeyRotation (or none is usable),
// keeps the newest ticketKeysKept, stores them, and installs them on every
// configuration TLSConfig handed out. Stored keys let a restarted server,
// or another replica, resume the sessions of tickets it did not issue, so
// a reconnect storm after a restart is resumptions instead of full
// handshakes. Run under withLock.
func (a *Authority) rotateTicketKeys() error {
	var keys []ticketKey
	b, err := a.cfg.Files.Read(TicketKeysFile)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &keys); err != nil {
			a.log.Warn("the stored session-ticket keys are unreadable; making new ones", "err", err)
			keys = nil
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("reading %s: %w", TicketKeysFile, err)
	}
	usable := keys[:0]
	for _, k := range keys {
		if len(k.Key) == 32 {
			usable = append(usable, k)
		}
	}
	keys = usable
	now := a.cfg.Now()
	if len(keys) == 0 || now.Sub(keys[0].Created) >= a.cfg.TicketKeyRotation {
		k := ticketKey{Created: now.UTC(), Key: make([]byte, 32)}
		if _, err := rand.Read(k.Key); err != nil {
			return err
		}
		keys = append([]ticketKey{k}, keys...)
		if len(keys) > ticketKeysKept {
			keys = keys[:ticketKeysKept]
		}
		b, err := json.Marshal(keys)
		if err != nil {
			return err
		}
		if err := a.cfg.Files.Write(TicketKeysFile, b, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", TicketKeysFile, err)
		}
	}
	tk := make([][32]byte, len(keys))
	for i, k := range keys {
		copy(tk[i][:], k.Key)
	}
	a.tmu.Lock()
	defer a.tmu.Unlock()
	a.ticketKeys = tk
	for _, c := range a.configs {
		c.SetSessionTicketKeys(tk)
	}
	return nil
}

// useTicketKeys makes c encrypt tickets with the current keys and follow
// their rotation.
func (a *Authority) useTicketKeys(c *tls.Config) {
	a.tmu.Lock()
	defer a.tmu.Unlock()
	a.configs = append(a.configs, c)
	if len(a.ticketKeys) > 0 {
		c.SetSessionTicketKeys(a.ticketKeys)
	}
}
