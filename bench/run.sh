#!/usr/bin/env bash
# make bench: run every benchmark and write docs/performance.md from the figures.
# Figures, not pass/fail. The sandbox benchmarks start their own world.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
raw=$(mktemp -t xacctd-bench.XXXXXX)
trap 'rm -f "$raw"' EXIT
run() { echo "+ $GO test $*" >&2; "$GO" test "$@" | tee -a "$raw"; }
run -run '^$' -bench . -benchmem -benchtime 10x ./pkg/config ./pkg/jobsql
run -run '^$' -bench 'Record|Runs|DaemonStart' -benchmem -benchtime 300x ./pkg/history
run -run '^$' -bench 'ClaimAndFinish|TermStartReads' -benchtime 200x ./pkg/pgstate
run -run '^$' -bench FireLag -benchmem -benchtime 5x ./pkg/schedule
run -run '^$' -bench Reconcile -benchtime 1x -timeout 30m ./pkg/reconcile
run -run '^$' -bench DaemonIdle -benchtime 1x -timeout 15m ./cmd/xacctd
python3 bench/report.py "$raw" >docs/performance.md
echo "bench: wrote docs/performance.md" >&2
