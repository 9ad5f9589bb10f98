package pgstate_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/pgstate"
)

// running returns a run of job's occurrence at scheduled, just started by this process.
func running(job, id, trigger string, scheduled time.Time) history.Run {
	r := finished(job, id, scheduled)
	r.Trigger, r.End, r.Outcome = trigger, time.Time{}, history.Running
	return r
}

func TestClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, pgstate.Options{})
	at := t0.Add(123456789 * time.Nanosecond) // normalised to microseconds before comparing

	first := running("hourly", "first", history.TriggerSchedule, at)
	ok, holder, err := s.Claim(ctx, first)
	if err != nil || !ok {
		t.Fatalf("first Claim = %v, %+v, %v; want claimed", ok, holder, err)
	}
	if diff := cmp.Diff(history.Run{}, holder); diff != "" {
		t.Errorf("a successful Claim returned a holder:\n%s", diff)
	}
	if diff := cmp.Diff([]history.Run{history.Normalize(first)}, runs(t, s, "hourly", 0)); diff != "" {
		t.Errorf("claimed run not recorded as given (-want +got):\n%s", diff)
	}

	// The same occurrence, whichever trigger schedules it, is refused and names its holder.
	for _, trigger := range []string{history.TriggerSchedule, history.TriggerCatchUp} {
		second := running("hourly", "second-"+trigger, trigger, at)
		ok, holder, err := s.Claim(ctx, second)
		if err != nil || ok {
			t.Errorf("Claim of a held occurrence (%s) = %v, %v; want refused", trigger, ok, err)
		}
		if diff := cmp.Diff(history.Normalize(first), holder); diff != "" {
			t.Errorf("holder (%s) (-want +got):\n%s", trigger, diff)
		}
	}
	// A skipped or missed occurrence is settled: it holds the occurrence as well.
	skipped := finished("hourly", "skipped", at.Add(time.Hour))
	skipped.Start, skipped.End, skipped.Outcome = time.Time{}, at.Add(time.Hour), history.Skipped
	if ok, _, err := s.Claim(ctx, skipped); err != nil || !ok {
		t.Fatalf("Claim of a skipped occurrence = %v, %v", ok, err)
	}
	if ok, holder, err := s.Claim(ctx, running("hourly", "after-skip", history.TriggerCatchUp, at.Add(time.Hour))); err != nil || ok || holder.ID != "skipped" {
		t.Errorf("Claim of a skipped occurrence = %v, holder %q, %v; want refused, holder skipped", ok, holder.ID, err)
	}
	// Other occurrences and jobs are free.
	if ok, _, err := s.Claim(ctx, running("hourly", "next", history.TriggerSchedule, at.Add(2*time.Hour))); err != nil || !ok {
		t.Errorf("Claim of another occurrence = %v, %v; want claimed", ok, err)
	}
	if ok, _, err := s.Claim(ctx, running("daily", "daily-1", history.TriggerSchedule, at)); err != nil || !ok {
		t.Errorf("Claim of another job's occurrence = %v, %v; want claimed", ok, err)
	}

	// Manual runs are not claimed, and do not hold occurrences.
	manual := running("hourly", "manual", history.TriggerManual, at.Add(3*time.Hour))
	if ok, _, err := s.Claim(ctx, manual); err == nil || ok || !strings.Contains(err.Error(), "manual") {
		t.Errorf("Claim of a manual run = %v, %v; want an error naming the trigger", ok, err)
	}
	record(t, s, manual)
	if ok, _, err := s.Claim(ctx, running("hourly", "after-manual", history.TriggerSchedule, at.Add(3*time.Hour))); err != nil || !ok {
		t.Errorf("Claim of an occurrence a manual run has = %v, %v; want claimed", ok, err)
	}

	// A holder recorded interrupted gives the occurrence back, once.
	cut := history.Normalize(first)
	cut.Outcome, cut.End, cut.Error = history.Interrupted, at.Add(time.Minute), "stopped"
	record(t, s, cut)
	again := running("hourly", "again", history.TriggerCatchUp, at)
	if ok, holder, err := s.Claim(ctx, again); err != nil || !ok {
		t.Fatalf("Claim after the holder was interrupted = %v, holder %q, %v; want claimed", ok, holder.ID, err)
	}
	if ok, holder, err := s.Claim(ctx, running("hourly", "third", history.TriggerSchedule, at)); err != nil || ok || holder.ID != "again" {
		t.Errorf("Claim after the re-claim = %v, holder %q, %v; want refused, holder again", ok, holder.ID, err)
	}
	// Recording the interrupted run as succeeded now would give the occurrence two holders:
	// the database refuses it.
	late := cut
	late.Outcome, late.Error = history.Succeeded, ""
	if err := s.Record(ctx, late); err == nil || !strings.Contains(err.Error(), "another run holds occurrence") {
		t.Errorf("Record of a second holder = %v, want refused", err)
	}

	// The claimed run is recorded as given; finishing it is an ordinary Record.
	done := history.Normalize(again)
	done.Outcome, done.End = history.Succeeded, at.Add(2*time.Minute)
	record(t, s, done)
	last, err := s.LastScheduled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := history.Normalize(history.Run{ScheduledTime: at.Add(3 * time.Hour)}).ScheduledTime; !last["hourly"].Equal(want) {
		t.Errorf("LastScheduled[hourly] = %v, want %v", last["hourly"], want)
	}
}

