package store

import (
	"errors"
	"io"
)

// Errors a store returns (through errors.Is) when the storage under it
// fails, as opposed to a refused request. The API answers them 507 and 503
// and reports the store unhealthy until a write succeeds again.
var (
	// ErrStorageFull: the disk (or the file size limit, or a quota) has no
	// room for the write. Nothing was written.
	ErrStorageFull = errors.New("storage full")
	// ErrStorageFailed: the write failed for another I/O reason (a
	// read-only or failing disk). Nothing was written.
	ErrStorageFailed = errors.New("storage failed")
	// ErrStorageUnreachable: a networked store (PostgreSQL) does not
	// answer: it is down, failing over, or cut off from this replica.
	ErrStorageUnreachable = errors.New("storage unreachable")
)

// HealthReporter is implemented by stores that know whether their last
// write reached storage.
type HealthReporter interface {
	// Health returns nil when the last write succeeded (or none was made
	// yet), else that write's error, which matches ErrStorageFull or
	// ErrStorageFailed; a networked store returns an error matching
	// ErrStorageUnreachable while its server does not answer.
	Health() error
}

// Backuper is implemented by stores that can write a consistent copy of
// themselves while serving (`doorbell backup`).
type Backuper interface {
	// Backup writes the copy to w and returns its size.
	Backup(w io.Writer) (int64, error)
}
