package daemon_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/doorbell-mdm/doorbell/agent"
	"github.com/doorbell-mdm/doorbell/server/pki"
)

// BenchmarkTLSHandshake measures what a new connection of an agent costs
// (its TLS handshake with its device certificate, against the server's
// listener configuration), full and resumed, since an agent now connects
// anew for every sync. Client and server run in this process on loopback:
// ns/op is the wall time of one connection (dial, handshake, one byte
// each way, close) and cpu-us/op the CPU of both sides together.
//
//	go test -run '^$' -bench TLSHandshake -benchtime 2000x ./server/daemon/
func BenchmarkTLSHandshake(b *testing.B) {
	s := startTLS(b, &pki.Config{})
	a, err := agent.New(agent.Config{
		ServerURL: s.url, ServerPin: s.d.Pin(), EnrollToken: tlsEnroll,
		Enforcer: &agent.MemoryEnforcer{}, IDStore: agent.NewFileIDStore(b.TempDir()),
		Interval: time.Hour, DisableMQTT: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Sync(context.Background()); err != nil { // enrolls: a device certificate
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		resume bool
	}{{"full", false}, {"resumed", true}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := s.d.PKI().TLSConfig() // the listeners' configuration
			cfg.SessionTicketsDisabled = !bc.resume
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go serveOneByte(tls.NewListener(ln, cfg))
			ctx := context.Background()
			dial := func() bool {
				c, err := a.DialTLSContext(ctx, "tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				// Reading the server's byte also takes in the session
				// tickets it sent after the handshake.
				if _, err := c.Write([]byte{1}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					b.Fatal(err)
				}
				tc := c.(*tls.Conn)
				if len(tc.ConnectionState().PeerCertificates) == 0 && !tc.ConnectionState().DidResume {
					b.Fatal("no server certificate on a full handshake")
				}
				return tc.ConnectionState().DidResume
			}
			dial() // a ticket for the first resumed one
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				if got := dial(); got != bc.resume {
					b.Fatalf("resumed %v, want %v", got, bc.resume)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// serveOneByte completes each connection's handshake, echoes one byte and
// closes it, until ln is closed.
func serveOneByte(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 1)
			if _, err := io.ReadFull(c, buf); err == nil {
				c.Write(buf)
			}
		}()
	}
}

// cpuTime is the CPU time (user + system) of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
