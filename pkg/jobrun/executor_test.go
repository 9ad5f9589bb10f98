package jobrun

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap/zaptest"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/schedule"
)

// scriptedConnector answers each attempt with the next scripted behaviour: a pure unit-test
// stand-in for a cluster (the sandbox tests use the real stand-in).
type scriptedConnector struct {
	attempts []func(ctx context.Context) (Result, error)
	n        int
	sqls     []string
}

func (c *scriptedConnector) Connect(context.Context, *config.Cluster) (Session, error) {
	if c.n >= len(c.attempts) {
		return nil, errors.New("no more scripted attempts")
	}
	f := c.attempts[c.n]
	c.n++
	return &scriptedSession{c: c, f: f}, nil
}

type scriptedSession struct {
	c *scriptedConnector
	f func(ctx context.Context) (Result, error)
}

func (s *scriptedSession) Exec(ctx context.Context, sql string) (Result, error) {
	s.c.sqls = append(s.c.sqls, sql)
	if len(sql) > 3 && sql[:3] == "SET" {
		return Result{Tag: "SET"}, nil
	}
	return s.f(ctx)
}

func (s *scriptedSession) Close(context.Context) error { return nil }

const unitConfig = `version: 1
accounts:
  w: {id: "111111111111"}
  l: {id: "222222222222"}
clusters:
  c: {account: w, identifier: c, database: d, user: u, auth: password, password_env: PW}
buckets:
  b: {account: l, name: unit-bucket}
pairs:
  - {name: p, cluster: c, bucket: b, prefix: x/, access: [unload], role: {name: R}}
jobs:
  - {name: j, pair: p, schedule: "@hourly", timeout: 1s, retries: 2, unload: {query: SELECT 1, to: "out/{{ .RunID }}/"}}
`

func unitExecutor(t *testing.T, conn *scriptedConnector) (*Executor, *history.FileStore) {
	t.Helper()
	cfg, err := config.Parse("unit.yml", []byte(unitConfig))
	if err != nil {
		t.Fatal(err)
	}
	store, err := history.OpenFile(t.TempDir(), history.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return &Executor{Config: cfg, Targets: Targets(cfg), Connector: conn, Store: store, Logger: zaptest.NewLogger(t),
		Backoff: func(int) time.Duration { return time.Millisecond }}, store
}

func lastRun(t *testing.T, s history.Store) history.Run {
	t.Helper()
	runs, err := s.Runs(context.Background(), "j", 0)
	if err != nil || len(runs) != 1 {
		t.Fatalf("history: %v, %d runs (want exactly 1: a run is one record, updated)", err, len(runs))
	}
	return runs[0]
}

var occ = schedule.Occurrence{Job: "j", Pair: "p", Cluster: "c", Scheduled: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), Trigger: schedule.TriggerSchedule}

func TestRetryThenSuccess(t *testing.T) {
	lost := func(context.Context) (Result, error) {
		return Result{}, &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	}
	rows := int64(7)
	conn := &scriptedConnector{attempts: []func(context.Context) (Result, error){lost, lost,
		func(context.Context) (Result, error) { return Result{Tag: "UNLOAD", Rows: &rows}, nil }}}
	e, store := unitExecutor(t, conn)
	if err := e.Run(context.Background(), occ); err != nil {
		t.Fatal(err)
	}
	r := lastRun(t, store)
	if r.Outcome != history.Succeeded || r.Attempt != 3 || *r.Rows != 7 || r.End.IsZero() {
		t.Errorf("run %+v: want succeeded on attempt 3 with 7 rows", r)
	}
	// statement_timeout is set before every statement, from the remaining time plus slack.
	if conn.sqls[0][:24] != "SET statement_timeout TO" {
		t.Errorf("first statement %q", conn.sqls[0])
	}
}

func TestInterruptedByStop(t *testing.T) {
	conn := &scriptedConnector{attempts: []func(context.Context) (Result, error){
		func(ctx context.Context) (Result, error) { <-ctx.Done(); return Result{}, ctx.Err() }}}
	e, store := unitExecutor(t, conn)
	e.Config.Jobs[0].Timeout = time.Hour
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(20*time.Millisecond, func() { cancel(schedule.ErrStopping) })
	err := e.Run(ctx, occ)
	var f *Failure
	if !errors.As(err, &f) || f.Class != ClassInterrupted {
		t.Fatalf("Run = %v, want interrupted", err)
	}
	if r := lastRun(t, store); r.Outcome != history.Interrupted || r.Attempt != 1 {
		t.Errorf("run %+v: want interrupted, not retried", r)
	}
}

func TestPanicRecorded(t *testing.T) {
	conn := &scriptedConnector{attempts: []func(context.Context) (Result, error){
		func(context.Context) (Result, error) { panic("driver bug") }}}
	e, store := unitExecutor(t, conn)
	err := e.Run(context.Background(), occ)
	var f *Failure
	if !errors.As(err, &f) || f.Class != ClassInternal {
		t.Fatalf("Run = %v, want an internal failure", err)
	}
	if r := lastRun(t, store); r.Outcome != history.Failed || r.ErrorClass != ClassInternal || r.Error != "panic: driver bug" {
		t.Errorf("run %+v: want the panic recorded as a failure", r)
	}
}

