package pgstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xacctd/xacctd/pkg/history"
)

// DB is a history.Store shared by every instance, and a history.Claimer.
var (
	_ history.Store   = (*DB)(nil)
	_ history.Claimer = (*DB)(nil)
)

const runColumns = `id, job, pair, cluster, kind, trigger, scheduled_time, start_time, end_time, attempt, outcome,
	error_class, error_code, error, hint, rows, files, owner_host, owner_pid, owner_boot`

const insertRun = `INSERT INTO xacctd_runs (` + runColumns + `, owner_session, happened_at, leader_term)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`

// occurrenceHeld is the predicate of the claim index xacctd_runs_occurrence.
const occurrenceHeld = `trigger IN ('schedule', 'catch_up') AND outcome <> 'interrupted'`

const newestFirst = `happened_at DESC, scheduled_time DESC, id COLLATE "C" DESC`

func (d *DB) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if d.closed.Load() {
		return nil, nil, history.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.OpTimeout)
	return ctx, cancel, nil
}

func (d *DB) args(r history.Run) []any {
	var session, term any
	if k := d.key.Load(); k != 0 {
		session = k
	}
	if t := d.term.Load(); t > 0 {
		term = t
	}
	return []any{r.ID, r.Job, r.Pair, r.Cluster, r.Kind, r.Trigger, r.ScheduledTime, nullTime(r.Start), nullTime(r.End),
		r.Attempt, string(r.Outcome), r.ErrorClass, r.ErrorCode, r.Error, r.Hint, r.Rows, r.Files,
		r.Owner.Host, r.Owner.PID, r.Owner.Boot, session, r.At(), term}
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// Record inserts the run or replaces the one with its ID, then applies retention to the
// job's history when the run is finished.
func (d *DB) Record(ctx context.Context, r history.Run) error {
	if err := history.Check(r); err != nil {
		return err
	}
	r = history.Normalize(r)
	ctx, cancel, err := d.op(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	_, err = d.pool.Exec(ctx, insertRun+` ON CONFLICT (id) DO UPDATE SET
		job = excluded.job, pair = excluded.pair, cluster = excluded.cluster, kind = excluded.kind,
		trigger = excluded.trigger, scheduled_time = excluded.scheduled_time, start_time = excluded.start_time,
		end_time = excluded.end_time, attempt = excluded.attempt, outcome = excluded.outcome,
		error_class = excluded.error_class, error_code = excluded.error_code, error = excluded.error, hint = excluded.hint,
		rows = excluded.rows, files = excluded.files, owner_host = excluded.owner_host, owner_pid = excluded.owner_pid,
		owner_boot = excluded.owner_boot, owner_session = excluded.owner_session, happened_at = excluded.happened_at,
		leader_term = coalesce(excluded.leader_term, xacctd_runs.leader_term), recorded_at = now()`, d.args(r)...)
	if err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("job %s run %s: another run holds occurrence %s (this run was taken for interrupted, and the occurrence claimed again): %w",
				r.Job, r.ID, r.ScheduledTime.Format(time.RFC3339), err)
		}
		return fmt.Errorf("record run %s of job %s: %w", r.ID, r.Job, err)
	}
	if r.Finished() {
		return d.prune(ctx, r.Job)
	}
	return nil
}

// Claim records r unless another run holds its occurrence (history.Claimer).
func (d *DB) Claim(ctx context.Context, r history.Run) (bool, history.Run, error) {
	if err := history.Check(r); err != nil {
		return false, history.Run{}, err
	}
	if r.Trigger != history.TriggerSchedule && r.Trigger != history.TriggerCatchUp {
		return false, history.Run{}, fmt.Errorf("job %s run %s: only scheduled occurrences are claimed, not trigger %q", r.Job, r.ID, r.Trigger)
	}
	r = history.Normalize(r)
	ctx, cancel, err := d.op(ctx)
	if err != nil {
		return false, history.Run{}, err
	}
	defer cancel()
	for range 3 { // the holder may become interrupted between the insert and the read
		tag, err := d.pool.Exec(ctx, insertRun+` ON CONFLICT (job, scheduled_time) WHERE `+occurrenceHeld+` DO NOTHING`, d.args(r)...)
		if err != nil {
			return false, history.Run{}, fmt.Errorf("claim occurrence %s of job %s: %w", r.ScheduledTime.Format(time.RFC3339), r.Job, err)
		}
		if tag.RowsAffected() == 1 {
			if r.Finished() {
				return true, history.Run{}, d.prune(ctx, r.Job)
			}
			return true, history.Run{}, nil
		}
		rows, err := d.pool.Query(ctx, `SELECT `+runColumns+` FROM xacctd_runs WHERE job = $1 AND scheduled_time = $2 AND `+occurrenceHeld,
			r.Job, r.ScheduledTime)
		if err != nil {
			return false, history.Run{}, err
		}
		held, err := scanRuns(rows)
		if err != nil {
			return false, history.Run{}, err
		}
		if len(held) > 0 {
			return false, held[0], nil
		}
	}
	return false, history.Run{}, fmt.Errorf("claim occurrence %s of job %s: its holder kept changing", r.ScheduledTime.Format(time.RFC3339), r.Job)
}

