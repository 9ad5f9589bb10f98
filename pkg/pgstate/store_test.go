package pgstate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/pgstate"
)

// The expectations here are the file backend's (pkg/history/file_test.go): both backends
// satisfy the same history.Store contract.

var t0 = time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC)

// openStore opens a fresh database with the test timings and no retention.
func openStore(t *testing.T, opts pgstate.Options) *pgstate.DB {
	t.Helper()
	base, logs := testOptions()
	opts.Logger, opts.Tick, opts.Timeout, opts.IdleSessionTimeout = base.Logger, base.Tick, base.Timeout, base.IdleSessionTimeout
	return open(t, newDatabase(t), opts, logs)
}

// finished returns a succeeded scheduled run of job, owned by this process.
func finished(job, id string, scheduled time.Time) history.Run {
	return history.Run{
		ID: id, Job: job, Pair: "analytics-to-lake", Cluster: "analytics", Kind: "unload",
		Trigger: history.TriggerSchedule, ScheduledTime: scheduled,
		Start: scheduled.Add(time.Second), End: scheduled.Add(time.Minute),
		Attempt: 1, Outcome: history.Succeeded, Owner: history.CurrentOwner(),
	}
}

func record(t testing.TB, s history.Store, runs ...history.Run) {
	t.Helper()
	for _, r := range runs {
		if err := s.Record(context.Background(), r); err != nil {
			t.Fatalf("Record %s: %v", r.ID, err)
		}
	}
}

func runs(t testing.TB, s history.Store, job string, limit int) []history.Run {
	t.Helper()
	got, err := s.Runs(context.Background(), job, limit)
	if err != nil {
		t.Fatalf("Runs %s: %v", job, err)
	}
	return got
}

func runIDs(runs []history.Run) []string {
	ids := make([]string, 0, len(runs))
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return ids
}

// checkTimes fails unless every time of r is zero or in UTC at microsecond precision
// (cmp compares times with Equal, which ignores the location).
func checkTimes(t testing.TB, r history.Run) {
	t.Helper()
	for name, tm := range map[string]time.Time{"ScheduledTime": r.ScheduledTime, "Start": r.Start, "End": r.End} {
		if tm.IsZero() {
			continue
		}
		if tm.Location() != time.UTC || tm.Nanosecond()%1000 != 0 {
			t.Errorf("run %s %s = %v, want UTC at microsecond precision", r.ID, name, tm)
		}
	}
}

func TestRecordReplacesRunningRun(t *testing.T) {
	t.Parallel()
	s := openStore(t, pgstate.Options{})
	rows, files := int64(1200), 3
	start := history.Run{
		ID: "r1", Job: "daily", Pair: "p", Cluster: "c", Kind: "unload", Trigger: history.TriggerSchedule,
		ScheduledTime: t0, Start: t0.Add(time.Second), Attempt: 1, Outcome: history.Running, Owner: history.CurrentOwner(),
	}
	end := start
	end.End = t0.Add(time.Minute)
	end.Outcome = history.Failed
	end.Attempt = 2
	end.ErrorClass, end.ErrorCode = "s3_access", "AccessDenied"
	end.Error = `UNLOAD to "s3://lake/<x>" & more: access denied; it's 'quoted' \ and ünïcode`
	end.Hint = "check the bucket policy"
	end.Rows, end.Files = &rows, &files

	record(t, s, start)
	got := runs(t, s, "daily", 0)
	if diff := cmp.Diff([]history.Run{start}, got); diff != "" {
		t.Errorf("after start (-want +got):\n%s", diff)
	}
	if len(got) == 1 {
		if got[0].Finished() {
			t.Error("a running run reports Finished")
		}
		if got[0].Rows != nil || got[0].Files != nil || !got[0].End.IsZero() {
			t.Errorf("running run came back with Rows %v, Files %v, End %v; want nil, nil, zero", got[0].Rows, got[0].Files, got[0].End)
		}
	}

	record(t, s, end)
	got = runs(t, s, "daily", 0)
	if diff := cmp.Diff([]history.Run{end}, got); diff != "" {
		t.Errorf("after end (-want +got):\n%s", diff)
	}
	if len(got) == 1 {
		if !got[0].Finished() {
			t.Error("a failed run does not report Finished")
		}
		if got[0].Rows == &rows || got[0].Files == &files {
			t.Error("Rows/Files alias the caller's values")
		}
		checkTimes(t, got[0])
	}

	// Zero counts are known counts, not absent ones; several runs in one read do not share
	// their pointers.
	zero, zeroFiles := int64(0), 0
	second := finished("daily", "r2", t0.Add(time.Hour))
	second.Rows, second.Files = &zero, &zeroFiles
	third := finished("daily", "r3", t0.Add(2*time.Hour))
	record(t, s, second, third)
	got = runs(t, s, "daily", 0)
	if diff := cmp.Diff([]history.Run{third, second, end}, got); diff != "" {
		t.Errorf("three runs (-want +got):\n%s", diff)
	}
	if len(got) == 3 && got[1].Rows == got[2].Rows {
		t.Error("two runs read together share one Rows pointer")
	}
}

