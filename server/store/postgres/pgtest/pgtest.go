// Package pgtest runs a throwaway PostgreSQL cluster for tests: Debian's
// server binaries, a temp dir, loopback only on a random free port, fsync
// off. One cluster serves every test of a package (started on first use,
// stopped by Main); each test gets its own database.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	dsn := pgtest.NewDatabase(t) // skips t when PostgreSQL is not installed (fails it as root)
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is returned by Start when no PostgreSQL server binaries
// are found; `make deps` installs them (Debian package postgresql).
var ErrNotInstalled = errors.New("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install the Debian package postgresql: `make deps` as root)")

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process ended
	log  *os.File
	n    atomic.Int64

	bin, data, sock string
	cred            *syscall.Credential
}

// BinDir returns the newest /usr/lib/postgresql/<version>/bin holding
// initdb and postgres, or ErrNotInstalled.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Start initialises a cluster in a new temp dir and starts it. As root,
// initdb and the server run as the `postgres` user (PostgreSQL refuses to
// run as root), which then owns the dir.
func Start() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "doorbell-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	cred, err := credential(dir)
	if err != nil {
		return nil, err
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(sock, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if c.log, err = os.Create(filepath.Join(dir, "postgres.log")); err != nil {
		return nil, err
	}
	c.bin, c.data, c.sock, c.cred = bin, data, sock, cred
	// A port picked free may be taken before the server binds it: retry.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		err = c.startServer()
		if err == nil {
			ok = true
			return c, nil
		}
		if attempt == 2 {
			b, _ := os.ReadFile(c.log.Name())
			return nil, fmt.Errorf("postgres did not start: %v\n%s", err, b)
		}
		c.stopServer()
	}
}

// startServer starts the server on c.port and waits until it accepts
// connections.
func (c *Cluster) startServer() error {
	c.cmd = exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data,
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.sock,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning")
	// The server dies with the test binary, however that ends.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.Dir = c.dir
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	c.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(c.cmd, c.done)
	return c.waitReady(30 * time.Second)
}

// Halt stops the server and keeps its data, as a crashed or unreachable
// database would look to its clients; Resume starts it again.
func (c *Cluster) Halt() { c.stopServer() }

// Resume starts a halted server again on the same port.
func (c *Cluster) Resume() error {
	select {
	case <-c.done:
	default:
		return errors.New("the server is running")
	}
	return c.startServer()
}

// StartPrivate starts a cluster of t's own (one it may halt), stopped when
// t ends. Like NewDatabase, it skips t when PostgreSQL is not installed (fails it as root).
func StartPrivate(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start()
	skipIfNotInstalled(t, err)
	if err != nil {
		t.Fatalf("starting a test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// skipIfNotInstalled skips t when err says PostgreSQL is not installed here,
// unless this process is root: `make test` runs as root and installs it
// first (make deps), so there a missing server is a failed install step,
// never a skip.
func skipIfNotInstalled(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotInstalled) && (err == nil || !strings.Contains(err.Error(), "no postgres user")) {
		return
	}
	if os.Geteuid() == 0 {
		t.Fatalf("PostgreSQL cannot be started, and this is root: run `make deps` (make test does): %v", err)
	}
	t.Skipf("PostgreSQL cannot be started here (not root; `make deps` as root installs it): %v", err)
}

// credential returns the identity the server runs as: the `postgres` user
// when this process is root (the dir is handed to it), else nil (this user).
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and there is no postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until the server accepts a connection, it exits, or the
// deadline passes.
func (c *Cluster) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-c.done:
			return errors.New("the server exited")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections after %v: %w", within, err)
		}
	}
}

// URL is the connection URL of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// CreateDatabase creates a new empty database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	return c.createFrom(ctx, "")
}

// createFrom creates a new database, a copy of template ("" = empty).
func (c *Cluster) createFrom(ctx context.Context, template string) (string, error) {
	name := fmt.Sprintf("t%d", c.n.Add(1))
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	sql := "CREATE DATABASE " + name
	if template != "" {
		sql += " TEMPLATE " + template
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return c.URL(name), nil
}

type template struct {
	once sync.Once
	err  error
}

var templates sync.Map // name -> *template

// NewDatabaseFrom is NewDatabase for a database prepared by setup: the
// first call creates the template database name and runs setup on its URL
// (setup must close its connections), every call returns a new copy. A
// copy is quicker than running the same setup (migrations) again.
func NewDatabaseFrom(t testing.TB, name string, setup func(url string) error) string {
	t.Helper()
	c := cluster(t)
	v, _ := templates.LoadOrStore(name, &template{})
	tm := v.(*template)
	tm.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			tm.err = err
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			tm.err = err
			return
		}
		tm.err = setup(c.URL(name))
	})
	if tm.err != nil {
		t.Fatalf("preparing template database %s: %v", name, tm.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := c.createFrom(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

func (c *Cluster) stopServer() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// Stop stops the server and removes its directory.
func (c *Cluster) Stop() error {
	c.stopServer()
	if c.log != nil {
		c.log.Close()
	}
	return os.RemoveAll(c.dir)
}

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
	sharedMu   sync.Mutex
)

// Shared returns the package's cluster, starting it on first use.
func Shared() (*Cluster, error) {
	sharedOnce.Do(func() {
		sharedMu.Lock()
		defer sharedMu.Unlock()
		shared, sharedErr = Start()
	})
	return shared, sharedErr
}

// NewDatabase returns the URL of a new empty database on the shared
// cluster. It skips t when PostgreSQL is not installed (fails it as root), and fails it when
// an installed PostgreSQL does not start.
func NewDatabase(t testing.TB) string {
	t.Helper()
	c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// cluster returns the shared cluster, skipping t when PostgreSQL is not
// installed (failing it as root) and failing it when an installed one does
// not start.
func cluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := Shared()
	skipIfNotInstalled(t, err)
	if err != nil {
		t.Fatalf("starting the test PostgreSQL: %v", err)
	}
	return c
}

// Main runs the package's tests and stops the shared cluster if they
// started it. Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: removing the cluster dir:", err)
		}
	}
	return code
}
