// Package daemon is `xacctd run`: it loads the configuration, serves HTTP (health, readiness,
// status, metrics), reconciles AWS every reconcile_interval, runs the scheduler, reloads on
// request without dropping running jobs, and stops cleanly (design.md §6).
//
// The App has Run(ctx, reload) so that tests drive it without signals: cancelling ctx is
// SIGTERM, a send on reload is SIGHUP. A reload builds everything from the new file first and
// swaps only when all of it is valid.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/xacctd/xacctd/internal/awsconn"
	"github.com/xacctd/xacctd/internal/statestore"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/httpapi"
	"github.com/xacctd/xacctd/pkg/jobrun"
	"github.com/xacctd/xacctd/pkg/logging"
	"github.com/xacctd/xacctd/pkg/metrics"
	"github.com/xacctd/xacctd/pkg/pgstate"
	"github.com/xacctd/xacctd/pkg/reconcile"
	"github.com/xacctd/xacctd/pkg/schedule"
)

// Notifier tells the service manager about the daemon's state (sdnotify.Notifier).
type Notifier interface {
	Ready(status string) error
	Reloading(status string) error
	Stopping(status string) error
	Status(status string) error
	Watchdog() error
	WatchdogInterval() time.Duration
}

// Options configures an App.
type Options struct {
	ConfigPath string
	Logger     *zap.Logger
	Version    string
	Notifier   Notifier       // nil: none
	Clock      schedule.Clock // the scheduler's clock (nil: real time)
	// ListenAddr overrides http.listen (tests use 127.0.0.1:0).
	ListenAddr string
	// RetryMin is the first wait after a failed reconcile or while associations become
	// in-sync (default 10s); waits double up to reconcile_interval.
	RetryMin time.Duration
}

// generation is everything built from one configuration file.
type generation struct {
	cfg     *config.Config
	counter *awsconn.Counter
	clients awsconn.Clients
	rec     *reconcile.Reconciler
	exec    *jobrun.Executor
	entries []schedule.Entry
	limits  map[string]int
	// prevCalls is counter's reading at the end of the previous cycle (only the reconcile
	// loop touches it).
	prevCalls map[string]int
}

// App is the daemon.
type App struct {
	opts    Options
	log     *zap.Logger
	notify  Notifier
	metrics *metrics.Metrics
	store   history.Store
	db      *pgstate.DB // state.backend postgres: shared state and leader election; nil for file
	http    *httpapi.Server
	started time.Time

	// termMu orders the start of a leader term's scheduler against reloads, so that a term
	// never starts with a configuration a reload has already replaced.
	termMu sync.Mutex
	sched  atomic.Pointer[schedule.Scheduler] // the current term's; nil while following

	gen          atomic.Pointer[generation]
	reconcileNow chan struct{} // 1-slot: reconcile at once (after a reload)
	retryWait    atomic.Int64  // the last wait after a failed reconcile

	mu         sync.Mutex
	readiness  map[string]reconcile.PairReadiness
	reconciled bool // a reconcile has completed
	last       reconcileStatus
	lastRuns   map[string]history.Run
}

// reconcileStatus is what the latest reconcile found.
type reconcileStatus struct {
	At         time.Time `json:"at"`
	Outcome    string    `json:"outcome"` // in_sync, changed, failed
	Changes    int       `json:"changes"`
	Conflicts  int       `json:"conflicts"`
	Failed     int       `json:"failed_changes"`
	APICalls   int       `json:"api_calls"`
	DurationMS int64     `json:"duration_ms"`
	Reason     string    `json:"reason,omitempty"`
}

type noNotifier struct{}

func (noNotifier) Ready(string) error              { return nil }
func (noNotifier) Reloading(string) error          { return nil }
func (noNotifier) Stopping(string) error           { return nil }
func (noNotifier) Status(string) error             { return nil }
func (noNotifier) Watchdog() error                 { return nil }
func (noNotifier) WatchdogInterval() time.Duration { return 0 }

