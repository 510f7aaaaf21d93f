package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/doorbell-mdm/doorbell/proto"
)

// RevisionOwner is "groups" or "devices": whose revisions a call reads.
type RevisionOwner string

// The owners of revisions.
const (
	GroupRevisions  RevisionOwner = "groups"
	DeviceRevisions RevisionOwner = "devices"
)

func (o RevisionOwner) path(id string) (string, error) {
	if o != GroupRevisions && o != DeviceRevisions {
		return "", fmt.Errorf("revisions belong to groups or devices, not %q", string(o))
	}
	return "/" + string(o) + "/" + url.PathEscape(id), nil
}

// Revisions lists a group's or a device's policy revisions, newest first.
func (c *Client) Revisions(ctx context.Context, o RevisionOwner, id string) (proto.RevisionList, error) {
	var l proto.RevisionList
	p, err := o.path(id)
	if err != nil {
		return l, err
	}
	err = c.do(ctx, http.MethodGet, p+"/revisions", nil, &l)
	return l, err
}

// Revision returns revision n of a group's or a device's policy.
func (c *Client) Revision(ctx context.Context, o RevisionOwner, id string, n int64) (proto.Revision, error) {
	var r proto.Revision
	p, err := o.path(id)
	if err != nil {
		return r, err
	}
	err = c.do(ctx, http.MethodGet, p+"/revisions/"+strconv.FormatInt(n, 10), nil, &r)
	return r, err
}

// RollbackGroup makes revision n of a group's policy current again (as a
// new revision) and returns the group as stored with how many devices'
// policies changed.
func (c *Client) RollbackGroup(ctx context.Context, id string, n int64) (proto.GroupChange, error) {
	var g proto.GroupChange
	err := c.do(ctx, http.MethodPost, "/groups/"+url.PathEscape(id)+"/rollback", proto.Rollback{Revision: n}, &g)
	return g, err
}

// RollbackDevice makes revision n of a device's own settings current
// again (as a new revision) and returns the device's desired policy.
func (c *Client) RollbackDevice(ctx context.Context, id string, n int64) (proto.DevicePolicy, error) {
	var p proto.DevicePolicy
	err := c.do(ctx, http.MethodPost, "/devices/"+url.PathEscape(id)+"/rollback", proto.Rollback{Revision: n}, &p)
	return p, err
}
