package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/server/pki"
)

// handshake connects to a TLS server configured by a.TLSConfig() over
// loopback with the client session cache, exchanges one byte (which
// carries the server's session ticket to the client) and reports whether
// the session was resumed.
func handshake(t *testing.T, a *pki.Authority, cache tls.ClientSessionCache) bool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tln := tls.NewListener(ln, a.TLSConfig())
	served := make(chan error, 1)
	go func() {
		c, err := tln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			served <- err
			return
		}
		_, err = c.Write(b)
		served <- err
	}()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(a.CAPEM())
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState().DidResume
}

// TestSessionTicketsSurviveRestart: a client resumes its TLS session with
// a restarted server (a new Authority on the same files) for as long as
// the key that encrypted its ticket is among the three kept; rotation
// adds a key a day and drops the oldest; the key file is a 0600 secret.
func TestSessionTicketsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c := testkit.NewClock(time.Now())
	a := open(t, dir, c)
	cache := tls.NewLRUClientSessionCache(4)
	if handshake(t, a, cache) {
		t.Fatal("the first connection resumed a session")
	}
	if !handshake(t, a, cache) {
		t.Fatal("the second connection to the same server did not resume")
	}
	st, err := os.Stat(filepath.Join(dir, pki.TicketKeysFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", pki.TicketKeysFile, err, st.Mode().Perm())
	}

	// A restart an hour later: the same key, the session resumes.
	c.Advance(time.Hour)
	if b := open(t, dir, c); !handshake(t, b, cache) {
		t.Fatal("the connection after a restart did not resume: ticket keys not kept")
	}
	keys := func() int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, pki.TicketKeysFile))
		if err != nil {
			t.Fatal(err)
		}
		var ks []json.RawMessage
		if err := json.Unmarshal(b, &ks); err != nil {
			t.Fatal(err)
		}
		return len(ks)
	}
	if n := keys(); n != 1 {
		t.Fatalf("%d keys after a restart within the rotation; want 1", n)
	}

	// Two rotations later a fresh client's ticket is under the newest key,
	// and an old ticket (kept by a second cache) still resumes.
	old := tls.NewLRUClientSessionCache(4)
	handshake(t, open(t, dir, c), old)
	c.Advance(25 * time.Hour)
	open(t, dir, c)
	c.Advance(25 * time.Hour)
	b := open(t, dir, c)
	if n := keys(); n != 3 {
		t.Fatalf("%d keys after two rotations; want 3", n)
	}
	if !handshake(t, b, old) {
		t.Fatal("a ticket two rotations old did not resume")
	}
	// A third rotation drops the key of the old ticket: a full handshake.
	old = tls.NewLRUClientSessionCache(4)
	handshake(t, open(t, dir, c), old) // issued under today's key...
	for range 3 {
		c.Advance(25 * time.Hour)
		b = open(t, dir, c)
	}
	if n := keys(); n != 3 {
		t.Fatalf("%d keys after five rotations; want 3", n)
	}
	if handshake(t, b, old) {
		t.Fatal("a ticket whose key was dropped resumed")
	}
}
