package bolt

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// ErrDamaged is the error (through errors.Is) of Open for a database file
// that exists but cannot be trusted: empty, truncated or corrupted. The
// server must not start from it: an empty fleet would make every agent
// enroll again under a new id, losing history and groups.
var ErrDamaged = errors.New("database damaged")

// ErrLocked is the error (through errors.Is) of Open when another process
// holds the database: another doorbell serving the same data directory.
var ErrLocked = errors.New("database locked by another process")

// lockTimeout is how long Open waits for another process to release the
// database file.
const lockTimeout = 2 * time.Second

// damagedError explains what is wrong with the file and what to do.
type damagedError struct {
	path, what string
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("database %s is damaged: %s. Doorbell refuses to serve from it, because an empty or partial "+
		"fleet would make agents enroll again under new ids and lose their history and groups. "+
		"Restore the newest backup: stop doorbell, copy the backup file (made by `doorbell backup`) to %s, "+
		"start doorbell (see docs/OPERATIONS.md, \"Restore\"). Keep the damaged file for analysis; "+
		"to start a new, empty fleet on purpose, move it away", e.path, e.what, e.path)
}

func (e *damagedError) Is(target error) bool { return target == ErrDamaged }

// openChecked opens path read-write. A file that exists is first opened
// read-only and every page reachable from its buckets is read, on a
// goroutine where a memory fault (a truncated file is mapped past its end)
// is a recoverable panic: a damaged file is refused with ErrDamaged
// instead of crashing the process with a fault address.
func openChecked(path string, opts *bbolt.Options) (*bbolt.DB, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return open(path, opts) // a new database
	case err != nil:
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	case fi.Size() == 0:
		return nil, &damagedError{path, "the file is empty (0 bytes)"}
	}
	if err := verify(path, fi.Size(), opts); err != nil {
		return nil, err
	}
	return open(path, opts)
}

// open opens the file with bbolt, explaining a lock timeout.
func open(path string, opts *bbolt.Options) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, opts)
	if err == nil {
		return db, nil
	}
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is held by another process, most likely another doorbell serving the same data directory "+
			"(waited %v for it). Stop that one first, or give this one its own --data directory", ErrLocked, path, opts.Timeout)
	}
	return nil, fmt.Errorf("opening database %s: %w", path, err)
}

// verify opens the existing file read-only and reads every key and value
// of every bucket.
func verify(path string, size int64, opts *bbolt.Options) (err error) {
	ro := *opts
	ro.ReadOnly = true
	done := make(chan error, 1)
	go func() {
		var db *bbolt.DB
		debug.SetPanicOnFault(true)
		defer func() {
			if r := recover(); r != nil {
				if db != nil {
					closeQuietly(db)
				}
				done <- &damagedError{path, fmt.Sprintf("reading it failed (%v)", r)}
			}
		}()
		var err error
		db, err = open(path, &ro)
		if err != nil {
			if errors.Is(err, ErrLocked) {
				done <- err
				return
			}
			done <- &damagedError{path, err.Error()}
			return
		}
		err = db.View(func(tx *bbolt.Tx) error {
			if want := tx.Size(); size < want {
				return fmt.Errorf("the file is %d bytes, shorter than the %d its header records: it was truncated", size, want)
			}
			return walkAll(tx)
		})
		closeQuietly(db)
		if err != nil {
			done <- &damagedError{path, err.Error()}
			return
		}
		done <- nil
	}()
	return <-done
}

// walkAll reads every key and value (so every branch, leaf and overflow
// page) of every bucket, nested ones included.
func walkAll(tx *bbolt.Tx) error {
	var sum uint32
	var walk func(b *bbolt.Bucket, depth int) error
	walk = func(b *bbolt.Bucket, depth int) error {
		if depth > 16 {
			return errors.New("buckets nested deeper than doorbell ever writes")
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			sum = crc32.Update(sum, crc32.IEEETable, k)
			if v == nil {
				nb := b.Bucket(k)
				if nb == nil {
					return fmt.Errorf("key %q has neither a value nor a bucket", k)
				}
				if err := walk(nb, depth+1); err != nil {
					return err
				}
				continue
			}
			sum = crc32.Update(sum, crc32.IEEETable, v)
		}
		return nil
	}
	err := tx.ForEach(func(name []byte, b *bbolt.Bucket) error { return walk(b, 0) })
	_ = sum
	return err
}

// closeQuietly closes db, ignoring a panic of a damaged file.
func closeQuietly(db *bbolt.DB) {
	defer func() { _ = recover() }()
	_ = db.Close()
}
