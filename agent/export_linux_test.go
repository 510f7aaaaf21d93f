package agent

import (
	"context"

	"github.com/doorbell-mdm/doorbell/proto"
)

// Test hooks for the external tests of the Linux host settings.

type HostSettings = linuxHostSettings

const (
	SettingPackages               = settingPackages
	SettingServices               = settingServices
	SettingFirewallEnabled        = settingFirewallEnabled
	SettingSSHRootLoginDisabled   = settingSSHRootLoginDisabled
	SettingPasswordQuality        = settingPasswordQuality
	SettingMACEnforcing           = settingMACEnforcing
	SettingAuditdRunning          = settingAuditdRunning
	SettingDiskEncryptionRequired = settingDiskEncryptionRequired
)

func (s linuxHostSettings) Managed() []string { return s.managed() }

func (e *LinuxEnforcer) EnforceHost(ctx context.Context, d linuxHostSettings, failed map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.enforceHost(ctx, e.detect(), d, failed)
}

func (e *LinuxEnforcer) ObserveHost(ctx context.Context) (linuxHostSettings, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.observeHost(ctx, e.detect())
}

func (e *LinuxEnforcer) EnforcePasswordQuality(q proto.PasswordQuality) error {
	return e.enforcePasswordQuality(q)
}

func (e *LinuxEnforcer) ObservePasswordQuality() (*proto.PasswordQuality, string, error) {
	return e.observePasswordQuality()
}
