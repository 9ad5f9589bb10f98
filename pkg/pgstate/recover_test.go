package pgstate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/pkg/history"
)

// TestRecoverJudgesBySession: a run left running is recovered by another instance only
// once the session of the instance that recorded it has ended.
func TestRecoverJudgesBySession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := newDatabase(t)
	optsA, logsA := testOptions()
	optsB, logsB := testOptions()
	a := open(t, dsn, optsA, logsA)
	b := open(t, dsn, optsB, logsB)

	// A runs an occurrence for a process it names (the owner is only recorded; the
	// session decides whether it is alive); an earlier occurrence finished.
	owner := history.Owner{Host: "host-a.example", PID: 4242, Boot: "boot-a"}
	earlier := finished("hourly", "earlier", t0.Add(-time.Hour))
	rows := int64(7)
	earlier.Rows = &rows
	record(t, a, earlier)
	r := running("hourly", "a-run", history.TriggerSchedule, t0)
	r.Owner = owner
	if ok, _, err := a.Claim(ctx, r); err != nil || !ok {
		t.Fatalf("A's Claim = %v, %v", ok, err)
	}
	// B runs one of its own.
	mine := running("daily", "b-run", history.TriggerSchedule, t0)
	record(t, b, mine)

	ny, _ := time.LoadLocation("America/New_York")
	now := time.Date(2026, 3, 8, 4, 30, 0, 987654321, ny)
	for name, db := range map[string]history.Store{"B": b, "A": a} {
		got, err := db.Recover(ctx, now)
		if err != nil || len(got) != 0 {
			t.Errorf("%s.Recover while both sessions live = %v, %v; want nothing", name, runIDs(got), err)
		}
	}
	if diff := cmp.Diff([]history.Run{history.Normalize(r), history.Normalize(earlier)}, runs(t, b, "hourly", 0)); diff != "" {
		t.Errorf("A's runs after Recover (-want +got):\n%s", diff)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	var got []history.Run
	took, ok := waitFor(2*time.Second, func() bool {
		var err error
		got, err = b.Recover(ctx, now)
		if err != nil {
			t.Fatalf("B.Recover: %v", err)
		}
		return len(got) > 0
	})
	if !ok {
		t.Fatalf("B.Recover did not recover A's run within %v of A's Close", took)
	}
	t.Logf("A's run recovered %v after A's Close", took.Round(time.Millisecond))

	want := history.Normalize(r)
	want.Outcome = history.Interrupted
	want.End = now.UTC().Truncate(time.Microsecond)
	want.Hint = `see that process's log for why it stopped; catch_up runs the occurrence again when it covers it, "xacctd jobs run hourly --at TIME" runs it by hand`
	if len(got) == 1 {
		want.Error = got[0].Error // checked below
	}
	if diff := cmp.Diff([]history.Run{want}, got); diff != "" {
		t.Errorf("recovered (-want +got):\n%s", diff)
	}
	if len(got) == 1 {
		checkTimes(t, got[0])
		if e := got[0].Error; !strings.Contains(e, fmt.Sprintf("pid %d on %s", owner.PID, owner.Host)) {
			t.Errorf("recovered run's Error = %q, want it to name pid %d on %s", e, owner.PID, owner.Host)
		}
	}
	if diff := cmp.Diff([]history.Run{want, history.Normalize(earlier)}, runs(t, b, "hourly", 0)); diff != "" {
		t.Errorf("stored after Recover (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]history.Run{history.Normalize(mine)}, runs(t, b, "daily", 0)); diff != "" {
		t.Errorf("B's own running run was touched (-want +got):\n%s", diff)
	}

	// The interrupted occurrence is no longer handled: catch-up starts before it, and it
	// can be claimed again.
	last, err := b.LastScheduled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !last["hourly"].Equal(earlier.ScheduledTime) {
		t.Errorf("LastScheduled[hourly] = %v, want %v (the interrupted occurrence does not count)", last["hourly"], earlier.ScheduledTime)
	}
	if ok, holder, err := b.Claim(ctx, running("hourly", "b-again", history.TriggerCatchUp, t0)); err != nil || !ok {
		t.Errorf("Claim of the recovered occurrence = %v, holder %q, %v; want claimed", ok, holder.ID, err)
	}

	if again, err := b.Recover(ctx, now.Add(time.Hour)); err != nil || len(again) != 0 {
		t.Errorf("second Recover = %v, %v; want nothing to do", runIDs(again), err)
	}
}
