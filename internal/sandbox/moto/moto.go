// Package moto runs a local moto server with the xacctd sandbox extension
// (xacctd_moto.py): Redshift ModifyClusterIamRoles with Redshift's timing and
// checks, bucket-policy evaluation with aws:SecureTransport and cross-account
// rules, and a check for passwords issued by GetClusterCredentials.
package moto

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed xacctd_moto.py
var extension []byte

// Python is the interpreter used to run the extension. It must have moto
// 5.x with its server extras installed.
var Python = "python3"

// Options configures Start.
type Options struct {
	// RoleDelay is how long added/removed cluster roles stay "adding" /
	// "removing". Zero means the extension default (2s); negative means the
	// change is in-sync at once.
	RoleDelay time.Duration
	// Logf receives the server's own output; nil discards it.
	Logf func(format string, args ...any)
}

// Server is a running moto server.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	Port int

	opts    Options
	dir     string
	cmd     *exec.Cmd
	client  *http.Client
	drained sync.WaitGroup // stdout/stderr readers
	exited  chan struct{}  // closed when the process has been waited for
	stopMu  sync.Mutex
	stopped bool
}

// Start launches the extension on a free loopback port and waits until moto
// answers. The returned Server must be stopped with Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	python, err := exec.LookPath(Python)
	if err != nil {
		return nil, fmt.Errorf("start moto: %s not found: install Python 3 with moto's server extras (pip install 'moto[server]'): %w", Python, err)
	}
	dir, err := os.MkdirTemp("", "xacctd-moto-*")
	if err != nil {
		return nil, fmt.Errorf("start moto: %w", err)
	}
	s := &Server{opts: opts, dir: dir, client: &http.Client{Timeout: 10 * time.Second}, exited: make(chan struct{})}
	if err := s.start(ctx, python); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("start moto: %w", err)
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, python string) error {
	script := filepath.Join(s.dir, "xacctd_moto.py")
	if err := os.WriteFile(script, extension, 0o600); err != nil {
		return err
	}
	cmd := exec.Command(python, script, "--host", "127.0.0.1", "--port", "0")
	cmd.Dir = s.dir
	cmd.Env = append(filteredEnv(),
		"MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS=false",
		"MOTO_EC2_LOAD_DEFAULT_AMIS=false", // not used here; loading them costs ~0.5 s per account
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
		fmt.Sprintf("XACCTD_MOTO_PARENT_PID=%d", os.Getpid()),
		"XACCTD_MOTO_ROLE_DELAY="+delaySeconds(s.opts.RoleDelay),
	)
	// Own process group so Stop reaches every child; Pdeathsig so a crashed
	// test binary does not leave the server behind (the script also watches
	// its parent).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", python, err)
	}
	s.cmd = cmd

	portc := make(chan int, 1)
	var tail tailBuffer
	s.drained.Add(2)
	go func() {
		defer s.drained.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if p, ok := strings.CutPrefix(line, "XACCTD_MOTO_PORT="); ok {
				if n, err := strconv.Atoi(p); err == nil {
					portc <- n
					continue
				}
			}
			s.opts.Logf("moto: %s", line)
		}
	}()
	go func() {
		defer s.drained.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			tail.add(sc.Text())
			s.opts.Logf("moto: %s", sc.Text())
		}
	}()
	go func() {
		s.drained.Wait() // Wait closes the pipes: read them to the end first
		_ = cmd.Wait()
		close(s.exited)
	}()

	// Importing moto's Redshift backend pulls in EC2: about 2 s on slow machines.
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	select {
	case s.Port = <-portc:
	case <-s.exited:
		return fmt.Errorf("moto extension exited early (is moto installed for %s? try: %s -c 'import moto, flask'; install with pip install 'moto[server]'): %s", python, python, tail.String())
	case <-deadline.C:
		return errors.New("moto extension did not report its port within 30s")
	case <-ctx.Done():
		return ctx.Err()
	}
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", s.Port)
	return s.waitReady(ctx)
}

func (s *Server) waitReady(ctx context.Context) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/moto-api/data.json", nil)
		if err != nil {
			return err
		}
		resp, err := s.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return errors.New("moto extension exited while starting")
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", s.URL, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Reset wipes all moto state (POST /moto-api/reset) and re-applies
// Options.RoleDelay, so a test sees the same server as after Start.
func (s *Server) Reset(ctx context.Context) error {
	if err := s.post(ctx, "/moto-api/reset", nil, nil); err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	if err := s.SetRoleDelay(ctx, s.opts.RoleDelay); err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	return nil
}

// SetRoleDelay changes how long cluster role changes stay adding/removing,
// for modifications made from now on. Zero restores the default (2s),
// negative makes changes apply at once.
func (s *Server) SetRoleDelay(ctx context.Context, d time.Duration) error {
	secs, _ := strconv.ParseFloat(delaySeconds(d), 64)
	body := map[string]any{"role_delay_seconds": secs}
	if err := s.post(ctx, "/xacctd-sandbox/config", body, nil); err != nil {
		return fmt.Errorf("set role delay: %w", err)
	}
	return nil
}

// CredentialCheck is the answer of VerifyClusterCredentials.
type CredentialCheck struct {
	Valid  bool   `json:"valid"`
	DBUser string `json:"db_user,omitempty"`
}

// VerifyClusterCredentials asks the extension whether password was issued by
// GetClusterCredentials for cluster and user (as issued, e.g. "IAM:etl_loader")
// and is still valid.
func (s *Server) VerifyClusterCredentials(ctx context.Context, cluster, user, password string) (CredentialCheck, error) {
	var out CredentialCheck
	in := map[string]string{"cluster": cluster, "user": user, "password": password}
	if err := s.post(ctx, "/xacctd-sandbox/verify-cluster-credentials", in, &out); err != nil {
		return CredentialCheck{}, fmt.Errorf("verify cluster credentials: %w", err)
	}
	return out, nil
}

func (s *Server) post(ctx context.Context, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("POST %s: decode %q: %w", path, data, err)
		}
	}
	return nil
}

// Stop terminates the server's process group, waits for it and removes its
// temporary files. It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.cmd != nil && s.cmd.Process != nil {
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-s.exited
		}
		// The group may still hold children the server spawned.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("stop moto: remove %s: %w", s.dir, err)
	}
	return nil
}

// filteredEnv drops settings that would break a multi-account sandbox.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MOTO_ACCOUNT_ID", "MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS", "MOTO_EC2_LOAD_DEFAULT_AMIS", "MOTO_PORT", "XACCTD_MOTO_ROLE_DELAY", "XACCTD_MOTO_PARENT_PID":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func delaySeconds(d time.Duration) string {
	switch {
	case d < 0:
		return "0" // immediate
	case d == 0:
		return "2"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// tailBuffer keeps the last lines of stderr for error messages.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 15 {
		t.lines = t.lines[len(t.lines)-15:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// PID returns the server's process id (its process group id too).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Dir returns the server's temporary directory, removed by Stop.
func (s *Server) Dir() string { return s.dir }
