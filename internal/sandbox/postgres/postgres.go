// Package postgres runs a throwaway PostgreSQL server from the installed
// binaries: a fresh cluster in a temporary directory, on a free loopback
// port, with password (SCRAM) authentication over TCP. It works as root (the
// server runs as the "postgres" user, since initdb refuses root) and as an
// ordinary user.
package postgres

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDirs are searched, in order, for initdb and postgres when
// XACCTD_PG_BINDIR is not set; newest major version first.
var BinDirs = []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql@*/bin"}

// Options configures Start.
type Options struct {
	// Logf receives the server log; nil discards it.
	Logf func(string, ...any)
}

// Server is a running PostgreSQL server.
type Server struct {
	Host          string
	Port          int
	SuperUser     string
	SuperPassword string
	DSN           string // superuser, database postgres

	opts    Options
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has been waited for
	stopMu  sync.Mutex
	stopped bool
}

// Start creates and starts a new server. Stop it with Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	bin, err := findBinDir()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	cred, err := runAs()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	dir, err := os.MkdirTemp("", "xacctd-pg-*")
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{
		Host: "127.0.0.1", SuperUser: "postgres", SuperPassword: randomHex(16),
		opts: opts, dir: dir,
	}
	if err := s.start(ctx, bin, cred); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, bin string, cred *syscall.Credential) error {
	if cred != nil {
		// The server runs as postgres: it must own its directory.
		if err := os.Chown(s.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := writeOwned(pwfile, []byte(s.SuperPassword+"\n"), cred); err != nil {
		return err
	}
	data := filepath.Join(s.dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", s.SuperUser, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = pgEnv()
	if out, err := initdb.CombinedOutput(); err != nil {
		hint := ""
		if cred != nil {
			hint = " (the postgres user must be able to reach " + s.dir + "; set TMPDIR to a world-traversable directory)"
		}
		return fmt.Errorf("initdb%s: %w: %s", hint, err, strings.TrimSpace(string(out)))
	}
	_ = os.Remove(pwfile)

	// A port can be taken between choosing and binding it (another world
	// starting at the same moment): try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return err
		}
		err = s.run(ctx, bin, data, port, cred)
		if err == nil {
			return nil
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			return err
		}
	}
	return lastErr
}

var errPortInUse = errors.New("port in use")

func (s *Server) run(ctx context.Context, bin, data string, port int, cred *syscall.Credential) error {
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.dir,
		// Throwaway data: durability buys nothing, speed does.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "wal_level=minimal",
		"-c", "max_wal_senders=0",
		"-c", "shared_buffers=32MB",
		"-c", "max_connections=100",
		"-c", "log_min_messages=warning",
		"-c", "log_checkpoints=off",
		"-c", "timezone=UTC",
	)
	cmd.Dir = s.dir
	cmd.Env = pgEnv()
	// Own process group for Stop; Pdeathsig so a crashed test binary does
	// not leave a server behind (set after the uid change, so it sticks).
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	exited := make(chan struct{})
	var mu sync.Mutex
	var logTail []string
	var drained sync.WaitGroup
	drained.Add(1)
	go func() {
		defer drained.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logTail = append(logTail, sc.Text())
			if len(logTail) > 20 {
				logTail = logTail[1:]
			}
			mu.Unlock()
			s.opts.Logf("postgres: %s", sc.Text())
		}
	}()
	go func() {
		drained.Wait() // Wait closes the pipe: read it to the end first
		_ = cmd.Wait()
		close(exited)
	}()

	s.Port = port
	s.DSN = s.dsn(s.SuperUser, s.SuperPassword, "postgres")
	for {
		conn, err := pgx.Connect(ctx, s.DSN)
		if err == nil {
			conn.Close(ctx)
			s.cmd, s.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
			mu.Lock()
			tail := strings.Join(logTail, "\n")
			mu.Unlock()
			if strings.Contains(tail, "could not bind") || strings.Contains(tail, "Address already in use") {
				return errPortInUse
			}
			return fmt.Errorf("postgres exited while starting: %s", tail)
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			return fmt.Errorf("wait for postgres on port %d: %w", port, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (s *Server) dsn(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates database name and returns a superuser DSN for it.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return s.dsn(s.SuperUser, s.SuperPassword, name), nil
}

// DropDatabase drops database name, disconnecting its sessions. A missing
// database is not an error.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10s) and
// removes its directory. It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.cmd != nil {
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGINT) // fast shutdown: ends sessions
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-s.exited
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // any backend left behind
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("stop postgres: remove %s: %w", s.dir, err)
	}
	return nil
}

// findBinDir locates a directory holding initdb and postgres.
func findBinDir() (string, error) {
	if d := os.Getenv("XACCTD_PG_BINDIR"); d != "" {
		if hasBinaries(d) {
			return d, nil
		}
		return "", fmt.Errorf("XACCTD_PG_BINDIR=%s has no initdb/postgres", d)
	}
	for _, pattern := range BinDirs {
		matches, _ := filepath.Glob(pattern)
		// Newest major version first (numeric: 15 before 9).
		sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
		for _, d := range matches {
			if hasBinaries(d) {
				return d, nil
			}
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && hasBinaries(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found: install them (Debian/Ubuntu: apt-get install postgresql) or set XACCTD_PG_BINDIR")
}

func versionOf(dir string) int {
	for _, part := range strings.Split(dir, "/") {
		part = strings.TrimPrefix(strings.TrimPrefix(part, "pgsql-"), "postgresql@")
		if n, err := strconv.Atoi(part); err == nil {
			return n
		}
	}
	return 0
}

func hasBinaries(dir string) bool {
	for _, b := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// runAs returns the credential to run the server with: nil for an ordinary
// user, the "postgres" account for root (initdb and postgres refuse root).
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs an unprivileged \"postgres\" user to run the server (useradd --system postgres, or install the postgresql package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func writeOwned(path string, data []byte, cred *syscall.Credential) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	if cred != nil {
		return os.Chown(path, int(cred.Uid), int(cred.Gid))
	}
	return nil
}

// pgEnv keeps the caller's PG* settings away from initdb and the server.
func pgEnv() []string {
	env := []string{"LC_ALL=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PID returns the postmaster's process id.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Dir returns the server's temporary directory (data and socket), removed
// by Stop.
func (s *Server) Dir() string { return s.dir }