// New loads the configuration and builds every component; nothing runs yet. A configuration
// error is returned as is (a *config.Error lists every problem).
func New(opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Notifier == nil {
		opts.Notifier = noNotifier{}
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 10 * time.Second
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	warnPermissions(opts.Logger, cfg)
	a := &App{
		opts: opts, log: opts.Logger, notify: opts.Notifier, metrics: metrics.New(opts.Version),
		reconcileNow: make(chan struct{}, 1), lastRuns: map[string]history.Run{},
	}
	store, db, err := a.openStore(cfg)
	if err != nil {
		return nil, err
	}
	a.db = db
	a.store = &observedStore{Store: store, app: a}
	g, err := a.build(cfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	a.gen.Store(g)
	a.metrics.SetLeader(db == nil) // one host: always the leader; shared state: once elected
	a.metrics.ConfigReload(true, time.Now())
	addr := cfg.HTTP.Listen
	if opts.ListenAddr != "" {
		addr = opts.ListenAddr
	}
	a.http = httpapi.New(addr, a, a.metrics.Registry, a.log.Named("http"))
	return a, nil
}

// openStore opens the run history the configuration names; for backend postgres also the
// state database that elects the leader.
func (a *App) openStore(cfg *config.Config) (history.Store, *pgstate.DB, error) {
	return statestore.Open(context.Background(), cfg, a.log, statestore.Options{Version: a.opts.Version,
		OnLeader: a.metrics.SetLeader, OnSession: a.metrics.SetStateSession})
}

// build makes the components of one configuration.
func (a *App) build(cfg *config.Config) (*generation, error) {
	entries, limits, err := schedule.Entries(cfg)
	if err != nil {
		return nil, err
	}
	counter := awsconn.NewCounter()
	clients := awsconn.Clients{Accounts: awsconn.New(cfg, counter)}
	g := &generation{
		cfg: cfg, counter: counter, clients: clients, entries: entries, limits: limits, prevCalls: map[string]int{},
		rec: &reconcile.Reconciler{Config: cfg, Clients: clients,
			Options: reconcile.ApplyOptions{NoWait: true, Logger: a.log.Named("reconcile")}},
		exec: &jobrun.Executor{
			Config: cfg, Targets: jobrun.Targets(cfg), Store: a.store, Claimer: a.claimer(), Logger: a.log.Named("jobs"),
			Connector: &jobrun.PgxConnector{Redshift: func(ctx context.Context, account, region string) (jobrun.RedshiftAPI, error) {
				return clients.RedshiftClient(ctx, account, region)
			}},
		},
	}
	return g, nil
}

// reloadSettle is how long a reload waits for more requests of the same burst.
const reloadSettle = 250 * time.Millisecond

// Run runs the daemon until ctx is cancelled; each value on reload reloads the
// configuration. It returns nil after a clean stop.
//
// With the file backend the daemon leads from the start: first reconcile, scheduler, READY.
// With backend postgres it is READY as a follower at once and campaigns for the leader
// lock; each time it wins it leads a term (the same steps) until it loses the lock, when it
// stops starting work at once and cancels its running jobs, or until it stops.
func (a *App) Run(ctx context.Context, reload <-chan struct{}) error {
	a.started = time.Now()
	defer a.store.Close()
	if err := a.http.Start(); err != nil {
		return fmt.Errorf("start the HTTP endpoint: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.http.Shutdown(sctx)
	}()
	a.restoreRuns(ctx)

	var single *term // the file backend's one term
	campaignDone := make(chan struct{})
	if a.db == nil {
		single = a.begin(ctx)
		close(campaignDone)
	} else {
		go func() {
			defer close(campaignDone)
			_ = a.db.Campaign(ctx, a.lead)
		}()
	}
	g := a.gen.Load()
	_ = a.notify.Ready(a.statusLine())
	a.log.Info("daemon started", logging.Event("daemon.started"), zap.String("version", a.opts.Version),
		zap.String("config", a.opts.ConfigPath), zap.String("http", a.http.Addr()), zap.String("state_backend", g.cfg.State.Backend),
		zap.Int("pairs", len(g.cfg.Pairs)), zap.Int("jobs", len(g.cfg.Jobs)), zap.Int64("startup_ms", time.Since(a.started).Milliseconds()))

	var watchdog <-chan time.Time
	if iv := a.notify.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
		_ = a.notify.Watchdog()
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case _, ok := <-reload:
			if !ok {
				reload = nil
				continue
			}
			// A burst of requests (several SIGHUPs, a config tool writing in steps) becomes
			// one reload: wait until none has come for reloadSettle.
			settle := time.NewTimer(reloadSettle)
		burst:
			for {
				select {
				case <-reload:
					settle.Reset(reloadSettle)
				case <-settle.C:
					break burst
				case <-ctx.Done():
					settle.Stop()
					break loop
				}
			}
			_ = a.Reload()
		case <-watchdog:
			_ = a.notify.Watchdog()
		}
	}

	// Stop: no new runs; running ones get the grace period, then their queries are
	// cancelled on the server and the runs recorded as interrupted. A leader hands the
	// lock over once its runs have ended.
	grace := a.gen.Load().cfg.Defaults.ShutdownGrace
	running := 0
	if s := a.sched.Load(); s != nil {
		for _, st := range s.Status() {
			if st.Running {
				running++
			}
		}
	}
	_ = a.notify.Stopping(fmt.Sprintf("stopping: %d running job(s), grace %s", running, grace))
	a.log.Info("daemon stopping", logging.Event("daemon.stopping"), zap.Int("running_jobs", running), zap.Duration("grace", grace))
	if single != nil {
		a.end(single, nil)
	}
	<-campaignDone
	a.log.Info("daemon stopped", logging.Event("daemon.stopped"), zap.Int64("uptime_s", int64(time.Since(a.started).Seconds())))
	return nil
}

// term is one period of leadership: the scheduler and the reconcile loop.
type term struct {
	sched         *schedule.Scheduler // nil when the term ended before it started
	stopReconcile context.CancelFunc
	wg            sync.WaitGroup
}

// lead is a leader term of the postgres backend (pgstate.DB.Campaign): it runs until ctx
// ends, at once when leadership is lost, with the shutdown grace when the daemon stops.
func (a *App) lead(ctx context.Context) {
	t := a.begin(ctx)
	<-ctx.Done()
	cause := context.Cause(ctx)
	if !errors.Is(cause, pgstate.ErrLeadershipLost) {
		cause = nil
	}
	a.end(t, cause)
	_ = a.notify.Status(a.statusLine())
}

// begin starts a term: runs left running by a process that died are recorded interrupted,
// the first reconcile establishes readiness, then the scheduler starts from the last
// handled occurrences in the history (catching up what was missed) and the reconcile loop
// runs every reconcile_interval.
func (a *App) begin(ctx context.Context) *term {
	if recovered, err := a.store.Recover(ctx, time.Now()); err != nil {
		a.log.Error("recovering interrupted runs failed", logging.Event("state.write_failed"), zap.Error(err))
	} else {
		for _, r := range recovered {
			a.log.Warn("run interrupted by the end of its process", logging.Event("job.interrupted"), zap.String("job", r.Job),
				zap.String("run_id", r.ID), zap.Time("scheduled_time", r.ScheduledTime), zap.String("reason", r.Error))
		}
	}
	if a.db != nil {
		a.restoreRuns(ctx) // the previous leader's runs
	}
	rctx, stopReconcile := context.WithCancel(ctx)
	t := &term{stopReconcile: stopReconcile}
	next := a.reconcile(rctx)
	if ctx.Err() != nil {
		return t
	}
	last, err := a.store.LastScheduled(ctx)
	if err != nil {
		a.log.Error("reading last run times failed; no catch-up this time", logging.Event("state.read_failed"), zap.Error(err))
	}
	a.termMu.Lock()
	g := a.gen.Load()
	t.sched = schedule.New(g.entries, g.limits, schedule.Options{
		Clock: a.opts.Clock, Logger: a.log.Named("schedule"), Runner: runner{a}, Gate: a.gate, LastScheduled: last,
	})
	t.sched.Start()
	a.sched.Store(t.sched)
	a.termMu.Unlock()
	_ = a.notify.Status(a.statusLine())
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		a.reconcileLoop(rctx, next)
	}()
	return t
}

