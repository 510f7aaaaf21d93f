package netx

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first Accepts with err.
type flakyListener struct {
	net.Listener
	fails int
	err   error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	if f.fails > 0 {
		f.fails--
		return nil, f.err
	}
	return f.Listener.Accept()
}

func TestResilientListenerRidesOutEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	var waits []time.Duration
	r := Resilient(&flakyListener{Listener: ln, fails: 5, err: emfile}, nil)
	r.sleep = func(d time.Duration, _ <-chan struct{}) bool { waits = append(waits, d); return true }
	defer r.Close()
	client, err := net.Dial("tcp", ln.Addr().String()) // queued by the kernel until accepted
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := r.Accept()
	if err != nil {
		t.Fatalf("Accept = %v after transient EMFILE; want the connection", err)
	}
	c.Close()
	if fmt.Sprint(waits) != "[5ms 10ms 20ms 40ms 80ms]" {
		t.Errorf("backoffs = %v", waits)
	}
}

func TestResilientListenerEndsOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := Resilient(ln, nil)
	done := make(chan error, 1)
	go func() { _, err := r.Accept(); done <- err }()
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

func TestRecoverable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, true},
		{net.ErrClosed, false},
		{errors.New("something else"), false},
	} {
		if got := Recoverable(tt.err); got != tt.want {
			t.Errorf("Recoverable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
