package bolt

// SetAuditRetention changes how many audit entries s keeps, so a test can
// see the oldest ones dropped without writing 100,000.
func SetAuditRetention(s *Store, n uint64) { s.auditRetention = n }
