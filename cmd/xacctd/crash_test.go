package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xacctd/xacctd/pkg/history"
)

// TestSIGKILLMidJob: the daemon is SIGKILLed while a caught-up run executes. On restart
// the run is recorded as interrupted (not left "running"), the occurrence is caught up
// again and succeeds, and the history files are intact (nothing moved aside as corrupt).
func TestSIGKILLMidJob(t *testing.T) {
	ctx := context.Background()
	if err := world.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := xacctdBinary(t)
	state := filepath.Join(work, "state")
	cfgPath := filepath.Join(work, "config.yaml")
	writeConfig := func(query string) {
		t.Helper()
		cfg := "version: 1\n" + world.ConfigFragment() + fmt.Sprintf(`buckets:
  lake: {account: lake, name: crash-lake, create: true}
pairs:
  - {name: lake, cluster: analytics, bucket: lake, prefix: c/, access: [unload], role: {name: CrashLake, db_users: [etl_loader]}}
jobs:
  - name: hourly
    pair: lake
    schedule: "0 * * * *"
    catch_up: 3h
    unload: {query: "%s", to: "hourly/{{ .RunID }}/"}
state: {dir: %s}
http: {listen: %s}
`, query, state, freePort(t))
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("SELECT pg_sleep(60)")
	if out, err := exec.Command(bin, "apply", "--config", cfgPath, "--log-format", "json").CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	store, err := history.OpenFile(state, history.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	last := time.Now().Truncate(time.Hour).Add(-2 * time.Hour)
	if err := store.Record(ctx, history.Run{ID: "before", Job: "hourly", Trigger: history.TriggerSchedule, ScheduledTime: last,
		Start: last, End: last.Add(time.Second), Attempt: 1, Outcome: history.Succeeded}); err != nil {
		t.Fatal(err)
	}
	due := last.Add(2 * time.Hour) // the latest missed occurrence, caught up at start
	runs := func() []history.Run {
		t.Helper()
		rs, err := store.Runs(ctx, "hourly", 0)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(bin, "run", "--config", cfgPath, "--log-format", "json")
		var logs strings.Builder
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}

	first := start()
	waitFor(t, "the caught-up run to be running", 30*time.Second, func() bool {
		rs := runs()
		return len(rs) == 2 && rs[0].Outcome == history.Running && rs[0].ScheduledTime.Equal(due)
	})
	killed := runs()[0]
	time.Sleep(300 * time.Millisecond) // into pg_sleep
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	// The operator fixes the query and starts the daemon again.
	writeConfig("SELECT 1")
	second := start()
	waitFor(t, "the interrupted run recorded and the occurrence run again", 30*time.Second, func() bool {
		var interrupted, succeeded int
		for _, r := range runs() {
			switch {
			case r.ID == killed.ID && r.Outcome == history.Interrupted:
				interrupted++
			case r.ScheduledTime.Equal(due) && r.Trigger == history.TriggerCatchUp && r.Outcome == history.Succeeded:
				succeeded++
			}
		}
		return interrupted == 1 && succeeded == 1
	})
	for _, r := range runs() {
		if r.ID == killed.ID && !strings.Contains(r.Error, fmt.Sprintf("pid %d", first.Process.Pid)) {
			t.Errorf("interrupted run's error %q does not name the dead process", r.Error)
		}
	}
	_ = second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Errorf("second daemon: %v", err)
	}
	corrupt, _ := filepath.Glob(filepath.Join(state, "runs", "*.corrupt-*"))
	if len(corrupt) != 0 {
		t.Errorf("history files moved aside as corrupt: %v", corrupt)
	}
	if n := len(runs()); n != 3 {
		t.Errorf("%d runs, want 3 (before, interrupted, caught up): %+v", n, runs())
	}
}