// end stops a term. With a cause (leadership lost) nothing new starts and running jobs are
// cancelled at once, occurrences not yet run left to the next leader; without, running jobs
// get the shutdown grace (and with shared state, occurrences waiting for a slot are still
// left to the next leader rather than recorded skipped).
func (a *App) end(t *term, cause error) {
	t.stopReconcile()
	if t.sched != nil {
		if cause != nil {
			t.sched.Abandon(cause)
		} else {
			gctx, cancel := context.WithTimeout(context.Background(), a.gen.Load().cfg.Defaults.ShutdownGrace)
			if a.db != nil {
				t.sched.Handover(gctx) // what has not started is the next leader's
			} else {
				t.sched.Stop(gctx)
			}
			cancel()
		}
	}
	t.wg.Wait()
	if cause != nil {
		a.termMu.Lock()
		a.sched.CompareAndSwap(t.sched, nil)
		a.termMu.Unlock()
		a.mu.Lock()
		a.reconciled, a.readiness = false, nil
		a.mu.Unlock()
		// A follower does not judge pairs: their readiness series go (alerts on them
		// follow the leader); jobs' series stay (max over instances is the truth).
		var jobs []string
		for _, j := range a.gen.Load().cfg.Jobs {
			jobs = append(jobs, j.Name)
		}
		a.metrics.Retain(nil, jobs)
	}
}

