package daemon_test

// Security tests of the daemon, in process on the sandbox: the HTTP endpoint is on loopback
// and refuses every method that could write; planted secrets never reach /status, /metrics,
// a log line or the run history, through a run that succeeds and one the cluster refuses;
// the state directory is private whatever the umask; insecure file modes are reported at
// start and at reload.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xacctd/xacctd/pkg/daemon"
	"github.com/xacctd/xacctd/pkg/logging"
	"github.com/xacctd/xacctd/pkg/schedule"
)

// secLogBuffer collects the daemon's JSON log lines; zap writes from many goroutines.
type secLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *secLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *secLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *secLogBuffer) events(name string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["event"] == name {
			out = append(out, m)
		}
	}
	return out
}

func secWait(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func secDo(t *testing.T, method, url string, body io.Reader) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestDaemonSecurity(t *testing.T) {
	if err := world.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	planted := map[string]string{
		world.DBPassword:                  "the database password (password_file)",
		"planted-aws-secret-key-Dm7Wq2":   "AWS_SECRET_ACCESS_KEY",
		"planted-aws-session-token-Ka4Xe": "AWS_SESSION_TOKEN",
		"planted-external-id-env-Rz2Lp9":  "the external id from external_id_env",
		"planted-external-id-file-Nf8Qs3": "the external id from external_id_file",
		"planted-wrong-password-Yb6Tc1":   "a wrong password from password_env",
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "planted-aws-secret-key-Dm7Wq2")
	t.Setenv("AWS_SESSION_TOKEN", "planted-aws-session-token-Ka4Xe")
	t.Setenv("XACCTD_TEST_EXTERNAL_ID", "planted-external-id-env-Rz2Lp9")
	t.Setenv("XACCTD_TEST_WRONG_PW", "planted-wrong-password-Yb6Tc1")
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	for name, content := range map[string]string{"db": world.DBPassword, "lake-external-id": "planted-external-id-file-Nf8Qs3"} {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(content+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
	}

	fragment := world.ConfigFragment()
	for old, repl := range map[string]string{
		"    role_arn: " + world.WarehouseRoleARN + "\n": "    role_arn: " + world.WarehouseRoleARN + "\n    external_id_env: XACCTD_TEST_EXTERNAL_ID\n",
		"    role_arn: " + world.LakeRoleARN + "\n":      "    role_arn: " + world.LakeRoleARN + "\n    external_id_file: $CREDENTIALS_DIRECTORY/lake-external-id\n",
		"    password_env: XACCTD_SANDBOX_DB_PASSWORD\n": "    password_file: $CREDENTIALS_DIRECTORY/db\n",
	} {
		if !strings.Contains(fragment, old) {
			t.Fatalf("the sandbox fragment lacks %q:\n%s", old, fragment)
		}
		fragment = strings.Replace(fragment, old, repl, 1)
	}
	state := filepath.Join(dir, "var", "lib", "xacctd") // none of it exists yet
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	cfg := "version: 1\ndefaults: {shutdown_grace: 1s}\n" + fragment + fmt.Sprintf(`buckets:
  lake: {account: lake, name: daemon-security, create: true}
pairs:
  - {name: lake, cluster: analytics, bucket: lake, prefix: sec/, access: [unload], role: {name: DaemonSecurity, db_users: [etl_loader]}}
jobs:
  - {name: tick, pair: lake, schedule: "* * * * *", unload: {query: SELECT 1, to: "tick/{{ .RunID }}/"}}
state: {dir: %s}
http: {listen: "%s"}
`, state, listen)
	path := filepath.Join(dir, "config.yaml")
	// Readable by every user while it names secret files: warned at start and at reload.
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	logs := &secLogBuffer{}
	log, err := logging.New(logs, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	clock := schedule.NewFakeClock(time.Date(2026, 6, 1, 0, 0, 30, 0, time.UTC))
	// No ListenAddr: the daemon binds what the configuration says.
	app, err := daemon.New(daemon.Options{ConfigPath: path, Logger: log, Version: "test", Clock: clock, RetryMin: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, reload) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the daemon did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	secWait(t, "the HTTP endpoint", 30*time.Second, func() bool { return app.Addr() != "" })
	base := "http://" + app.Addr()

	// Loopback only: the configured host, and not reachable on the host's other addresses.
	_, port, _ := net.SplitHostPort(app.Addr())
	if app.Addr() != listen {
		t.Errorf("bound to %s, want %s (http.listen)", app.Addr(), listen)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ip, ok := a.(*net.IPNet)
			if !ok || ip.IP.IsLoopback() || ip.IP.To4() == nil {
				continue
			}
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.IP.String(), port), time.Second); err == nil {
				c.Close()
				t.Errorf("the endpoint answers on %s", ip.IP)
			}
		}
	}

	secWait(t, "the pair to become ready", 30*time.Second, func() bool {
		code, _, _ := secDo(t, "GET", base+"/readyz", nil)
		_, _, m := secDo(t, "GET", base+"/metrics", nil)
		return code == 200 && strings.Contains(m, `xacctd_pair_ready{pair="lake"} 1`)
	})

	// Nothing that writes: every path (served, unknown, Prometheus' and pprof's) with every
	// method but GET and HEAD is 405 and changes nothing.
	paths := []string{"/", "/healthz", "/readyz", "/status", "/metrics", "/nope", "/-/reload", "/-/quit", "/debug/pprof/", "/status/"}
	for _, p := range paths {
		for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO"} {
			code, h, _ := secDo(t, m, base+p, strings.NewReader(`{"reload": true}`))
			if code != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d (Allow %q), want 405 (Allow GET, HEAD)", m, p, code, h.Get("Allow"))
			}
		}
		code, _, _ := secDo(t, "GET", base+p, nil)
		served := map[string]bool{"/": true, "/healthz": true, "/readyz": true, "/status": true, "/metrics": true}
		if served[p] != (code == 200) || (!served[p] && code != http.StatusNotFound) {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	if n := len(logs.events("config.reloaded")) + len(logs.events("config.reload_failed")); n != 0 {
		t.Errorf("%d reloads after the write requests", n)
	}

	// A run that succeeds, then (after a reload to a wrong password from the environment) one
	// the cluster refuses.
	clock.Advance(30 * time.Second) // 00:01
	secWait(t, "the first run", 20*time.Second, func() bool {
		_, _, m := secDo(t, "GET", base+"/metrics", nil)
		return strings.Contains(m, `xacctd_job_runs_total{job_name="tick",outcome="succeeded"} 1`)
	})
	if err := os.WriteFile(path, []byte(strings.Replace(cfg, "password_file: $CREDENTIALS_DIRECTORY/db", "password_env: XACCTD_TEST_WRONG_PW", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	secWait(t, "the reload", 10*time.Second, func() bool { return len(logs.events("config.reloaded")) == 1 })
	clock.Advance(time.Minute) // 00:02
	secWait(t, "the refused run", 20*time.Second, func() bool {
		_, _, m := secDo(t, "GET", base+"/metrics", nil)
		return strings.Contains(m, `xacctd_job_runs_total{job_name="tick",outcome="failed"} 1`)
	})
	_, _, status := secDo(t, "GET", base+"/status", nil)
	if !strings.Contains(status, `"error_class": "auth"`) {
		t.Errorf("/status does not show the refused run:\n%s", status)
	}
	_, _, metrics := secDo(t, "GET", base+"/metrics", nil)
	stop()

	// Warned at start and at reload (the config names secret files and every user may read
	// it); the secret files themselves are 0400: no warning for them.
	warns := logs.events("config.insecure_permissions")
	if len(warns) != 2 {
		t.Errorf("%d config.insecure_permissions lines, want 2 (start, reload)", len(warns))
	}
	for _, w := range warns {
		if w["kind"] != "config" || w["file"] != path || w["mode"] != "0644" || w["fix"] != "chmod o-r "+path || w["level"] != "warn" {
			t.Errorf("warning %v", w)
		}
	}

	// No secret anywhere: /status, /metrics, every log line, every file under the state
	// directory; and the state directory is private although the umask was 0.
	texts := map[string]string{"/status": status, "/metrics": metrics, "the log": logs.String()}
	err = filepath.Walk(filepath.Join(dir, "var"), func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		switch {
		case info.IsDir() && info.Mode().Perm() != 0o700:
			t.Errorf("directory %s has mode %04o under umask 0, want 0700", p, info.Mode().Perm())
		case info.Mode().IsRegular():
			if info.Mode().Perm() != 0o600 {
				t.Errorf("file %s has mode %04o under umask 0, want 0600", p, info.Mode().Perm())
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			texts[p] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) < 5 {
		t.Errorf("checked only %v", texts)
	}
	for where, text := range texts {
		for v, what := range planted {
			if strings.Contains(text, v) {
				t.Errorf("%s shows %s", where, what)
			}
		}
	}

	// Every line is a documented event, the new one included.
	doc, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+\\.[a-z_.]+)`").FindAllStringSubmatch(string(doc), -1) {
		known[m[1]] = true
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not JSON: %s", line)
			continue
		}
		if ev, _ := m["event"].(string); !known[ev] {
			t.Errorf("event %q is not in docs/events.md", ev)
		}
	}
}
