package sim

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// ScenarioCommands measures remote commands: request -> ACKNOWLEDGED.
const ScenarioCommands = "commands"

// sendCommand queues a lock for one device and returns its id.
func (f *fleet) sendCommand(ctx context.Context, id, key string) (string, error) {
	req := proto.CommandRequest{Type: proto.CommandLock, ExpiresIn: "5m", IdempotencyKey: key}
	cmd, err := f.admin.SendCommand(ctx, id, req)
	if err != nil {
		return "", fmt.Errorf("sim: command for device %s: %w", id, err)
	}
	return cmd.CommandID, nil
}

// checkAcknowledged checks that the server says the command is
// ACKNOWLEDGED. It is called once the agent's result was accepted, so the
// first answer must say so.
func (f *fleet) checkAcknowledged(ctx context.Context, cid string) error {
	cmd, err := f.admin.Command(ctx, cid)
	if err != nil {
		return fmt.Errorf("sim: command %s: %w", cid, err)
	}
	if cmd.State != proto.CommandAcknowledged {
		return fmt.Errorf("sim: the device ran command %s but the server says %s", cid, cmd.State)
	}
	return nil
}

// commands sends Edits lock commands to random devices, one at a time (all
// at once in poll mode, where each waits for a periodic sync), and measures
// each from the request to the server answering ACKNOWLEDGED: the doorbell,
// the agent's fetch, the execution and the result it posted.
func (f *fleet) commands(ctx context.Context, res *Result) error {
	return f.oneAtATime(ctx, res, "commands", func(ctx context.Context, d *device, i int) (time.Duration, error) {
		w := d.waitCommands(d.ranCommands() + 1)
		t := time.Now()
		cid, err := f.sendCommand(ctx, d.id(), "sim-"+strconv.Itoa(f.cfg.First)+"-"+strconv.Itoa(i)+"-"+strconv.FormatInt(t.UnixNano(), 36))
		if err != nil {
			return 0, err
		}
		if err := f.wait(ctx, w, fmt.Sprintf("device %d to run command %s", d.idx, cid)); err != nil {
			return 0, err
		}
		if err := f.checkAcknowledged(ctx, cid); err != nil {
			return 0, err
		}
		return time.Since(t), nil
	})
}
