"""Turns `go test -bench` output into docs/performance.md (run by bench/run.sh)."""
import datetime
import platform
import re
import subprocess
import sys

TERRAFORM_CALLS_PER_PAIR = 24  # aws-facts.md: a no-change plan reads ~24 calls per pair


def parse(path):
    results, pkg = {}, None
    for line in open(path):
        m = re.match(r"^pkg: (\S+)", line)
        if m:
            pkg = m.group(1)
        m = re.match(r"^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$", line)
        if not m:
            continue
        name, fields = m.group(1), m.group(4).split()
        metrics = {}
        for i in range(0, len(fields) - 1, 2):
            try:
                metrics[fields[i + 1]] = float(fields[i])
            except ValueError:
                pass
        results[name] = metrics
    return results


def cpu():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    r = parse(sys.argv[1])
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    mem = ""
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = "%.0f GiB" % (int(line.split()[1]) / 1024 / 1024)
    import os
    out = []
    w = out.append
    w("# Performance\n")
    w("Produced by `make bench` (bench/run.sh, bench/report.py) on %s at commit %s: %d cores (%s), %s RAM, %s. "
      "The AWS side is moto on loopback, so absolute times are noisy and much faster than AWS; "
      "**API call counts and ratios are the stable figures**. Rerun `make bench` to refresh this file.\n"
      % (datetime.date.today().isoformat(), rev, os.cpu_count(), cpu(), mem, go))
    w("## Reconcile: first apply and no-op plan\n")
    w("`go test ./pkg/reconcile -bench Reconcile`: pairs with unload+copy access spread over clusters of at most "
      "50 roles and buckets of 20 pairs, half the accounts holding clusters and half buckets. Calls count every "
      "request, SDK retries included.\n")
    w("| pairs | accounts | first apply calls | first apply ms | no-op plan calls | no-op plan ms | no-op calls per pair | Terraform no-op calls (≈24/pair) | xacctd vs Terraform |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k, m in sorted(((k, m) for k, m in r.items() if k.startswith("BenchmarkReconcile/")),
                       key=lambda km: (int(re.search(r"accounts=(\d+)", km[0]).group(1)), int(re.search(r"pairs=(\d+)", km[0]).group(1)))):
        pairs = int(re.search(r"pairs=(\d+)", k).group(1))
        accts = int(re.search(r"accounts=(\d+)", k).group(1))
        tf = TERRAFORM_CALLS_PER_PAIR * pairs
        w("| %d | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %d | %.1f%% |" % (
            pairs, accts, m.get("apply-calls", 0), m.get("apply-ms", 0), m.get("noop-plan-calls", 0),
            m.get("noop-plan-ms", 0), m.get("noop-calls/pair", 0), tf, 100 * m.get("noop-plan-calls", 0) / tf))
    w("\nA no-op plan costs 2 calls per account (AssumeRole and one `GetAccountAuthorizationDetails` listing every "
      "role with its policies and tags), 4 per bucket and 1 `DescribeClusters` per account and region — not per "
      "pair. Terraform's AWS provider reads each `aws_s3_bucket` with 15 calls, each `aws_iam_role` with 3 + one per "
      "inline policy, and one call per bucket policy, role policy and association, plus STS per provider: about 24 "
      "per pair (aws-facts.md).\n")
    w("## Scheduler\n")
    w("`go test ./pkg/schedule -bench FireLag`: 1,000 jobs due in the same minute, a no-op runner; fire lag is when "
      "`Run` starts minus the scheduled time.\n")
    w("| case | p50 lag ms | p99 lag ms | max lag ms | heap held KiB |")
    w("| --- | ---: | ---: | ---: | ---: |")
    for k, m in sorted(r.items()):
        if k.startswith("BenchmarkFireLag1000/"):
            w("| %s | %.1f | %.1f | %.1f | %.0f |" % (k.split("/", 1)[1], m.get("p50-lag-ms", 0), m.get("p99-lag-ms", 0),
                                                   m.get("max-lag-ms", 0), m.get("heap-KiB", 0)))
    w("\n## Daemon\n")
    m = r.get("BenchmarkDaemonIdle", {})
    w("`go test ./cmd/xacctd -bench DaemonIdle`: the real binary with 500 pairs and 1,000 jobs configured "
      "(already applied), started as systemd would (NOTIFY_SOCKET).\n")
    w("| figure | value |")
    w("| --- | ---: |")
    w("| start to READY=1 (load, HTTP, first no-op reconcile, scheduler) | %.0f ms |" % m.get("start-to-ready-ms", 0))
    w("| CPU used until READY | %.0f ms |" % m.get("startup-cpu-ms", 0))
    w("| CPU while idle (60 s, no job due, no reconcile due) | %.1f ms per second |" % m.get("idle-cpu-ms/s", 0))
    w("| resident memory (RSS) when idle | %.1f MiB |" % m.get("rss-MiB", 0))
    w("\nThe CPU figure comes from /proc with a 10 ms tick: 0 means less than 10 ms in the whole minute.\n")
    w("## Configuration, SQL rendering, run history\n")
    w("| benchmark | figure |")
    w("| --- | ---: |")
    c = r.get("BenchmarkLoad1000Pairs5000Jobs", {})
    if c:
        w("| load + validate 1,000 pairs and 5,000 jobs (every schedule parsed, every template rendered) | %.0f ms |" % c.get("ms/load", c.get("ns/op", 0) / 1e6))
    j = r.get("BenchmarkRenderUnload", {})
    if j:
        w("| render one UNLOAD (templates, quoting, checks) | %.1f µs, %.0f allocs |" % (j.get("ns/op", 0) / 1e3, j.get("allocs/op", 0)))
    h = r.get("BenchmarkRecord", {})
    if h:
        w("| record one run in a job history of 1,000 runs (append + fsync, compaction amortised) | %.2f ms wall, %.2f ms CPU, %.1f KB |" % (
            h.get("ns/op", 0) / 1e6, h.get("cpu-ns/op", 0) / 1e6, h.get("B/op", 0) / 1e3))
    h = r.get("BenchmarkRuns", {})
    if h:
        w("| read one job's history (log just before compaction) | %.1f ms |" % (h.get("ns/op", 0) / 1e6))
    h = r.get("BenchmarkDaemonStart", {})
    if h:
        w("| history reads at daemon start (Recover, Latest, LastScheduled; 10 full jobs) | %.0f ms |" % (h.get("ns/op", 0) / 1e6))
    w("")
    w("## Shared state (state.backend: postgres)\n")
    w("`go test ./pkg/pgstate -bench .` against the sandbox PostgreSQL on loopback.\n")
    w("| benchmark | figure |")
    w("| --- | ---: |")
    h = r.get("BenchmarkClaimAndFinish", {})
    if h:
        w("| one scheduled run's writes: claim (insert, unique on job + scheduled time) and final record (upsert + retention), job of 1,000 runs | %.2f ms |" % h.get("ms/run", 0))
    h = r.get("BenchmarkTermStartReads", {})
    if h:
        w("| a new leader's reads before its scheduler starts (Recover, Latest, LastScheduled), 100 jobs × 1,000 runs | %.1f ms |" % h.get("ms/start", 0))
    w("\nEach instance also sends one small query a second on its session (the leader's confirms it holds the lock): "
      "60 queries a minute per instance, whatever the number of jobs. Failover figures (SIGKILL of the leader to the "
      "follower's `leader.acquired` about 4 s; connection cut to `leader.lost` under 1 s) come from "
      "`go test ./cmd/xacctd -run HighAvailability -v` and `go test ./pkg/pgstate -run 'Election|Vanished' -v`.\n")
    print("\n".join(out))


main()
