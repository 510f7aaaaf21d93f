package bolt

import bbolt "go.etcd.io/bbolt"

// DBStats returns bbolt's figures for the database (transactions, freelist),
// for metrics.
func (s *Store) DBStats() bbolt.Stats { return s.db.Stats() }
