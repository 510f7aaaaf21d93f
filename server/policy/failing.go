package policy

import (
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// TrackFailing keeps after's NonCompliantSince and FailingSince as a
// change moves a device from before (nil when new) to state to with the
// failing settings failing, at time at:
//
//   - NON_COMPLIANT: NonCompliantSince is kept from before, or set to at
//     when the device was not failing; each failing setting keeps its
//     FailingSince, a newly failing one gets at, the others are dropped.
//   - COMPLIANT: both are cleared.
//   - STALE and UNKNOWN (a policy edit waiting for the next report) keep
//     what before had: an edit does not restart a deadline or an
//     escalation.
func TrackFailing(before *store.Device, after *store.Device, to proto.ComplianceState, failing []proto.SettingFailure, at time.Time) {
	var since time.Time
	var prev map[string]time.Time
	if before != nil {
		since, prev = before.NonCompliantSince, before.FailingSince
	}
	switch to {
	case proto.StateCompliant:
		after.NonCompliantSince, after.FailingSince = time.Time{}, nil
	case proto.StateNonCompliant:
		if since.IsZero() {
			since = at.UTC()
		}
		next := make(map[string]time.Time, len(failing))
		for _, f := range failing {
			if t, ok := prev[f.Setting]; ok {
				next[f.Setting] = t
			} else {
				next[f.Setting] = at.UTC()
			}
		}
		after.NonCompliantSince, after.FailingSince = since, next
	default:
		after.NonCompliantSince, after.FailingSince = since, prev
	}
}

// FailingBefore reports whether d has been failing since before t: the
// one definition of the ?failingSince.lt= filter, which every backend's
// DevicesFailingBefore must agree with.
func FailingBefore(d store.Device, t time.Time) bool {
	return !d.NonCompliantSince.IsZero() && d.NonCompliantSince.Before(t)
}
