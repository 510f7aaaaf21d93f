package store

import (
	"context"

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
