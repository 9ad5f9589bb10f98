package main

// The daemon as a real process under a fake systemd: a NOTIFY_SOCKET that receives what it
// says, signals, its HTTP endpoint and every line it logs.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xacctd/xacctd/internal/sandbox"
	"github.com/xacctd/xacctd/pkg/history"
)

var world *sandbox.World

func TestMain(m *testing.M) {
	code := sandbox.RunTests(m, sandbox.Options{RoleDelay: 300 * time.Millisecond}, &world)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// xacctdBinary builds the xacctd binary once for the package's tests and returns its path.
func xacctdBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "xacctd-bin-"); binErr != nil {
			return
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "xacctd"), ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "xacctd")
}

// knownEvents are the event names docs/events.md lists.
func knownEvents(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?m)^\\| `([a-z_]+\\.[a-z_.]+)`")
	known := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		known[m[1]] = true
	}
	if len(known) < 20 {
		t.Fatalf("docs/events.md lists only %d events", len(known))
	}
	return known
}

// notifySocket is a fake systemd notify socket.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t testing.TB, path string) *notifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) count(substr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.Contains(m, substr) {
			c++
		}
	}
	return c
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDaemonProcess: apply, then `xacctd run` as systemd would start it: READY after the
// first reconcile, a job missed during "downtime" caught up at once, /readyz and /metrics,
// WATCHDOG pings at half of WATCHDOG_USEC, a burst of SIGHUPs coalesced into RELOADING/READY,
// SIGTERM -> STOPPING and exit 0. Every line it logs is JSON with an event docs/events.md
// lists, and no planted secret appears anywhere.
func TestDaemonProcess(t *testing.T) {
	ctx := context.Background()
	if err := world.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := xacctdBinary(t)
	addr := freePort(t)
	state := filepath.Join(work, "state")
	cfgPath := filepath.Join(work, "config.yaml")
	cfg := "version: 1\n" + world.ConfigFragment() + fmt.Sprintf(`buckets:
  lake: {account: lake, name: process-lake, create: true}
pairs:
  - {name: lake, cluster: analytics, bucket: lake, prefix: p/, access: [unload], role: {name: ProcessLake, db_users: [etl_loader]}}
jobs:
  - name: hourly
    pair: lake
    schedule: "0 * * * *"
    catch_up: 3h
    unload: {query: "SELECT * FROM sales.orders WHERE note IS NULL OR note <> 'it''s'", to: "hourly/{{ .RunID }}/"}
state: {dir: %s}
http: {listen: %s}
`, state, addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	plantedToken := "planted-session-token-Zq8xW2"
	env := append(os.Environ(), "AWS_SESSION_TOKEN="+plantedToken)
	var logs strings.Builder
	var logMu sync.Mutex
	runCmd := func(args ...string) int {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput()
		logMu.Lock()
		logs.Write(out)
		logMu.Unlock()
		return cmd.ProcessState.ExitCode()
	}
	if code := runCmd("apply", "--config", cfgPath, "--log-format", "json", "--output", "json"); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, logs.String())
	}
	logs.Reset() // apply printed its JSON document on stdout too; only log lines from here

	// The daemon was down for two hours: its last scheduled run is two occurrences ago.
	store, err := history.OpenFile(state, history.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := time.Now().Truncate(time.Hour).Add(-2 * time.Hour)
	if err := store.Record(ctx, history.Run{ID: "before-downtime", Job: "hourly", Pair: "lake", Cluster: "analytics", Kind: "unload",
		Trigger: history.TriggerSchedule, ScheduledTime: last, Start: last, End: last.Add(time.Second), Attempt: 1, Outcome: history.Succeeded}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	notify := listenNotify(t, filepath.Join(work, "notify.sock"))
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--log-format", "json")
	cmd.Env = append(env, "NOTIFY_SOCKET="+filepath.Join(work, "notify.sock"), "WATCHDOG_USEC=400000")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var lines []string
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logMu.Lock()
			lines = append(lines, sc.Text())
			logMu.Unlock()
		}
	}()
	go func() { <-scanDone; exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	dump := func() string { logMu.Lock(); defer logMu.Unlock(); return strings.Join(lines, "\n") }

	waitFor(t, "READY=1", 60*time.Second, func() bool { return notify.count("READY=1") == 1 })
	t.Logf("start to READY: %s", time.Since(began).Round(time.Millisecond))
	base := "http://" + addr
	waitFor(t, "/readyz 200", 30*time.Second, func() bool { code, _ := httpGet(t, base+"/readyz"); return code == 200 })
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	waitFor(t, "the caught-up run in /metrics", 30*time.Second, func() bool {
		_, m := httpGet(t, base+"/metrics")
		return strings.Contains(m, `xacctd_job_runs_total{job_name="hourly",outcome="succeeded"} 1`)
	})
	_, m := httpGet(t, base+"/metrics")
	for _, want := range []string{"xacctd_config_last_reload_successful 1", "xacctd_leader 1", `xacctd_pair_ready{pair="lake"} 1`, "xacctd_reconcile_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	_, status := httpGet(t, base+"/status")
	if !strings.Contains(status, `"trigger": "catch_up"`) {
		t.Errorf("/status does not show the caught-up run:\n%s", status)
	}
	waitFor(t, "WATCHDOG=1 pings", 5*time.Second, func() bool { return notify.count("WATCHDOG=1") >= 3 })

	// A burst of SIGHUPs: one reload.
	for range 3 {
		_ = cmd.Process.Signal(syscall.SIGHUP)
	}
	waitFor(t, "RELOADING and READY again", 10*time.Second, func() bool {
		return notify.count("RELOADING=1") >= 1 && notify.count("READY=1") >= 2 && strings.Contains(dump(), "config.reloaded")
	})
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(dump(), `"event":"config.reloaded"`); n != 1 {
		t.Errorf("%d reloads for a burst of 3 SIGHUPs, want 1", n)
	}
	if notify.count("MONOTONIC_USEC=") < 1 {
		t.Errorf("RELOADING without MONOTONIC_USEC")
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, dump())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit within 20s of SIGTERM\n%s", dump())
	}
	if notify.count("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 sent %d times", notify.count("STOPPING=1"))
	}

	// Every line: JSON, a documented event, no secret.
	known := knownEvents(t)
	all := dump()
	for _, secret := range []string{world.DBPassword, plantedToken, sandbox.BaseSecretAccessKey} {
		if strings.Contains(all+logs.String(), secret) {
			t.Errorf("a secret (%.4s…) appears in the logs", secret)
		}
	}
	seen := map[string]int{}
	for _, line := range strings.Split(all, "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Errorf("not JSON: %q", line)
			continue
		}
		ev, _ := obj["event"].(string)
		if !known[ev] {
			t.Errorf("event %q is not in docs/events.md: %s", ev, line)
		}
		seen[ev]++
	}
	for _, want := range []string{"daemon.started", "reconcile.finished", "job.missed", "job.started", "job.succeeded", "config.reloaded", "daemon.stopping", "daemon.stopped"} {
		if seen[want] == 0 {
			t.Errorf("no %s line; events seen: %v", want, seen)
		}
	}
	// State files are private.
	files, _ := filepath.Glob(filepath.Join(state, "runs", "*"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", f, st.Mode().Perm())
		}
	}
}
