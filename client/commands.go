package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
)

// SendCommand queues a command for one device (POST
// /devices/{id}/commands) and returns it as queued (state PENDING), or the
// first command created with the same idempotency key.
func (c *Client) SendCommand(ctx context.Context, deviceID string, r proto.CommandRequest) (proto.Command, error) {
	var out proto.Command
	err := c.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(deviceID)+"/commands", r, &out)
	return out, err
}

// SendGroupCommand queues one command per member of a group, in one
// transaction (POST /groups/{id}/commands).
func (c *Client) SendGroupCommand(ctx context.Context, groupID string, r proto.CommandRequest) (proto.GroupCommandResponse, error) {
	var out proto.GroupCommandResponse
	err := c.do(ctx, http.MethodPost, "/groups/"+url.PathEscape(groupID)+"/commands", r, &out)
	return out, err
}

// CommandListOptions filters and pages GET /devices/{id}/commands.
type CommandListOptions struct {
	State proto.CommandState // "" for every state
	Limit int                // 0 for the server's default
	After string             // the cursor of the previous page
}

// Commands returns one page of a device's commands, newest first.
func (c *Client) Commands(ctx context.Context, deviceID string, o CommandListOptions) (proto.CommandList, error) {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", string(o.State))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.After != "" {
		q.Set("after", o.After)
	}
	path := "/devices/" + url.PathEscape(deviceID) + "/commands"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out proto.CommandList
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Command returns one command (GET /commands/{id}).
func (c *Client) Command(ctx context.Context, id string) (proto.Command, error) {
	var out proto.Command
	err := c.do(ctx, http.MethodGet, "/commands/"+url.PathEscape(id), nil, &out)
	return out, err
}

// CancelCommand cancels a command the device has not fetched (DELETE
// /commands/{id}) and returns it, CANCELLED.
func (c *Client) CancelCommand(ctx context.Context, id string) (proto.Command, error) {
	var out proto.Command
	err := c.do(ctx, http.MethodDelete, "/commands/"+url.PathEscape(id), nil, &out)
	return out, err
}

// WaitCommand polls a command every interval (0 means 250ms) until it is
// in a final state or ctx is done, and returns it as last seen.
func (c *Client) WaitCommand(ctx context.Context, id string, interval time.Duration) (proto.Command, error) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cmd, err := c.Command(ctx, id)
		if err != nil || cmd.State.Final() {
			return cmd, err
		}
		select {
		case <-ctx.Done():
			return cmd, ctx.Err()
		case <-t.C:
		}
	}
}
