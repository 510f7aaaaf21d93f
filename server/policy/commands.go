package policy

import (
	"fmt"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/store"
)

// ApplyCommandState moves c to state at the given time, keeping its
// timestamps: what every backend does for a transition.
func ApplyCommandState(c *proto.Command, state proto.CommandState, at time.Time) {
	ts := make(map[proto.CommandState]time.Time, len(c.Timestamps)+1)
	for k, v := range c.Timestamps {
		ts[k] = v
	}
	ts[state] = at.UTC()
	c.Timestamps, c.State = ts, state
}

// AdmitCommand applies the queue's rules to a new command c, the same for
// every backend: a second unfinished command of an exclusive type (lock,
// wipe) is store.ErrCommandConflict; otherwise c becomes PENDING with its
// creation time. open returns the device's unfinished commands; it is
// called only for an exclusive type. cancelsOthers says whether c (a
// wipe) cancels the device's other open commands, which the caller does
// in the same transaction.
func AdmitCommand(c *proto.Command, open func() ([]proto.Command, error)) (cancelsOthers bool, err error) {
	spec, _ := proto.LookupCommand(c.Type)
	if spec.Exclusive {
		cmds, err := open()
		if err != nil {
			return false, err
		}
		for _, o := range cmds {
			if o.Type == c.Type {
				return false, fmt.Errorf("device %s has %s command %s unfinished: %w", c.DeviceID, c.Type, o.CommandID, store.ErrCommandConflict)
			}
		}
	}
	c.State = proto.CommandPending
	if c.Timestamps == nil {
		c.Timestamps = map[proto.CommandState]time.Time{proto.CommandPending: c.CreatedAt.UTC()}
	}
	return spec.CancelsOthers, nil
}