// restoreRuns reads each job's latest run (for /status) and latest success (for the metric
// alerts rely on) from the history.
func (a *App) restoreRuns(ctx context.Context) {
	latest, err := a.store.Latest(ctx)
	if err != nil {
		a.log.Error("reading the run history failed", logging.Event("state.read_failed"), zap.Error(err))
		return
	}
	a.mu.Lock()
	for job, r := range latest {
		a.lastRuns[job] = r
	}
	a.mu.Unlock()
	for _, j := range a.gen.Load().cfg.Jobs {
		r, ok := latest[j.Name]
		if !ok {
			continue
		}
		if r.Outcome != history.Succeeded {
			runs, err := a.store.Runs(ctx, j.Name, 0)
			if err != nil {
				continue
			}
			ok = false
			for _, x := range runs {
				if x.Outcome == history.Succeeded {
					r, ok = x, true
					break
				}
			}
		}
		if ok {
			a.metrics.SetJobLastSuccess(j.Name, r.End)
		}
	}
}

// Reload loads the configuration file again and swaps it in when all of it is valid;
// otherwise the running configuration stays and the error says why.
func (a *App) Reload() error {
	_ = a.notify.Reloading("reloading the configuration")
	err := a.reload()
	_ = a.notify.Ready(a.statusLine())
	return err
}

func (a *App) reload() error {
	began := time.Now()
	fail := func(err error) error {
		fields := []zap.Field{logging.Event("config.reload_failed"), zap.String("file", a.opts.ConfigPath), zap.Error(err)}
		var cerr *config.Error
		if errors.As(err, &cerr) {
			fields = append(fields, zap.Strings("problems", strings.Split(cerr.Error(), "\n")))
		}
		a.log.Error("configuration not reloaded; the previous one keeps running", fields...)
		a.metrics.ConfigReload(false, time.Now())
		return err
	}
	cfg, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		return fail(err)
	}
	warnPermissions(a.log, cfg)
	g, err := a.build(cfg)
	if err != nil {
		return fail(err)
	}
	old := a.gen.Load()
	if cfg.HTTP.Listen != old.cfg.HTTP.Listen || cfg.State != old.cfg.State {
		a.log.Warn("http and state settings take effect at the next restart", logging.Event("config.restart_needed"))
	}
	a.termMu.Lock()
	a.gen.Store(g)
	if s := a.sched.Load(); s != nil {
		s.Update(g.entries, g.limits)
	}
	a.termMu.Unlock()
	var pairs, jobs []string
	for _, p := range cfg.Pairs {
		pairs = append(pairs, p.Name)
	}
	for _, j := range cfg.Jobs {
		jobs = append(jobs, j.Name)
	}
	a.metrics.Retain(pairs, jobs)
	a.metrics.ConfigReload(true, time.Now())
	a.log.Info("configuration reloaded", logging.Event("config.reloaded"), zap.String("file", a.opts.ConfigPath),
		zap.Int("pairs", len(pairs)), zap.Int("jobs", len(jobs)), zap.Int64("duration_ms", time.Since(began).Milliseconds()))
	select {
	case a.reconcileNow <- struct{}{}:
	default:
	}
	return nil
}