// TestClaimConcurrent is two hosts (two DBs on one database) with 20 schedulers each,
// racing for the same 50 occurrences: each is claimed exactly once.
func TestClaimConcurrent(t *testing.T) {
	t.Parallel()
	const (
		perDB       = 20
		occurrences = 50
	)
	dsn := newDatabase(t)
	var dbs []*pgstate.DB
	for range 2 {
		opts, logs := testOptions()
		dbs = append(dbs, open(t, dsn, opts, logs))
	}
	var (
		wins    [occurrences]atomic.Int32
		winners sync.Map // occurrence -> winning run ID
		mu      sync.Mutex
		holders = map[int][]string{} // occurrence -> holders reported to losers
		errs    atomic.Int32
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Hour) }
	for d, db := range dbs {
		for g := range perDB {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				order := rand.Perm(occurrences)
				if g%2 == 0 { // half of them in step, to collide as often as possible
					for i := range order {
						order[i] = i
					}
				}
				for _, i := range order {
					trigger := history.TriggerSchedule
					if (d+g)%3 == 0 {
						trigger = history.TriggerCatchUp
					}
					r := running("job", fmt.Sprintf("db%d-g%d-o%d", d, g, i), trigger, at(i))
					ok, holder, err := db.Claim(context.Background(), r)
					switch {
					case err != nil:
						errs.Add(1)
						t.Errorf("Claim %s: %v", r.ID, err)
					case ok:
						wins[i].Add(1)
						winners.Store(i, r.ID)
					default:
						if !holder.ScheduledTime.Equal(at(i)) || holder.Job != "job" || holder.ID == "" {
							t.Errorf("Claim %s refused with holder %+v, not a run of the occurrence", r.ID, holder)
						}
						mu.Lock()
						holders[i] = append(holders[i], holder.ID)
						mu.Unlock()
					}
				}
			}()
		}
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d claims in %v", 2*perDB*occurrences, time.Since(began).Round(time.Millisecond))

	for i := range occurrences {
		if n := wins[i].Load(); n != 1 {
			t.Errorf("occurrence %d claimed %d times, want exactly once", i, n)
		}
		w, _ := winners.Load(i)
		for _, h := range holders[i] {
			if h != w {
				t.Errorf("occurrence %d: a loser was told holder %s, the winner is %v", i, h, w)
			}
		}
		if got := len(holders[i]); got != 2*perDB-1 && errs.Load() == 0 {
			t.Errorf("occurrence %d: %d refusals, want %d", i, got, 2*perDB-1)
		}
	}
	conn := connect(t, dsn)
	rows, err := conn.Query(context.Background(), `SELECT scheduled_time, count(*) FROM xacctd_runs
		WHERE job = 'job' AND outcome <> 'interrupted' GROUP BY scheduled_time ORDER BY scheduled_time`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var st time.Time
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%d", st.UTC().Format(time.RFC3339), n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range occurrences {
		want = append(want, at(i).Format(time.RFC3339)+":1")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows per occurrence (-want +got):\n%s", diff)
	}
	var total int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM xacctd_runs`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != occurrences {
		t.Errorf("%d rows in xacctd_runs, want %d", total, occurrences)
	}
}
