package policy

import "github.com/doorbell-mdm/doorbell/server/store"

// CheckReplay applies the replay rules of store.ReportStore.SaveReport to r given
// the last accepted report, and fills r.SeenNonces. Backends call it in the
// transaction that stores r, with the device's record held.
func CheckReplay(last *store.Report, r *store.Report) error {
	if last == nil || last.Nonce == "" {
		if r.Nonce != "" {
			r.SeenNonces = []string{r.Nonce}
		}
		return nil
	}
	if r.Nonce == "" {
		return store.ErrNonceRequired
	}
	for _, n := range last.SeenNonces {
		if n == r.Nonce {
			return store.ErrReplayedNonce
		}
	}
	switch {
	case r.ReportedAt.Before(last.ReportedAt):
		return store.ErrStaleReport
	case r.ReportedAt.Equal(last.ReportedAt):
		r.SeenNonces = append(append([]string(nil), last.SeenNonces...), r.Nonce)
	default:
		r.SeenNonces = []string{r.Nonce}
	}
	return nil
}

// AcceptReport applies report r to d, whose record the caller holds in
// the transaction that stores it: a version above the desired one is
// store.ErrVersionAhead, then the replay rules (CheckReplay); a report's
// SyncIntervalSeconds, when above 0, becomes the device's. On an error d
// is unchanged.
func AcceptReport(d *store.Device, r store.Report) error {
	if r.AppliedPolicyVersion > d.Policy.Version {
		return store.ErrVersionAhead
	}
	if err := CheckReplay(d.Report, &r); err != nil {
		return err
	}
	d.Report = &r
	if r.SyncIntervalSeconds > 0 {
		d.SyncIntervalSeconds = r.SyncIntervalSeconds
	}
	return nil
}
