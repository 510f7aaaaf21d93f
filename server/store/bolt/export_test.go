package bolt

// SetAuditRetention changes how many audit entries s keeps, so a test can
// see the oldest ones dropped without writing 100,000.
func SetAuditRetention(s *Store, n uint64) { s.auditRetention = n }

// SetBeforeReportWrite makes f run between a report's evaluation and its
// write, so a test can change the device in between.
func SetBeforeReportWrite(s *Store, f func()) { s.beforeReportWrite = f }
