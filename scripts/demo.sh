#!/usr/bin/env bash
# make demo: start the local two-account world, point xacctd at it, and walk the main path.
# Everything runs on loopback and is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d -t xacctd-demo.XXXXXX)
sandbox_pid=""
cleanup() {
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill -TERM "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting the sandbox (moto + Redshift extension, PostgreSQL, Redshift stand-in)"
bin/xacctd-sandbox --env-file "$work/sandbox.env" --config-out "$work/fragment.yaml" >"$work/sandbox.log" 2>&1 &
sandbox_pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/sandbox.env" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$work/sandbox.log" >&2; echo "demo: the sandbox did not start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/sandbox.env" ] || { cat "$work/sandbox.log" >&2; echo "demo: the sandbox did not start within 30s" >&2; exit 1; }
set -a; . "$work/sandbox.env"; set +a
echo "moto:      $AWS_ENDPOINT_URL"
echo "warehouse: account $XACCTD_SANDBOX_WAREHOUSE_ACCOUNT, cluster $XACCTD_SANDBOX_CLUSTER at $XACCTD_SANDBOX_REDSHIFT_ENDPOINT"
echo "lake:      account $XACCTD_SANDBOX_LAKE_ACCOUNT"

step "Writing a configuration: the sandbox's accounts and cluster, a bucket in the lake account, one pair, one job"
{
  echo "version: 1"
  cat "$work/fragment.yaml"
  cat <<YAML
buckets:
  exports:
    account: lake
    name: demo-redshift-exports
    create: true
pairs:
  - name: warehouse-to-lake
    cluster: $XACCTD_SANDBOX_CLUSTER
    bucket: exports
    prefix: redshift/demo/
    access: [unload, copy]
    role:
      name: DemoRedshiftLakeAccess
      db_users: [$XACCTD_SANDBOX_DB_USER]
jobs:
  - name: orders-nightly
    pair: warehouse-to-lake
    schedule: "0 2 * * *"
    timezone: America/New_York
    unload:
      query: SELECT * FROM $XACCTD_SANDBOX_SAMPLE_TABLE
      to: 'orders/{{ .ScheduledTime.Format "2006/01/02" }}/'
      format: csv
      options: {header: true, cleanpath: true}
state:
  dir: $work/state
YAML
} >"$work/config.yaml"
sed 's/^/    /' "$work/config.yaml"

step "xacctd validate"
bin/xacctd validate --config "$work/config.yaml"

run() {
  step "xacctd $*"
  set +e
  bin/xacctd "$@" --config "$work/config.yaml" 2>"$work/err"
  rc=$?
  set -e
  # Logs (JSON on stderr) are kept out of the way; show them when something fails.
  if [ "$rc" -gt 2 ] || { [ "$rc" -eq 1 ] && [ "${allow_fail:-}" != 1 ]; }; then
    cat "$work/err" >&2
    echo "demo: xacctd $* failed (exit $rc)" >&2
    exit 1
  fi
}

run plan                               # 2: changes pending
run apply                              # creates the bucket settings, roles, policy, association
run plan                               # 0: nothing to do
run check --probe                      # every link, then a real UNLOAD + COPY through the path
run jobs run orders-nightly            # the job, as the scheduler would run it
run jobs run orders-nightly --at 2026-01-02T02:00   # a backfill of a past night
run jobs history orders-nightly
run jobs list

step "Stopping the sandbox"
kill -TERM "$sandbox_pid"
wait "$sandbox_pid"
sandbox_pid=""
echo "demo: done; nothing is left running"
