package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/doorbell-mdm/doorbell/internal/backoff"
)

// listener is a mochi listeners.Listener over a net.Listener bound in New, so
// the real address is known before Serve. Unlike mochi's own TCP listener it
// survives transient accept errors, bounds the wait for CONNECT, logs refused
// connections at debug level, and lets Close wait for every goroutine it
// started.
type listener struct {
	id             string
	ln             net.Listener
	connectTimeout time.Duration
	log            *slog.Logger
	disconnectAll  func() // disconnects every client; set before Serve
	// maxConns bounds the connections being served at once; <= 0 is no
	// limit. Set before Serve.
	maxConns int

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // connections whose establish call is running
	wg     sync.WaitGroup        // the accept loop and every establish call
	done   chan struct{}         // closed by Close; interrupts the accept backoff
}

var _ listeners.Listener = (*listener)(nil)

func newListener(id string, ln net.Listener, connectTimeout time.Duration) *listener {
	return &listener{
		id:             id,
		ln:             ln,
		connectTimeout: connectTimeout,
		log:            slog.New(slog.DiscardHandler),
		conns:          map[net.Conn]struct{}{},
		done:           make(chan struct{}),
	}
}

// ID returns the listener's id inside mochi.
func (l *listener) ID() string { return l.id }

// Address returns the bound address, with the real port.
func (l *listener) Address() string { return l.ln.Addr().String() }

// Protocol returns "tcp".
func (l *listener) Protocol() string { return "tcp" }

// Init receives mochi's logger; the socket is already bound.
func (l *listener) Init(log *slog.Logger) error {
	if log != nil {
		l.log = log
	}
	return nil
}

// Serve accepts connections until Close and hands each to establish on its
// own goroutine. mochi calls it on a goroutine of its own.
func (l *listener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()

	retry := backoff.Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. out of file descriptors): back off like
			// net/http instead of giving up on the listener for good.
			d := retry.Next()
			l.log.Warn("mqtt accept failed", "error", err, "retry_in", d)
			select {
			case <-l.done:
				return
			case <-time.After(d):
			}
			continue
		}
		retry.Reset()

		ok, full := l.track(conn)
		if full {
			l.log.Warn("mqtt connection refused: connection limit reached", "remote", conn.RemoteAddr().String(), "limit", l.maxConns)
			_ = conn.Close()
			continue
		}
		if !ok {
			_ = conn.Close()
			return
		}
		// mochi sets no deadline until CONNECT is read; it replaces this one
		// with the client's keepalive afterwards.
		_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
		go l.serveConn(conn, establish)
	}
}

// serveConn runs establish for one connection; it is the bottom frame of the
// connection's goroutine, which waits in mochi's read loop for the life of an
// idle client, so it is kept small: the log call is in its own function.
func (l *listener) serveConn(conn net.Conn, establish listeners.EstablishFn) {
	defer l.wg.Done()
	defer l.untrack(conn)
	if err := establish(l.id, conn); err != nil {
		l.logEnded(conn, err)
	}
}

// logEnded logs the end of a connection. Never inlined, so that its
// arguments are not part of serveConn's frame.
//
//go:noinline
func (l *listener) logEnded(conn net.Conn, err error) {
	l.log.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "error", err)
}

// track registers a new connection. It reports ok false once closed, and
// full when the connection limit is reached.
func (l *listener) track(conn net.Conn) (ok, full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, false
	}
	if l.maxConns > 0 && len(l.conns) >= l.maxConns {
		return false, true
	}
	l.conns[conn] = struct{}{}
	l.wg.Add(1)
	return true, false
}

func (l *listener) untrack(conn net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, conn)
}

// Close stops accepting, disconnects every client, closes any connection
// that had not yet become a client (still sending CONNECT), and waits until
// every establish call has returned.
//
// Two mochi v2.7.9 bugs shape it. mochi's closeClients callback
// (Clients.GetByListener) takes the clients' read lock twice, which
// deadlocks against any client connecting or leaving at that moment, so it
// is not called: disconnectAll does the job. And mochi calls Close from
// Server.Close just before waiting on its client WaitGroup, which its
// connection goroutines Add to only once running; waiting here first means
// no Add can race that Wait.
func (l *listener) Close(_ listeners.CloseFn) {
	defer l.wait()

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()

	_ = l.ln.Close()
	if l.disconnectAll != nil {
		l.disconnectAll()
	}

	l.mu.Lock()
	for conn := range l.conns {
		_ = conn.Close()
	}
	l.mu.Unlock()
}

// wait blocks until the accept loop and every establish call have returned.
// Call it after Close.
func (l *listener) wait() {
	l.wg.Wait()
}
