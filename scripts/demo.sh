#!/usr/bin/env bash
# make demo: start the local two-account world, point xacctd at it, and walk the main path.
# Everything runs on loopback and is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d -t xacctd-demo.XXXXXX)
sandbox_pid=""
cleanup() {
  if [ -n "${daemon_pid:-}" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill -TERM "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

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

step "Writing a configuration: the sandbox's accounts and cluster, a bucket in the lake account, one pair per method, an UNLOAD and a COPY job every minute"
{
  echo "version: 1"
  echo "defaults: {shutdown_grace: 10s}"
  cat "$work/fragment.yaml"
  cat <<YAML
buckets:
  exports:
    account: lake
    name: demo-redshift-exports
    create: true
pairs:
  # The bucket policy in the lake account grants the warehouse role: UNLOAD writes there.
  - name: warehouse-to-lake
    cluster: $XACCTD_SANDBOX_CLUSTER
    bucket: exports
    prefix: redshift/demo/
    access: [unload]
    role:
      name: DemoRedshiftLakeAccess
      db_users: [$XACCTD_SANDBOX_DB_USER]
  # Role chaining: the warehouse role assumes a reader role in the lake account: COPY reads.
  - name: lake-to-warehouse
    cluster: $XACCTD_SANDBOX_CLUSTER
    bucket: exports
    prefix: redshift/demo/orders/
    access: [copy]
    method: role-chaining
    role:
      name: DemoRedshiftChain
      db_users: [$XACCTD_SANDBOX_DB_USER]
    target_role:
      name: DemoLakeReader
jobs:
  - name: orders-export
    pair: warehouse-to-lake
    schedule: "* * * * *"
    unload:
      query: SELECT * FROM $XACCTD_SANDBOX_SAMPLE_TABLE WHERE note IS NULL OR note <> 'it''s'
      to: 'orders/{{ .ScheduledTime.Format "2006/01/02/1504" }}/'
      options: {null_as: '\N', allowoverwrite: true}
  - name: orders-load
    pair: lake-to-warehouse
    schedule: "* * * * *"
    copy:
      table: sales.orders_copy
      # What orders-export wrote the minute before.
      from: '{{ (.ScheduledTime.Add -60000000000).Format "2006/01/02/1504" }}/'
      options: {null_as: '\N'}
state:
  dir: $work/state
http:
  listen: 127.0.0.1:$http_port
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

psql_sandbox() { psql "$XACCTD_SANDBOX_POSTGRES_DSN" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
lake_objects() {
  python3 - "$1" <<'PY'
import os, sys, boto3
from botocore.config import Config
ep = os.environ["AWS_ENDPOINT_URL"]
c = boto3.client("sts", endpoint_url=ep).assume_role(RoleArn=os.environ["XACCTD_SANDBOX_LAKE_ROLE_ARN"], RoleSessionName="demo")["Credentials"]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                  aws_session_token=c["SessionToken"], config=Config(s3={"addressing_style": "path"}))
for o in s3.list_objects_v2(Bucket="demo-redshift-exports", Prefix=sys.argv[1]).get("Contents", []):
    print(f"    s3://demo-redshift-exports/{o['Key']}  {o['Size']} bytes")
PY
}

run plan                               # 2: changes pending
run apply                              # bucket settings, roles, policy statement, associations
run plan                               # 0: nothing to do
run check --probe                      # every link, then a real UNLOAD / COPY through each pair

step "Preparing: the COPY target table, and last minute's export (a backfill with jobs run --at)"
psql_sandbox "CREATE TABLE sales.orders_copy (LIKE $XACCTD_SANDBOX_SAMPLE_TABLE); ALTER TABLE sales.orders_copy OWNER TO $XACCTD_SANDBOX_DB_USER"
echo "    created sales.orders_copy"
minute=$(date -u -d "@$(( $(date +%s) / 60 * 60 ))" +%Y-%m-%dT%H:%M:%SZ)
run jobs run orders-export --at "$minute"

step "xacctd run: the daemon, until both jobs have fired on the next minute"
bin/xacctd run --config "$work/config.yaml" --log-format json 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "    /readyz: $(curl -sS "http://127.0.0.1:$http_port/readyz")"
echo "    waiting for the next minute (at most 60s) ..."
for _ in $(seq 1 90); do
  n=$(grep -c '"event":"job.succeeded"' "$work/daemon.log" || true)
  [ "$n" -ge 2 ] && break
  sleep 1
done
grep -E '"event":"(daemon.started|reconcile.finished|pair.ready|job.started|job.succeeded|job.failed|job.skipped)"' "$work/daemon.log" \
  | python3 -c 'import sys, json
for l in sys.stdin:
    e = json.loads(l); f = {k: e[k] for k in ("job", "pair", "rows", "location", "outcome", "reason") if k in e}
    print("    %-20s %s" % (e["event"], " ".join(f"{k}={v}" for k, v in f.items())))'
[ "$(grep -c '"event":"job.succeeded"' "$work/daemon.log" || true)" -ge 2 ] || { cat "$work/daemon.log" >&2; echo "demo: the jobs did not both succeed" >&2; exit 1; }

step "What landed in the lake account's bucket, and what the COPY loaded"
lake_objects redshift/demo/
echo "    sales.orders_copy: $(psql_sandbox 'SELECT count(*) FROM sales.orders_copy') rows (source: $(psql_sandbox "SELECT count(*) FROM $XACCTD_SANDBOX_SAMPLE_TABLE"))"
echo "    /metrics:"
curl -sS "http://127.0.0.1:$http_port/metrics" | grep -E '^xacctd_(job_runs_total|pair_ready|reconcile_total)' | sed 's/^/      /'
run jobs list

step "Stopping the daemon (SIGTERM): no new runs, running ones get the grace period"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
daemon_pid=""
grep -E '"event":"daemon\.(stopping|stopped)"' "$work/daemon.log" | sed 's/^/    /'

step "Stopping the sandbox"
kill -TERM "$sandbox_pid"
wait "$sandbox_pid"
sandbox_pid=""
echo "demo: done; nothing is left running"