func TestRunsOrderAndLimit(t *testing.T) {
	t.Parallel()
	skipped := finished("j", "skip", t0.Add(2*time.Hour))
	skipped.Start, skipped.End, skipped.Outcome, skipped.Attempt = time.Time{}, time.Time{}, history.Skipped, 0
	lateStart := finished("j", "late-start", t0.Add(2*time.Hour))
	lateStart.Start = t0.Add(2*time.Hour + 5*time.Second)
	lateStart.Trigger = history.TriggerManual                 // a backfill of skip's occurrence
	missed := finished("j", "missed", t0.Add(90*time.Minute)) // settled without starting: At is End
	missed.Start, missed.End, missed.Outcome = time.Time{}, t0.Add(150*time.Minute), history.Missed
	// Unlike the file backend, this one refuses two scheduled runs of one occurrence (the
	// claim index): the runs with equal times are manual ones.
	manual := func(id string) history.Run {
		r := finished("j", id, t0)
		r.Trigger = history.TriggerManual
		return r
	}
	give := []history.Run{ // recorded in this order
		manual("b"),
		finished("j", "c", t0.Add(3*time.Hour)),
		skipped,
		manual("a"), // same times as b: ID decides
		lateStart,
		finished("j", "oldest", t0.Add(-time.Hour)),
		missed,
		manual("B"), // IDs compare bytewise: "B" < "a" < "b"
		finished("other", "x", t0.Add(10*time.Hour)),
	}
	all := []string{"c", "missed", "late-start", "skip", "b", "a", "B", "oldest"}
	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"zero is all", 0, all},
		{"negative is all", -1, all},
		{"limit", 2, all[:2]},
		{"limit one", 1, all[:1]},
		{"limit above count", 10, all},
	}
	s := openStore(t, pgstate.Options{})
	record(t, s, give...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, runIDs(runs(t, s, "j", tt.limit))); diff != "" {
				t.Errorf("IDs (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("unknown job", func(t *testing.T) {
		got, err := s.Runs(context.Background(), "never-ran", 0)
		if err != nil || len(got) != 0 {
			t.Errorf("Runs = %v, %v; want none, nil", got, err)
		}
	})
}

