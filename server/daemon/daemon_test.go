package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/server/store/bolt"
)

// TestDaemonStopsCleanly: Run returns after its context ends with no
// goroutine left behind and the database closed, even with an MQTT client
// and an HTTP keep-alive connection open.
func TestDaemonStopsCleanly(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	d, err := NewDaemon(ctx, DaemonConfig{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	// Generated tokens are printed once and kept in the data dir, mode 0600.
	for _, f := range []string{"admin-token", "enroll-token"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if !strings.Contains(out.String(), d.AdminToken()) || !strings.Contains(out.String(), d.EnrollToken()) {
		t.Fatalf("generated tokens were not printed: %q", out.String())
	}

	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + d.MQTTAddr()).
		SetClientID("op-1").SetUsername("operator").SetPassword(d.AdminToken()).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("operator connect: %v", tok.Error())
	}
	waitHealthy(t, "http://"+d.HTTPAddr()+"/healthz")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of cancel")
	}
	c.Disconnect(0)

	// The database is closed: another open of the same file does not wait
	// for the lock.
	st, err := bolt.Open(filepath.Join(dir, "doorbell.db"))
	if err != nil {
		t.Fatalf("database still locked after Run returned: %v", err)
	}
	st.Close()

	// A second start reuses the kept tokens and prints nothing.
	out.Reset()
	ctx2, cancel2 := context.WithCancel(context.Background())
	d2, err := NewDaemon(ctx2, DaemonConfig{DataDir: dir, HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if d2.AdminToken() != d.AdminToken() || d2.EnrollToken() != d.EnrollToken() || out.Len() != 0 {
		t.Fatalf("restart: tokens changed or printed again (%q)", out.String())
	}
	go func() { done <- d2.Run(ctx2) }()
	cancel2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Every goroutine the daemons started has ended (bounded wait: some
	// runtime and net/http client goroutines take a moment to exit).
	testkit.EventuallyNil(t, 10*time.Second, "the daemons' goroutines to end", func() error {
		if n := runtime.NumGoroutine(); n > before+2 {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	testkit.EventuallyNil(t, 10*time.Second, url+" to be healthy", func() error {
		resp, err := httpGet(url)
		if err == nil && resp != 200 {
			err = fmt.Errorf("status %d", resp)
		}
		return err
	})
}

func httpGet(url string) (int, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
