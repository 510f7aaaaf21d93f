package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/doorbell-mdm/doorbell/client"
)

const watchUsage = "doorbell watch [--server URL --token T --json]"

// watchBackoff is the first wait before reconnecting; tests shorten it.
var watchBackoff = time.Second

// runWatch prints every device state change streamed by GET /events, one
// line each (a table row, or one JSON object per line with --json), until
// interrupted. A dropped stream is reopened with backoff and noted on stderr.
func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o opFlags
	fs := newFlagSet("watch", stderr, watchUsage)
	o.register(fs)
	pos, err := parseCLI(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, watchUsage); err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "watch")
	opts := client.WatchOptions{
		MinBackoff: watchBackoff,
		OnConnect:  func() { log.Info("watching device state changes", "server", o.server) },
		OnDrop: func(err error, wait time.Duration) {
			log.Warn("event stream dropped; reconnecting", "err", err, "in", wait)
		},
	}
	if !o.json {
		fmt.Fprintf(stdout, "%-20s  %-32s  %-13s  %7s  %7s  %-9s\n", "TIME", "DEVICE", "STATE", "DESIRED", "APPLIED", "CONNECTED")
	}
	var werr error
	err = c.Watch(ctx, opts, func(e client.Event) {
		if werr != nil {
			return
		}
		if o.json {
			b, err := json.Marshal(e)
			if err != nil {
				werr = err
				return
			}
			_, werr = fmt.Fprintf(stdout, "%s\n", b)
			return
		}
		_, werr = fmt.Fprintf(stdout, "%-20s  %-32s  %-13s  %7d  %7d  %-9s\n", time.Now().UTC().Format(time.RFC3339),
			safe(e.DeviceID), safe(string(e.State)), e.DesiredVersion, e.AppliedVersion, yesNo(e.Connected))
	})
	if err != nil {
		return err
	}
	return werr
}
