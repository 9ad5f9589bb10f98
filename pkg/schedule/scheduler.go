package schedule

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/logging"
)

// Triggers: why an occurrence runs.
const (
	TriggerSchedule = "schedule"
	TriggerCatchUp  = "catch_up"
	TriggerManual   = "manual"
)

// Outcomes the scheduler itself settles (the runner records the others).
const (
	OutcomeSkipped = "skipped"
	OutcomeMissed  = "missed"
	OutcomeFailed  = "failed"
)

// ErrStopping is the cause of a run's context when the scheduler stops and the grace period
// is over: the runner records such a run as interrupted.
var ErrStopping = errors.New("xacctd is stopping")

// Occurrence is one run of a job that is due.
type Occurrence struct {
	Job       string
	Pair      string
	Cluster   string
	Scheduled time.Time // in the job's zone
	Trigger   string
}

// Runner runs occurrences and records what the scheduler decided about them.
type Runner interface {
	// Run executes the occurrence: rendering, retries, timeout, history and the job.* events
	// for it are the runner's business. The context is cancelled with cause ErrStopping when
	// the scheduler stops after its grace period.
	Run(ctx context.Context, occ Occurrence) error
	// Record stores an occurrence the scheduler settled without running it: skipped (pair
	// not ready, overlap, stopping), missed (the latest of a series missed while down) or
	// failed (the run panicked out of Run).
	Record(ctx context.Context, occ Occurrence, outcome, reason string)
}

// Gate says whether a pair's access path is in place; reason says which link is not.
type Gate func(pair string) (ready bool, reason string)

// SkipError is returned by RunNow when the occurrence was skipped, not run.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Options configures a Scheduler.
type Options struct {
	Clock  Clock       // nil: RealClock
	Logger *zap.Logger // nil: no logs
	Runner Runner      // required
	Gate   Gate        // nil: every pair is ready
	// LastScheduled holds each job's latest handled occurrence from the run history: the
	// occurrences after it that passed while xacctd was down are missed (and catch-up runs
	// the latest of them when recent enough).
	LastScheduled map[string]time.Time
	// Late is how late an occurrence may fire and still count as on time (default 1m):
	// later ones (the process was down, suspended or stalled) count as missed.
	Late time.Duration
	// MaxQueue bounds the occurrences waiting behind a running one with overlap: queue
	// (default 10); more are skipped.
	MaxQueue int
	// MaxMissedLogged bounds the job.missed lines of one job at once (default 1000); the
	// rest are summed up in one line.
	MaxMissedLogged int
}

// maxScan bounds the occurrences examined for one job at once (an every-minute job down
// for two months): beyond it, missed occurrences are counted only approximately.
const maxScan = 100_000

// Scheduler fires job occurrences on time in each job's zone: overlap policy per job, a
// concurrency limit per cluster, catch-up after downtime, gating on pair readiness.
type Scheduler struct {
	opts  Options
	clock Clock
	log   *zap.Logger

	mu       sync.Mutex
	entries  map[string]*entryState
	order    []string // job names, for a stable dispatch order
	limits   map[string]int
	slots    map[string]chan struct{} // per cluster
	started  bool
	stopping bool
	// abandoned: stopped by Abandon; occurrences not run are left unrecorded.
	abandoned bool

	wake      chan struct{} // 1-slot: entries changed
	stopCh    chan struct{} // closed by Stop: no new runs
	loopDone  chan struct{}
	runCtx    context.Context // parent of every run; cancelled with ErrStopping
	runCancel context.CancelCauseFunc
	wg        sync.WaitGroup // runs and records in flight
}

type entryState struct {
	Entry
	next   time.Time     // the next occurrence to fire
	active bool          // a run is running or waiting for a cluster slot
	queue  []Occurrence  // overlap: queue
	last   *LastDecision // what happened to the latest occurrence
}

// LastDecision is what the scheduler did with a job's latest occurrence.
type LastDecision struct {
	Scheduled time.Time
	Outcome   string // started, skipped, missed, queued
	Reason    string
}

