package service

// Principal names who holds a credential the server can revoke.
type Principal struct {
	// Kind is PrincipalOperator or PrincipalDevice.
	Kind string
	// Name is the operator token's name, or the device id.
	Name string
	// TokenHash is the SHA-256 of an operator's token (the broker knows
	// its sessions by it); empty for a device.
	TokenHash []byte
	// Remote is set when the credential was deleted on another replica
	// and the revocation arrived over the cluster bus: holders close their
	// sessions, and the cluster does not forward it again.
	Remote bool
}

// Principal kinds.
const (
	PrincipalOperator = "operator"
	PrincipalDevice   = "device"
)

// OnRevoke registers f to be called by RevokePrincipal. Every holder of live
// sessions registers one: the broker (MQTT sessions) and the API's event
// stream (open /events). f must close the principal's sessions before it
// returns and must not block for long.
func (s *Service) OnRevoke(f func(Principal)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokers = append(s.revokers, f)
}

// RevokePrincipal closes, at once, every live session of a principal whose
// credential was just deleted (an operator token, a device). Call it after
// the deletion is durable, so a reconnect is already refused. It is the one
// place revocation goes through, so a replicated store can call it for a
// revocation that happened elsewhere.
func (s *Service) RevokePrincipal(p Principal) {
	s.mu.RLock()
	fs := s.revokers
	s.mu.RUnlock()
	for _, f := range fs {
		f(p)
	}
	s.logger.Info("principal revoked; live sessions closed", "kind", p.Kind, "name", p.Name)
}
