// Package netx holds the network pieces the server needs to survive
// resource exhaustion: a listener whose Accept outlives running out of
// file descriptors.
package netx

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/doorbell-mdm/doorbell/internal/backoff"
)

// Accept backoff bounds, as net/http uses for temporary errors.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
	// logEvery bounds the accept-failure log to one line per interval.
	logEvery = 10 * time.Second
)

// ResilientListener wraps a net.Listener so that Accept never returns an
// error the process can recover from: out of file descriptors (EMFILE,
// ENFILE), of buffers or memory (ENOBUFS, ENOMEM), or a connection aborted
// before it was accepted (ECONNABORTED). It waits (5 ms doubling to 1 s)
// and tries again, and logs at most one summary line per 10 s. Only
// closing the listener ends Accept with an error, so a server built on it
// (fiber's Listener) does not exit when a connection flood exhausts the
// process's descriptors.
type ResilientListener struct {
	net.Listener
	log   *slog.Logger
	sleep func(time.Duration, <-chan struct{}) bool // false: closed while waiting

	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex
	failures int
	lastLog  time.Time
	lastErr  error
}

// Resilient wraps ln; log may be nil.
func Resilient(ln net.Listener, log *slog.Logger) *ResilientListener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ResilientListener{Listener: ln, log: log, closed: make(chan struct{}), sleep: sleepOrClose}
}

func sleepOrClose(d time.Duration, closed <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-closed:
		return false
	}
}

// Accept waits for the next connection, riding out resource exhaustion.
func (l *ResilientListener) Accept() (net.Conn, error) {
	retry := backoff.Backoff{Min: minBackoff, Max: maxBackoff}
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if retry.Attempts() > 0 {
				l.recovered()
			}
			return c, nil
		}
		if !Recoverable(err) {
			return nil, err
		}
		d := retry.Next()
		l.failed(err, d)
		if !l.sleep(d, l.closed) {
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener and ends a pending backoff.
func (l *ResilientListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *ResilientListener) failed(err error, retry time.Duration) {
	l.mu.Lock()
	l.failures++
	l.lastErr = err
	var n int
	if time.Since(l.lastLog) >= logEvery {
		n, l.failures, l.lastLog = l.failures, 0, time.Now()
	}
	l.mu.Unlock()
	if n > 0 {
		l.log.Warn("accept failed: out of resources; retrying with backoff (raise the file limit, or lower the connection caps)",
			"addr", l.Addr().String(), "err", err, "failures", n, "retry_in", retry)
	}
}

func (l *ResilientListener) recovered() {
	l.mu.Lock()
	n := l.failures
	l.failures = 0
	l.mu.Unlock()
	l.log.Info("accepting again after running out of resources", "addr", l.Addr().String(), "unlogged_failures", n)
}

// Recoverable reports whether an Accept error is a passing shortage rather
// than a closed or broken listener.
func Recoverable(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
