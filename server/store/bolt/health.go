package bolt

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/doorbell-mdm/doorbell/server/store"
)

var _ store.HealthReporter = (*Store)(nil)

// health is the outcome of the store's last write.
type health struct {
	mu   sync.Mutex
	err  error
	when time.Time
}

// updateTx runs fn in a read-write transaction and records whether it
// reached the disk. A storage failure is returned wrapped in
// store.ErrStorageFull or store.ErrStorageFailed.
func (s *Store) updateTx(fn func(*bbolt.Tx) error) error {
	return s.noteWrite(s.db.Update(fn))
}

// noteWrite classifies err and records it as the last write's outcome:
// a storage error makes the store unhealthy, a success makes it healthy
// again, an error of the request itself (not found, conflict) changes
// nothing.
func (s *Store) noteWrite(err error) error {
	var classified error
	switch {
	case err == nil:
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG), fullMessage(err):
		classified = fmt.Errorf("%w: %w", store.ErrStorageFull, err)
	case isIOError(err):
		classified = fmt.Errorf("%w: %w", store.ErrStorageFailed, err)
	default:
		return err
	}
	s.health.mu.Lock()
	s.health.err, s.health.when = classified, s.now()
	s.health.mu.Unlock()
	if classified != nil {
		return classified
	}
	return nil
}

// fullMessage recognises a full disk in an error bbolt formatted with %s
// (its file resize and mmap errors do not wrap the errno).
func fullMessage(err error) bool {
	msg := err.Error()
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG} {
		if strings.Contains(msg, errno.Error()) {
			return true
		}
	}
	return false
}

// isIOError reports an error of the file system rather than of the request.
func isIOError(err error) bool {
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno) || errors.Is(err, bbolt.ErrDatabaseNotOpen) ||
		strings.Contains(err.Error(), "file resize error") || strings.Contains(err.Error(), "mmap")
}

// Health implements store.HealthReporter.
func (s *Store) Health() error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	if s.health.err == nil {
		return nil
	}
	return fmt.Errorf("last write failed at %s: %w", s.health.when.UTC().Format(time.RFC3339), s.health.err)
}
