package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/testkit"
	"github.com/doorbell-mdm/doorbell/proto"
)

// TestFileDescriptorExhaustion: a connection flood beyond the server's file
// limit (lowered to 256 with prlimit) neither stops the server nor leaves
// it unable to serve once the flood ends (issue 17, finding 4): the HTTP
// accept loop backs off instead of exiting, and the MQTT cap, derived from
// the file limit, turns the excess away at accept.
func TestFileDescriptorExhaustion(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatal("prlimit (util-linux) is needed: ", err)
	}
	s := startServer(t, t.TempDir(), withLimit("--nofile=256:256"))
	creds := s.enroll(2)
	var flood []net.Conn
	t0 := time.Now()
	for _, addr := range []string{s.http, s.mqtt} {
		conns, err := dialMany(addr, 300)
		flood = append(flood, conns...)
		t.Logf("%d connections opened to %s (%v)", len(conns), addr, err)
	}
	// Each connection has been accepted or is queued; give the server a
	// request to handle while it is out of descriptors.
	if _, _, err := s.call("GET", "/healthz", "", "", nil); err != nil {
		t.Logf("healthz during the flood: %v (expected while out of descriptors)", err)
	}
	for _, c := range flood {
		c.Close()
	}
	if !s.alive() {
		t.Fatalf("the server exited during the flood: %v", s.exitErr)
	}
	testkit.Eventually(t, 30*time.Second, "the server serving again after the flood", s.serves)
	t.Logf("serving again %v after the flood began", time.Since(t0))
	if err := s.deviceClient().Report(context.Background(), creds[0], proto.ComplianceReport{AppliedPolicyVersion: 1}); err != nil {
		t.Errorf("a device report after the flood: %v", err)
	}
	if !s.alive() {
		t.Fatalf("the server exited: %v", s.exitErr)
	}
}

// TestHTTPConnectionCap: HTTP connections are capped below the file limit
// (a quarter of it after a reserve; the MQTT cap takes three quarters), so
// an HTTP flood is turned away with 503 at once instead of taking the
// process to its last descriptor: the MQTT listener keeps its share (an
// operator still logs in during the flood) and the accept loop never runs
// out (no "accept failed" line). Before the cap, the same flood exhausted
// the 256 descriptors and both listeners failed to accept.
func TestHTTPConnectionCap(t *testing.T) {
	s := startServer(t, t.TempDir(), withLimit("--nofile=256:256"))
	if l := s.waitLog("http connection limit", 10*time.Second); l["max"] != float64(48) {
		t.Fatalf("http connection limit under a 256-descriptor limit: %v, want 48", l["max"])
	}
	var held []net.Conn
	counts := map[int]int{}
	for range 300 {
		c, err := net.DialTimeout("tcp", s.http, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(held), err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d got no answer: %v", len(held), err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		counts[resp.StatusCode]++ // a 200 keeps its connection open: held by the server
	}
	t.Logf("flood of 300 kept-alive connections: %v", counts)
	if counts[200] == 0 || counts[200] > 48 || counts[503] == 0 {
		t.Fatalf("answers %v: want at most 48 served and the rest 503", counts)
	}
	op := stalledOperator(t, s.mqtt, "operator-during-flood") // fails the test if refused
	op.Close()
	for _, c := range held {
		c.Close()
	}
	for _, l := range s.logLines() {
		if strings.Contains(l, "accept failed") {
			t.Fatalf("the process ran out of descriptors: %s", l)
		}
	}
	testkit.Eventually(t, 30*time.Second, "the server serving after the flood", s.serves)
}
