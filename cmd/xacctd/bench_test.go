package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// procSample reads a process's CPU time (user+system) and resident set size.
func procSample(b *testing.B, pid int) (cpu time.Duration, rssKiB int) {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which is in parentheses and may hold spaces).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	cpu = time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			rssKiB, _ = strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return cpu, rssKiB
}

// BenchmarkDaemonIdle measures the daemon as systemd would run it with 500 pairs (2
// accounts, 10 clusters, 25 buckets) and 1,000 jobs configured, already applied: time from
// start to READY=1 (config load, HTTP, the first no-op reconcile, the scheduler), then CPU
// and RSS over 60 idle seconds (no job is due; the next reconcile is minutes away).
// Run: go test -run '^$' -bench DaemonIdle -benchtime 1x ./cmd/xacctd (part of make bench).
func BenchmarkDaemonIdle(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	idle := 60 * time.Second
	if s := os.Getenv("XACCTD_BENCH_IDLE"); s != "" {
		idle, _ = time.ParseDuration(s)
	}
	work := b.TempDir()
	bin := xacctdBinary(b)
	for i := 0; i < b.N; i++ {
		if err := world.Reset(ctx); err != nil {
			b.Fatal(err)
		}
		text, err := world.ScaleConfig(ctx, 500, 2, 2)
		if err != nil {
			b.Fatal(err)
		}
		cfgPath := filepath.Join(work, "config.yaml")
		text += fmt.Sprintf("state: {dir: %s}\nhttp: {listen: %s}\n", filepath.Join(work, "state"), freePort(b))
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
		apply := exec.Command(bin, "apply", "--config", cfgPath, "--log-format", "json")
		if out, err := apply.CombinedOutput(); err != nil {
			b.Fatalf("apply: %v\n%.2000s", err, out)
		}
		sock := filepath.Join(work, fmt.Sprintf("notify-%d.sock", i))
		notify := listenNotify(b, sock)
		cmd := exec.Command(bin, "run", "--config", cfgPath, "--log-format", "json")
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
		began := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for notify.count("READY=1") == 0 {
			if time.Since(began) > 2*time.Minute {
				_ = cmd.Process.Kill()
				b.Fatal("no READY=1 within 2 minutes")
			}
			time.Sleep(5 * time.Millisecond)
		}
		ready := time.Since(began)
		cpu0, _ := procSample(b, cmd.Process.Pid)
		time.Sleep(idle)
		cpu1, rss := procSample(b, cmd.Process.Pid)
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		b.ReportMetric(float64(ready.Milliseconds()), "start-to-ready-ms")
		b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/idle.Seconds(), "idle-cpu-ms/s")
		b.ReportMetric(float64(cpu0.Milliseconds()), "startup-cpu-ms")
		b.ReportMetric(float64(rss)/1024, "rss-MiB")
	}
}
