package daemon_test

// In-process daemon tests on the sandbox (moto, PostgreSQL, the Redshift stand-in). The
// scheduler runs on a fake clock so that "every minute" takes no minute; reconciles, AWS and
// the database are real.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xacctd/xacctd/internal/sandbox"
	"github.com/xacctd/xacctd/pkg/daemon"
	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/schedule"
)

var world *sandbox.World

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, sandbox.Options{RoleDelay: 300 * time.Millisecond}, &world))
}

// notes records what the daemon tells systemd.
type notes struct {
	mu   sync.Mutex
	msgs []string
}

func (n *notes) add(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, s)
	return nil
}
func (n *notes) Ready(s string) error            { return n.add("READY " + s) }
func (n *notes) Reloading(s string) error        { return n.add("RELOADING") }
func (n *notes) Stopping(s string) error         { return n.add("STOPPING") }
func (n *notes) Status(s string) error           { return n.add("STATUS " + s) }
func (n *notes) Watchdog() error                 { return n.add("WATCHDOG") }
func (n *notes) WatchdogInterval() time.Duration { return 0 }
func (n *notes) count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.HasPrefix(m, prefix) {
			c++
		}
	}
	return c
}

type harness struct {
	t      *testing.T
	dir    string
	path   string
	clock  *schedule.FakeClock
	notes  *notes
	logs   *observer.ObservedLogs
	app    *daemon.App
	reload chan struct{}
	cancel context.CancelFunc
	done   chan error
	base   string // http://addr
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const pairs = `buckets:
  lake: {account: lake, name: daemon-lake, create: true}
pairs:
  - name: lake
    cluster: analytics
    bucket: lake
    prefix: d/
    access: [unload]
    role: {name: DaemonLake, db_users: [etl_loader]}
`

func (h *harness) write(body string) {
	h.t.Helper()
	text := "version: 1\ndefaults: {shutdown_grace: 1s}\n" + world.ConfigFragment() + pairs + body +
		fmt.Sprintf("state: {dir: %s}\n", filepath.Join(h.dir, "state"))
	if err := os.WriteFile(h.path, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

func start(t *testing.T, jobs string) *harness {
	t.Helper()
	if err := world.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: t.TempDir(), notes: &notes{}, reload: make(chan struct{}, 1), done: make(chan error, 1),
		clock: schedule.NewFakeClock(time.Date(2026, 6, 1, 0, 0, 30, 0, time.UTC))}
	h.path = filepath.Join(h.dir, "config.yaml")
	h.write(jobs)
	core, logs := observer.New(zapcore.DebugLevel)
	h.logs = logs
	app, err := daemon.New(daemon.Options{ConfigPath: h.path, Logger: zap.New(core), Version: "test", Notifier: h.notes,
		Clock: h.clock, ListenAddr: "127.0.0.1:0", RetryMin: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.app = app
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- app.Run(ctx, h.reload) }()
	waitFor(t, "READY", 30*time.Second, func() bool { return h.notes.count("READY") == 1 })
	h.base = "http://" + app.Addr()
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) stop() error {
	h.cancel()
	select {
	case err := <-h.done:
		h.done <- err
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("the daemon did not stop within 30s")
		return nil
	}
}

func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get(h.base + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitPairReady waits until /readyz answers 200 and the pair is ready (its association
// in-sync), as /metrics shows.
func (h *harness) waitPairReady() {
	h.t.Helper()
	waitFor(h.t, "the pair to become ready", 30*time.Second, func() bool {
		code, _ := h.get("/readyz")
		_, m := h.get("/metrics")
		return code == 200 && strings.Contains(m, `xacctd_pair_ready{pair="lake"} 1`)
	})
}

func (h *harness) events(name string) []observer.LoggedEntry {
	return h.logs.FilterField(zap.String("event", name)).All()
}

// runs reads the job's history from the state directory, as `xacctd jobs history` would.
func (h *harness) runs(job string) []history.Run {
	h.t.Helper()
	s, err := history.OpenFile(filepath.Join(h.dir, "state"), history.FileOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(context.Background(), job, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return runs
}

func (h *harness) finished(job string, outcome history.Outcome) int {
	n := 0
	for _, r := range h.runs(job) {
		if r.Outcome == outcome {
			n++
		}
	}
	return n
}

const tickJob = `jobs:
  - name: tick
    pair: lake
    schedule: "* * * * *"
    unload: {query: SELECT 1, to: "tick/{{ .RunID }}/"}
`

// TestDaemonRunsReloadsAndStops: READY after the first reconcile; /readyz and /status
// follow the pair becoming ready; a job due every minute runs on the (fake) minute and is
// counted in /metrics; a good reload adds a job without disturbing the other; a bad reload
// keeps the old configuration running, logs every problem with its position and sets the
// reload metric to 0; SIGTERM (ctx) stops cleanly.
func TestDaemonRunsReloadsAndStops(t *testing.T) {
	h := start(t, tickJob)
	h.waitPairReady()
	if n := len(h.events("pair.ready")); n != 1 {
		t.Errorf("%d pair.ready events, want 1 (logged on the change only)", n)
	}

	h.clock.Advance(30 * time.Second) // 00:01
	waitFor(t, "tick to succeed", 20*time.Second, func() bool { return h.finished("tick", history.Succeeded) == 1 })
	waitFor(t, "the job metric", 5*time.Second, func() bool {
		_, m := h.get("/metrics")
		return strings.Contains(m, `xacctd_job_runs_total{job_name="tick",outcome="succeeded"} 1`)
	})

	// A good reload: a second job appears, tick goes on.
	h.write(tickJob + `  - name: tock
    pair: lake
    schedule: "*/2 * * * *"
    unload: {query: SELECT 2, to: "tock/{{ .RunID }}/"}
`)
	h.reload <- struct{}{}
	waitFor(t, "RELOADING then READY", 10*time.Second, func() bool { return h.notes.count("READY") == 2 && h.notes.count("RELOADING") == 1 })
	if len(h.events("config.reloaded")) != 1 {
		t.Fatalf("no config.reloaded event")
	}
	h.clock.Advance(time.Minute) // 00:02: both
	waitFor(t, "tick and tock", 20*time.Second, func() bool {
		return h.finished("tick", history.Succeeded) == 2 && h.finished("tock", history.Succeeded) == 1
	})

	// A bad reload: two problems; the old configuration (tick and tock) keeps running.
	h.write(tickJob + "  - {name: bad, pair: nope, schedule: \"* * * * *\", unload: {query: SELECT 1, to: x/}}\nfrobnicate: 1\n")
	h.reload <- struct{}{}
	waitFor(t, "config.reload_failed", 10*time.Second, func() bool { return len(h.events("config.reload_failed")) == 1 })
	problems, _ := h.events("config.reload_failed")[0].ContextMap()["problems"].([]any)
	if len(problems) != 2 || !strings.Contains(fmt.Sprint(problems), "config.yaml:") || !strings.Contains(fmt.Sprint(problems), "jobs[1].pair") {
		t.Errorf("problems %v: want both, each with its position", problems)
	}
	_, m := h.get("/metrics")
	if !strings.Contains(m, "xacctd_config_last_reload_successful 0") {
		t.Errorf("/metrics after a failed reload lacks xacctd_config_last_reload_successful 0")
	}
	// An unreadable file at SIGHUP: the same.
	if err := os.Rename(h.path, h.path+".moved"); err != nil {
		t.Fatal(err)
	}
	h.reload <- struct{}{}
	waitFor(t, "a second config.reload_failed", 10*time.Second, func() bool { return len(h.events("config.reload_failed")) == 2 })
	if msg := fmt.Sprint(h.events("config.reload_failed")[1].ContextMap()["error"]); !strings.Contains(msg, "config.yaml") {
		t.Errorf("reload of a missing file: error %q does not name the file", msg)
	}
	h.clock.Advance(2 * time.Minute) // 00:04: tick and tock of the old configuration
	waitFor(t, "the old jobs to go on", 20*time.Second, func() bool {
		return h.finished("tick", history.Succeeded) == 3 && h.finished("tock", history.Succeeded) == 2
	})

	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if h.notes.count("STOPPING") != 1 || len(h.events("daemon.stopping")) != 1 || len(h.events("daemon.stopped")) != 1 {
		t.Errorf("stop: notes %v", h.notes.msgs)
	}
}

// TestStopCancelsRunningJob: SIGTERM while a long job runs: after the grace period (1s) its
// query is cancelled on the server and the run recorded as interrupted.
func TestStopCancelsRunningJob(t *testing.T) {
	h := start(t, `jobs:
  - name: long
    pair: lake
    schedule: "* * * * *"
    timeout: 1h
    unload: {query: SELECT pg_sleep(120), to: "long/{{ .RunID }}/"}
`)
	h.waitPairReady()
	h.clock.Advance(30 * time.Second)
	waitFor(t, "the long run to start", 20*time.Second, func() bool { return h.finished("long", history.Running) == 1 })
	time.Sleep(200 * time.Millisecond) // into pg_sleep
	cancels := world.Redshift.Cancels()
	began := time.Now()
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < time.Second || took > 20*time.Second {
		t.Errorf("stop took %s: want the 1s grace, then a prompt cancel", took)
	}
	runs := h.runs("long")
	if len(runs) != 1 || runs[0].Outcome != history.Interrupted {
		t.Fatalf("runs %+v: want one, interrupted", runs)
	}
	if world.Redshift.Cancels() <= cancels {
		t.Error("the stand-in saw no CancelRequest")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, world.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	waitFor(t, "the query to end on the server", 5*time.Second, func() bool {
		var n int
		_ = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND state = 'active' AND pid <> pg_backend_pid()").Scan(&n)
		return n == 0
	})
}

// TestFailedReconcileKeepsReadyPairs: a pair blocked by a conflict (its role name belongs
// to a role xacctd does not own) makes every cycle fail: logged, retried with backoff,
// /readyz 503 — while the other pair stays ready and its job keeps running; the blocked
// pair's job is skipped, not failed.
func TestFailedReconcileKeepsReadyPairs(t *testing.T) {
	h := start(t, `  - name: blocked
    cluster: analytics
    bucket: lake
    prefix: blocked/
    access: [unload]
    role: {name: `+sandbox.AdminRoleName+`, path: /}
jobs:
  - {name: good, pair: lake, schedule: "* * * * *", unload: {query: SELECT 1, to: "good/{{ .RunID }}/"}}
  - {name: stuck, pair: blocked, schedule: "* * * * *", unload: {query: SELECT 1, to: "stuck/{{ .RunID }}/"}}
`)
	waitFor(t, "repeated reconcile.failed", 30*time.Second, func() bool { return len(h.events("reconcile.failed")) >= 3 })
	fails := h.events("reconcile.failed")
	if gap1, gap2 := fails[1].Time.Sub(fails[0].Time), fails[2].Time.Sub(fails[1].Time); gap2 < gap1 {
		t.Errorf("retries after %s then %s: want a growing backoff", gap1, gap2)
	}
	if len(h.events("conflict.detected")) == 0 {
		t.Error("no conflict.detected event")
	}
	if code, body := h.get("/readyz"); code != 503 || !strings.Contains(body, "conflict") {
		t.Errorf("/readyz %d %q: want 503 naming the conflict", code, body)
	}
	waitFor(t, "the good pair to become ready", 30*time.Second, func() bool {
		_, m := h.get("/metrics")
		return strings.Contains(m, `xacctd_pair_ready{pair="lake"} 1`) && strings.Contains(m, `xacctd_pair_ready{pair="blocked"} 0`)
	})
	h.clock.Advance(30 * time.Second)
	waitFor(t, "good to succeed and stuck to be skipped", 20*time.Second, func() bool {
		return h.finished("good", history.Succeeded) == 1 && h.finished("stuck", history.Skipped) == 1
	})
	if h.finished("stuck", history.Failed) != 0 {
		t.Error("the blocked pair's job failed instead of being skipped")
	}
}

// TestUnusableStateDirectory: the run history cannot be written (the state directory
// replaced by a file: as root, permissions cannot simulate a read-only directory). Each
// failed write is a state.write_failed event; the job still runs and the daemon keeps
// reconciling.
func TestUnusableStateDirectory(t *testing.T) {
	h := start(t, tickJob)
	h.waitPairReady()
	runs := filepath.Join(h.dir, "state", "runs")
	if err := os.Rename(runs, runs+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(runs, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(30 * time.Second)
	waitFor(t, "the job to run despite the history", 20*time.Second, func() bool { return len(h.events("job.succeeded")) == 1 })
	if n := len(h.events("state.write_failed")); n < 2 {
		t.Errorf("%d state.write_failed events, want one per failed write (start and end of the run)", n)
	}
	before := len(h.events("reconcile.finished")) + len(h.events("reconcile.failed"))
	h.reload <- struct{}{} // a reload reconciles at once
	waitFor(t, "another reconcile", 20*time.Second, func() bool {
		return len(h.events("reconcile.finished"))+len(h.events("reconcile.failed")) > before
	})
	if code, _ := h.get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
}
