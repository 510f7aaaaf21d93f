// Command fleetedit is the measuring end of scripts/scale.sh: with a fleet
// enrolled and connected by several `doorbell sim` processes, it puts every
// device into one group (more only when the group's member list exceeds
// the server's body limit), edits the group's policy once, and prints the
// time until the server reports every device COMPLIANT.
//
//	go run ./scripts/fleetedit --server http://127.0.0.1:18080 --admin-token T --devices 30000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/doorbell-mdm/doorbell/proto"
	"github.com/doorbell-mdm/doorbell/server/api"
)

type client struct {
	base, token string
	http        *http.Client
}

// errTooLarge is a 413: the body is over the server's limit.
var errTooLarge = errors.New("request body too large")

func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusRequestEntityTooLarge {
		return errTooLarge
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// ids pages through GET /devices.
func (c *client) ids(ctx context.Context) ([]string, error) {
	var out []string
	after := ""
	for {
		var page proto.DeviceList
		if err := c.do(ctx, http.MethodGet, "/devices?limit=1000&after="+url.QueryEscape(after), nil, &page); err != nil {
			return nil, err
		}
		for _, d := range page.Devices {
			out = append(out, d.DeviceID)
		}
		if page.NextAfter == "" {
			return out, nil
		}
		after = page.NextAfter
	}
}

// groups creates groups holding ids between them, as few as the server's
// body limit allows, and returns their ids.
func (c *client) groups(ctx context.Context, ids []string, parts int) ([]string, error) {
	var out []string
	per := (len(ids) + parts - 1) / parts
	for start := 0; start < len(ids); start += per {
		var g proto.Group
		req := map[string]any{"name": fmt.Sprintf("scale-%d-%d", time.Now().UnixNano(), start), "priority": 1000, "deviceIds": ids[start:min(start+per, len(ids))]}
		err := c.do(ctx, http.MethodPost, "/groups", req, &g)
		if errors.Is(err, errTooLarge) {
			for _, id := range out {
				c.do(ctx, http.MethodDelete, "/groups/"+url.PathEscape(id), nil, nil)
			}
			return c.groups(ctx, ids, parts*2)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, g.GroupID)
	}
	return out, nil
}

func (c *client) compliant(ctx context.Context) (int64, error) {
	var s proto.ComplianceSummary
	if err := c.do(ctx, http.MethodGet, "/compliance/summary", nil, &s); err != nil {
		return 0, err
	}
	return s.Counts[proto.StateCompliant], nil
}

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "a replica's base URL")
	token := flag.String("admin-token", "", "an admin operator token")
	devices := flag.Int("devices", 0, "devices the fleet must hold before the edit")
	timeout := flag.Duration("timeout", 30*time.Minute, "give up after this long")
	flag.Parse()
	if *token == "" || *devices < 1 {
		fmt.Fprintln(os.Stderr, "usage: fleetedit --server URL --admin-token T --devices N")
		os.Exit(2)
	}
	if err := run(*server, *token, *devices, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "fleetedit:", err)
		os.Exit(1)
	}
}

func run(server, token string, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := &client{base: server, token: token, http: &http.Client{Timeout: time.Minute}}
	ids, err := c.ids(ctx)
	if err != nil {
		return err
	}
	if len(ids) != n {
		return fmt.Errorf("the server holds %d devices, want %d", len(ids), n)
	}
	if got, err := c.compliant(ctx); err != nil || got != int64(n) {
		return fmt.Errorf("%d of %d devices COMPLIANT before the edit (%v)", got, n, err)
	}
	// The member list of one group must fit the server's group body limit
	// (api.MaxGroupBodyBytes; a server may also reset the connection rather than answer
	// 413): split it beforehand, and again on a 413.
	b, _ := json.Marshal(ids)
	groups, err := c.groups(ctx, ids, len(b)/(api.MaxGroupBodyBytes-4096)+1)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for _, g := range groups {
		if err := c.do(ctx, http.MethodPut, "/groups/"+url.PathEscape(g)+"/policy", map[string]bool{"cameraDisabled": true}, nil); err != nil {
			return err
		}
	}
	edited := time.Since(t0)
	for {
		got, err := c.compliant(ctx)
		if err != nil {
			return err
		}
		if got == int64(n) {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d devices COMPLIANT after %v", got, n, time.Since(t0))
		}
		time.Sleep(100 * time.Millisecond) // the polling period: the figure's resolution
	}
	all := time.Since(t0)
	fmt.Printf("group edit of %d devices (%d group(s), edit requests took %.2fs): all COMPLIANT after %.2fs (polled every 0.1s)\n",
		n, len(groups), edited.Seconds(), all.Seconds())
	return nil
}