// reconcileLoop reconciles after each wait until ctx ends.
func (a *App) reconcileLoop(ctx context.Context, wait time.Duration) {
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-a.reconcileNow:
			t.Stop()
		case <-t.C:
		}
		wait = a.reconcile(ctx)
	}
}

// reconcile runs one cycle and returns the wait before the next: reconcile_interval with
// jitter, or sooner after a failure (doubling from RetryMin) or while a pair waits for its
// association to become in-sync.
func (a *App) reconcile(ctx context.Context) time.Duration {
	g := a.gen.Load()
	began := time.Now()
	a.log.Info("reconcile started", logging.Event("reconcile.started"))
	res := g.rec.Apply(ctx)
	if ctx.Err() != nil {
		return time.Hour // stopping
	}
	took := time.Since(began)
	for _, c := range res.Before.Plan.Changes {
		a.log.Warn("drift detected", logging.Event("drift.detected"), zap.String("pair", c.Pair), zap.String("type", c.Type),
			zap.String("resource", c.ID), zap.String("action", string(c.Action)), zap.String("account", c.Account), zap.String("reason", c.Reason))
	}
	counts := map[string]int{}
	for _, c := range res.Before.Plan.Changes {
		counts[c.Type]++
	}
	for typ, n := range counts {
		a.metrics.DriftFound(typ, n)
	}
	for _, r := range res.Result.Results {
		a.metrics.ChangeApplied(r.Type, string(r.Action), r.Outcome == reconcile.Applied)
	}
	for _, c := range res.After.Plan.Conflicts {
		a.log.Warn("conflict detected", logging.Event("conflict.detected"), zap.String("type", c.Type), zap.String("resource", c.ID),
			zap.String("account", c.Account), zap.Strings("pairs", c.Pairs), zap.String("reason", c.Reason))
	}
	failedChanges := 0
	for _, r := range res.Result.Results {
		if r.Outcome != reconcile.Applied {
			failedChanges++
		}
	}
	st := reconcileStatus{At: time.Now(), Changes: len(res.Before.Plan.Changes), Conflicts: len(res.After.Plan.Conflicts),
		Failed: failedChanges, DurationMS: took.Milliseconds()}
	failed := failedChanges > 0 || st.Conflicts > 0 || !res.After.Plan.Empty()
	switch {
	case failed:
		st.Outcome = "failed"
		st.Reason = fmt.Sprintf("%d change(s) failed, %d conflict(s), %d difference(s) remain", failedChanges, st.Conflicts, len(res.After.Plan.Changes))
	case st.Changes > 0:
		st.Outcome = "changed"
	default:
		st.Outcome = "in_sync"
	}
	// API calls of this cycle, by operation.
	_, byOp := g.counter.Snapshot()
	delta := map[string]int{}
	for op, n := range byOp {
		if d := n - g.prevCalls[op]; d > 0 {
			delta[op] = d
			st.APICalls += d
		}
	}
	g.prevCalls = byOp
	a.metrics.APICalls(delta)
	a.metrics.ObserveReconcile(took, st.Outcome)

	ready := reconcile.Readiness(res.After)
	waiting := a.setReadiness(ready)
	a.mu.Lock()
	prevFailed := a.last.Outcome == "failed"
	a.last = st
	a.reconciled = true
	a.mu.Unlock()

	fields := []zap.Field{zap.String("outcome", st.Outcome), zap.Int("changes", st.Changes), zap.Int("conflicts", st.Conflicts),
		zap.Int("failed_changes", failedChanges), zap.Int("api_calls", st.APICalls), zap.Int64("duration_ms", st.DurationMS)}
	if failed {
		a.log.Warn("reconcile failed", append(fields, logging.Event("reconcile.failed"), zap.String("reason", st.Reason))...)
	} else {
		a.log.Info("reconcile finished", append(fields, logging.Event("reconcile.finished"))...)
	}
	_ = a.notify.Status(a.statusLine())

	interval := g.cfg.Defaults.ReconcileInterval
	switch {
	case failed:
		wait := a.opts.RetryMin
		if prevFailed {
			wait = min(interval, 2*a.lastRetry())
		}
		a.setRetry(wait)
		return wait
	case waiting:
		a.setRetry(0)
		return a.opts.RetryMin
	}
	a.setRetry(0)
	// Up to 10% jitter, so that several daemons do not call AWS in step.
	return interval - time.Duration(rand.Int64N(int64(interval)/10+1))
}

