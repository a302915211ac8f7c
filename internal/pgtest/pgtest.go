// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb in
// a temporary directory, a postgres server on a Unix socket there (and, on
// request, a free loopback port), as an unprivileged user when the test
// runs as root, stopped and removed when the test binary ends. Each test
// gets its own database in the shared cluster, so one initdb serves a
// whole package.
//
// The server binaries are Debian's postgresql package (make test installs
// it); without them a test fails under CI=true and skips loudly otherwise.
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

	"github.com/patchline/patchline/internal/gittest"
)

// Cluster is a running PostgreSQL server started by Start.
type Cluster struct {
	// Dir holds the data directory and the socket.
	Dir string
	// SocketDir is the directory of the server's Unix socket.
	SocketDir string
	// Port is the server's port (the socket's name has it too); with
	// TCP it also listens on 127.0.0.1:Port.
	Port int
	// User is the cluster's superuser, trusted without a password.
	User string

	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	dbs  atomic.Int64
}

// ErrNoServer is returned by Start when no PostgreSQL server binaries are
// installed.
var ErrNoServer = errors.New("no PostgreSQL server binaries (initdb, postgres): install Debian's postgresql package (.ci/systools.sh does)")

// binDir finds the directory of initdb and postgres: PG_BINDIR, then
// Debian's /usr/lib/postgresql/<version>/bin (the newest), then PATH.
func binDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoServer
}

// version is the major version in a Debian bin directory's path.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Options are how Start runs the server.
type Options struct {
	// TCP makes the server listen on 127.0.0.1 too, on a free port.
	TCP bool
}

// Start runs initdb and a postgres server in a new temporary directory.
// Stop ends it and removes the directory.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, SocketDir: dir, User: "patchline", done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	cred, err := serverUser(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", c.User,
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if c.Port, err = freePort(); err != nil {
		return nil, err
	}
	listen := ""
	if opts.TCP {
		listen = "127.0.0.1"
	}
	if c.log, err = os.Create(filepath.Join(dir, "postgres.log")); err != nil {
		return nil, err
	}
	// A test cluster trades durability for speed: fsync off, and every
	// setting a replica test needs (connections for several replicas
	// and their pools).
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-k", dir, "-h", listen, "-p", strconv.Itoa(c.Port),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=64MB")
	// Pdeathsig: a test binary that is killed (a timeout, ^C) takes
	// its server along instead of leaving it running.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		c.log.Close()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	if err := c.waitReady(ctx, 30*time.Second); err != nil {
		c.kill()
		return nil, err
	}
	ok = true
	return c, nil
}

// serverUser is who initdb and postgres run as: the current user, or when
// that is root (which PostgreSQL refuses) the postgres user of Debian's
// package, or nobody. dir is given to that user.
func serverUser(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("running as root, and no postgres or nobody user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The temporary directory's parents are traversable by everyone;
	// the directory itself becomes the server user's.
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort asks the kernel for a loopback port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady connects until the server answers.
func (c *Cluster) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-c.done:
			return fmt.Errorf("postgres exited before it was ready: %s", c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready within %v: %v; log: %s", within, err, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail is the end of the server's log, for error messages.
func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// DSN is the key/value connection string of database db over the Unix
// socket.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.SocketDir, c.Port, c.User, db)
}

// URL is the postgres:// URL of database db over TCP (Options.TCP).
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", c.User, c.Port, db)
}

// CreateDatabase makes a new empty database and returns its name.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d", c.dbs.Add(1))
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10 s) and
// removes its directory.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.kill()
	}
	c.log.Close()
	os.RemoveAll(c.Dir)
}

// kill ends the server and its children at once and waits for it.
func (c *Cluster) kill() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

var shared struct {
	mu      sync.Mutex
	cluster *Cluster
	err     error
}

// Main runs a package's tests and stops the cluster DB started, if any:
// call it from TestMain as os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.cluster.Stop()
	return code
}

// DB returns the DSN of a new empty database in the package's shared
// cluster, which it starts on first use (with TCP). The package's
// TestMain must call Main, which stops it. Without PostgreSQL the test
// fails under CI=true and is skipped loudly otherwise.
func DB(t testing.TB) string {
	t.Helper()
	c := Shared(t)
	name, err := c.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.DSN(name)
}

// Shared returns the package's shared cluster, started on first use (see
// DB).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil && shared.err == nil {
		shared.cluster, shared.err = Start(context.Background(), Options{TCP: true})
	}
	if errors.Is(shared.err, ErrNoServer) {
		gittest.SkipOrFail(t, "%v", shared.err)
	}
	if shared.err != nil {
		t.Fatalf("start PostgreSQL: %v", shared.err)
	}
	return shared.cluster
}
