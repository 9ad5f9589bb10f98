package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xacctd/xacctd/pkg/config"
)

// fakeRunner records what the scheduler asks of it. Runs of a job listed in block wait
// until released (or their context ends).
type fakeRunner struct {
	mu       sync.Mutex
	runs     []Occurrence
	records  []record
	running  map[string]int
	peak     map[string]int // per cluster
	block    map[string]chan struct{}
	panicJob string
	ctxErrs  []error
	started  chan Occurrence
}

type record struct {
	Job, Outcome, Trigger string
	Scheduled             time.Time
	Reason                string
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{running: map[string]int{}, peak: map[string]int{}, block: map[string]chan struct{}{},
		started: make(chan Occurrence, 10000)}
}

func (f *fakeRunner) blockJob(job string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	f.block[job] = ch
	return ch
}

func (f *fakeRunner) Run(ctx context.Context, occ Occurrence) error {
	f.mu.Lock()
	f.runs = append(f.runs, occ)
	f.running[occ.Cluster]++
	if f.running[occ.Cluster] > f.peak[occ.Cluster] {
		f.peak[occ.Cluster] = f.running[occ.Cluster]
	}
	ch := f.block[occ.Job]
	f.mu.Unlock()
	f.started <- occ
	defer func() {
		f.mu.Lock()
		f.running[occ.Cluster]--
		f.mu.Unlock()
	}()
	if occ.Job == f.panicJob {
		panic("boom")
	}
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			f.mu.Lock()
			f.ctxErrs = append(f.ctxErrs, context.Cause(ctx))
			f.mu.Unlock()
			return context.Cause(ctx)
		}
	}
	return nil
}

func (f *fakeRunner) Record(_ context.Context, occ Occurrence, outcome, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, record{Job: occ.Job, Outcome: outcome, Trigger: occ.Trigger, Scheduled: occ.Scheduled.UTC(), Reason: reason})
}

func (f *fakeRunner) snapshot() ([]Occurrence, []record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Occurrence(nil), f.runs...), append([]record(nil), f.records...)
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func entry(t *testing.T, job, spec, zone string, mods ...func(*Entry)) Entry {
	t.Helper()
	sched, err := config.CronParser.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Job: job, Pair: "p-" + job, Cluster: "c1", Spec: spec, Schedule: sched, Location: loc, Overlap: "skip", Enabled: true}
	for _, m := range mods {
		m(&e)
	}
	return e
}

type harness struct {
	t      *testing.T
	clock  *FakeClock
	runner *fakeRunner
	s      *Scheduler
	logs   *observer.ObservedLogs
}

func start(t *testing.T, now time.Time, entries []Entry, limits map[string]int, mod func(*Options)) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	h := &harness{t: t, clock: NewFakeClock(now), runner: newFakeRunner(), logs: logs}
	opts := Options{Clock: h.clock, Logger: zap.New(core), Runner: h.runner}
	if mod != nil {
		mod(&opts)
	}
	h.s = New(entries, limits, opts)
	h.s.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h.s.Stop(ctx)
	})
	h.idle()
	return h
}

// idle waits until the loop has armed its timer again.
func (h *harness) idle() {
	h.t.Helper()
	waitFor(h.t, "the scheduler loop to arm its timer", func() bool { return h.clock.Timers() >= 1 })
}

func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.clock.Advance(d)
	h.idle()
}

func (h *harness) events(name string) []observer.LoggedEntry {
	return h.logs.FilterField(zap.String("event", name)).All()
}

func (h *harness) nextStarted() Occurrence {
	h.t.Helper()
	select {
	case o := <-h.runner.started:
		return o
	case <-time.After(5 * time.Second):
		h.t.Fatal("no run started")
		return Occurrence{}
	}
}

