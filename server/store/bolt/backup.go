package bolt

import (
	"fmt"
	"io"
	"os"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/server/store"
)

var _ store.Backuper = (*Store)(nil)

// Backup writes a consistent copy of the whole database to w, from one
// read transaction: writes go on meanwhile and are not in the copy. The
// copy is a bbolt file that Open accepts as is.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("writing backup: %w", err)
	}
	return n, nil
}

// BackupFile copies the database at path, which no server may hold (it
// waits lockTimeout for the lock), to w: the offline form of Backup. The
// copy is checked like Open checks a file, so a damaged database is not
// backed up over a good backup.
func BackupFile(path string, w io.Writer) (int64, error) {
	opts := &bbolt.Options{Timeout: lockTimeout, ReadOnly: true}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("backing up %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return 0, &damagedError{path, "the file is empty (0 bytes)"}
	}
	if err := verify(path, fi.Size(), opts); err != nil {
		return 0, err
	}
	db, err := open(path, opts)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("writing backup of %s: %w", path, err)
	}
	return n, nil
}

// Verify checks the database file at path the way Open does (not empty,
// every page reachable from its buckets readable, not shorter than its
// header says) without opening it for writing: for a backup, before it is
// trusted, and for a file about to be restored.
func Verify(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return &damagedError{path, "the file is empty (0 bytes)"}
	}
	return verify(path, fi.Size(), &bbolt.Options{Timeout: lockTimeout, ReadOnly: true})
}
