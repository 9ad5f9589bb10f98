// Package history keeps the record of job runs: one entry per run with its scheduled time,
// start, end, attempt, outcome and error (design.md §5). The daemon reads it to catch up
// after downtime and to recover runs a crashed process left behind; `jobs list` and
// `jobs history` show it.
//
// Store is the interface the daemon and the CLI use. FileStore, opened with OpenFile, is
// the embedded backend for one host; a PostgreSQL backend shared by several daemons comes
// later and satisfies the same interface: every method is one self-contained operation
// (no state is carried between calls), Record is an upsert keyed by a run ID that NewID
// makes unique across hosts, and Recover only touches runs whose owner it can judge.
//
// # File layout
//
//	<dir>/                  0700, created if missing (usually $STATE_DIRECTORY)
//	<dir>/runs/             0700, always (it is ours; looser modes are tightened)
//	<dir>/runs/.lock        0600, flock(2) target, never replaced
//	<dir>/runs/<job>.json   0600, the job's log: a header line
//	                        {"version":2,"job":"<job>","written":...,"generation":...},
//	                        then one run per line, each a JSON object; a run recorded again
//	                        gets another line, and its last line is the run
//	<dir>/runs/<job>.json.corrupt-<unix>   a job file that could not be parsed, kept aside
//	<dir>/runs/.tmp-*       a compaction in progress, or the leftover of a crash
//
// Recording a run appends one line to its job's log and syncs the file; nothing else is
// read or written when the store knows the file already. Once a log holds more than
// 2*live+64 lines, live being the runs it had after retention when last read or compacted,
// the next write compacts it: the job's runs, retention applied, one line each, go to a new
// file that replaces the log atomically. A compaction costs about what a write of the whole
// history cost before, and comes once per live+64 appends or more.
//
// Files of the previous format, version 1 (one JSON document {"version":1,"job":...,
// "runs":[...]}, rewritten whole by every write), are read as they are and replaced by a
// log the first time their job is written. An xacctd that knows version 1 only cannot read
// a log: it moves the file aside as corrupt (and reports it), so a downgrade loses the
// history from view, though not from disk.
//
// # Guarantees
//
//   - No write leaves a torn history. An append that does not finish (crash, power loss,
//     full disk) leaves at most a partial last line, without its newline: readers ignore
//     it, the next append cuts it off first, and an append that fails cuts its own partial
//     line off at once. Only the last line can be partial, since every append is synced
//     before its lock is released. A compaction replaces the file atomically (temporary
//     file, fsync, rename, fsync of the directory): after a crash the file holds either the
//     old log or the new one. Leftover temporary files are removed by OpenFile.
//   - A Record that returns nil is on disk. One that returns an error has not changed the
//     history, unless the error says that the run was recorded and only the compaction
//     due after it failed (the next write tries again); recording the run again is
//     harmless either way.
//   - Several processes (the daemon and a `jobs run` CLI) may use the same directory at
//     once: every append and read-modify-write holds an exclusive flock on runs/.lock,
//     every read a shared one, so no run is lost to a concurrent write. A store that
//     remembers a file checks, before relying on it, that it is the same file (inode and
//     header, whose generation is new with every compaction) and reads what other
//     processes appended since.
//   - Nothing is silently lost: a job file that cannot be parsed (a line that is not a run
//     anywhere but in the unfinished append at its end, a header naming another job, ...)
//     is moved aside, reported through FileOptions.OnCorrupt, and the job starts an empty
//     history. A file of a newer format is refused with an error, and left alone.
//   - Job files are 0600 and take the state directory's owner when written by root; an
//     append tightens a looser mode. A runs directory that is not writable keeps the
//     history read-only: Record fails even where the file could be appended to, since the
//     log could never be compacted.
//   - Memory is bounded by one job's file, which compaction keeps to about twice the job's
//     history, except for the calls that are about all jobs (Latest, LastScheduled,
//     Recover), which read one file at a time. A store also remembers, per job file it
//     has read or written, its size, header and newest run, so that appends need no read
//     and Latest and LastScheduled need not read a file again that has not changed since
//     (as when the daemon starts, after Recover read them all).
//   - Retention (age and count, as the reading store's FileOptions say) applies to what
//     readers return: a job's history is its runs as retained at its last write (the age
//     limit counts back from when the file was last appended to or compacted, by that
//     writer's clock), so a history nobody writes to does not age. Compaction removes the
//     runs retention drops from the file.
//   - Times are stored in UTC at microsecond precision, what PostgreSQL's timestamptz
//     keeps, so that both backends return the same values.
package history

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Outcome is the state of a run: Running while it executes, then how it ended.
type Outcome string