// New returns a scheduler for entries; limits maps cluster name to its concurrency limit.
func New(entries []Entry, limits map[string]int, opts Options) *Scheduler {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Late <= 0 {
		opts.Late = time.Minute
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 10
	}
	if opts.MaxMissedLogged <= 0 {
		opts.MaxMissedLogged = 1000
	}
	runCtx, runCancel := context.WithCancelCause(context.Background())
	s := &Scheduler{
		opts: opts, clock: opts.Clock, log: opts.Logger,
		entries: map[string]*entryState{}, slots: map[string]chan struct{}{},
		wake: make(chan struct{}, 1), stopCh: make(chan struct{}), loopDone: make(chan struct{}),
		runCtx: runCtx, runCancel: runCancel,
	}
	now := s.clock.Now()
	for _, e := range entries {
		es := &entryState{Entry: e}
		if last, ok := opts.LastScheduled[e.Job]; ok && last.Before(now) {
			es.next = e.Next(last)
		} else {
			es.next = e.Next(now)
		}
		s.entries[e.Job] = es
	}
	s.setLimitsLocked(limits)
	s.reorderLocked()
	return s
}

func (s *Scheduler) reorderLocked() {
	s.order = s.order[:0]
	for name := range s.entries {
		s.order = append(s.order, name)
	}
	slices.Sort(s.order)
}

func (s *Scheduler) setLimitsLocked(limits map[string]int) {
	for cluster, n := range limits {
		if n <= 0 {
			n = 1
		}
		if old, ok := s.slots[cluster]; ok && cap(old) == n {
			continue
		}
		// Runs holding a slot of the old channel release it there; new runs use the new one.
		s.slots[cluster] = make(chan struct{}, n)
	}
	s.limits = limits
}

// Start begins firing occurrences; occurrences missed while xacctd was down are handled
// at once. It returns immediately; Stop ends it.
func (s *Scheduler) Start() {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return
	}
	s.started = true
	s.mu.Unlock()
	go s.loop()
}

func (s *Scheduler) loop() {
	defer close(s.loopDone)
	for {
		now := s.clock.Now()
		next := s.tick(now)
		var timer Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			timer = s.clock.TimerAt(next)
			fire = timer.C()
		}
		select {
		case <-fire:
		case <-s.wake:
			if timer != nil {
				timer.Stop()
			}
		case <-s.stopCh:
			if timer != nil {
				timer.Stop()
			}
			return
		}
	}
}

// tick fires every occurrence due at now and returns the earliest next occurrence.
func (s *Scheduler) tick(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var earliest time.Time
	for _, name := range s.order {
		es := s.entries[name]
		if !es.Enabled || es.next.IsZero() {
			continue
		}
		if !es.next.After(now) {
			s.dispatchLocked(es, now)
		}
		if !es.next.IsZero() && (earliest.IsZero() || es.next.Before(earliest)) {
			earliest = es.next
		}
	}
	return earliest
}

