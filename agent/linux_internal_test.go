package agent

import "testing"

// TestLinuxEnforcerNoReloadUnderRoot checks that an enforcer under any root
// other than / never runs a command: only the host itself reloads sshd.
func TestLinuxEnforcerNoReloadUnderRoot(t *testing.T) {
	for _, root := range []string{t.TempDir(), "/tmp/../tmp/x", "relative/root"} {
		if e := NewLinuxEnforcer(root); e.reloadSSH != nil {
			t.Errorf("NewLinuxEnforcer(%q) has an sshd reload hook", root)
		}
	}
}