func TestRecordSkipped(t *testing.T) {
	e, store := unitExecutor(t, &scriptedConnector{})
	e.Record(context.Background(), occ, schedule.OutcomeSkipped, "pair p is not ready: association: adding")
	if r := lastRun(t, store); r.Outcome != history.Skipped || r.Error != "pair p is not ready: association: adding" || r.Kind != "unload" {
		t.Errorf("run %+v", r)
	}
}

// TestCatchUpFromHistory: the last handled occurrence in the run history drives catch-up
// after a 3-hour downtime: the missed occurrences are logged, the latest runs once with
// trigger catch_up, and that run is in the history.
func TestCatchUpFromHistory(t *testing.T) {
	ok := func(context.Context) (Result, error) { return Result{Tag: "UNLOAD"}, nil }
	e, store := unitExecutor(t, &scriptedConnector{attempts: []func(context.Context) (Result, error){ok}})
	e.Config.Jobs[0].CatchUp = 2 * time.Hour
	ctx := context.Background()
	down := time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
	if err := store.Record(ctx, history.Run{ID: "before", Job: "j", Trigger: history.TriggerSchedule, ScheduledTime: down,
		Start: down, End: down.Add(time.Second), Attempt: 1, Outcome: history.Succeeded}); err != nil {
		t.Fatal(err)
	}
	last, err := store.LastScheduled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entries, limits, err := schedule.Entries(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	clock := schedule.NewFakeClock(down.Add(3*time.Hour + 20*time.Minute))
	s := schedule.New(entries, limits, schedule.Options{Clock: clock, Runner: e, LastScheduled: last, Logger: e.Logger})
	s.Start()
	deadline := time.Now().Add(5 * time.Second)
	var runs []history.Run
	for len(runs) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		all, _ := store.Runs(ctx, "j", 0)
		runs = runs[:0]
		for _, r := range all {
			if r.Finished() {
				runs = append(runs, r)
			}
		}
	}
	s.Stop(ctx)
	if len(runs) != 2 || runs[0].Trigger != schedule.TriggerCatchUp || runs[0].Outcome != history.Succeeded ||
		!runs[0].ScheduledTime.Equal(down.Add(3*time.Hour)) {
		t.Fatalf("runs %+v: want the 12:00 occurrence caught up", runs)
	}
}

// claimer is a pure unit-test Claimer over a file store: one holder per occurrence, as the
// PostgreSQL backend's unique index does (pkg/pgstate tests the real one).
type claimer struct {
	store  history.Store
	held   map[time.Time]history.Run
	err    error
	claims int
}

func (c *claimer) Claim(ctx context.Context, r history.Run) (bool, history.Run, error) {
	c.claims++
	if c.err != nil {
		return false, history.Run{}, c.err
	}
	if h, ok := c.held[r.ScheduledTime]; ok {
		return false, h, nil
	}
	c.held[r.ScheduledTime] = r
	return true, history.Run{}, c.store.Record(ctx, r)
}

// TestClaims: with a shared store, a scheduled occurrence is claimed before it runs; an
// occurrence held elsewhere, or one that cannot be claimed, does not run; manual runs are
// not claimed; the scheduler's decisions are claimed too.
func TestClaims(t *testing.T) {
	ok := func(context.Context) (Result, error) { return Result{Tag: "UNLOAD"}, nil }
	conn := &scriptedConnector{attempts: []func(context.Context) (Result, error){ok, ok}}
	e, store := unitExecutor(t, conn)
	c := &claimer{store: store, held: map[time.Time]history.Run{}}
	e.Claimer = c
	if err := e.Run(context.Background(), occ); err != nil {
		t.Fatal(err)
	}
	if r := lastRun(t, store); r.Outcome != history.Succeeded || c.claims != 1 {
		t.Fatalf("run %+v after %d claims: want succeeded after 1 claim", r, c.claims)
	}
	// The same occurrence again (another instance's view): not run.
	var skip *schedule.SkipError
	if err := e.Run(context.Background(), occ); !errors.As(err, &skip) || conn.n != 1 {
		t.Fatalf("second run of a held occurrence: %v after %d connects, want a SkipError and no connect", err, conn.n)
	}
	// A claim that fails: not run.
	c.err = errors.New("connection refused")
	other := occ
	other.Scheduled = occ.Scheduled.Add(time.Hour)
	if err := e.Run(context.Background(), other); !errors.As(err, &skip) || conn.n != 1 {
		t.Fatalf("run whose claim failed: %v after %d connects, want a SkipError and no connect", err, conn.n)
	}
	// Manual runs are not claimed.
	c.err = nil
	manual := occ
	manual.Trigger = schedule.TriggerManual
	before := c.claims
	if err := e.Run(context.Background(), manual); err != nil || c.claims != before {
		t.Fatalf("manual run: %v, %d claims (want none)", err, c.claims-before)
	}
	// A skip decision for a held occurrence is not recorded again.
	e.Record(context.Background(), occ, schedule.OutcomeSkipped, "late")
	runs, _ := store.Runs(context.Background(), "j", 0)
	for _, r := range runs {
		if r.Outcome == history.Skipped {
			t.Errorf("a skip was recorded for an occurrence another run holds: %+v", r)
		}
	}
}
