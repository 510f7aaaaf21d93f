package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// firewallBackend is the firewall a host uses: ufw (Debian, Ubuntu),
// firewalld (Fedora, RHEL, openSUSE) or plain nftables (its systemd unit
// loading /etc/nftables.conf).
type firewallBackend interface {
	name() string
	enable(ctx context.Context, e *LinuxEnforcer) error
	disable(ctx context.Context, e *LinuxEnforcer) error
	// active reports whether the firewall is on and its ruleset is loaded
	// in the kernel, and if not, why.
	active(ctx context.Context, e *LinuxEnforcer) (bool, string, error)
}

// detectFirewall picks the firewall the host uses, in order: ufw,
// firewalld, nftables. ufw and firewalld each drive nftables or iptables
// themselves, so a host with either is managed through it.
func (e *LinuxEnforcer) detectFirewall(h linuxHost) (firewallBackend, string) {
	if e.run == nil {
		return nil, h.systemdWhy
	}
	switch {
	case e.hasProgram("ufw"):
		return ufwFirewall{}, ""
	case e.hasProgram("firewall-cmd"):
		if !h.systemd {
			return nil, "firewalld: " + h.systemdWhy
		}
		return firewalldFirewall{}, ""
	case e.hasProgram("nft"):
		if !h.systemd {
			return nil, "nftables: " + h.systemdWhy
		}
		return nftFirewall{}, ""
	}
	return nil, "no firewall tool found (ufw, firewall-cmd or nft)"
}

type ufwFirewall struct{}

func (ufwFirewall) name() string { return "ufw" }

func (ufwFirewall) enable(ctx context.Context, e *LinuxEnforcer) error {
	_, err := e.runCmd(ctx, "ufw", "--force", "enable")
	return err
}

func (ufwFirewall) disable(ctx context.Context, e *LinuxEnforcer) error {
	_, err := e.runCmd(ctx, "ufw", "disable")
	return err
}

// active: "ufw status" says "Status: active" only when ufw's chains are
// loaded in the kernel (it reads them back, which needs root).
func (ufwFirewall) active(ctx context.Context, e *LinuxEnforcer) (bool, string, error) {
	out, err := e.runCmd(ctx, "ufw", "status")
	if err != nil {
		return false, "", err
	}
	line := firstLine(out)
	if strings.EqualFold(line, "Status: active") {
		return true, "", nil
	}
	return false, fmt.Sprintf("ufw says %q", line), nil
}

type firewalldFirewall struct{}

func (firewalldFirewall) name() string { return "firewalld" }

func (firewalldFirewall) enable(ctx context.Context, e *LinuxEnforcer) error {
	_, err := e.runCmd(ctx, "systemctl", "enable", "--now", "firewalld.service")
	return err
}

func (firewalldFirewall) disable(ctx context.Context, e *LinuxEnforcer) error {
	_, err := e.runCmd(ctx, "systemctl", "disable", "--now", "firewalld.service")
	return err
}

// active: firewall-cmd --state says "running", and firewalld's table is in
// the kernel's nftables ruleset.
func (firewalldFirewall) active(ctx context.Context, e *LinuxEnforcer) (bool, string, error) {
	out, err := e.runCmd(ctx, "firewall-cmd", "--state")
	if err != nil && ExitCode(err) < 0 {
		return false, "", err
	}
	if s := firstLine(out); s != "running" {
		if s == "" {
			s = "not running"
		}
		return false, "firewalld is " + s, nil
	}
	if _, err := e.runCmd(ctx, "nft", "list", "table", "inet", "firewalld"); err != nil {
		if ExitCode(err) < 0 {
			return false, "", err
		}
		return false, "firewalld runs but its nftables table is not loaded", nil
	}
	return true, "", nil
}

type nftFirewall struct{}

func (nftFirewall) name() string { return "nftables" }

func (nftFirewall) enable(ctx context.Context, e *LinuxEnforcer) error {
	_, err := e.runCmd(ctx, "systemctl", "enable", "--now", "nftables.service")
	return err
}

func (nftFirewall) disable(ctx context.Context, e *LinuxEnforcer) error {
	_, err := e.runCmd(ctx, "systemctl", "disable", "--now", "nftables.service")
	return err
}

// active: the loaded ruleset has a chain hooked on input (a ruleset that
// filters nothing coming in is not a firewall).
func (nftFirewall) active(ctx context.Context, e *LinuxEnforcer) (bool, string, error) {
	out, err := e.runCmd(ctx, "nft", "list", "ruleset")
	if err != nil {
		return false, "", err
	}
	if strings.Contains(string(out), "hook input") {
		return true, "", nil
	}
	return false, "the nftables ruleset has no input chain", nil
}

// enforceFirewall turns the host's firewall on or off, then reads back.
func (e *LinuxEnforcer) enforceFirewall(ctx context.Context, h linuxHost, on bool) error {
	if h.fw == nil {
		return errors.New(h.fwWhy)
	}
	got, _, err := h.fw.active(ctx, e)
	if err != nil {
		return err
	}
	if got != on {
		do := h.fw.disable
		if on {
			do = h.fw.enable
		}
		if err := do(ctx, e); err != nil {
			return err
		}
	}
	got, why, err := h.fw.active(ctx, e)
	if err != nil {
		return err
	}
	if got != on {
		if on {
			return fmt.Errorf("not in effect: %s", why)
		}
		return fmt.Errorf("not in effect: %s is still active", h.fw.name())
	}
	return nil
}

// observeFirewall reports whether the host's firewall is on with its
// ruleset loaded.
func (e *LinuxEnforcer) observeFirewall(ctx context.Context, h linuxHost) (bool, error) {
	if h.fw == nil {
		return false, errors.New(h.fwWhy)
	}
	on, _, err := h.fw.active(ctx, e)
	return on, err
}