// The outcomes a run can have.
const (
	Running     Outcome = "running"
	Succeeded   Outcome = "succeeded"
	Failed      Outcome = "failed"
	TimedOut    Outcome = "timed_out"
	Skipped     Outcome = "skipped"     // not started: overlap, pair not ready, ...
	Interrupted Outcome = "interrupted" // stopped by shutdown, or its process died
	Missed      Outcome = "missed"      // xacctd was not running at the time; catch_up did not cover it
)

func (o Outcome) valid() bool {
	switch o {
	case Running, Succeeded, Failed, TimedOut, Skipped, Interrupted, Missed:
		return true
	}
	return false
}

// Trigger says why a run happened.
const (
	TriggerSchedule = "schedule" // the job's schedule came due
	TriggerCatchUp  = "catch_up" // an occurrence missed during downtime
	TriggerManual   = "manual"   // `xacctd jobs run`
)

func validTrigger(t string) bool {
	return t == TriggerSchedule || t == TriggerCatchUp || t == TriggerManual
}

// Run is one execution (or skipped occurrence) of a job.
type Run struct {
	ID            string    `json:"id"`
	Job           string    `json:"job"`
	Pair          string    `json:"pair"`
	Cluster       string    `json:"cluster"`
	Kind          string    `json:"kind"` // unload | copy
	Trigger       string    `json:"trigger"`
	ScheduledTime time.Time `json:"scheduled_time"`
	Start         time.Time `json:"start,omitzero"` // zero for skipped runs
	End           time.Time `json:"end,omitzero"`
	Attempt       int       `json:"attempt"` // attempts made so far (1-based)
	Outcome       Outcome   `json:"outcome"`
	ErrorClass    string    `json:"error_class,omitempty"` // auth, permission, s3_access, sql, timeout, network, config, internal
	ErrorCode     string    `json:"error_code,omitempty"`  // SQLSTATE or AWS error code
	Error         string    `json:"error,omitempty"`
	Hint          string    `json:"hint,omitempty"`
	Rows          *int64    `json:"rows,omitempty"` // when known
	Files         *int      `json:"files,omitempty"`
	Owner         Owner     `json:"owner"` // which process ran it
}

// Finished reports whether the run has an outcome, that is, it is no longer running.
func (r Run) Finished() bool { return r.Outcome != Running }

// Owner identifies the process that ran a run, so that a later process can tell whether
// a run still "running" is really in progress.
type Owner struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Boot is the kernel's boot ID. PIDs start again after a reboot, and a daemon started
	// by systemd often gets the same PID as before; a different Boot proves the owner gone.
	Boot string `json:"boot,omitempty"`
}

var hostBoot = sync.OnceValues(func() (string, string) {
	host, err := os.Hostname()
	if err != nil {
		host = "" // still consistent: every process on this host gets the same value
	}
	// Linux only; elsewhere Boot stays empty and Recover relies on the PID alone.
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return host, strings.TrimSpace(string(b))
})

// CurrentOwner returns the Owner describing this process.
func CurrentOwner() Owner {
	host, boot := hostBoot()
	return Owner{Host: host, PID: os.Getpid(), Boot: boot}
}

