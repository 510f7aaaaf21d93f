package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/doorbell-mdm/doorbell/server/store/bolt"
)

const backupUsage = "doorbell backup --out FILE --data DIR (a stopped server) | doorbell backup --out FILE [--server URL --token T] (a running server, admin)"

// dbFile is the database's name in the data directory.
const dbFile = "doorbell.db"

// runBackup writes a consistent copy of the database to --out: from a
// running server (GET /backup, admin), or with --data from the data
// directory of a stopped server (opened read-only; a running server holds
// the file and the command says so). The copy is checked like the server
// checks its database at start, then moved into place, so --out is either
// the old file or a complete, good copy.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr, backupUsage)
	var o opFlags
	o.register(fs)
	var out, data string
	fs.StringVar(&out, "out", "", "file to write the copy to (replaced atomically)")
	fs.StringVar(&data, "data", "", "data directory of a stopped server (instead of --server)")
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, backupUsage); err != nil {
		return err
	}
	if out == "" {
		return fmt.Errorf("usage: %s", backupUsage)
	}
	from := o.server
	write := func(w io.Writer) (int64, error) { return bolt.BackupFile(filepath.Join(data, dbFile), w) }
	if data != "" {
		from = filepath.Join(data, dbFile)
	} else {
		c, err := o.client()
		if err != nil {
			return err
		}
		write = func(w io.Writer) (int64, error) { return c.Backup(ctx, w) }
	}
	n, err := writeAtomically(out, write)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s (%d bytes) to %s\n", from, n, out)
	return nil
}

// writeAtomically writes a database copy through write to a temporary file
// next to path, syncs it, checks it and renames it over path.
func writeAtomically(path string, write func(io.Writer) (int64, error)) (n int64, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("creating the backup file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return 0, err
	}
	if n, err = write(f); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, fmt.Errorf("writing the backup file: %w", err)
	}
	if err = f.Close(); err != nil {
		return n, fmt.Errorf("writing the backup file: %w", err)
	}
	if err = bolt.Verify(tmp); err != nil {
		return n, fmt.Errorf("the copy does not check out, %s left as it was: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return n, fmt.Errorf("moving the backup into place: %w", err)
	}
	return n, nil
}

// dataDirMarkers are files a server leaves in its data directory besides
// the database: when one is there, the directory is not new.
var dataDirMarkers = []string{"admin-token", "enroll-token", "tls"}

// checkDataDir refuses to start a server whose data directory was used
// before but lost its database: starting would serve an empty fleet, and
// every agent would enroll again under a new id. A new (missing or empty)
// directory is fine.
func checkDataDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, dbFile)); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return nil // there, or an error the database open reports better
	}
	var found []string
	for _, m := range dataDirMarkers {
		if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
			found = append(found, m)
		}
	}
	if len(found) == 0 {
		return nil
	}
	return fmt.Errorf("data directory %s was used by a server before (it holds %s) but has no %s: "+
		"refusing to start an empty fleet, which would make every agent enroll again under a new id. "+
		"Restore the newest backup to %s (see docs/OPERATIONS.md, \"Restore\"); to start a new fleet on purpose, "+
		"use a new data directory", dir, strings.Join(found, ", "), dbFile, filepath.Join(dir, dbFile))
}
