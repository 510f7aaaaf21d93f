package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/doorbell-mdm/doorbell/proto"
)

// linuxHostSettings are the Linux host settings of a policy or of a
// read-back; nil is not managed (not observed).
type linuxHostSettings struct {
	Packages               *[]proto.Package
	Services               *[]proto.Service
	FirewallEnabled        *bool
	SSHRootLoginDisabled   *bool
	PasswordQuality        *proto.PasswordQuality
	MACEnforcing           *bool
	AuditdRunning          *bool
	DiskEncryptionRequired *bool
}

// managed lists the JSON names of the settings s manages.
func (s linuxHostSettings) managed() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{settingPackages, s.Packages != nil},
		{settingServices, s.Services != nil},
		{settingFirewallEnabled, s.FirewallEnabled != nil},
		{settingSSHRootLoginDisabled, s.SSHRootLoginDisabled != nil},
		{settingPasswordQuality, s.PasswordQuality != nil},
		{settingMACEnforcing, s.MACEnforcing != nil},
		{settingAuditdRunning, s.AuditdRunning != nil},
		{settingDiskEncryptionRequired, s.DiskEncryptionRequired != nil},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// hostScope is what Observe reads back of the host settings: which of them
// the policy manages, and the packages and units its lists name.
type hostScope struct {
	settings map[string]bool
	packages []proto.Package
	services []proto.Service
}

// widen adds what d manages to the scope (Enforce does this, so an
// enforced setting is read back even without a call of Scope).
func (sc *hostScope) widen(d linuxHostSettings) {
	if sc.settings == nil {
		sc.settings = map[string]bool{}
	}
	for _, n := range d.managed() {
		sc.settings[n] = true
	}
	if d.Packages != nil {
		sc.packages = slices.Clone(*d.Packages)
	}
	if d.Services != nil {
		sc.services = slices.Clone(*d.Services)
	}
}

// enforceHost enforces every host setting d manages, recording failures
// by setting name. A setting the host cannot support is left alone, like
// any unsupported setting: the agent reports it UNSUPPORTED with the reason
// (UnsupportedReason) and never hands it over.
func (e *LinuxEnforcer) enforceHost(ctx context.Context, h linuxHost, d linuxHostSettings, failed map[string]string) {
	e.hostScope.widen(d)
	try := func(name string, f func() error) {
		if e.unsupportedReason(h, name) != "" {
			return
		}
		if err := f(); err != nil {
			failed[name] = err.Error()
		}
	}
	if d.Packages != nil {
		try(settingPackages, func() error { return e.enforcePackages(ctx, h, *d.Packages) })
	}
	if d.Services != nil {
		try(settingServices, func() error { return e.enforceServices(ctx, h, *d.Services) })
	}
	if d.FirewallEnabled != nil {
		try(settingFirewallEnabled, func() error { return e.enforceFirewall(ctx, h, *d.FirewallEnabled) })
	}
	if d.SSHRootLoginDisabled != nil {
		try(settingSSHRootLoginDisabled, func() error { return e.enforceSSH(ctx, sshRootLogin, *d.SSHRootLoginDisabled) })
	}
	if d.PasswordQuality != nil {
		try(settingPasswordQuality, func() error { return e.enforcePasswordQuality(*d.PasswordQuality) })
	}
	if d.MACEnforcing != nil {
		try(settingMACEnforcing, func() error { return e.enforceMAC(ctx, h, *d.MACEnforcing) })
	}
	if d.AuditdRunning != nil {
		try(settingAuditdRunning, func() error { return e.enforceAuditd(ctx, h, *d.AuditdRunning) })
	}
	if d.DiskEncryptionRequired != nil {
		try(settingDiskEncryptionRequired, func() error { return e.enforceDiskEncryption(*d.DiskEncryptionRequired) })
	}
}

// observeHost reads back the host settings in scope that the host
// supports; the others stay nil.
func (e *LinuxEnforcer) observeHost(ctx context.Context, h linuxHost) (linuxHostSettings, error) {
	var s linuxHostSettings
	sc := e.hostScope
	in := func(name string) bool { return sc.settings[name] && e.unsupportedReason(h, name) == "" }
	wrap := func(name string, err error) error { return fmt.Errorf("observing %s: %w", name, err) }
	if in(settingPackages) {
		p, err := e.observePackages(ctx, h, sc.packages)
		if err != nil {
			return s, wrap(settingPackages, err)
		}
		s.Packages = &p
	}
	if in(settingServices) {
		v, err := e.observeServices(ctx, h, sc.services)
		if err != nil {
			return s, wrap(settingServices, err)
		}
		s.Services = &v
	}
	if in(settingFirewallEnabled) {
		v, err := e.observeFirewall(ctx, h)
		if err != nil {
			return s, wrap(settingFirewallEnabled, err)
		}
		s.FirewallEnabled = &v
	}
	if in(settingSSHRootLoginDisabled) {
		v, _, err := e.observeSSH(sshRootLogin)
		if err != nil {
			return s, wrap(settingSSHRootLoginDisabled, err)
		}
		s.SSHRootLoginDisabled = v
	}
	if in(settingPasswordQuality) {
		v, _, err := e.observePasswordQuality()
		if err != nil {
			return s, wrap(settingPasswordQuality, err)
		}
		s.PasswordQuality = v
	}
	if in(settingMACEnforcing) {
		v, _, err := e.observeMAC()
		if err != nil {
			return s, wrap(settingMACEnforcing, err)
		}
		s.MACEnforcing = &v
	}
	if in(settingAuditdRunning) {
		v, err := e.observeAuditd(ctx, h)
		if err != nil {
			return s, wrap(settingAuditdRunning, err)
		}
		s.AuditdRunning = &v
	}
	if in(settingDiskEncryptionRequired) {
		v, _, err := e.observeDiskEncryption()
		if err != nil {
			return s, wrap(settingDiskEncryptionRequired, err)
		}
		s.DiskEncryptionRequired = &v
	}
	return s, nil
}