// prune applies retention to one job's finished runs.
func (d *DB) prune(ctx context.Context, job string) error {
	if d.opts.Retention <= 0 && d.opts.MaxRunsPerJob <= 0 {
		return nil
	}
	cutoff := time.Time{}
	if d.opts.Retention > 0 {
		cutoff = d.opts.Now().Add(-d.opts.Retention)
	}
	limit := d.opts.MaxRunsPerJob
	if limit <= 0 {
		limit = 1 << 30
	}
	_, err := d.pool.Exec(ctx, `DELETE FROM xacctd_runs WHERE job = $1 AND outcome <> 'running' AND (happened_at < $2 OR id IN (
		SELECT id FROM xacctd_runs WHERE job = $1 ORDER BY `+newestFirst+` OFFSET $3))`, job, cutoff, limit)
	if err != nil {
		return fmt.Errorf("run %s recorded; applying retention failed (the next write tries again): %w", job, err)
	}
	return nil
}

// Runs returns the job's runs, newest first.
func (d *DB) Runs(ctx context.Context, job string, limit int) ([]history.Run, error) {
	if err := history.CheckJob(job); err != nil {
		return nil, err
	}
	ctx, cancel, err := d.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := d.pool.Query(ctx, `SELECT `+runColumns+` FROM xacctd_runs WHERE job = $1 ORDER BY `+newestFirst+` LIMIT $2`, job, limit)
	if err != nil {
		return nil, fmt.Errorf("read the runs of job %s: %w", job, err)
	}
	return scanRuns(rows)
}

// Latest returns each job's newest run.
func (d *DB) Latest(ctx context.Context) (map[string]history.Run, error) {
	ctx, cancel, err := d.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := d.pool.Query(ctx, `SELECT DISTINCT ON (job) `+runColumns+` FROM xacctd_runs ORDER BY job, `+newestFirst)
	if err != nil {
		return nil, fmt.Errorf("read the latest runs: %w", err)
	}
	runs, err := scanRuns(rows)
	if err != nil {
		return nil, err
	}
	out := make(map[string]history.Run, len(runs))
	for _, r := range runs {
		out[r.Job] = r
	}
	return out, nil
}

// LastScheduled returns each job's latest handled scheduled occurrence, from every
// instance's runs: after a failover the new leader catches up from where the old one was.
func (d *DB) LastScheduled(ctx context.Context) (map[string]time.Time, error) {
	ctx, cancel, err := d.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := d.pool.Query(ctx, `SELECT job, max(scheduled_time) FROM xacctd_runs WHERE `+occurrenceHeld+` GROUP BY job`)
	if err != nil {
		return nil, fmt.Errorf("read the last scheduled times: %w", err)
	}
	out := map[string]time.Time{}
	var job string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&job, &at}, func() error {
		out[job] = at.UTC()
		return nil
	})
	return out, err
}

// Recover marks as interrupted the runs left running by processes whose session has ended
// (their instance lock is free): they died, or lost the database and cancelled their runs.
func (d *DB) Recover(ctx context.Context, now time.Time) ([]history.Run, error) {
	ctx, cancel, err := d.op(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows, err := d.pool.Query(ctx, `UPDATE xacctd_runs r SET outcome = 'interrupted', end_time = $1, error_class = '', error_code = '',
		error = format('the process running it (pid %s on %s) ended, or lost its state-database session, without recording an outcome', owner_pid, owner_host),
		hint = format('see that process''s log for why it stopped; catch_up runs the occurrence again when it covers it, "xacctd jobs run %s --at TIME" runs it by hand', job),
		happened_at = coalesce(start_time, $1), recorded_at = now()
	WHERE outcome = 'running' AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid = $2::int4::oid AND l.objid = r.owner_session::oid AND l.objsubid = 2 AND l.granted)
	RETURNING `+runColumns, history.Normalize(history.Run{End: now}).End, d.insNS)
	if err != nil {
		return nil, fmt.Errorf("recover interrupted runs: %w", err)
	}
	return scanRuns(rows)
}

func scanRuns(rows pgx.Rows) ([]history.Run, error) {
	var out []history.Run
	var r history.Run
	var start, end *time.Time
	var outcome string
	_, err := pgx.ForEachRow(rows, []any{&r.ID, &r.Job, &r.Pair, &r.Cluster, &r.Kind, &r.Trigger, &r.ScheduledTime, &start, &end,
		&r.Attempt, &outcome, &r.ErrorClass, &r.ErrorCode, &r.Error, &r.Hint, &r.Rows, &r.Files,
		&r.Owner.Host, &r.Owner.PID, &r.Owner.Boot}, func() error {
		x := r
		x.Outcome = history.Outcome(outcome)
		x.ScheduledTime = x.ScheduledTime.UTC()
		x.Start, x.End = time.Time{}, time.Time{}
		if start != nil {
			x.Start = start.UTC()
		}
		if end != nil {
			x.End = end.UTC()
		}
		if r.Rows != nil {
			v := *r.Rows
			x.Rows = &v
		}
		if r.Files != nil {
			v := *r.Files
			x.Files = &v
		}
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	return out, nil
}

func isUniqueViolation(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "23505"
}
