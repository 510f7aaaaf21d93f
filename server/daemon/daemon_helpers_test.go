package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// startDaemon runs a real daemon (bbolt in a temp dir, the real broker) on
// 127.0.0.1:0 until the test ends.
const (
	adminToken  = "admin-secret-token"
	enrollToken = "enroll-secret-token"
)

func startDaemon(t *testing.T, cfg DaemonConfig) (*Daemon, string) {
	t.Helper()
	cfg.DataDir, cfg.HTTPAddr, cfg.MQTTAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminToken, cfg.EnrollToken, cfg.Out = adminToken, enrollToken, io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	d, err := NewDaemon(ctx, cfg)
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
	return d, "http://" + d.HTTPAddr()
}

// send makes a request and returns the status, headers and body; a 2xx JSON
// body is decoded into out when out is not nil.
func send(t *testing.T, method, url, token, body string, out any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, url, b, err)
		}
	}
	return resp.StatusCode, resp.Header, b
}
