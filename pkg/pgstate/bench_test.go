package pgstate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xacctd/xacctd/pkg/history"
)

// BenchmarkClaimAndFinish: one scheduled run's writes with the postgres backend — the claim
// (insert of the running run, refused if the occurrence is held) and the final record
// (upsert and retention) — in a job whose history holds 1,000 runs.
func BenchmarkClaimAndFinish(b *testing.B) {
	dsn := newDatabase(b)
	opts, _ := testOptions()
	opts.MaxRunsPerJob = 1000
	db := open(b, dsn, opts, nil)
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		at := base.Add(time.Duration(i) * time.Minute)
		if err := db.Record(ctx, history.Run{ID: history.NewID(at), Job: "j", Trigger: history.TriggerSchedule, ScheduledTime: at,
			Start: at, End: at.Add(time.Second), Attempt: 1, Outcome: history.Succeeded}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		at := base.Add(time.Duration(1000+i) * time.Minute)
		r := history.Run{ID: history.NewID(at), Job: "j", Trigger: history.TriggerSchedule, ScheduledTime: at, Start: at, Attempt: 1, Outcome: history.Running}
		ok, _, err := db.Claim(ctx, r)
		if err != nil || !ok {
			b.Fatalf("claim: %v %v", ok, err)
		}
		r.End, r.Outcome = at.Add(time.Second), history.Succeeded
		if err := db.Record(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/run")
}

// BenchmarkTermStartReads: what a new leader reads from the shared history before its
// scheduler starts (Recover, Latest, LastScheduled) with 100 jobs of 1,000 runs each.
func BenchmarkTermStartReads(b *testing.B) {
	dsn := newDatabase(b)
	opts, _ := testOptions()
	db := open(b, dsn, opts, nil)
	ctx := context.Background()
	conn := connect(b, dsn)
	if _, err := conn.Exec(ctx, `INSERT INTO xacctd_runs (id, job, trigger, scheduled_time, start_time, end_time, attempt, outcome, happened_at)
		SELECT format('r%s-%s', j, i), format('job%s', j), 'schedule', t, t, t + interval '1 second', 1, 'succeeded', t
		FROM generate_series(1, 100) j, generate_series(1, 1000) i, LATERAL (SELECT timestamptz '2026-01-01' + i * interval '1 minute' AS t) x`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE xacctd_runs`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := db.Recover(ctx, time.Now()); err != nil {
			b.Fatal(err)
		}
		latest, err := db.Latest(ctx)
		if err != nil || len(latest) != 100 {
			b.Fatal(err, len(latest))
		}
		last, err := db.LastScheduled(ctx)
		if err != nil || len(last) != 100 {
			b.Fatal(fmt.Sprint(err, len(last)))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/start")
}
