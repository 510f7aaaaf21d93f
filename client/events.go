package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/backoff"
	"github.com/doorbell-mdm/doorbell/proto"
)

// Event is one device state change streamed by GET /events.
type Event struct {
	DeviceID       string                `json:"deviceId"`
	State          proto.ComplianceState `json:"state"`
	DesiredVersion int64                 `json:"desiredVersion"`
	AppliedVersion int64                 `json:"appliedVersion"`
	Connected      bool                  `json:"connected"`
	LastReportAt   *time.Time            `json:"lastReportAt,omitempty"`
}

// WatchOptions tunes Watch. The zero value is ready to use.
type WatchOptions struct {
	// MinBackoff and MaxBackoff bound the wait before reconnecting after
	// the stream drops; it doubles per failed attempt and resets once a
	// stream is established. Zero means 1s and 30s. A retry: field sent by
	// the server raises the wait to at least that.
	MinBackoff, MaxBackoff time.Duration
	// OnConnect, when set, is called each time a stream is established.
	OnConnect func()
	// OnDrop, when set, is called when the stream ends or cannot be opened
	// for a reason worth retrying, with the wait before the next attempt.
	OnDrop func(err error, wait time.Duration)
}

// Watch streams GET /events and calls fn for each state change until ctx is
// done (it then returns nil). A dropped stream, a network error or a 5xx is
// retried with backoff, sending Last-Event-ID when the server gave event ids;
// an answer that retrying cannot fix (401, 403, 404, other 4xx) ends Watch
// with that *APIError. Events that are not device state changes (no
// deviceId) are skipped.
func (c *Client) Watch(ctx context.Context, o WatchOptions, fn func(Event)) error {
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	var (
		lastID string
		retry  time.Duration // the server's retry: field, a floor
		wait   = backoff.Backoff{Min: o.MinBackoff, Max: o.MaxBackoff}
	)
	for {
		connected, err := c.stream(ctx, &lastID, &retry, o.OnConnect, fn)
		if ctx.Err() != nil {
			return nil
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Status/100 == 4 && ae.Status != http.StatusTooManyRequests {
			return err
		}
		if connected {
			wait.Reset()
		}
		d := max(wait.Next(), retry)
		if err == nil {
			err = errors.New("event stream ended")
		}
		if o.OnDrop != nil {
			o.OnDrop(err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// stream reads one event stream until it ends. connected says whether the
// server accepted it.
func (c *Client) stream(ctx context.Context, lastID *string, retry *time.Duration, onConnect func(), fn func(Event)) (connected bool, err error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/events", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, explainTransport(err, c.https)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, readError(resp)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("GET /events answered %q, not text/event-stream", ct)
	}
	if onConnect != nil {
		onConnect()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // end of one event
			if len(data) > 0 {
				var ev Event
				if json.Unmarshal([]byte(strings.Join(data, "\n")), &ev) == nil && ev.DeviceID != "" {
					fn(ev)
				}
			}
			data = data[:0]
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "": // a comment (keep-alive)
		case "data":
			data = append(data, value)
		case "id":
			*lastID = value
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				*retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return true, sc.Err()
}
