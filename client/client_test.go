package client

import (
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestNewRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no server", Config{}, "no server given"},
		{"not a URL", Config{Server: "127.0.0.1:8080"}, "not an http:// or https:// URL"},
		{"missing CA file", Config{Server: "https://x", CAFile: filepath.Join(t.TempDir(), "nope.pem")}, "reading CA file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCAFile talks to an HTTPS server with a private CA: refused without
// --ca-file, trusted with it.
func TestCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			return
		}
		w.Write([]byte(`{"version":4,"cameraDisabled":true}`))
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, cert, 0o600); err != nil {
		t.Fatal(err)
	}

	plain, err := New(Config{Server: srv.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Policy(context.Background(), "d"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: err = %v, want a certificate error", err)
	}
	trusted, err := New(Config{Server: srv.URL, Token: "tok", CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	p, err := trusted.Policy(context.Background(), "d")
	if err != nil || p.Version != 4 || !p.CameraDisabled {
		t.Fatalf("with the CA: %+v, %v", p, err)
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	if _, err := New(Config{Server: srv.URL, CAFile: notPEM}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("a file without a certificate: %v", err)
	}
}

// TestNonContractErrorBody keeps a plain-text error readable.
func TestNonContractErrorBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway from the proxy", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, _ := New(Config{Server: srv.URL, Token: "t"})
	_, err := c.Status(context.Background(), "x")
	if !IsStatus(err, 502) || !strings.Contains(err.Error(), "bad gateway from the proxy (http_502, HTTP 502)") {
		t.Fatalf("err = %v", err)
	}
}

// TestCallsReuseOneConnection: answers the decoder does not read to the end
// (a trailing newline, an ignored body, an error body) still hand their
// connection back, so sequential calls share one (the simulator depends on
// it). Fails when a body is closed unread.
func TestCallsReuseOneConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/devices/a/status":
			// A large answer with trailing data after the JSON value.
			io.WriteString(w, `{"deviceId":"a","model":"`+strings.Repeat("x", 32<<10)+`"}`+"\n\n")
		case "/groups":
			io.WriteString(w, `{"groups":[]}`+"\n")
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"device_not_found","message":"no such device"}}`+"\n")
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := New(Config{Server: srv.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if st, err := c.Status(t.Context(), "a"); err != nil || st.DeviceID != "a" {
			t.Fatalf("Status = %+v, %v", st.DeviceID, err)
		}
		if err := c.Call(t.Context(), http.MethodGet, "/groups", nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Status(t.Context(), "b"); !IsStatus(err, http.StatusNotFound) {
			t.Fatalf("missing device: %v", err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("15 sequential calls opened %d connections, want 1", n)
	}
}