// NewID returns a new run ID: the start time in UTC and 48 random bits, e.g.
// 20260308T070000Z-1f2e3d4c5b6a. It sorts by time, is unique across hosts (several
// daemons may share a PostgreSQL store) and is safe in S3 keys and file names.
func NewID(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Store keeps run history. Implementations are safe for concurrent use, by several
// goroutines and, for backends that say so, by several processes or hosts.
type Store interface {
	// Record inserts the run, or replaces the stored run with the same ID (a run is
	// recorded as running when it starts and again when it ends).
	Record(ctx context.Context, r Run) error
	// Runs returns the job's runs, newest first (by At, then ScheduledTime, then ID),
	// at most limit of them (limit <= 0: all). A job without history has none.
	Runs(ctx context.Context, job string, limit int) ([]Run, error)
	// Latest returns, per job, the newest run (any trigger), for `jobs list`. Jobs that
	// are no longer configured but still have history are included; callers filter.
	Latest(ctx context.Context) (map[string]Run, error)
	// LastScheduled returns, per job, the latest ScheduledTime among runs whose trigger is
	// schedule or catch_up, whatever their outcome (skipped and missed included) except
	// interrupted: the scheduler's starting point for catch-up after downtime, so that an
	// occurrence cut short by a stop or a crash runs again when catch_up covers it. Jobs
	// never scheduled are absent.
	LastScheduled(ctx context.Context) (map[string]time.Time, error)
	// Recover marks runs left running by a process that no longer exists as Interrupted,
	// with End = now and an Error naming that process, and returns the runs it changed.
	// A process is judged gone only when that can be known: same host, and a different
	// boot or a PID that is not alive. Other hosts' runs are left alone unless the backend
	// has its own way to judge them (a lease, for a shared database).
	Recover(ctx context.Context, now time.Time) ([]Run, error)
	// Close releases the store's resources; other methods then return ErrClosed.
	Close() error
}

// ErrClosed is returned by a Store's methods after Close.
var ErrClosed = errors.New("run history store is closed")

// jobNameRe is config's rule for entry names. Job names reach file names (and PostgreSQL
// keys), so the store checks them again rather than trust every caller.
var jobNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// checkJob refuses names that are not valid job names; with its rule no name can contain
// a path separator or be "." or "..", or collide with the store's own dot files.
func checkJob(job string) error {
	if !jobNameRe.MatchString(job) {
		return fmt.Errorf("invalid job name %q: must match %s", job, jobNameRe)
	}
	return nil
}

// checkRun refuses runs that could not be stored or read back meaningfully.
func checkRun(r Run) error {
	if err := checkJob(r.Job); err != nil {
		return err
	}
	if r.ID == "" {
		return fmt.Errorf("job %s: run has no ID; make one with history.NewID", r.Job)
	}
	if !r.Outcome.valid() {
		return fmt.Errorf("job %s run %s: unknown outcome %q", r.Job, r.ID, r.Outcome)
	}
	if !validTrigger(r.Trigger) {
		return fmt.Errorf("job %s run %s: unknown trigger %q", r.Job, r.ID, r.Trigger)
	}
	return nil
}

// normalize returns r with its times as every backend stores them.
func normalize(r Run) Run {
	r.ScheduledTime = normTime(r.ScheduledTime)
	r.Start = normTime(r.Start)
	r.End = normTime(r.End)
	return r
}

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// At is when the run happened: its start, else its end (a skipped or missed occurrence is
// settled without starting), else its scheduled time. History is ordered and retained by it,
// so that a backfill of an old occurrence (`jobs run --at`) counts as recent.
func (r Run) At() time.Time {
	switch {
	case !r.Start.IsZero():
		return r.Start
	case !r.End.IsZero():
		return r.End
	}
	return r.ScheduledTime
}

// compareNewest orders runs newest first: by At, then ScheduledTime, then ID, all
// descending, so that the order is total and the same in every backend.
func compareNewest(a, b Run) int {
	if c := b.At().Compare(a.At()); c != 0 {
		return c
	}
	if c := b.ScheduledTime.Compare(a.ScheduledTime); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// Claimer is implemented by stores that several processes share (the PostgreSQL backend).
// Claim records r, a new run of a scheduled occurrence (trigger schedule or catch_up), only
// if no other run holds that occurrence: a run of the same job and scheduled time, with
// trigger schedule or catch_up, whose outcome is not Interrupted (an interrupted run gives
// its occurrence back). It reports whether r was recorded and, when it was not, the run
// that holds the occurrence. A scheduler settling an occurrence (running it, or recording
// it skipped or missed) claims it first, so that one occurrence is handled at most once
// whichever instance gets to it. Such a store's Record refuses, with an error, to store a
// second run holding an occurrence (one recorded interrupted that its process later tries
// to record as finished, after another run claimed the occurrence again).
type Claimer interface {
	Claim(ctx context.Context, r Run) (claimed bool, holder Run, err error)
}

// Check refuses runs that no store can keep; for backends outside this package.
func Check(r Run) error { return checkRun(r) }

// CheckJob refuses names that are not valid job names; for backends outside this package.
func CheckJob(job string) error { return checkJob(job) }

// Normalize returns r with its times as every backend stores them (UTC, microseconds).
func Normalize(r Run) Run { return normalize(r) }
