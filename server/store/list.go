package store

import (
	"context"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// StateLister lists the devices in one derived compliance state (the
// API's ?state=). A backend with an index on the state answers from it;
// bolt filters a scan.
type StateLister interface {
	// DevicesInState returns up to limit devices in state with ids greater
	// than after, in id order; more says whether further ones may exist.
	DevicesInState(ctx context.Context, state proto.ComplianceState, after string, limit int) (devs []Device, more bool, err error)
}

// FailingLister lists the devices that have been failing since before a
// time (the API's ?failingSince.lt=). A backend with a column for
// NonCompliantSince answers from it; bolt filters a scan.
type FailingLister interface {
	// DevicesFailingBefore returns up to limit devices whose
	// NonCompliantSince is set and strictly before t, with ids greater than
	// after, in id order; more says whether further ones may exist. A
	// device keeps its NonCompliantSince while a policy edit makes it
	// STALE (see policy.TrackFailing), so such devices are listed too;
	// policy.FailingBefore is the one definition it must agree with.
	DevicesFailingBefore(ctx context.Context, t time.Time, after string, limit int) (devs []Device, more bool, err error)
}
