package daemon_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/doorbell-mdm/doorbell/server/pki"
)

// TestTLSSessionResumesAfterRestart: a device that reconnects to a
// restarted server (same data directory) resumes its TLS session, since
// the session-ticket keys are kept with the CA, and is still
// authenticated with its certificate on the resumed session. Without kept
// keys every reconnect of a restart storm is a full handshake.
func TestTLSSessionResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	cache := tls.NewLRUClientSessionCache(8)
	var dev enrolled
	// get makes one request on a new connection and reports the status
	// and whether the TLS session was resumed.
	get := func(s *tlsServer) (int, bool) {
		t.Helper()
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(s.d.PKI().CAPEM())
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: dev.cert, ClientSessionCache: cache}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", s.url+"/devices/"+dev.DeviceID+"/policy", nil)
		req.Header.Set("Authorization", "Bearer "+dev.DeviceSecret)
		resp, err := (&http.Client{Transport: tr, Timeout: wait}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.TLS.DidResume
	}
	t.Run("first run", func(t *testing.T) {
		s := startTLSIn(t, &pki.Config{}, dir)
		dev = s.enroll(true)
		if code, resumed := get(s); code != 200 || resumed {
			t.Fatalf("first connection: %d, resumed %v; want 200 on a full handshake", code, resumed)
		}
	}) // the server stops here
	t.Run("after restart", func(t *testing.T) {
		s := startTLSIn(t, &pki.Config{}, dir)
		if code, resumed := get(s); code != 200 || !resumed {
			t.Fatalf("reconnect after a restart: %d, resumed %v; want 200 on a resumed session", code, resumed)
		}
	})
}
