package agent

import "github.com/doorbell-mdm/doorbell/proto"

// hostSettingsOf picks the Linux host settings out of a policy.
func hostSettingsOf(s proto.Settings) linuxHostSettings {
	return linuxHostSettings{
		Packages:               s.Packages,
		Services:               s.Services,
		FirewallEnabled:        s.FirewallEnabled,
		SSHRootLoginDisabled:   s.SSHRootLoginDisabled,
		PasswordQuality:        s.PasswordQuality,
		MACEnforcing:           s.MACEnforcing,
		AuditdRunning:          s.AuditdRunning,
		DiskEncryptionRequired: s.DiskEncryptionRequired,
	}
}

// into copies the host settings into s.
func (h linuxHostSettings) into(s *proto.Settings) {
	s.Packages = h.Packages
	s.Services = h.Services
	s.FirewallEnabled = h.FirewallEnabled
	s.SSHRootLoginDisabled = h.SSHRootLoginDisabled
	s.PasswordQuality = h.PasswordQuality
	s.MACEnforcing = h.MACEnforcing
	s.AuditdRunning = h.AuditdRunning
	s.DiskEncryptionRequired = h.DiskEncryptionRequired
}

// Scope implements Scoper: Observe reads back the host settings policy
// manages, and the packages and units it names, from now on.
func (e *LinuxEnforcer) Scope(policy proto.Settings) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hostScope = hostScope{}
	e.hostScope.widen(hostSettingsOf(policy))
}
