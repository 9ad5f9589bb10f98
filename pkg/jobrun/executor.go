// Package jobrun runs jobs: it renders a job's statement, connects to its cluster, runs the
// statement with a timeout enforced on the server, retries transient failures, classifies
// errors with a likely cause, records every run in the history and logs the job.* events.
// It implements schedule.Runner, so scheduled, caught-up and manual runs take one path.
package jobrun

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/jobsql"
	"github.com/xacctd/xacctd/pkg/jobtemplate"
	"github.com/xacctd/xacctd/pkg/logging"
	"github.com/xacctd/xacctd/pkg/reconcile"
	"github.com/xacctd/xacctd/pkg/schedule"
)

// errTimeout is the cause of a run's context when its timeout passes.
var errTimeout = errors.New("job timeout")

// Executor runs occurrences of the jobs of one configuration.
type Executor struct {
	Config    *config.Config
	Targets   map[string]jobsql.Target // by pair; see Targets
	Connector Connector
	Store     history.Store
	// Claimer, when set (a store shared by several instances), claims every scheduled
	// occurrence before it runs or is recorded skipped or missed: an occurrence another
	// instance holds is left alone, and one that cannot be claimed does not run.
	Claimer history.Claimer
	Logger  *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Backoff is the wait before retry attempt n+1 after attempt n failed transiently
	// (default 5s, 10s, 20s … at most 1m).
	Backoff func(attempt int) time.Duration
	// StatementTimeoutSlack is added to the remaining time for the server's
	// statement_timeout, so that xacctd's own cancel normally comes first and the server's
	// timeout only stops a query whose client vanished (default 10s).
	StatementTimeoutSlack time.Duration
}

var _ schedule.Runner = (*Executor)(nil)

// Targets derives each pair's statement target (bucket, prefix, regions, IAM_ROLE) from the
// configuration.
func Targets(cfg *config.Config) map[string]jobsql.Target {
	d := reconcile.Desire(cfg)
	out := map[string]jobsql.Target{}
	for _, p := range cfg.Pairs {
		ps := d.Pairs[p.Name]
		if ps == nil {
			continue
		}
		t := jobsql.Target{Bucket: ps.Bucket, Prefix: ps.Prefix, RoleARNs: ps.RoleARNs}
		if b := cfg.Buckets[p.Bucket]; b != nil {
			t.BucketRegion = b.Region
		}
		if c := cfg.Clusters[p.Cluster]; c != nil {
			t.ClusterRegion = c.Region
		}
		out[p.Name] = t
	}
	return out
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Executor) log() *zap.Logger {
	if e.Logger == nil {
		return zap.NewNop()
	}
	return e.Logger
}

func (e *Executor) backoff(attempt int) time.Duration {
	if e.Backoff != nil {
		return e.Backoff(attempt)
	}
	d := 5 * time.Second << (attempt - 1)
	return min(d, time.Minute)
}

