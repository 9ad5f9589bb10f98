package jobrun_test

// Integration tests on the sandbox: moto (two accounts), PostgreSQL and the Redshift
// stand-in. They fail, never skip, when the sandbox cannot start.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xacctd/xacctd/internal/awsconn"
	"github.com/xacctd/xacctd/internal/sandbox"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/jobrun"
	"github.com/xacctd/xacctd/pkg/reconcile"
	"github.com/xacctd/xacctd/pkg/schedule"
)

var world *sandbox.World

const roleDelay = 300 * time.Millisecond

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, sandbox.Options{RoleDelay: roleDelay}, &world))
}

// env is one configuration applied to the sandbox, with the job machinery wired as the CLI
// and the daemon wire it.
type env struct {
	t       *testing.T
	cfg     *config.Config
	clients awsconn.Clients
	store   *history.FileStore
	exec    *jobrun.Executor
	logs    *observer.ObservedLogs
}

// setup resets the world, loads the config built from the world's fragment and body,
// applies it (waiting for in-sync unless noWait) and wires an executor.
func setup(t *testing.T, body string, noWait bool) *env {
	t.Helper()
	ctx := context.Background()
	if err := world.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("it.yml", []byte("version: 1\n"+world.ConfigFragment()+body))
	if err != nil {
		t.Fatal(err)
	}
	clients := awsconn.Clients{Accounts: awsconn.New(cfg, awsconn.NewCounter())}
	r := &reconcile.Reconciler{Config: cfg, Clients: clients, Options: reconcile.ApplyOptions{NoWait: noWait}}
	res := r.Apply(ctx)
	if res.Result.Failed() {
		t.Fatalf("apply failed: %+v", res.Result)
	}
	store, err := history.OpenFile(t.TempDir(), history.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	core, logs := observer.New(zapcore.DebugLevel)
	exec := &jobrun.Executor{
		Config: cfg, Targets: jobrun.Targets(cfg), Store: store, Logger: zap.New(core),
		Connector: &jobrun.PgxConnector{Redshift: func(ctx context.Context, account, region string) (jobrun.RedshiftAPI, error) {
			return clients.RedshiftClient(ctx, account, region)
		}},
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
	}
	return &env{t: t, cfg: cfg, clients: clients, store: store, exec: exec, logs: logs}
}

// run runs job through the scheduler's manual path with gating from a fresh observation,
// exactly as `xacctd jobs run` does.
func (e *env) run(job string, at time.Time) (history.Run, error) {
	e.t.Helper()
	ctx := context.Background()
	r := &reconcile.Reconciler{Config: e.cfg, Clients: e.clients}
	gate := jobrun.Gate(reconcile.Readiness(r.Plan(ctx)))
	entries, limits, err := schedule.Entries(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	s := schedule.New(entries, limits, schedule.Options{Runner: e.exec, Gate: gate, Logger: e.exec.Logger})
	defer s.Stop(ctx)
	runErr := s.RunAt(ctx, job, at)
	runs, err := e.store.Runs(ctx, job, 1)
	if err != nil || len(runs) != 1 {
		e.t.Fatalf("history of %s: %v, %d runs: every run must be recorded", job, err, len(runs))
	}
	return runs[0], runErr
}

func (e *env) noSecretsLogged() {
	e.t.Helper()
	for _, entry := range e.logs.All() {
		line := entry.Message + fmt.Sprint(entry.ContextMap())
		if strings.Contains(line, world.DBPassword) || strings.Contains(line, sandbox.BaseSecretAccessKey) {
			e.t.Fatalf("a secret was logged: %s", entry.Message)
		}
	}
}

func lakeObjects(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	s3c, err := world.S3Client(ctx, world.LakeAccount)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func sql(t *testing.T, query string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, world.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if strings.HasPrefix(query, "SELECT") {
		if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	if _, err := conn.Exec(ctx, query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return 0
}

const pairsAndJobs = `buckets:
  lake: {account: lake, name: jobrun-lake, create: true}
pairs:
  - name: lake
    cluster: analytics
    bucket: lake
    prefix: redshift/analytics/
    access: [unload, copy]
    role: {name: JobrunLakeAccess, db_users: [etl_loader]}
  - name: locked
    cluster: analytics
    bucket: lake
    prefix: locked/
    access: [unload]
    role: {name: JobrunLocked, db_users: [someone_else]}
jobs:
  - name: orders-export
    pair: lake
    schedule: "0 2 * * *"
    timezone: Europe/Berlin
    unload:
      # Quotes and a backslash travel through UNLOAD ('...') intact.
      query: SELECT order_id, customer, order_date, amount, status, note FROM sales.orders WHERE customer <> 'O''Brien \ {{ .Job }}'
      to: 'orders/{{ .ScheduledTime.Format "2006/01/02" }}/part_'
      options: {null_as: '\N'}
  - name: orders-load
    pair: lake
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
    copy:
      table: sales.orders_copy
      from: orders/
      options: {null_as: '\N'}
  - name: slow
    pair: lake
    schedule: "@hourly"
    timeout: 1s
    unload:
      query: SELECT pg_sleep(30)
      to: slow/{{ .RunID }}/
  - name: locked-export
    pair: locked
    schedule: "@hourly"
    retries: 2
    unload:
      query: SELECT 1
      to: x/{{ .RunID }}/
`

// TestUnloadThenCopyAcrossAccounts: after apply, an UNLOAD job writes the sample table into
// the lake account's bucket under the pair's prefix and the job's rendered path, and a COPY
// job loads those files back: row counts match at every step, and history has both runs.
func TestUnloadThenCopyAcrossAccounts(t *testing.T) {
	e := setup(t, pairsAndJobs, false)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := time.Date(2026, 3, 4, 2, 0, 0, 0, berlin)
	run, err := e.run("orders-export", at)
	if err != nil {
		t.Fatalf("orders-export: %v", err)
	}
	want := int64(len(sandbox.SampleRows()))
	if run.Outcome != history.Succeeded || run.Rows == nil || *run.Rows != want || run.Attempt != 1 || run.Trigger != schedule.TriggerManual {
		t.Fatalf("run %+v: want succeeded, %d rows, attempt 1, manual", run, want)
	}
	keys := lakeObjects(t, "jobrun-lake", "redshift/analytics/orders/")
	if len(keys) == 0 || !strings.HasPrefix(keys[0], "redshift/analytics/orders/2026/03/04/part_") {
		t.Fatalf("objects in the lake bucket: %v, want them under redshift/analytics/orders/2026/03/04/part_", keys)
	}

	sql(t, "CREATE TABLE sales.orders_copy (LIKE sales.orders)")
	sql(t, "ALTER TABLE sales.orders_copy OWNER TO etl_loader")
	run, err = e.run("orders-load", at.Add(30*time.Minute))
	if err != nil {
		t.Fatalf("orders-load: %v", err)
	}
	if run.Outcome != history.Succeeded || run.Rows == nil || *run.Rows != want {
		t.Fatalf("run %+v: want succeeded with %d rows", run, want)
	}
	if got := sql(t, "SELECT count(*) FROM sales.orders_copy"); got != want {
		t.Errorf("sales.orders_copy has %d rows, want %d", got, want)
	}
	if got := sql(t, "SELECT count(*) FROM (SELECT * FROM sales.orders EXCEPT SELECT * FROM sales.orders_copy) d"); got != 0 {
		t.Errorf("%d rows differ after the round trip", got)
	}
	if n := len(e.logs.FilterField(zap.String("event", "job.succeeded")).All()); n != 2 {
		t.Errorf("%d job.succeeded events, want 2", n)
	}
	e.noSecretsLogged()
}

// TestIAMAuth: with auth: iam the runner takes temporary credentials from
// GetClusterCredentials (checked by the stand-in through moto) and the job runs.
func TestIAMAuth(t *testing.T) {
	body := strings.Replace(pairsAndJobs, "db_users: [etl_loader]", "db_users: [etl_loader]", 1)
	e := setup(t, body, false)
	cl := e.cfg.Clusters["analytics"]
	cl.Auth, cl.PasswordEnv = "iam", ""
	run, err := e.run("orders-export", time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC))
	if err != nil || run.Outcome != history.Succeeded {
		t.Fatalf("run with auth: iam: %v %+v", err, run)
	}
	e.noSecretsLogged()
}

// TestSkippedWhileAssociationAdding: right after apply the role's association is still
// "adding": the job is skipped with the reason, not run into a certain failure.
func TestSkippedWhileAssociationAdding(t *testing.T) {
	ctx := context.Background()
	if err := world.Moto.SetRoleDelay(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = world.Moto.SetRoleDelay(context.Background(), roleDelay) })
	e := setup(t, pairsAndJobs, true)
	run, err := e.run("orders-export", time.Time{})
	var skip *schedule.SkipError
	if !errors.As(err, &skip) {
		t.Fatalf("run while adding: %v, want skipped", err)
	}
	if run.Outcome != history.Skipped || !strings.Contains(run.Error, "adding") || run.ErrorClass != "" {
		t.Errorf("recorded %+v: want skipped naming the association that is adding", run)
	}
	if n := len(e.logs.FilterField(zap.String("event", "job.skipped")).All()); n != 1 {
		t.Errorf("%d job.skipped events, want 1", n)
	}
	if n := len(e.logs.FilterField(zap.String("event", "job.failed")).All()); n != 0 {
		t.Errorf("%d job.failed events, want none", n)
	}
}

// TestTimeoutCancelsOnServer: a job exceeding its timeout is cancelled on the server (the
// stand-in receives the CancelRequest and PostgreSQL stops the query) and recorded as
// timed_out, without waiting for the query.
func TestTimeoutCancelsOnServer(t *testing.T) {
	e := setup(t, pairsAndJobs, false)
	before := world.Redshift.Cancels()
	began := time.Now()
	run, err := e.run("slow", time.Time{})
	took := time.Since(began)
	var f *jobrun.Failure
	if !errors.As(err, &f) || f.Class != jobrun.ClassTimeout {
		t.Fatalf("slow job: %v, want a timeout failure", err)
	}
	if run.Outcome != history.TimedOut || run.ErrorClass != jobrun.ClassTimeout || run.Attempt != 1 {
		t.Errorf("recorded %+v: want timed_out after one attempt", run)
	}
	if took > 15*time.Second {
		t.Errorf("the run took %s: the query was not cancelled", took)
	}
	if world.Redshift.Cancels() <= before {
		t.Errorf("the stand-in saw no CancelRequest")
	}
	deadline := time.Now().Add(5 * time.Second)
	for sql(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the query still runs on the server")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(e.logs.FilterField(zap.String("event", "job.timed_out")).All()); n != 1 {
		t.Errorf("%d job.timed_out events, want 1", n)
	}
}

// TestPermissionFailureNotRetried: the role's trust allows another database user only;
// Redshift refuses to assume it; the run is recorded with class permission and a hint, after
// one attempt although retries is 2.
func TestPermissionFailureNotRetried(t *testing.T) {
	e := setup(t, pairsAndJobs, false)
	run, err := e.run("locked-export", time.Time{})
	var f *jobrun.Failure
	if !errors.As(err, &f) {
		t.Fatalf("locked-export: %v, want a failure", err)
	}
	if run.Outcome != history.Failed || run.ErrorClass != jobrun.ClassPermission || run.Attempt != 1 ||
		!strings.Contains(run.Error, "is not authorized to assume IAM Role") || !strings.Contains(run.Hint, "db_users") {
		t.Errorf("recorded %+v: want failed, permission, attempt 1, Redshift's message and a db_users hint", run)
	}
	if n := len(e.logs.FilterField(zap.String("event", "job.retry")).All()); n != 0 {
		t.Errorf("%d retries of a permission failure", n)
	}
}

// TestTransientFailureRetried: a cluster that refuses connections is a transient failure:
// retried per retries with backoff, then recorded as failed with class network.
func TestTransientFailureRetried(t *testing.T) {
	e := setup(t, pairsAndJobs, false)
	e.cfg.Clusters["analytics"].Endpoint = "127.0.0.1:1" // nothing listens there
	run, err := e.run("orders-export", time.Time{})
	var f *jobrun.Failure
	if !errors.As(err, &f) || f.Class != jobrun.ClassNetwork {
		t.Fatalf("unreachable cluster: %v, want a network failure", err)
	}
	if run.Outcome != history.Failed || run.Attempt != 3 {
		t.Errorf("recorded %+v: want failed after 3 attempts (retries: 2)", run)
	}
	if n := len(e.logs.FilterField(zap.String("event", "job.retry")).All()); n != 2 {
		t.Errorf("%d job.retry events, want 2", n)
	}
}

// TestProbe: check --probe passes on a good pair (unload, then the file read back by COPY)
// and names the broken link on a broken one.
func TestProbe(t *testing.T) {
	e := setup(t, pairsAndJobs, false)
	ctx := context.Background()
	good := e.exec.Probe(ctx, e.cfg.Pair("lake"))
	if !good.OK || len(good.Steps) != 3 {
		t.Fatalf("probe of a good pair: %+v", good)
	}
	if keys := lakeObjects(t, "jobrun-lake", "redshift/analytics/_xacctd_probe/"); len(keys) != 1 {
		t.Errorf("probe objects %v: want exactly one (overwritten by each probe)", keys)
	}
	again := e.exec.Probe(ctx, e.cfg.Pair("lake"))
	if !again.OK {
		t.Errorf("second probe: %+v", again)
	}
	if keys := lakeObjects(t, "jobrun-lake", "redshift/analytics/_xacctd_probe/"); len(keys) != 1 {
		t.Errorf("probe objects after a second probe %v: want still one", keys)
	}
	bad := e.exec.Probe(ctx, e.cfg.Pair("locked"))
	if bad.OK {
		t.Fatalf("probe of the locked pair passed: %+v", bad)
	}
	last := bad.Steps[len(bad.Steps)-1]
	if last.Link != "role trust" || last.Failure.Class != jobrun.ClassPermission {
		t.Errorf("broken step %+v: want the role trust named", last)
	}

	// Drift that readiness would also see, probed anyway: the pair's statement removed from
	// the bucket policy.
	s3c, err := world.S3Client(ctx, world.LakeAccount)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: aws.String("jobrun-lake")}); err != nil {
		t.Fatal(err)
	}
	denied := e.exec.Probe(ctx, e.cfg.Pair("lake"))
	if denied.OK {
		t.Fatalf("probe without the bucket policy passed: %+v", denied)
	}
	last = denied.Steps[len(denied.Steps)-1]
	if last.Failure.Class != jobrun.ClassS3Access || !strings.Contains(last.Link, "bucket policy") {
		t.Errorf("broken step %+v: want s3_access naming the bucket policy", last)
	}
}

// TestEndpointFromDescribeClusters: without an endpoint override the runner takes the
// cluster's address from DescribeClusters (moto's, which nothing listens on: the connection
// then fails as a transient network error, retried, not as a configuration error).
func TestEndpointFromDescribeClusters(t *testing.T) {
	e := setup(t, pairsAndJobs, false)
	e.cfg.Clusters["analytics"].Endpoint = ""
	conn := e.exec.Connector.(*jobrun.PgxConnector)
	conn.ConnectTimeout = 2 * time.Second
	run, err := e.run("orders-export", time.Time{})
	var f *jobrun.Failure
	if !errors.As(err, &f) || f.Class != jobrun.ClassNetwork || run.Attempt != 3 {
		t.Fatalf("run %+v, err %v: want network failures after DescribeClusters gave moto's address", run, err)
	}
	started := e.logs.FilterField(zap.String("event", "job.retry")).All()
	if len(started) == 0 || !strings.Contains(fmt.Sprint(started[0].ContextMap()["error"]), "analytics.") {
		t.Errorf("retry events %v: want the connection to the address DescribeClusters reports", started)
	}
}
