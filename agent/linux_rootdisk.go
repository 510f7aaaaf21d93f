package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// rootDisk is what the Linux agent knows of the block device under the
// root file system. The enforcer (diskEncryptionRequired) and the
// inventory collector (disks.rootEncrypted) both read it here.
type rootDisk struct {
	// Dev is the root file system's device number ("254:1") from
	// /proc/self/mountinfo; Name its entry in /sys/class/block ("dm-1"),
	// "" when / is not on a block device (overlay, network root).
	Dev, Name string
	// Crypt is true when that device is a dm-crypt mapping or sits on one
	// through device-mapper layers (LVM on LUKS), following slaves/; LUKS
	// when that mapping is LUKS (dm uuid "CRYPT-LUKS…", not plain
	// dm-crypt).
	Crypt, LUKS bool
}

// readRootDisk reads the root file system's block device of the host under
// root: the last mount on / in /proc/self/mountinfo (the one in effect),
// its /sys/class/block entry found by its dev number, and the dm uuids of
// it and its slaves, recursively.
func readRootDisk(root string) (rootDisk, error) {
	var rd rootDisk
	mi, err := os.ReadFile(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return rd, err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[4] == "/" {
			rd.Dev = f[2]
		}
	}
	if rd.Dev == "" {
		return rd, errors.New("no root file system in /proc/self/mountinfo")
	}
	ents, _ := os.ReadDir(filepath.Join(root, "sys/class/block"))
	for _, e := range ents {
		if blockFile(root, e.Name(), "dev") == rd.Dev {
			rd.Name = e.Name()
			break
		}
	}
	if rd.Name != "" {
		rd.Crypt, rd.LUKS = cryptUnder(root, rd.Name, 0)
	}
	return rd, nil
}

// blockFile returns the trimmed content of /sys/class/block/<name>/<file>
// under root, "" when unreadable.
func blockFile(root, name, file string) string {
	b, _ := os.ReadFile(filepath.Join(root, "sys/class/block", name, file))
	return strings.TrimSpace(string(b))
}

// dmCrypt reports whether block device name is a dm-crypt mapping (dm
// uuid "CRYPT-…"), and a LUKS one ("CRYPT-LUKS…").
func dmCrypt(root, name string) (crypt, luks bool) {
	uuid := blockFile(root, name, "dm/uuid")
	return strings.HasPrefix(uuid, "CRYPT-"), strings.HasPrefix(uuid, "CRYPT-LUKS")
}

// cryptUnder reports whether block device name is a dm-crypt mapping or
// sits on one, through at most 8 layers of slaves.
func cryptUnder(root, name string, depth int) (crypt, luks bool) {
	if depth > 8 {
		return false, false
	}
	if crypt, luks = dmCrypt(root, name); crypt {
		return crypt, luks
	}
	slaves, _ := os.ReadDir(filepath.Join(root, "sys/class/block", name, "slaves"))
	for _, s := range slaves {
		if crypt, luks = cryptUnder(root, s.Name(), depth+1); crypt {
			return crypt, luks
		}
	}
	return false, false
}