func TestTimesNormalised(t *testing.T) {
	t.Parallel()
	s := openStore(t, pgstate.Options{})
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give history.Run
	}{
		{"New York, nanoseconds", func() history.Run {
			r := finished("j", "ny", time.Date(2026, 3, 8, 3, 0, 0, 123456789, ny))
			r.Start = time.Date(2026, 3, 8, 3, 0, 1, 999999999, ny)
			r.End = time.Date(2026, 3, 8, 4, 0, 0, 1, ny) // across the DST change
			return r
		}()},
		{"monotonic clock reading", func() history.Run {
			now := time.Now() // carries a monotonic reading
			r := finished("j", "mono", now)
			r.Start, r.End = now.Add(time.Millisecond), now.Add(time.Second+time.Nanosecond)
			return r
		}()},
		{"before 1970", finished("j", "old", time.Date(1969, 7, 20, 20, 17, 40, 987654321, time.FixedZone("X", -5*3600)))},
		{"skipped: zero start and end", func() history.Run {
			r := finished("j", "skipped", t0.Add(5*time.Hour+123456789))
			r.Start, r.End, r.Outcome = time.Time{}, time.Time{}, history.Skipped
			return r
		}()},
	}
	for _, tt := range tests {
		record(t, s, tt.give)
	}
	got := map[string]history.Run{}
	for _, r := range runs(t, s, "j", 0) {
		got[r.ID] = r
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := got[tt.give.ID]
			if !ok {
				t.Fatalf("run %s not read back", tt.give.ID)
			}
			want := history.Normalize(tt.give)
			for _, c := range []struct {
				name      string
				got, want time.Time
			}{{"ScheduledTime", r.ScheduledTime, want.ScheduledTime}, {"Start", r.Start, want.Start}, {"End", r.End, want.End}} {
				if !c.got.Equal(c.want) || c.got.IsZero() != c.want.IsZero() {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			checkTimes(t, r)
			if diff := cmp.Diff(want, r); diff != "" {
				t.Errorf("run (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	now := t0.Add(100 * 24 * time.Hour)
	ages := []time.Duration{1 * time.Hour, 24 * time.Hour, 89 * 24 * time.Hour, 91 * 24 * time.Hour, 200 * 24 * time.Hour}
	tests := []struct {
		name      string
		retention time.Duration
		max       int
		want      []string
	}{
		{"keep everything", 0, 0, []string{"new", "age0", "age1", "age2", "age3", "age4"}},
		{"by age", 2160 * time.Hour, 0, []string{"new", "age0", "age1", "age2"}},
		{"by count", 0, 3, []string{"new", "age0", "age1"}},
		{"count tighter than age", 2160 * time.Hour, 2, []string{"new", "age0"}},
		{"age tighter than count", 48 * time.Hour, 1000, []string{"new", "age0", "age1"}},
		{"short retention keeps only the new run", time.Hour / 2, 0, []string{"new"}},
		{"a backfill of an old occurrence counts from when it ran", 2160 * time.Hour, 0, []string{"backfill", "new", "age0", "age1", "age2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := newDatabase(t)
			// Seed without retention, then write once with it.
			seed := open(t, dsn, pgstate.Options{Tick: tick, Timeout: timeout, IdleSessionTimeout: idle}, nil)
			for i, age := range ages {
				record(t, seed, finished("j", fmt.Sprintf("age%d", i), now.Add(-age)))
			}
			record(t, seed, finished("untouched", "u", now.Add(-300*24*time.Hour))) // another job's history
			s := open(t, dsn, pgstate.Options{Tick: tick, Timeout: timeout, IdleSessionTimeout: idle,
				Retention: tt.retention, MaxRunsPerJob: tt.max, Now: func() time.Time { return now }}, nil)
			record(t, s, finished("j", "new", now))
			if strings.Contains(tt.name, "backfill") {
				old := finished("j", "backfill", now.Add(-300*24*time.Hour))
				old.Trigger, old.Start, old.End = history.TriggerManual, now.Add(2*time.Second), now.Add(3*time.Second)
				record(t, s, old)
			}
			if diff := cmp.Diff(tt.want, runIDs(runs(t, s, "j", 0))); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			// Retention applies per job, to the job written.
			if got := runIDs(runs(t, s, "untouched", 0)); len(got) != 1 {
				t.Errorf("another job's runs = %v, want its one run kept", got)
			}
		})
	}
}

func TestLatestAndLastScheduled(t *testing.T) {
	t.Parallel()
	run := func(job, id string, trigger string, outcome history.Outcome, scheduled time.Time) history.Run {
		r := finished(job, id, scheduled)
		r.Trigger, r.Outcome = trigger, outcome
		return r
	}
	give := []history.Run{
		run("hourly", "h1", history.TriggerSchedule, history.Succeeded, t0),
		run("hourly", "h2", history.TriggerSchedule, history.Skipped, t0.Add(time.Hour)), // skipped still counts
		run("hourly", "h3", history.TriggerManual, history.Succeeded, t0.Add(3*time.Hour)),
		run("hourly", "h4", history.TriggerSchedule, history.Interrupted, t0.Add(2*time.Hour)), // cut short: runs again
		run("daily", "d1", history.TriggerCatchUp, history.Failed, t0.Add(-24*time.Hour)),
		run("daily", "d2", history.TriggerManual, history.Succeeded, t0),
		run("adhoc", "x1", history.TriggerManual, history.Succeeded, t0),
		run("missed", "m1", history.TriggerCatchUp, history.Missed, t0.Add(-48*time.Hour)), // missed still counts
		run("missed", "m2", history.TriggerSchedule, history.Interrupted, t0),
	}
	s := openStore(t, pgstate.Options{})

	if last, err := s.LastScheduled(context.Background()); err != nil || len(last) != 0 {
		t.Errorf("LastScheduled of an empty history = %v, %v; want none", last, err)
	}
	if latest, err := s.Latest(context.Background()); err != nil || len(latest) != 0 {
		t.Errorf("Latest of an empty history = %v, %v; want none", latest, err)
	}

	record(t, s, give...)
	last, err := s.LastScheduled(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantLast := map[string]time.Time{"hourly": t0.Add(time.Hour), "daily": t0.Add(-24 * time.Hour), "missed": t0.Add(-48 * time.Hour)}
	if diff := cmp.Diff(wantLast, last); diff != "" {
		t.Errorf("LastScheduled (-want +got):\n%s", diff)
	}
	for job, tm := range last {
		if tm.Location() != time.UTC {
			t.Errorf("LastScheduled[%s] = %v, want UTC", job, tm)
		}
	}

	latest, err := s.Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	gotLatest := map[string]string{}
	for job, r := range latest {
		gotLatest[job] = r.ID
		if job != r.Job {
			t.Errorf("Latest[%s] is a run of job %s", job, r.Job)
		}
	}
	if diff := cmp.Diff(map[string]string{"hourly": "h3", "daily": "d2", "adhoc": "x1", "missed": "m2"}, gotLatest); diff != "" {
		t.Errorf("Latest (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(give[2], latest["hourly"]); diff != "" {
		t.Errorf("Latest[hourly] (-want +got):\n%s", diff)
	}
}

func TestRejectsBadInput(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	s := open(t, dsn, pgstate.Options{Tick: tick, Timeout: timeout, IdleSessionTimeout: idle}, nil)
	valid := finished("j", "r", t0)
	tests := []struct {
		name    string
		give    func(history.Run) history.Run
		wantErr string
	}{
		{"path traversal", func(r history.Run) history.Run { r.Job = "../../etc/x"; return r }, `invalid job name "../../etc/x"`},
		{"slash", func(r history.Run) history.Run { r.Job = "a/b"; return r }, `invalid job name "a/b"`},
		{"dot dot", func(r history.Run) history.Run { r.Job = ".."; return r }, `invalid job name ".."`},
		{"hidden", func(r history.Run) history.Run { r.Job = ".lock"; return r }, `invalid job name ".lock"`},
		{"empty job", func(r history.Run) history.Run { r.Job = ""; return r }, `invalid job name ""`},
		{"too long", func(r history.Run) history.Run { r.Job = strings.Repeat("a", 65); return r }, `invalid job name`},
		{"NUL", func(r history.Run) history.Run { r.Job = "a\x00b"; return r }, `invalid job name`},
		{"SQL", func(r history.Run) history.Run { r.Job = "j'; DROP TABLE xacctd_runs; --"; return r }, `invalid job name`},
		{"no ID", func(r history.Run) history.Run { r.ID = ""; return r }, "job j: run has no ID; make one with history.NewID"},
		{"unknown outcome", func(r history.Run) history.Run { r.Outcome = "ok"; return r }, `unknown outcome "ok"`},
		{"empty outcome", func(r history.Run) history.Run { r.Outcome = ""; return r }, `unknown outcome ""`},
		{"unknown trigger", func(r history.Run) history.Run { r.Trigger = "cron"; return r }, `unknown trigger "cron"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Record(context.Background(), tt.give(valid))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Record error = %v, want one containing %q", err, tt.wantErr)
			}
			claimed, _, err := s.Claim(context.Background(), tt.give(valid))
			if claimed || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Claim = %v, %v; want an error containing %q", claimed, err, tt.wantErr)
			}
		})
	}
	for _, job := range []string{"../x", "", "a/b", strings.Repeat("a", 65)} {
		if _, err := s.Runs(context.Background(), job, 0); err == nil {
			t.Errorf("Runs accepted job name %q", job)
		}
	}
	var n int
	if err := connect(t, dsn).QueryRow(context.Background(), `SELECT count(*) FROM xacctd_runs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows after rejected records, want none", n)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	opts, logs := testOptions()
	s := open(t, newDatabase(t), opts, logs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	r := finished("j", "r", t0)
	checks := map[string]error{}
	checks["Record"] = s.Record(ctx, r)
	_, _, checks["Claim"] = s.Claim(ctx, r)
	_, checks["Runs"] = s.Runs(ctx, "j", 0)
	_, checks["Latest"] = s.Latest(ctx)
	_, checks["LastScheduled"] = s.LastScheduled(ctx)
	_, checks["Recover"] = s.Recover(ctx, t0)
	_, checks["Leader"] = s.Leader(ctx)
	for name, err := range checks {
		if !errors.Is(err, history.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	if s.Leading() || s.Term() != 0 {
		t.Errorf("closed DB: Leading %v, Term %d", s.Leading(), s.Term())
	}
}