// Run executes one occurrence and records it. It returns nil on success and the *Failure
// otherwise.
func (e *Executor) Run(ctx context.Context, occ schedule.Occurrence) (err error) {
	job := e.Config.Job(occ.Job)
	if job == nil {
		return fmt.Errorf("there is no job named %q", occ.Job)
	}
	run := history.Run{
		ID: history.NewID(occ.Scheduled), Job: job.Name, Pair: job.Pair, Cluster: occ.Cluster, Kind: job.Kind(),
		Trigger: occ.Trigger, ScheduledTime: occ.Scheduled, Start: e.now(), Outcome: history.Running,
		Owner: history.CurrentOwner(),
	}
	fields := []zap.Field{zap.String("job", run.Job), zap.String("pair", run.Pair), zap.String("cluster", run.Cluster),
		zap.String("run_id", run.ID), zap.Time("scheduled_time", occ.Scheduled), zap.String("trigger", occ.Trigger)}
	log := e.log().With(fields...)
	claimed := false
	if e.Claimer != nil && scheduled(occ.Trigger) {
		run.Attempt = 1
		ok, holder, cerr := e.Claimer.Claim(context.WithoutCancel(ctx), run)
		switch {
		case cerr != nil:
			reason := fmt.Sprintf("the occurrence could not be claimed in the state database, so it does not run: %v", cerr)
			log.Error("job not started: claim failed", logging.Event("job.claim_failed"), zap.Error(cerr))
			return &schedule.SkipError{Reason: reason}
		case !ok:
			log.Warn("job occurrence already claimed by another run; not started here", logging.Event("job.already_claimed"),
				zap.String("holder_run_id", holder.ID), zap.String("holder_outcome", string(holder.Outcome)),
				zap.String("holder_host", holder.Owner.Host), zap.Int("holder_pid", holder.Owner.PID))
			return &schedule.SkipError{Reason: fmt.Sprintf("run %s (%s, pid %d on %s) holds this occurrence",
				holder.ID, holder.Outcome, holder.Owner.PID, holder.Owner.Host)}
		}
		claimed = true
	}
	defer func() {
		if v := recover(); v != nil {
			f := &Failure{Class: ClassInternal, Message: fmt.Sprintf("panic: %v", v),
				Hint: "this is a bug in xacctd: please report it with the log line"}
			log.Error("job failed", logging.Event("job.failed"), zap.String("error_class", f.Class),
				zap.String("error", f.Message), zap.String("stack", string(debug.Stack())))
			e.finish(ctx, log, &run, history.Failed, f)
			err = f
		}
	}()

	cluster := e.Config.Clusters[e.clusterName(job)]
	target, ok := e.Targets[job.Pair]
	if cluster == nil || !ok {
		f := &Failure{Class: ClassConfig, Message: fmt.Sprintf("pair %s of job %s has no cluster or target", job.Pair, job.Name)}
		e.finish(ctx, log, &run, history.Failed, f)
		return f
	}
	loc, lerr := time.LoadLocation(job.Timezone)
	if lerr != nil {
		loc = time.UTC // validated at load; a missing tzdata would fail there first
	}
	stmt, rerr := jobsql.Render(job, target, jobtemplate.Data{ScheduledTime: occ.Scheduled.In(loc), RunID: run.ID, Job: job.Name})
	if rerr != nil {
		f := &Failure{Class: ClassConfig, Message: rerr.Error(), Err: rerr,
			Hint: "the job's templates render to something xacctd refuses to run; `xacctd jobs run --dry-run " + job.Name + "` shows the statement"}
		e.finish(ctx, log, &run, history.Failed, f)
		return f
	}

	runCtx, cancel := context.WithTimeoutCause(ctx, job.Timeout, errTimeout)
	defer cancel()
	deadline, _ := runCtx.Deadline()
	for attempt := 1; ; attempt++ {
		run.Attempt = attempt
		if attempt > 1 || !claimed { // the claim recorded attempt 1
			e.record(ctx, log, run)
		}
		log.Info("job started", logging.Event("job.started"), zap.Int("attempt", attempt), zap.String("kind", run.Kind),
			zap.String("location", stmt.URL))
		began := e.now()
		res, xerr := e.attempt(runCtx, cluster, stmt.SQL, deadline)
		if xerr == nil {
			run.Rows = res.Rows
			run.End = e.now()
			run.Outcome = history.Succeeded
			fs := []zap.Field{logging.Event("job.succeeded"), zap.Int("attempt", attempt), zap.Int64("duration_ms", run.End.Sub(run.Start).Milliseconds())}
			if res.Rows != nil {
				fs = append(fs, zap.Int64("rows", *res.Rows))
			}
			log.Info("job succeeded", fs...)
			e.record(ctx, log, run)
			return nil
		}
		f := Classify(xerr)
		switch cause := context.Cause(runCtx); {
		case errors.Is(cause, errTimeout):
			f = &Failure{Class: ClassTimeout, Code: f.Code, Err: xerr,
				Message: fmt.Sprintf("the run took longer than its timeout %s and was cancelled on the server (%s)", job.Timeout, f.Message),
				Hint:    "raise the job's timeout or make the query cheaper; check the cluster's queues (WLM) if it waited"}
			log.Error("job timed out", logging.Event("job.timed_out"), zap.Int("attempt", attempt),
				zap.Int64("duration_ms", e.now().Sub(run.Start).Milliseconds()), zap.Duration("timeout", job.Timeout))
			e.finish(ctx, log, &run, history.TimedOut, f)
			return f
		case cause != nil:
			f = &Failure{Class: ClassInterrupted, Code: f.Code, Err: xerr,
				Message: fmt.Sprintf("the run was interrupted (%v) and its query cancelled on the server", cause),
				Hint:    "xacctd was stopping or the run was cancelled; the next occurrence runs normally (catch_up covers a missed one)"}
			log.Warn("job interrupted", logging.Event("job.interrupted"), zap.Int("attempt", attempt),
				zap.Int64("duration_ms", e.now().Sub(run.Start).Milliseconds()), zap.String("reason", cause.Error()))
			e.finish(ctx, log, &run, history.Interrupted, f)
			return f
		}
		if f.Transient && attempt <= job.Retries {
			wait := e.backoff(attempt)
			log.Warn("job attempt failed, retrying", logging.Event("job.retry"), zap.Int("attempt", attempt),
				zap.String("error_class", f.Class), zap.String("error_code", f.Code), zap.String("error", f.Message),
				zap.Duration("backoff", wait), zap.Int64("duration_ms", e.now().Sub(began).Milliseconds()))
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				continue
			case <-runCtx.Done():
				t.Stop()
				continue // the next attempt sees the cancelled context and records why
			}
		}
		log.Error("job failed", logging.Event("job.failed"), zap.Int("attempt", attempt),
			zap.String("error_class", f.Class), zap.String("error_code", f.Code), zap.String("error", f.Message),
			zap.String("hint", f.Hint), zap.Int64("duration_ms", e.now().Sub(run.Start).Milliseconds()))
		e.finish(ctx, log, &run, history.Failed, f)
		return f
	}
}