// dispatchLocked handles every occurrence of es from es.next up to now: the latest runs if
// it is on time (or, when late, if catch_up covers it); the others are missed.
func (s *Scheduler) dispatchLocked(es *entryState, now time.Time) {
	var due []time.Time
	t := es.next
	scanned := 0
	for ; !t.IsZero() && !t.After(now) && scanned < maxScan; t = es.Next(t) {
		due = append(due, t)
		scanned++
		if len(due) > s.opts.MaxMissedLogged+1 {
			// Keep the first ones (logged one by one) and the latest.
			due = append(due[:s.opts.MaxMissedLogged], due[len(due)-1])
		}
	}
	capped := scanned == maxScan && !t.IsZero() && !t.After(now)
	if capped {
		t = es.Next(now)
	}
	es.next = t
	if len(due) == 0 {
		return
	}
	latest := due[len(due)-1]
	occ := func(at time.Time, trigger string) Occurrence {
		return Occurrence{Job: es.Job, Pair: es.Pair, Cluster: es.Cluster, Scheduled: at.In(es.Location), Trigger: trigger}
	}
	onTime := now.Sub(latest) <= s.opts.Late
	catchUp := !onTime && es.CatchUp > 0 && now.Sub(latest) <= es.CatchUp
	missed := due[:len(due)-1]
	if !onTime {
		missed = due
	}
	logged := 0
	for _, m := range missed {
		if logged == s.opts.MaxMissedLogged {
			break
		}
		logged++
		runs := catchUp && m.Equal(latest)
		s.log.Warn("job occurrence missed", logging.Event("job.missed"),
			zap.String("job", es.Job), zap.String("pair", es.Pair), zap.String("cluster", es.Cluster),
			zap.Time("scheduled_time", m.In(es.Location)), zap.Bool("catch_up", runs),
			zap.String("reason", missedReason(es, now, m, runs)))
	}
	if notLogged := scanned - logged - boolInt(onTime); notLogged > 0 || capped {
		s.log.Warn("more job occurrences missed", logging.Event("job.missed"),
			zap.String("job", es.Job), zap.String("pair", es.Pair), zap.Int("count", notLogged),
			zap.Bool("at_least", capped), zap.Time("until", latest.In(es.Location)))
	}
	switch {
	case onTime:
		s.fireLocked(es, occ(latest, TriggerSchedule))
	case catchUp:
		s.fireLocked(es, occ(latest, TriggerCatchUp))
	default:
		// Record the latest missed occurrence so that the next start does not report this
		// series again.
		s.recordAsync(occ(latest, TriggerSchedule), OutcomeMissed, missedReason(es, now, latest, false))
		es.last = &LastDecision{Scheduled: latest.In(es.Location), Outcome: OutcomeMissed}
	}
}

