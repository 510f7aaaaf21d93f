package store

// CheckReplay applies the replay rules of ReportStore.SaveReport to r given
// the last accepted report, and fills r.SeenNonces. Backends call it in the
// transaction that stores r, with the device's record held.
func CheckReplay(last *Report, r *Report) error {
	if last == nil || last.Nonce == "" {
		if r.Nonce != "" {
			r.SeenNonces = []string{r.Nonce}
		}
		return nil
	}
	if r.Nonce == "" {
		return ErrNonceRequired
	}
	for _, n := range last.SeenNonces {
		if n == r.Nonce {
			return ErrReplayedNonce
		}
	}
	switch {
	case r.ReportedAt.Before(last.ReportedAt):
		return ErrStaleReport
	case r.ReportedAt.Equal(last.ReportedAt):
		r.SeenNonces = append(append([]string(nil), last.SeenNonces...), r.Nonce)
	default:
		r.SeenNonces = []string{r.Nonce}
	}
	return nil
}