func (e *Executor) clusterName(job *config.Job) string {
	if p := e.Config.Pair(job.Pair); p != nil {
		return p.Cluster
	}
	return ""
}

// attempt runs sql once on a fresh session.
func (e *Executor) attempt(ctx context.Context, cl *config.Cluster, sql string, deadline time.Time) (Result, error) {
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return Result{}, err
	}
	sess, err := e.Connector.Connect(ctx, cl)
	if err != nil {
		return Result{}, err
	}
	defer sess.Close(ctx)
	slack := e.StatementTimeoutSlack
	if slack == 0 {
		slack = 10 * time.Second
	}
	ms := (time.Until(deadline) + slack).Milliseconds()
	if _, err := sess.Exec(ctx, fmt.Sprintf("SET statement_timeout TO %d", max(ms, 1))); err != nil {
		return Result{}, err
	}
	return sess.Exec(ctx, sql)
}

// finish records the run's end with its failure.
func (e *Executor) finish(ctx context.Context, log *zap.Logger, run *history.Run, outcome history.Outcome, f *Failure) {
	run.End = e.now()
	run.Outcome = outcome
	if f != nil {
		run.ErrorClass, run.ErrorCode, run.Error, run.Hint = f.Class, f.Code, f.Message, f.Hint
	}
	e.record(ctx, log, *run)
}

// record stores run; a store that refuses is logged, never fatal to the run.
func (e *Executor) record(ctx context.Context, log *zap.Logger, run history.Run) {
	if e.Store == nil {
		return
	}
	if err := e.Store.Record(context.WithoutCancel(ctx), run); err != nil {
		log.Error("run history not written", logging.Event("state.write_failed"), zap.String("outcome", string(run.Outcome)), zap.Error(err))
	}
}

// Record stores an occurrence the scheduler settled without running it.
func (e *Executor) Record(ctx context.Context, occ schedule.Occurrence, outcome, reason string) {
	run := history.Run{
		ID: history.NewID(occ.Scheduled), Job: occ.Job, Pair: occ.Pair, Cluster: occ.Cluster, Trigger: occ.Trigger,
		ScheduledTime: occ.Scheduled, End: e.now(), Attempt: 0, Outcome: history.Outcome(outcome), Error: reason,
		Owner: history.CurrentOwner(),
	}
	if j := e.Config.Job(occ.Job); j != nil {
		run.Kind = j.Kind()
	}
	if outcome == schedule.OutcomeFailed {
		run.ErrorClass = ClassInternal
	}
	log := e.log().With(zap.String("job", occ.Job), zap.String("run_id", run.ID))
	if e.Claimer != nil && scheduled(occ.Trigger) {
		ok, holder, err := e.Claimer.Claim(context.WithoutCancel(ctx), run)
		switch {
		case err != nil:
			log.Error("run history not written", logging.Event("state.write_failed"), zap.String("outcome", outcome), zap.Error(err))
		case !ok:
			log.Info("occurrence already settled by another run; not recorded again", zap.String("outcome", outcome),
				zap.String("holder_run_id", holder.ID), zap.String("holder_outcome", string(holder.Outcome)))
		}
		return
	}
	e.record(ctx, log, run)
}

// scheduled reports whether a trigger is one whose occurrences are claimed.
func scheduled(trigger string) bool {
	return trigger == schedule.TriggerSchedule || trigger == schedule.TriggerCatchUp
}