func (a *App) lastRetry() time.Duration {
	if d := time.Duration(a.retryWait.Load()); d > 0 {
		return d
	}
	return a.opts.RetryMin
}

func (a *App) setRetry(d time.Duration) { a.retryWait.Store(int64(d)) }

// setReadiness stores the pairs' readiness, logs changes and returns whether a pair waits
// only for its association to become in-sync.
func (a *App) setReadiness(ready []reconcile.PairReadiness) (waiting bool) {
	a.mu.Lock()
	prev := a.readiness
	next := make(map[string]reconcile.PairReadiness, len(ready))
	for _, r := range ready {
		next[r.Pair] = r
	}
	a.readiness = next
	a.mu.Unlock()
	for _, r := range ready {
		a.metrics.SetPairReady(r.Pair, r.Ready)
		old, seen := prev[r.Pair]
		if !r.Ready && strings.Contains(r.Reason(), "adding") {
			waiting = true
		}
		if seen && old.Ready == r.Ready && old.Reason() == r.Reason() {
			continue
		}
		if r.Ready {
			a.log.Info("pair ready", logging.Event("pair.ready"), zap.String("pair", r.Pair))
		} else {
			a.log.Warn("pair not ready", logging.Event("pair.not_ready"), zap.String("pair", r.Pair), zap.String("reason", r.Reason()))
		}
	}
	return waiting
}

// gate is the scheduler's readiness check.
func (a *App) gate(pair string) (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.readiness[pair]
	if !ok {
		return false, "its readiness is not known yet (no reconcile has observed it)"
	}
	return r.Ready, r.Reason()
}

// runner is the scheduler's runner: it hands each occurrence to the executor of the current
// configuration (a run keeps the executor it started with).
type runner struct{ a *App }

func (r runner) Run(ctx context.Context, occ schedule.Occurrence) error {
	return r.a.gen.Load().exec.Run(ctx, occ)
}

func (r runner) Record(ctx context.Context, occ schedule.Occurrence, outcome, reason string) {
	r.a.gen.Load().exec.Record(ctx, occ, outcome, reason)
}

// statusLine is systemd's one-line STATUS.
func (a *App) statusLine() string {
	g := a.gen.Load()
	a.mu.Lock()
	defer a.mu.Unlock()
	ready := 0
	for _, r := range a.readiness {
		if r.Ready {
			ready++
		}
	}
	s := fmt.Sprintf("%d/%d pairs ready, %d jobs", ready, len(g.cfg.Pairs), len(g.cfg.Jobs))
	if a.db != nil {
		s = a.role() + ": " + s
	}
	if a.reconciled {
		s += fmt.Sprintf(", last reconcile %s at %s", a.last.Outcome, a.last.At.Format("15:04:05"))
	}
	return s
}

// observedStore notes every recorded run for metrics and /status.
type observedStore struct {
	history.Store
	app *App
}

func (s *observedStore) Record(ctx context.Context, r history.Run) error {
	err := s.Store.Record(ctx, r)
	s.app.noteRun(r)
	return err
}

// Claim claims through the shared store (postgres backend only; see App.claimer).
func (s *observedStore) Claim(ctx context.Context, r history.Run) (bool, history.Run, error) {
	ok, holder, err := s.Store.(history.Claimer).Claim(ctx, r)
	if ok {
		s.app.noteRun(r)
	}
	return ok, holder, err
}

// claimer is the executor's Claimer: the shared store's, nil for the file backend.
func (a *App) claimer() history.Claimer {
	if a.db == nil {
		return nil
	}
	return a.store.(*observedStore)
}

func (a *App) noteRun(r history.Run) {
	a.mu.Lock()
	a.lastRuns[r.Job] = r
	a.mu.Unlock()
	if !r.Finished() {
		return
	}
	d := time.Duration(-1) // never started: no duration
	if !r.Start.IsZero() && !r.End.IsZero() {
		d = r.End.Sub(r.Start)
	}
	a.metrics.JobFinished(r.Job, string(r.Outcome), d, r.End)
}

// Alive reports that the process works (httpapi.Source).
func (a *App) Alive() bool { return true }

