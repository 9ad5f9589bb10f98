// Package schedule decides when jobs run: cron entries in each job's time zone with ISC
// cron's DST semantics, overlap policy, per-cluster concurrency, catch-up and gating on pair
// readiness (design.md §5). This file holds the occurrence computation; the scheduler that
// uses it arrives with the jobs issue.
package schedule

import (
	"time"

	"github.com/robfig/cron/v3"
)

// starBit is robfig/cron's marker for a field written as "*".
const starBit = 1 << 63

// Next returns the first occurrence of sched strictly after after, in loc, with ISC cron's
// daylight-saving semantics, which robfig/cron's own Next does not have (it skips a time
// that falls into a spring-forward gap and fires a repeated time twice):
//
//   - A job at fixed hours whose time falls into a spring-forward gap runs once, at the
//     first instant after the jump (several times in one gap collapse into that one run).
//   - A job at fixed hours whose time is repeated by fall-back runs once, the first time.
//   - A job with "*" in the hour field follows real time: in a repeated hour it runs again,
//     in a skipped hour it does not run (as ISC cron does for wildcard jobs).
//   - @every schedules are fixed intervals and are not affected.
//
// It returns the zero time when the schedule has no further occurrence.
func Next(sched cron.Schedule, loc *time.Location, after time.Time) time.Time {
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return sched.Next(after)
	}
	s := *spec
	if s.Hour&starBit != 0 {
		s.Location = loc
		return s.Next(after)
	}
	// Work on wall-clock time: find the next matching wall time as if the zone had no
	// transitions, then map it back to an instant in loc.
	s.Location = time.UTC
	naive := wallAsUTC(after.In(loc))
	// Bounded: a wall time can only be "already passed" within one repeated hour or two.
	for i := 0; i < 10000; i++ {
		w := s.Next(naive)
		if w.IsZero() {
			return time.Time{}
		}
		t := instantOf(w, loc)
		if t.After(after) {
			return t
		}
		// The wall time already passed in the first run of a repeated hour.
		naive = w
	}
	return time.Time{}
}

// wallAsUTC keeps t's wall-clock fields and drops its zone.
func wallAsUTC(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instantOf maps a wall time (held as UTC fields) to an instant in loc: the first instant
// showing that wall time, or, when the wall time does not exist (a spring-forward gap), the
// first instant after the jump.
func instantOf(w time.Time, loc *time.Location) time.Time {
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc)
	if !wallAsUTC(t.In(loc)).Equal(w) {
		// In a gap (Go may resolve it to either side): find the jump, the first instant
		// whose wall time is at or after w. Wall time is monotonic around a spring-forward
		// transition, so a binary search over the surrounding hours finds it.
		lo, hi := t.Add(-3*time.Hour).Unix(), t.Add(3*time.Hour).Unix()
		for lo < hi {
			mid := lo + (hi-lo)/2
			if wallAsUTC(time.Unix(mid, 0).In(loc)).Before(w) {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return time.Unix(lo, 0).In(loc)
	}
	// Ambiguous (repeated) wall times: take the earliest instant that shows it.
	for _, d := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		if earlier := t.Add(-d); wallAsUTC(earlier.In(loc)).Equal(w) {
			t = earlier
		}
	}
	return t
}
