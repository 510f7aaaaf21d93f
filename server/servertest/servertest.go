// Package servertest runs a real Doorbell daemon for tests in other
// packages: a bbolt file in a temp dir, the real broker, both listeners on
// 127.0.0.1:0.
package servertest

import (
	"context"
	"io"
	"testing"

	"github.com/doorbell-mdm/doorbell/server/daemon"
)

// Start runs a daemon with cfg until the test ends, then stops it and fails
// the test if Run returned an error. Zero DataDir, HTTPAddr, MQTTAddr and Out
// become a temp dir, 127.0.0.1:0 and io.Discard. The listeners are bound
// when Start returns, so the daemon can be called at once.
func Start(t testing.TB, cfg daemon.DaemonConfig) *daemon.Daemon {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.MQTTAddr == "" {
		cfg.MQTTAddr = "127.0.0.1:0"
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.NewDaemon(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	return d
}
