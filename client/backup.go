package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Backup writes a consistent copy of the server's database (GET /backup,
// admin) to w and returns its size.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return 0, readError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("receiving the backup: %w", err)
	}
	return n, nil
}