func missedReason(es *entryState, now, at time.Time, runs bool) string {
	late := now.Sub(at).Round(time.Second)
	switch {
	case runs:
		return fmt.Sprintf("xacctd was not running at that time (%s ago); catch_up %s covers it, so it runs now", late, es.CatchUp)
	case es.CatchUp > 0:
		return fmt.Sprintf("xacctd was not running at that time (%s ago); only the latest missed occurrence within catch_up %s runs", late, es.CatchUp)
	default:
		return fmt.Sprintf("xacctd was not running at that time (%s ago); catch_up is off", late)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fireLocked starts occ, or queues or skips it per the job's overlap policy.
func (s *Scheduler) fireLocked(es *entryState, occ Occurrence) {
	if s.stopping {
		s.skipLocked(es, occ, "xacctd is stopping")
		return
	}
	if es.active {
		if es.Overlap == "queue" {
			if len(es.queue) < s.opts.MaxQueue {
				es.queue = append(es.queue, occ)
				es.last = &LastDecision{Scheduled: occ.Scheduled, Outcome: "queued"}
				s.log.Info("job occurrence queued behind the running one", logging.Event("job.queued"),
					zap.String("job", es.Job), zap.Time("scheduled_time", occ.Scheduled), zap.Int("queued", len(es.queue)))
				return
			}
			s.skipLocked(es, occ, fmt.Sprintf("%d occurrences already wait behind the running one (overlap: queue)", len(es.queue)))
			return
		}
		s.skipLocked(es, occ, "the previous run is still running (overlap: skip)")
		return
	}
	es.active = true
	es.last = &LastDecision{Scheduled: occ.Scheduled, Outcome: "started"}
	s.wg.Add(1)
	go s.work(es, occ, s.slotLocked(es.Cluster))
}

func (s *Scheduler) skipLocked(es *entryState, occ Occurrence, reason string) {
	if s.abandoned {
		s.log.Info("job occurrence left to the next leader", logging.Event("job.abandoned"),
			zap.String("job", occ.Job), zap.Time("scheduled_time", occ.Scheduled), zap.String("trigger", occ.Trigger))
		return
	}
	es.last = &LastDecision{Scheduled: occ.Scheduled, Outcome: OutcomeSkipped, Reason: reason}
	s.logSkip(occ, reason)
	s.recordAsync(occ, OutcomeSkipped, reason)
}

func (s *Scheduler) logSkip(occ Occurrence, reason string) {
	s.log.Warn("job skipped", logging.Event("job.skipped"),
		zap.String("job", occ.Job), zap.String("pair", occ.Pair), zap.String("cluster", occ.Cluster),
		zap.Time("scheduled_time", occ.Scheduled), zap.String("trigger", occ.Trigger), zap.String("reason", reason))
}

// recordAsync records off the dispatch path: the store may be slow (disk, database).
func (s *Scheduler) recordAsync(occ Occurrence, outcome, reason string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.opts.Runner.Record(s.runCtx, occ, outcome, reason)
	}()
}

// work runs occ, then whatever queued behind it.
func (s *Scheduler) work(es *entryState, occ Occurrence, slot chan struct{}) {
	defer s.wg.Done()
	for {
		_ = s.runOne(s.runCtx, es, occ, slot) // the runner records and logs the outcome
		s.mu.Lock()
		slot = s.slotLocked(es.Cluster)
		if len(es.queue) == 0 {
			es.active = false
			s.mu.Unlock()
			return
		}
		occ = es.queue[0]
		es.queue = es.queue[1:]
		if s.stopping {
			for _, q := range append([]Occurrence{occ}, es.queue...) {
				s.skipLocked(es, q, "xacctd is stopping")
			}
			es.queue = nil
			es.active = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// slotLocked returns the cluster's semaphore.
func (s *Scheduler) slotLocked(cluster string) chan struct{} {
	slot := s.slots[cluster]
	if slot == nil {
		slot = make(chan struct{}, 1) // a cluster the config does not limit: one at a time
		s.slots[cluster] = slot
	}
	return slot
}

// runOne waits for a cluster slot, checks the gate and runs occ. It returns the run's
// error, or a *SkipError.
func (s *Scheduler) runOne(ctx context.Context, es *entryState, occ Occurrence, slot chan struct{}) error {
	stopping := s.stopCh
	if occ.Trigger == TriggerManual {
		stopping = nil // a manual run is its caller's to stop, through ctx
	}
	select {
	case slot <- struct{}{}:
	case <-stopping:
		s.mu.Lock()
		s.skipLocked(es, occ, "xacctd is stopping")
		s.mu.Unlock()
		return &SkipError{Reason: "xacctd is stopping"}
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-slot }()
	if ctx.Err() != nil { // abandoned while waiting: nothing is recorded
		return context.Cause(ctx)
	}
	if s.opts.Gate != nil {
		if ok, reason := s.opts.Gate(occ.Pair); !ok {
			reason = fmt.Sprintf("pair %s is not ready: %s", occ.Pair, reason)
			s.mu.Lock()
			es.last = &LastDecision{Scheduled: occ.Scheduled, Outcome: OutcomeSkipped, Reason: reason}
			s.mu.Unlock()
			s.logSkip(occ, reason)
			s.opts.Runner.Record(context.WithoutCancel(ctx), occ, OutcomeSkipped, reason)
			return &SkipError{Reason: reason}
		}
	}
	return s.safeRun(ctx, occ)
}

// safeRun runs occ; a panic becomes a recorded failure instead of taking the daemon down.
func (s *Scheduler) safeRun(ctx context.Context, occ Occurrence) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("job %s panicked: %v", occ.Job, v)
			s.log.Error("job failed", logging.Event("job.failed"),
				zap.String("job", occ.Job), zap.String("pair", occ.Pair), zap.String("cluster", occ.Cluster),
				zap.Time("scheduled_time", occ.Scheduled), zap.String("error_class", "internal"),
				zap.Error(err), zap.String("stack", string(debug.Stack())))
			s.opts.Runner.Record(context.WithoutCancel(ctx), occ, OutcomeFailed, err.Error())
		}
	}()
	return s.opts.Runner.Run(ctx, occ)
}

// RunNow runs job once, now, through the same path as a scheduled run (overlap, cluster
// limit, gating, panic recovery), and returns its error: nil on success, a *SkipError when
// it was skipped. ctx cancels the run (its cause tells the runner why).
func (s *Scheduler) RunNow(ctx context.Context, job string) error {
	return s.RunAt(ctx, job, time.Time{})
}

// RunAt is RunNow for a given scheduled time (templates see it: a backfill of a past
// occurrence); the zero time means now.
func (s *Scheduler) RunAt(ctx context.Context, job string, scheduled time.Time) error {
	s.mu.Lock()
	es := s.entries[job]
	if es == nil {
		s.mu.Unlock()
		return fmt.Errorf("there is no job named %q", job)
	}
	if scheduled.IsZero() {
		scheduled = s.clock.Now().Truncate(time.Second)
	}
	occ := Occurrence{Job: es.Job, Pair: es.Pair, Cluster: es.Cluster, Scheduled: scheduled.In(es.Location), Trigger: TriggerManual}
	if es.active {
		s.mu.Unlock()
		reason := "a run of this job is already in progress"
		s.logSkip(occ, reason)
		s.opts.Runner.Record(ctx, occ, OutcomeSkipped, reason)
		return &SkipError{Reason: reason}
	}
	es.active = true
	slot := s.slotLocked(es.Cluster)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		es.active = false
		s.mu.Unlock()
	}()
	// The run stops on the caller's ctx or on Stop, whichever first, with its cause.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.runCtx, func() { cancel(context.Cause(s.runCtx)) })
	defer stop()
	return s.runOne(runCtx, es, occ, slot)
}

