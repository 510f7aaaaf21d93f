package sim

import (
	"context"
	"fmt"
	"net"
	"net/url"

	"github.com/doorbell-mdm/doorbell/client"
	"github.com/doorbell-mdm/doorbell/proto"
)

// The operator's calls go through client.Client over the fleet's shared,
// counted, connection-reusing HTTP client (newHTTPClient).

// parseHost returns host:port of an http(s) URL.
func parseHost(serverURL string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("sim: --server %q: want http(s)://host:port", serverURL)
	}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		return net.JoinHostPort(u.Hostname(), port), nil
	}
	return u.Host, nil
}

// setCamera edits one device's policy and returns the new version.
func (f *fleet) setCamera(ctx context.Context, id string, disabled bool) (int64, error) {
	p, err := f.admin.SetPolicy(ctx, id, proto.PolicyUpdate{CameraDisabled: &disabled})
	if err != nil {
		return 0, fmt.Errorf("sim: editing device %s: %w", id, err)
	}
	return p.Version, nil
}

// checkCompliant checks that the server reports id COMPLIANT at version v
// or later. It is called once the agent's report was acknowledged, so the
// first answer must say so.
func (f *fleet) checkCompliant(ctx context.Context, id string, v int64) error {
	st, err := f.admin.Status(ctx, id)
	if err != nil {
		return fmt.Errorf("sim: status of device %s: %w", id, err)
	}
	if st.State != proto.StateCompliant || st.AppliedVersion < v {
		return fmt.Errorf("sim: device %s reported version %d but the server says %s at version %d (desired %d)",
			id, v, st.State, st.AppliedVersion, st.DesiredVersion)
	}
	return nil
}

// countCompliant pages through GET /devices and counts the devices of ids
// the server reports COMPLIANT.
func (f *fleet) countCompliant(ctx context.Context, ids map[string]bool) (int, error) {
	n := 0
	err := f.admin.AllDevices(ctx, client.ListOptions{State: proto.StateCompliant}, 0, func(d proto.DeviceStatus) bool {
		if ids[d.DeviceID] && d.State == proto.StateCompliant {
			n++
		}
		return true
	})
	return n, err
}
