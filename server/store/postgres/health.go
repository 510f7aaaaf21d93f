package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/doorbell-mdm/doorbell/server/store"
)

var _ store.HealthReporter = (*Store)(nil)

// health is the outcome of the last write transaction that reached the
// server's storage or failed on it, and of the last check that the
// database answers.
type health struct {
	mu  sync.Mutex
	err error

	ping    sync.Mutex // one check at a time; the others wait for it
	pingAt  time.Time
	pingErr error
}

// Tuning of the reachability check behind Health.
const (
	// healthPingEvery: probes more frequent than this share one check, so
	// a busy load balancer costs the database one query a second at most.
	healthPingEvery = time.Second
	// healthPingTimeout: a database slower than this to answer counts as
	// unreachable.
	healthPingTimeout = 2 * time.Second
)

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

// Health implements store.HealthReporter: store.ErrStorageUnreachable
// while this replica cannot reach its database (checked at most once a
// second, with a 2 s timeout), else the storage failure of the last write
// transaction this replica ran, until one succeeds.
func (s *Store) Health() error {
	if err := s.reachable(); err != nil {
		return err
	}
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return s.health.err
}

// reachable checks that the database answers a query through the pool.
func (s *Store) reachable() error {
	h := &s.health
	h.ping.Lock()
	defer h.ping.Unlock()
	if !h.pingAt.IsZero() && time.Since(h.pingAt) < healthPingEvery {
		return h.pingErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthPingTimeout)
	defer cancel()
	h.pingErr = nil
	if err := s.pool.Ping(ctx); err != nil {
		h.pingErr = fmt.Errorf("%w: %w", store.ErrStorageUnreachable, err)
	}
	h.pingAt = time.Now()
	return h.pingErr
}