// Ready is /readyz. A leader (and a single-host daemon) is ready when its last reconcile
// did not fail; a follower when its state-database session is up, so that it can take over.
func (a *App) Ready() (bool, string) {
	if a.db != nil && !a.db.Leading() {
		if ok, err := a.db.Connected(); !ok {
			return false, "follower without a state-database session (it cannot take over): " + err
		}
		return true, ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !a.reconciled:
		return false, "the first reconcile has not finished"
	case a.last.Outcome == "failed":
		return false, "the last reconcile failed: " + a.last.Reason
	}
	return true, ""
}

// role is leader, follower or single (the file backend: always leading).
func (a *App) role() string {
	switch {
	case a.db == nil:
		return "single"
	case a.db.Leading():
		return "leader"
	}
	return "follower"
}

// Status is the /status document.
func (a *App) Status() any {
	g := a.gen.Load()
	a.mu.Lock()
	pairs := make([]reconcile.PairReadiness, 0, len(a.readiness))
	for _, name := range slices.Sorted(maps.Keys(a.readiness)) {
		pairs = append(pairs, a.readiness[name])
	}
	last := a.last
	reconciled := a.reconciled
	lastRuns := make(map[string]history.Run, len(a.lastRuns))
	for k, v := range a.lastRuns {
		lastRuns[k] = v
	}
	a.mu.Unlock()

	type jobStatus struct {
		Name     string                 `json:"name"`
		Kind     string                 `json:"kind"`
		Pair     string                 `json:"pair"`
		Cluster  string                 `json:"cluster"`
		Schedule string                 `json:"schedule"`
		Timezone string                 `json:"timezone"`
		Enabled  bool                   `json:"enabled"`
		Next     *time.Time             `json:"next_run,omitempty"`
		Running  bool                   `json:"running"`
		Queued   int                    `json:"queued"`
		LastRun  *history.Run           `json:"last_run,omitempty"`
		Decision *schedule.LastDecision `json:"last_decision,omitempty"`
	}
	var jobs []jobStatus
	sched := a.sched.Load()
	if sched == nil && a.db != nil { // a follower: the leader's runs, from the shared history
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if latest, err := a.store.Latest(ctx); err == nil {
			lastRuns = latest
		}
		cancel()
	}
	if sched == nil {
		for _, e := range g.entries {
			j := jobStatus{Name: e.Job, Pair: e.Pair, Cluster: e.Cluster, Schedule: e.Spec, Timezone: e.Location.String(), Enabled: e.Enabled}
			if job := g.cfg.Job(e.Job); job != nil {
				j.Kind = job.Kind()
			}
			if r, ok := lastRuns[e.Job]; ok {
				j.LastRun = &r
			}
			jobs = append(jobs, j)
		}
	} else {
		for _, st := range sched.Status() {
			j := jobStatus{Name: st.Job, Pair: st.Pair, Cluster: st.Cluster, Schedule: st.Spec, Timezone: st.Location.String(),
				Enabled: st.Enabled, Running: st.Running, Queued: st.Queued, Decision: st.Last}
			if job := g.cfg.Job(st.Job); job != nil {
				j.Kind = job.Kind()
			}
			if !st.Next.IsZero() {
				n := st.Next
				j.Next = &n
			}
			if r, ok := lastRuns[st.Job]; ok {
				j.LastRun = &r
			}
			jobs = append(jobs, j)
		}
	}
	ready, reason := a.Ready()
	role := a.role()
	doc := map[string]any{
		"version": a.opts.Version, "config": a.opts.ConfigPath, "started_at": a.started, "leader": role != "follower",
		"role": role, "state_backend": g.cfg.State.Backend, "ready": ready, "pairs": pairs, "jobs": jobs,
	}
	if a.db != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if li, err := a.db.Leader(ctx); err == nil {
			doc["current_leader"] = li
		} else {
			doc["current_leader_error"] = err.Error()
		}
		cancel()
		if role == "follower" {
			doc["term"] = nil
		} else {
			doc["term"] = a.db.Term()
		}
	}
	if reason != "" {
		doc["reason"] = reason
	}
	if reconciled {
		doc["last_reconcile"] = last
	}
	return doc
}

// Addr is the HTTP endpoint's address (after Run has started it).
func (a *App) Addr() string { return a.http.Addr() }