// Update replaces the entries and cluster limits (a config reload). Running and queued runs
// go on; a job whose schedule, zone or enabled flag changed is scheduled afresh from now.
func (s *Scheduler) Update(entries []Entry, limits map[string]int) {
	s.mu.Lock()
	now := s.clock.Now()
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Job] = true
		es := s.entries[e.Job]
		if es == nil {
			s.entries[e.Job] = &entryState{Entry: e, next: e.Next(now)}
			continue
		}
		// Keep the state object: a run in flight holds it and clears active when done.
		changed := es.Spec != e.Spec || es.Location.String() != e.Location.String() || es.Enabled != e.Enabled
		es.Entry = e
		if changed {
			es.next = e.Next(now)
		}
	}
	for name, es := range s.entries {
		if seen[name] {
			continue
		}
		for _, q := range es.queue {
			s.skipLocked(es, q, "the job was removed from the configuration")
		}
		es.queue = nil
		delete(s.entries, name)
	}
	s.setLimitsLocked(limits)
	s.reorderLocked()
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stop stops firing; occurrences waiting for a cluster slot or in a queue are skipped.
// Running runs may finish until ctx is done; then their contexts are cancelled with
// ErrStopping (the runner cancels their queries on the server and records them as
// interrupted) and Stop waits for them to return.
func (s *Scheduler) Stop(ctx context.Context) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	started := s.started
	close(s.stopCh)
	s.mu.Unlock()
	if started {
		<-s.loopDone
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.runCancel(ErrStopping)
		<-done
	}
	s.runCancel(ErrStopping)
}

// Abandon stops at once, for an instance that has stopped being the leader: nothing new
// starts; occurrences waiting for a cluster slot or in a queue are dropped without being
// recorded (they are the next leader's, which catches them up from the shared history);
// running runs are cancelled with cause (the runner records them interrupted, which gives
// their occurrences back) and Abandon waits for them to return.
func (s *Scheduler) Abandon(cause error) {
	s.mu.Lock()
	s.abandoned = true
	s.mu.Unlock()
	s.runCancel(cause)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Stop(ctx)
}

// Handover stops like Stop (running runs get until ctx is done), but occurrences waiting
// for a cluster slot or in a queue are dropped unrecorded, as by Abandon: an instance that
// stops while others share its history leaves them to the next leader.
func (s *Scheduler) Handover(ctx context.Context) {
	s.mu.Lock()
	s.abandoned = true
	s.mu.Unlock()
	s.Stop(ctx)
}

// Status is one job's schedule state.
type Status struct {
	Entry
	Next    time.Time // zero when disabled or no further occurrence
	Running bool
	Queued  int
	Last    *LastDecision // nil until the scheduler decided something for the job
}

// Status returns every job's state, by name.
func (s *Scheduler) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.order))
	for _, name := range s.order {
		es := s.entries[name]
		st := Status{Entry: es.Entry, Running: es.active, Queued: len(es.queue)}
		if es.Enabled {
			st.Next = es.next
		}
		if es.last != nil {
			l := *es.last
			st.Last = &l
		}
		out = append(out, st)
	}
	return out
}
