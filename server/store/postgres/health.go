package postgres

import (
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/doorbell-mdm/doorbell/server/store"
)

var _ store.HealthReporter = (*Store)(nil)

// health is the outcome of the last write transaction that reached the
// server's storage or failed on it.
type health struct {
	mu  sync.Mutex
	err error
}

// storageError classifies a write's error: SQLSTATE 53100 (disk_full) is
// store.ErrStorageFull; 58030 (io_error) and class XX (data or index
// corrupted, internal error) are store.ErrStorageFailed. Anything else is
// not about storage and returns nil.
func storageError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	switch {
	case pe.Code == "53100":
		return fmt.Errorf("%w: %w", store.ErrStorageFull, err)
	case pe.Code == "58030", len(pe.Code) == 5 && pe.Code[:2] == "XX":
		return fmt.Errorf("%w: %w", store.ErrStorageFailed, err)
	}
	return nil
}

// noteWrite records a write transaction's outcome for Health and returns
// err, classified when it is a storage failure.
func (s *Store) noteWrite(err error) error {
	classified := storageError(err)
	if err != nil && classified == nil {
		return err // refused or conflicting: says nothing about storage
	}
	s.health.mu.Lock()
	s.health.err = classified
	s.health.mu.Unlock()
	if classified != nil {
		return classified
	}
	return nil
}

// Health implements store.HealthReporter: the storage failure of the last
// write transaction this replica ran, until one succeeds.
func (s *Store) Health() error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return s.health.err
}
