package postgres

// SetBatchSize makes big edits split into batches of n rows, so a test sees
// several batches without thousands of devices. It returns the undo.
func SetBatchSize(n int) func() {
	old := batchSize
	batchSize = n
	return func() { batchSize = old }
}
