package faults

import (
	"context"
	"net"
	"os/exec"
	"testing"
	"time"

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
	eventually(t, 30*time.Second, "the server serving again after the flood", s.serves)
	t.Logf("serving again %v after the flood began", time.Since(t0))
	if err := s.deviceClient().Report(context.Background(), creds[0], proto.ComplianceReport{AppliedPolicyVersion: 1}); err != nil {
		t.Errorf("a device report after the flood: %v", err)
	}
	if !s.alive() {
		t.Fatalf("the server exited: %v", s.exitErr)
	}
}