func (h *harness) noneStarted() {
	h.t.Helper()
	select {
	case o := <-h.runner.started:
		h.t.Fatalf("unexpected run of %s at %s", o.Job, o.Scheduled)
	case <-time.After(30 * time.Millisecond):
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFiresOnScheduleInZone(t *testing.T) {
	// 02:30 every day in Berlin, starting on the day of the spring-forward jump: the
	// first run is at 03:00 CEST (the jump), the next at 02:30 CEST.
	h := start(t, mustTime(t, "2026-03-28T23:00:00Z"), []Entry{entry(t, "nightly", "30 2 * * *", "Europe/Berlin")}, nil, nil)
	h.clock.Set(mustTime(t, "2026-03-29T01:00:00Z"))
	occ := h.nextStarted()
	if got, want := occ.Scheduled.UTC(), mustTime(t, "2026-03-29T01:00:00Z"); !got.Equal(want) {
		t.Errorf("first run at %s, want %s", got, want)
	}
	if occ.Scheduled.Location().String() != "Europe/Berlin" || occ.Trigger != TriggerSchedule {
		t.Errorf("occurrence %+v: want Berlin time and trigger schedule", occ)
	}
	h.idle()
	st := h.s.Status()
	if got, want := st[0].Next.UTC(), mustTime(t, "2026-03-30T00:30:00Z"); !got.Equal(want) {
		t.Errorf("next after the jump = %s, want %s", got, want)
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	// xacctd was down from 09:10 to 12:30 (UTC); each job's last handled occurrence is
	// before the downtime.
	last := map[string]time.Time{
		"hourly-catchup":  mustTime(t, "2026-06-01T09:00:00Z"),
		"hourly-nocatch":  mustTime(t, "2026-06-01T09:00:00Z"),
		"hourly-short":    mustTime(t, "2026-06-01T09:00:00Z"),
		"five-min-catch":  mustTime(t, "2026-06-01T09:10:00Z"),
		"new-job-no-last": {},
	}
	delete(last, "new-job-no-last")
	entries := []Entry{
		entry(t, "hourly-catchup", "0 * * * *", "UTC", func(e *Entry) { e.CatchUp = 2 * time.Hour }),
		entry(t, "hourly-nocatch", "0 * * * *", "UTC"),
		entry(t, "hourly-short", "0 * * * *", "UTC", func(e *Entry) { e.CatchUp = 10 * time.Minute }),
		entry(t, "five-min-catch", "*/5 * * * *", "UTC", func(e *Entry) { e.CatchUp = time.Hour; e.Cluster = "c2" }),
		entry(t, "new-job-no-last", "0 * * * *", "UTC", func(e *Entry) { e.CatchUp = 6 * time.Hour }),
	}
	h := start(t, mustTime(t, "2026-06-01T12:30:00Z"), entries, map[string]int{"c1": 5, "c2": 5}, func(o *Options) { o.LastScheduled = last })

	// Exactly two catch-up runs: the latest missed occurrence of the jobs whose window covers it.
	got := map[string]Occurrence{}
	for range 2 {
		o := h.nextStarted()
		got[o.Job] = o
	}
	h.noneStarted()
	want := map[string]Occurrence{
		"hourly-catchup": {Job: "hourly-catchup", Pair: "p-hourly-catchup", Cluster: "c1", Scheduled: mustTime(t, "2026-06-01T12:00:00Z"), Trigger: TriggerCatchUp},
		"five-min-catch": {Job: "five-min-catch", Pair: "p-five-min-catch", Cluster: "c2", Scheduled: mustTime(t, "2026-06-01T12:30:00Z"), Trigger: TriggerSchedule},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}

	// Every missed occurrence is logged, run or not.
	missed := map[string]int{}
	catchUp := map[string]int{}
	for _, e := range h.events("job.missed") {
		job := e.ContextMap()["job"].(string)
		missed[job]++
		if e.ContextMap()["catch_up"] == true {
			catchUp[job]++
		}
	}
	wantMissed := map[string]int{
		"hourly-catchup": 3, // 10:00 11:00 12:00
		"hourly-nocatch": 3,
		"hourly-short":   3,
		"five-min-catch": 39, // 09:15 … 12:25; 12:30 is on time
	}
	if diff := cmp.Diff(wantMissed, missed); diff != "" {
		t.Errorf("job.missed lines per job (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"hourly-catchup": 1}, catchUp); diff != "" {
		t.Errorf("missed occurrences that run (-want +got):\n%s", diff)
	}
	// The latest missed occurrence of the jobs that do not run is recorded as missed, so
	// that the next start does not report them again.
	waitFor(t, "missed records", func() bool { _, r := h.runner.snapshot(); return len(r) == 2 })
	_, recs := h.runner.snapshot()
	for _, r := range recs {
		if r.Outcome != OutcomeMissed || !r.Scheduled.Equal(mustTime(t, "2026-06-01T12:00:00Z")) {
			t.Errorf("record %+v: want missed at 12:00", r)
		}
	}
	// The new job waits for its first occurrence.
	for _, st := range h.s.Status() {
		if st.Job == "new-job-no-last" && !st.Next.Equal(mustTime(t, "2026-06-01T13:00:00Z")) {
			t.Errorf("new job next = %s, want 13:00", st.Next)
		}
	}
}

func TestMissedLogIsBounded(t *testing.T) {
	// Down for 30 days with an every-minute job: 43,200 missed occurrences, 5 lines + 1 sum.
	last := map[string]time.Time{"often": mustTime(t, "2026-05-01T00:00:00Z")}
	h := start(t, mustTime(t, "2026-05-31T00:00:30Z"), []Entry{entry(t, "often", "* * * * *", "UTC")}, nil,
		func(o *Options) { o.LastScheduled = last; o.MaxMissedLogged = 5 })
	lines := h.events("job.missed")
	if len(lines) != 6 {
		t.Fatalf("%d job.missed lines, want 6", len(lines))
	}
	// 05-01 00:01 … 05-31 00:00 are 43,200 occurrences; the last is on time (30 s late).
	if got := lines[5].ContextMap()["count"]; got != int64(43199-5) {
		t.Errorf("summary count = %v, want %d", got, 43199-5)
	}
	h.nextStarted() // 2026-05-31T00:00 is 30 s late: on time
}

func TestOverlapSkip(t *testing.T) {
	h := start(t, mustTime(t, "2026-06-01T00:00:30Z"), []Entry{entry(t, "slow", "* * * * *", "UTC")}, nil, nil)
	release := h.runner.blockJob("slow")
	h.advance(30 * time.Second)
	first := h.nextStarted()
	h.advance(time.Minute) // 00:02 while 00:01 still runs
	h.noneStarted()
	waitFor(t, "the skip record", func() bool { _, r := h.runner.snapshot(); return len(r) == 1 })
	_, recs := h.runner.snapshot()
	want := []record{{Job: "slow", Outcome: OutcomeSkipped, Trigger: TriggerSchedule, Scheduled: mustTime(t, "2026-06-01T00:02:00Z"),
		Reason: "the previous run is still running (overlap: skip)"}}
	if diff := cmp.Diff(want, recs); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if n := len(h.events("job.skipped")); n != 1 {
		t.Errorf("%d job.skipped lines, want 1", n)
	}
	close(release)
	waitFor(t, "the first run to end", func() bool { return !h.s.Status()[0].Running })
	h.advance(time.Minute)
	if second := h.nextStarted(); !second.Scheduled.Equal(first.Scheduled.Add(2 * time.Minute)) {
		t.Errorf("second run at %s, want 00:03", second.Scheduled)
	}
}

func TestOverlapQueue(t *testing.T) {
	h := start(t, mustTime(t, "2026-06-01T00:00:30Z"), []Entry{entry(t, "slow", "* * * * *", "UTC", func(e *Entry) { e.Overlap = "queue" })}, nil,
		func(o *Options) { o.MaxQueue = 2 })
	release := h.runner.blockJob("slow")
	h.advance(30 * time.Second) // 00:01 starts
	h.nextStarted()
	h.advance(time.Minute) // 00:02 queued
	h.advance(time.Minute) // 00:03 queued
	h.advance(time.Minute) // 00:04: queue full, skipped
	h.noneStarted()
	if st := h.s.Status()[0]; st.Queued != 2 || !st.Running {
		t.Fatalf("status %+v: want running with 2 queued", st)
	}
	close(release) // every run from now on returns at once
	var order []string
	for range 2 {
		order = append(order, h.nextStarted().Scheduled.Format("15:04"))
	}
	if diff := cmp.Diff([]string{"00:02", "00:03"}, order); diff != "" {
		t.Errorf("queued runs in order (-want +got):\n%s", diff)
	}
	_, recs := h.runner.snapshot()
	if len(recs) != 1 || recs[0].Outcome != OutcomeSkipped || recs[0].Scheduled.Format("15:04") != "00:04" {
		t.Errorf("records %+v: want 00:04 skipped (queue full)", recs)
	}
}

func TestClusterLimit(t *testing.T) {
	var entries []Entry
	for i := range 5 {
		entries = append(entries, entry(t, fmt.Sprintf("job%d", i), "0 3 * * *", "UTC"))
	}
	entries = append(entries, entry(t, "other", "0 3 * * *", "UTC", func(e *Entry) { e.Cluster = "c2" }))
	h := start(t, mustTime(t, "2026-06-01T02:59:00Z"), entries, map[string]int{"c1": 2, "c2": 1}, nil)
	releases := map[string]chan struct{}{}
	for _, e := range entries {
		releases[e.Job] = h.runner.blockJob(e.Job)
	}
	h.advance(time.Minute)
	started := map[string]bool{}
	for range 3 { // two on c1, one on c2
		started[h.nextStarted().Job] = true
	}
	h.noneStarted()
	if !started["other"] {
		t.Errorf("the job on the other cluster did not start: %v", started)
	}
	for job := range started {
		if job != "other" {
			close(releases[job]) // frees one c1 slot
			break
		}
	}
	h.nextStarted()
	h.noneStarted()
	for job, ch := range releases {
		select {
		case <-ch:
		default:
			if job != "" {
				close(ch)
			}
		}
	}
	waitFor(t, "all runs", func() bool { r, _ := h.runner.snapshot(); return len(r) == 6 })
	h.runner.mu.Lock()
	defer h.runner.mu.Unlock()
	if diff := cmp.Diff(map[string]int{"c1": 2, "c2": 1}, h.runner.peak); diff != "" {
		t.Errorf("peak concurrency per cluster (-want +got):\n%s", diff)
	}
}

func TestGating(t *testing.T) {
	gate := func(pair string) (bool, string) {
		if pair == "p-blocked" {
			return false, "association of role r with cluster c1 is adding, not in-sync"
		}
		return true, ""
	}
	h := start(t, mustTime(t, "2026-06-01T00:59:00Z"), []Entry{
		entry(t, "blocked", "0 * * * *", "UTC"), entry(t, "fine", "0 * * * *", "UTC"),
	}, nil, func(o *Options) { o.Gate = gate })
	h.advance(time.Minute)
	if o := h.nextStarted(); o.Job != "fine" {
		t.Errorf("started %s, want fine", o.Job)
	}
	h.noneStarted()
	waitFor(t, "the skip record", func() bool { _, r := h.runner.snapshot(); return len(r) == 1 })
	_, recs := h.runner.snapshot()
	want := record{Job: "blocked", Outcome: OutcomeSkipped, Trigger: TriggerSchedule, Scheduled: mustTime(t, "2026-06-01T01:00:00Z"),
		Reason: "pair p-blocked is not ready: association of role r with cluster c1 is adding, not in-sync"}
	if diff := cmp.Diff(want, recs[0]); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	sk := h.events("job.skipped")
	if len(sk) != 1 || sk[0].ContextMap()["reason"] != want.Reason || sk[0].Level != zapcore.WarnLevel {
		t.Errorf("job.skipped lines %v", sk)
	}
	// RunNow takes the same path.
	var skip *SkipError
	if err := h.s.RunNow(context.Background(), "blocked"); !errors.As(err, &skip) {
		t.Errorf("RunNow of a gated job: %v, want a *SkipError", err)
	}
}

func TestPanicIsRecordedAsFailure(t *testing.T) {
	h := start(t, mustTime(t, "2026-06-01T00:00:30Z"), []Entry{entry(t, "crashy", "* * * * *", "UTC")}, nil, nil)
	h.runner.panicJob = "crashy"
	h.advance(30 * time.Second)
	h.nextStarted()
	waitFor(t, "the failure record", func() bool { _, r := h.runner.snapshot(); return len(r) == 1 })
	_, recs := h.runner.snapshot()
	if recs[0].Outcome != OutcomeFailed || recs[0].Reason != "job crashy panicked: boom" {
		t.Errorf("record %+v: want failed with the panic", recs[0])
	}
	if n := len(h.events("job.failed")); n != 1 {
		t.Errorf("%d job.failed lines, want 1", n)
	}
	h.advance(time.Minute) // the scheduler goes on
	h.nextStarted()
}

func TestStopInterruptsAfterGrace(t *testing.T) {
	h := start(t, mustTime(t, "2026-06-01T00:00:30Z"), []Entry{
		entry(t, "long", "* * * * *", "UTC"), entry(t, "waiting", "* * * * *", "UTC"),
	}, map[string]int{"c1": 1}, nil)
	h.runner.blockJob("long")
	h.runner.blockJob("waiting")
	h.advance(30 * time.Second)
	first := h.nextStarted() // the other waits for the cluster's only slot
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	h.s.Stop(ctx)
	if waited := time.Since(began); waited < 50*time.Millisecond {
		t.Errorf("Stop returned after %s, before the grace period", waited)
	}
	h.runner.mu.Lock()
	errs := h.runner.ctxErrs
	h.runner.mu.Unlock()
	if len(errs) != 1 || !errors.Is(errs[0], ErrStopping) {
		t.Errorf("run context causes %v, want [ErrStopping]", errs)
	}
	_, recs := h.runner.snapshot()
	if len(recs) != 1 || recs[0].Outcome != OutcomeSkipped || recs[0].Reason != "xacctd is stopping" || recs[0].Job == first.Job {
		t.Errorf("records %+v: want the waiting run skipped because xacctd is stopping", recs)
	}
}

func TestUpdate(t *testing.T) {
	h := start(t, mustTime(t, "2026-06-01T00:00:30Z"), []Entry{entry(t, "a", "* * * * *", "UTC"), entry(t, "b", "* * * * *", "UTC")}, map[string]int{"c1": 5}, nil)
	releaseA := h.runner.blockJob("a")
	h.advance(30 * time.Second)
	h.nextStarted()
	h.nextStarted()
	// Reload: a changes schedule (its run goes on), b is removed, c is added.
	h.s.Update([]Entry{entry(t, "a", "*/5 * * * *", "UTC"), entry(t, "c", "* * * * *", "UTC")}, map[string]int{"c1": 5})
	h.idle()
	h.advance(time.Minute) // 00:02: only c
	if o := h.nextStarted(); o.Job != "c" {
		t.Errorf("started %s, want c", o.Job)
	}
	h.noneStarted()
	if st := h.s.Status(); len(st) != 2 || st[0].Job != "a" || !st[0].Running || !st[0].Next.Equal(mustTime(t, "2026-06-01T00:05:00Z")) {
		t.Errorf("status after reload %+v", st)
	}
	close(releaseA)
}

func TestRunNowDisabledJob(t *testing.T) {
	h := start(t, mustTime(t, "2026-06-01T00:00:30Z"), []Entry{entry(t, "off", "* * * * *", "UTC", func(e *Entry) { e.Enabled = false }),
		entry(t, "tick", "* * * * *", "UTC")}, nil, nil)
	h.advance(time.Minute)
	if o := h.nextStarted(); o.Job != "tick" {
		t.Errorf("started %s; a disabled job must not be scheduled", o.Job)
	}
	if err := h.s.RunNow(context.Background(), "off"); err != nil {
		t.Fatalf("RunNow: %v", err)
	}
	if o := h.nextStarted(); o.Job != "off" || o.Trigger != TriggerManual {
		t.Errorf("manual run %+v", o)
	}
	if err := h.s.RunNow(context.Background(), "nope"); err == nil {
		t.Error("RunNow of an unknown job succeeded")
	}
}

func TestRepeatedHourRunsOnceThroughTheLoop(t *testing.T) {
	// New York falls back at 02:00 EDT on 2026-11-01: 01:30 happens twice; the job runs once.
	h := start(t, mustTime(t, "2026-11-01T04:00:00Z"), []Entry{entry(t, "nightly", "30 1 * * *", "America/New_York")}, nil, nil)
	for range 16 { // 00:00 EDT … 03:00 EST in 15-minute steps
		h.advance(15 * time.Minute)
	}
	runs, _ := h.runner.snapshot()
	if len(runs) != 1 || !runs[0].Scheduled.Equal(mustTime(t, "2026-11-01T05:30:00Z")) {
		t.Errorf("runs %+v: want one, at 01:30 EDT", runs)
	}
}

// TestAbandon: an instance that stops being the leader starts nothing more, cancels its
// running run at once with the given cause, and leaves waiting and queued occurrences
// unrecorded (the next leader runs them from the shared history).
func TestAbandon(t *testing.T) {
	h := start(t, mustTime(t, "2026-06-01T00:00:30Z"), []Entry{
		entry(t, "long", "* * * * *", "UTC", func(e *Entry) { e.Overlap = "queue" }), entry(t, "waiting", "* * * * *", "UTC"),
	}, map[string]int{"c1": 1}, nil)
	h.runner.blockJob("long")
	h.runner.blockJob("waiting")
	h.advance(30 * time.Second) // 00:01: one runs, the other waits for the only slot
	first := h.nextStarted()
	h.advance(time.Minute) // 00:02: queued behind (long) or skipped as overlapping (waiting)
	lost := errors.New("leadership lost")
	began := time.Now()
	h.s.Abandon(lost)
	if took := time.Since(began); took > time.Second {
		t.Errorf("Abandon took %s, want at once", took)
	}
	h.runner.mu.Lock()
	errs := h.runner.ctxErrs
	h.runner.mu.Unlock()
	if len(errs) != 1 || !errors.Is(errs[0], lost) {
		t.Errorf("run context causes %v, want [the abandon cause]", errs)
	}
	runs, recs := h.runner.snapshot()
	if len(runs) != 1 || runs[0].Job != first.Job {
		t.Errorf("runs %v: want only the first", runs)
	}
	for _, r := range recs {
		if r.Reason == "xacctd is stopping" {
			t.Errorf("an abandoned occurrence was recorded: %+v", r)
		}
	}
	if len(h.events("job.abandoned")) == 0 {
		t.Error("no job.abandoned line for the occurrences left to the next leader")
	}
	h.clock.Advance(time.Minute)
	h.noneStarted()
}
