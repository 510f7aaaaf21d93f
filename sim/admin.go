package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/doorbell-mdm/doorbell/proto"
)

// adminClient makes the operator's calls.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func newAdminClient(serverURL, token string, hc *http.Client) (*adminClient, error) {
	if _, err := parseHost(serverURL); err != nil {
		return nil, err
	}
	return &adminClient{base: strings.TrimRight(serverURL, "/"), token: token, http: hc}, nil
}

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

func (c *adminClient) do(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// setCamera edits one device's policy and returns the new version.
func (c *adminClient) setCamera(ctx context.Context, id string, disabled bool) (int64, error) {
	var p proto.DevicePolicy
	if _, err := c.do(ctx, http.MethodPut, "/devices/"+url.PathEscape(id)+"/policy",
		proto.PolicyUpdate{CameraDisabled: &disabled}, &p); err != nil {
		return 0, err
	}
	return p.Version, nil
}

// waitCompliant checks that the server reports id COMPLIANT at version v
// or later. It is called once the agent's report was acknowledged, so the
// first answer must say so.
func (c *adminClient) waitCompliant(ctx context.Context, id string, v int64) error {
	var st proto.DeviceStatus
	if _, err := c.do(ctx, http.MethodGet, "/devices/"+url.PathEscape(id)+"/status", nil, &st); err != nil {
		return err
	}
	if st.State != proto.StateCompliant || st.AppliedVersion < v {
		return fmt.Errorf("sim: device %s reported version %d but the server says %s at version %d (desired %d)",
			id, v, st.State, st.AppliedVersion, st.DesiredVersion)
	}
	return nil
}

// countCompliant pages through GET /devices and counts the devices of ids
// the server reports COMPLIANT.
func (c *adminClient) countCompliant(ctx context.Context, ids map[string]bool) (int, error) {
	n, after := 0, ""
	for {
		var l proto.DeviceList
		path := "/devices?limit=1000&state=" + string(proto.StateCompliant)
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		if _, err := c.do(ctx, http.MethodGet, path, nil, &l); err != nil {
			return n, err
		}
		for _, d := range l.Devices {
			if ids[d.DeviceID] && d.State == proto.StateCompliant {
				n++
			}
		}
		if l.NextAfter == "" {
			return n, nil
		}
		after = l.NextAfter
	}
}
