package history

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	runsDirName = "runs"
	lockName    = ".lock"
	tmpPrefix   = ".tmp-" // dot first: job names cannot start with one, so no clash
	jobSuffix   = ".json" // the name of version 1 files, kept so that an upgrade finds them

	wOK = 0x2 // access(2)'s W_OK
)

// FileOptions tunes a FileStore. The zero value keeps everything forever.
type FileOptions struct {
	// Retention drops runs that happened (Run.At) more than Retention before their job's
	// history was last written (0: keep). Readers leave them out; compaction removes them.
	Retention time.Duration
	// MaxRunsPerJob keeps the newest runs of a job (0: unlimited). Readers leave the others
	// out; compaction removes them.
	MaxRunsPerJob int
	// Now is the clock for retention and for naming corrupt files; nil is time.Now.
	Now func() time.Time
	// OnCorrupt is called when a job file cannot be parsed and is moved aside, with the
	// file's path and an error saying what was wrong and where the file went. It is called
	// after the store's locks are released, so it may log at leisure. nil ignores it.
	OnCorrupt func(path string, err error)
}

// FileStore is the embedded Store: one log file per job under <dir>/runs, for a single
// host. It is safe for concurrent use by goroutines and by processes sharing the directory.
type FileStore struct {
	runs  string // <dir>/runs
	opts  FileOptions
	now   func() time.Time
	owner Owner
	chown *fileOwner // non-nil when new files must be given to the state directory's owner

	// sem serialises this store's operations; it is a channel so that waiting for it
	// respects ctx. The flock on lock excludes other processes and other FileStores. Both
	// are needed: a flock belongs to an open file description, so goroutines sharing this
	// store's descriptor would not exclude each other, and one of them unlocking would drop
	// the lock another still relies on.
	sem  chan struct{}
	lock *os.File // nil once closed; guarded by sem

	corrupt []corruptFile // found during the current operation; guarded by sem

	// logs is what this store knows of job files from its last read or write of each, so
	// that a Record can append without reading the file again; guarded by sem.
	logs map[string]*logState

	// writeData writes a new job file's content, or lines appended to one; tests replace it
	// to simulate a full disk.
	writeData func(f *os.File, data []byte) error
}

// logState is what a store knows of a version 2 job file. Another process may have
// appended to the file since (it is longer: the new lines are checked), or replaced it
// (another inode, or another header: it is read again). Only an append that did not finish
// can make it shorter, and only past size.
type logState struct {
	file   os.FileInfo // for os.SameFile
	header []byte      // the header line, with the generation of this compaction
	size   int64       // bytes known good: the header and complete lines
	lines  int         // run lines among them, superseded ones included
	live   int         // runs the last full read or compaction found after retention
	// sum summarises the runs when the file was read or written, for Latest and
	// LastScheduled (the daemon calls them as it starts, after Recover read every file);
	// nil once the file has been appended to, or if it had an unfinished append.
	sum *jobSummary
}

// Compaction replaces a job's log by its runs, one line each, once it holds more than
// 2*live + compactSlack lines: at most about half of a log is superseded or expired lines,
// and a compaction, whose cost is about the log's size, comes once per live+compactSlack
// appends or more.
const compactSlack = 64

var _ Store = (*FileStore)(nil)

type fileOwner struct{ uid, gid int }

type corruptFile struct {
	path string
	err  error
}

// OpenFile opens the run history kept under dir, creating dir (0700) and dir/runs (0700)
// as needed, tightening dir/runs to 0700 if its mode is looser, and removing temporary
// files a crash left behind. The caller resolves dir (state.dir, $STATE_DIRECTORY or
// /var/lib/xacctd).
func OpenFile(dir string, opts FileOptions) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("open run history: no state directory given; set state.dir or $STATE_DIRECTORY")
	}
	if opts.Retention < 0 {
		return nil, fmt.Errorf("open run history: retention %s is negative; use 0 to keep runs forever", opts.Retention)
	}
	if opts.MaxRunsPerJob < 0 {
		return nil, fmt.Errorf("open run history: max runs per job %d is negative; use 0 for no limit", opts.MaxRunsPerJob)
	}
	s := &FileStore{
		runs:      filepath.Join(dir, runsDirName),
		opts:      opts,
		now:       opts.Now,
		owner:     CurrentOwner(),
		sem:       make(chan struct{}, 1),
		logs:      make(map[string]*logState),
		writeData: writeAll,
	}
	if s.now == nil {
		s.now = time.Now
	}

	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := mkdirPrivate(dir); err != nil {
			return nil, fileError("create state directory", dir, dir, err)
		}
	case err != nil:
		return nil, fileError("open state directory", dir, dir, err)
	case !st.IsDir():
		return nil, fmt.Errorf("open state directory %s: not a directory; point state.dir at a directory", dir)
	}
	s.chown, err = chownTarget(dir)
	if err != nil {
		return nil, err
	}
	if err := s.prepareRunsDir(); err != nil {
		return nil, err
	}

	lockPath := filepath.Join(s.runs, lockName)
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fileError("open run history lock", lockPath, s.runs, err)
	}
	if err := s.secure(f, nil); err != nil {
		f.Close()
		return nil, fileError("set mode of run history lock", lockPath, s.runs, err)
	}
	s.lock = f
	// Under the exclusive lock no other process is writing, so every temporary file is a
	// crash leftover and not a write in progress.
	err = s.locked(context.Background(), syscall.LOCK_EX, s.removeTemps)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// mkdirPrivate is os.MkdirAll with every directory it creates made 0700. MkdirAll's mode
// passes through the umask, and a strict one (0277) would leave a parent unwritable before
// its child is made.
func mkdirPrivate(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(dir)
		if parent == dir {
			return err
		}
		if err := mkdirPrivate(parent); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o700)
	}
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil // made by someone else meanwhile; its mode is theirs
	case err != nil:
		return err
	}
	return os.Chmod(dir, 0o700)
}

// prepareRunsDir creates <dir>/runs, or tightens its mode: it holds job names, errors and
// host names, and only xacctd has any business there.
func (s *FileStore) prepareRunsDir() error {
	err := os.Mkdir(s.runs, 0o700)
	created := err == nil
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fileError("create run history directory", s.runs, s.runs, err)
	}
	st, err := os.Stat(s.runs)
	if err != nil {
		return fileError("open run history directory", s.runs, s.runs, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("open run history directory %s: not a directory; move it away so xacctd can create the directory", s.runs)
	}
	if created && s.chown != nil {
		if err := os.Lchown(s.runs, s.chown.uid, s.chown.gid); err != nil {
			return fileError("set owner of run history directory", s.runs, s.runs, err)
		}
	}
	// A mode of our own choosing (created, or looser than 0700) becomes 0700; an owner-only
	// mode such as 0500 is the administrator's and stays.
	if created || st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(s.runs, 0o700); err != nil {
			return fileError("set mode of run history directory", s.runs, s.runs, err)
		}
	}
	return nil
}

// chownTarget returns whom new files must belong to. Run as root (say `sudo xacctd jobs
// run`), the CLI would otherwise leave root-owned 0600 files the daemon's user cannot
// read; new files take the state directory's owner instead.
func chownTarget(dir string) (*fileOwner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fileError("open state directory", dir, dir, err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Uid == 0 {
		return nil, nil
	}
	return &fileOwner{uid: int(sys.Uid), gid: int(sys.Gid)}, nil
}

// secure gives a file of ours mode 0600 whatever the umask or someone's chmod, and the
// owner chownTarget chose; st is the file's stat, nil to take it.
func (s *FileStore) secure(f *os.File, st os.FileInfo) error {
	if st == nil {
		var err error
		if st, err = f.Stat(); err != nil {
			return err
		}
	}
	if st.Mode().Perm() != 0o600 {
		if err := f.Chmod(0o600); err != nil {
			return err
		}
	}
	if s.chown != nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != s.chown.uid || int(sys.Gid) != s.chown.gid {
			return f.Chown(s.chown.uid, s.chown.gid)
		}
	}
	return nil
}

func (s *FileStore) removeTemps() error {
	entries, err := os.ReadDir(s.runs)
	if err != nil {
		return fileError("list run history", s.runs, s.runs, err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		p := filepath.Join(s.runs, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fileError("remove leftover temporary file", p, s.runs, err)
		}
	}
	return nil
}

// Record inserts r, or replaces the stored run with r's ID: it appends r to the job's log
// and syncs it, compacting the log when it has grown enough.
func (s *FileStore) Record(ctx context.Context, r Run) error {
	if err := checkRun(r); err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	r = normalize(r)
	return s.locked(ctx, syscall.LOCK_EX, func() error {
		return s.put(r.Job, []Run{r})
	})
}

// put stores runs, new versions of runs of job, under the exclusive lock. They are appended
// to the job's log; when the file cannot take an append (there is none yet, it has the
// version 1 format, it is corrupt, or it is not writable in place) or the log is due for
// compaction, the job's history is read, runs merged into it and the file replaced.
func (s *FileStore) put(job string, runs []Run) error {
	path := s.jobPath(job)
	now := s.now()
	lines, err := encodeLines(runs, now)
	if err != nil {
		return fmt.Errorf("write run history %s: %w", path, err)
	}
	// Compaction replaces the file through the directory: without it the log would grow
	// for ever, so a directory made read-only keeps the history read-only, as it always did.
	if err := syscall.Access(s.runs, wOK); err != nil {
		return fileError("write run history", path, s.runs, err)
	}
	appended, compact, err := s.appendLog(job, lines, len(runs))
	if err != nil || (appended && !compact) {
		return err
	}
	d, err := s.readJob(job, true)
	if err == nil {
		d.runs = upsert(d.runs, runs)
		err = s.writeJob(job, d.runs, now)
	}
	if err != nil && appended {
		return compactError{runIDList(runs), err}
	}
	return err
}

// compactError is put's error when the runs were recorded, appended to the log, but the
// compaction that was due failed. The next write tries again.
type compactError struct {
	runs string
	err  error
}

func (e compactError) Error() string {
	return e.runs + " recorded, but compacting the job's history failed: " + e.err.Error()
}

func (e compactError) Unwrap() error { return e.err }

// upsert puts runs into have, replacing those with the same IDs.
func upsert(have, runs []Run) []Run {
	for _, r := range runs {
		if i := slices.IndexFunc(have, func(o Run) bool { return o.ID == r.ID }); i >= 0 {
			have[i] = r
		} else {
			have = append(have, r)
		}
	}
	return have
}

func runIDList(runs []Run) string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return "run " + strings.Join(ids, ", ")
}

// appendLog appends data, n run lines, to the job's log and syncs it. appended is false,
// with no error, when the file cannot take an append and must be replaced instead; compact
// says that the log, appended to, is due for compaction. A failed append is cut off again,
// so that the file is as it was.
func (s *FileStore) appendLog(job string, data []byte, n int) (appended, compact bool, err error) {
	path := s.jobPath(job)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return false, false, nil // missing, or not writable in place: readJob says which
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, false, nil
	}
	c := s.logs[job]
	if c == nil || !os.SameFile(c.file, fi) || fi.Size() < c.size || !hasPrefix(f, c.header) {
		// Not known, or replaced since: read it all.
		c = nil
		data, err := readAll(f, fi.Size())
		if err != nil {
			return false, false, nil
		}
		d, err := decodeJob(job, data)
		if err != nil || d.version != fileVersion {
			return false, false, nil // corrupt, newer, or to be migrated: readJob deals with it
		}
		c = s.remember(job, fi, d)
	} else if fi.Size() > c.size {
		// Another process appended: check its lines.
		more, err := readAt(f, c.size, fi.Size()-c.size)
		if err != nil {
			return false, false, nil
		}
		lines, end, err := scanLines(more)
		if err != nil {
			delete(s.logs, job)
			return false, false, nil
		}
		c.lines += lines
		c.size += end
	}
	fail := func(err error) (bool, bool, error) {
		delete(s.logs, job) // not sure what the file holds: read it again next time
		return false, false, fileError("write run history", path, s.runs, err)
	}
	if fi.Size() > c.size {
		// An append that did not finish: cut it off, or ours would continue its line.
		if err := f.Truncate(c.size); err != nil {
			return fail(err)
		}
	}
	if err := s.secure(f, fi); err != nil {
		return fail(err)
	}
	if err := s.writeData(f, data); err != nil {
		_ = f.Truncate(c.size) // if this fails too, readers ignore the partial line
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Truncate(c.size)
		return fail(err)
	}
	c.size += int64(len(data))
	c.lines += n
	c.sum = nil
	return true, c.lines > 2*c.live+compactSlack, nil
}

// remember notes what a full read of a version 2 file found.
func (s *FileStore) remember(job string, fi os.FileInfo, d jobData) *logState {
	c := &logState{
		file:   fi,
		header: bytes.Clone(d.header), // not a slice of the data: that would keep it all
		size:   d.end,
		lines:  d.lines,
		live:   len(s.prune(d.runs, s.now())),
	}
	if d.end == fi.Size() {
		sum := summarize(s.prune(d.runs, d.written))
		c.sum = &sum
	}
	s.logs[job] = c
	return c
}

// hasPrefix reports whether f starts with prefix.
func hasPrefix(f *os.File, prefix []byte) bool {
	b, err := readAt(f, 0, int64(len(prefix)))
	return err == nil && bytes.Equal(b, prefix)
}

// readAt reads n bytes at off.
func readAt(f *os.File, off, n int64) ([]byte, error) {
	b := make([]byte, n)
	_, err := f.ReadAt(b, off)
	return b, err
}

// readAll reads f from its start to its end; size, its size as last seen, sizes the buffer.
func readAll(f *os.File, size int64) ([]byte, error) {
	b := make([]byte, 0, size+1) // one more, so that a file the size said is read without growing
	for {
		n, err := f.ReadAt(b[len(b):cap(b)], int64(len(b)))
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = slices.Grow(b, 4096)
		}
	}
}

// Runs returns the job's runs, newest first, at most limit of them (limit <= 0: all).
func (s *FileStore) Runs(ctx context.Context, job string, limit int) ([]Run, error) {
	if err := checkJob(job); err != nil {
		return nil, fmt.Errorf("read run history: %w", err)
	}
	var runs []Run
	err := s.locked(ctx, syscall.LOCK_SH, func() error {
		d, err := s.readJob(job, false)
		runs = s.prune(d.runs, d.written)
		return err
	})
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(runs) > limit {
		runs = runs[:limit]
	}
	return slices.Clip(runs), nil
}

// Latest returns, per job, the newest run. It reads every job file, one at a time, but for
// those this store has read or compacted and that have not changed since.
func (s *FileStore) Latest(ctx context.Context) (map[string]Run, error) {
	out := make(map[string]Run)
	err := s.eachJob(ctx, func(job string, sum jobSummary) {
		if sum.hasRuns {
			out[job] = sum.newest
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LastScheduled returns, per job, the latest ScheduledTime of its scheduled and catch-up
// runs, skipped ones included. It reads job files as Latest does.
func (s *FileStore) LastScheduled(ctx context.Context) (map[string]time.Time, error) {
	out := make(map[string]time.Time)
	err := s.eachJob(ctx, func(job string, sum jobSummary) {
		if sum.hasScheduled {
			out[job] = sum.lastScheduled
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// jobSummary is what Latest and LastScheduled want of a job's history.
type jobSummary struct {
	newest        Run
	hasRuns       bool
	lastScheduled time.Time
	hasScheduled  bool
}

// summarize sums up runs, retention applied, newest first.
func summarize(runs []Run) jobSummary {
	var sum jobSummary
	if len(runs) > 0 {
		sum.newest, sum.hasRuns = runs[0], true
	}
	for _, r := range runs {
		if r.Trigger != TriggerSchedule && r.Trigger != TriggerCatchUp {
			continue
		}
		if r.Outcome == Interrupted {
			continue // not handled: catch-up may run it again
		}
		if !sum.hasScheduled || r.ScheduledTime.After(sum.lastScheduled) {
			sum.lastScheduled, sum.hasScheduled = r.ScheduledTime, true
		}
	}
	return sum
}

// eachJob calls fn with every job's summary under one shared lock, so that all of them
// come from the same moment.
func (s *FileStore) eachJob(ctx context.Context, fn func(job string, sum jobSummary)) error {
	return s.locked(ctx, syscall.LOCK_SH, func() error {
		jobs, err := s.jobs()
		if err != nil {
			return err
		}
		for _, job := range jobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if c := s.logs[job]; c != nil && c.sum != nil && s.unchanged(job, c) {
				fn(job, *c.sum)
				continue
			}
			d, err := s.readJob(job, false)
			if err != nil {
				return err
			}
			fn(job, summarize(s.prune(d.runs, d.written)))
		}
		return nil
	})
}

// unchanged reports whether the job's file is still the one c describes, and no longer:
// the same file (inode and header), of the same size. Nothing but an append changes a
// file's lines, and c.sum is only kept for a file without an unfinished append at its end,
// so the file holds the same lines.
func (s *FileStore) unchanged(job string, c *logState) bool {
	f, err := os.Open(s.jobPath(job))
	if err != nil {
		return false // readJob says why
	}
	defer f.Close()
	fi, err := f.Stat()
	return err == nil && os.SameFile(c.file, fi) && fi.Size() == c.size && hasPrefix(f, c.header)
}

// Recover marks as Interrupted the runs left running by a process of this host that no
// longer exists: its boot differs from ours, or kill(pid, 0) reports ESRCH. Runs of other
// hosts are left alone: this directory cannot tell whether they are still going. A job
// whose file cannot be read or written does not stop the others; Recover returns the runs
// it changed and the errors joined.
func (s *FileStore) Recover(ctx context.Context, now time.Time) ([]Run, error) {
	now = normTime(now)
	var changed []Run
	var errs []error
	err := s.locked(ctx, syscall.LOCK_EX, func() error {
		jobs, err := s.jobs()
		if err != nil {
			return err
		}
		for _, job := range jobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, err := s.readJob(job, true)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var fixed []Run
			for _, r := range s.prune(d.runs, d.written) {
				if r.Outcome != Running || !s.ownerGone(r.Owner) {
					continue
				}
				r.Outcome = Interrupted
				r.End = now
				r.ErrorClass, r.ErrorCode = "", "" // they described an earlier attempt, if anything
				r.Error = fmt.Sprintf("the process running it (pid %d on %s) ended without recording an outcome", r.Owner.PID, r.Owner.Host)
				r.Hint = fmt.Sprintf("see that process's log for why it stopped; `xacctd jobs run %s` runs the job now, otherwise it runs at its next scheduled time", job)
				fixed = append(fixed, r)
			}
			if len(fixed) == 0 {
				continue
			}
			if err := s.put(job, fixed); err != nil {
				errs = append(errs, err)
				if !errors.As(err, new(compactError)) {
					continue
				}
			}
			changed = append(changed, fixed...)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return changed, errors.Join(errs...)
}

// ownerGone reports whether the process o is known to have ended.
func (s *FileStore) ownerGone(o Owner) bool {
	if o.Host != s.owner.Host {
		return false
	}
	if o.Boot != "" && s.owner.Boot != "" && o.Boot != s.owner.Boot {
		return true // rebooted since: whatever has that PID now is another process
	}
	if o.PID == s.owner.PID {
		return false
	}
	if o.PID <= 0 {
		return true // no process at all; kill(0 or -1, 0) would probe process groups
	}
	// EPERM means the process exists under another user; anything else is not proof.
	return errors.Is(syscall.Kill(o.PID, 0), syscall.ESRCH)
}

// Close releases the lock file. It waits for operations in progress; later calls return
// ErrClosed. Closing twice is harmless.
func (s *FileStore) Close() error {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	s.logs = nil
	if err != nil {
		return fmt.Errorf("close run history lock: %w", err)
	}
	return nil
}

// locked runs fn holding sem and the flock (how: LOCK_SH or LOCK_EX), then reports the
// corrupt files fn found once both are released.
func (s *FileStore) locked(ctx context.Context, how int, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.lock == nil {
		<-s.sem
		return ErrClosed
	}
	fd := int(s.lock.Fd())
	if err := flock(ctx, fd, how); err != nil {
		<-s.sem
		return fmt.Errorf("lock run history %s: %w", s.lock.Name(), err)
	}
	err := fn()
	// Unlock cannot fail on a descriptor we hold open except by EINTR; Close would
	// release it in any case.
	for errors.Is(syscall.Flock(fd, syscall.LOCK_UN), syscall.EINTR) {
	}
	corrupt := s.corrupt
	s.corrupt = nil
	<-s.sem
	if s.opts.OnCorrupt != nil {
		for _, c := range corrupt {
			s.opts.OnCorrupt(c.path, c.err)
		}
	}
	return err
}

// flock takes the lock without blocking in the kernel, polling instead, so that a
// process stuck holding it cannot hold up a shutdown whose ctx is cancelled. The polling
// interval stays short: the lock is held for one file's read and write, and a waiter that
// slept longer would leave it idle between the other side's operations.
func flock(ctx context.Context, fd, how int) error {
	const maxDelay = time.Millisecond
	delay := 50 * time.Microsecond
	for {
		err := syscall.Flock(fd, how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case !errors.Is(err, syscall.EWOULDBLOCK):
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, maxDelay)
	}
}

func (s *FileStore) jobPath(job string) string {
	return filepath.Join(s.runs, job+jobSuffix)
}

// jobs lists the jobs that have a history file, in name order.
func (s *FileStore) jobs() ([]string, error) {
	entries, err := os.ReadDir(s.runs)
	if err != nil {
		return nil, fileError("list run history", s.runs, s.runs, err)
	}
	var jobs []string
	for _, e := range entries {
		job, ok := strings.CutSuffix(e.Name(), jobSuffix)
		if ok && !e.IsDir() && checkJob(job) == nil {
			jobs = append(jobs, job)
		}
	}
	return jobs, nil
}

// readJob reads the job's file; a job without one has no runs. A file that cannot be
// parsed is moved aside and reads as empty. forWrite says the caller will replace the file:
// then failing to move it aside is an error, since writing would destroy it.
func (s *FileStore) readJob(job string, forWrite bool) (jobData, error) {
	path := s.jobPath(job)
	data, fi, err := readFileStat(path)
	if errors.Is(err, fs.ErrNotExist) {
		delete(s.logs, job)
		return jobData{}, nil
	}
	if err != nil {
		return jobData{}, fileError("read run history", path, s.runs, err)
	}
	d, err := decodeJob(job, data)
	if err == nil {
		if d.version == fileVersion {
			s.remember(job, fi, d)
		} else {
			delete(s.logs, job)
		}
		return d, nil
	}
	delete(s.logs, job)
	var newer newerFormatError
	if errors.As(err, &newer) {
		return jobData{}, fmt.Errorf("read run history %s: %w", path, err)
	}
	moved, merr := s.moveAside(path)
	switch {
	case merr == nil:
		s.corrupt = append(s.corrupt, corruptFile{path, fmt.Errorf("%w; moved it to %s and started an empty history for job %s", err, moved, job)})
		return jobData{}, nil
	case errors.Is(merr, fs.ErrNotExist):
		// Another reader holding the shared lock moved it first, and reports it.
		return jobData{}, nil
	case forWrite:
		return jobData{}, fmt.Errorf("run history %s cannot be parsed (%v) and cannot be moved aside, so it is left as it is: %w", path, err, merr)
	default:
		s.corrupt = append(s.corrupt, corruptFile{path, fmt.Errorf("%w; it could not be moved aside (%v), so job %s reads as having no runs until the file is fixed or removed", err, merr, job)})
		return jobData{}, nil
	}
}

// readFileStat reads path, and returns its stat too.
func readFileStat(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := readAll(f, fi.Size())
	if err != nil {
		return nil, nil, err
	}
	return data, fi, nil
}

// moveAside renames a corrupt job file to <path>.corrupt-<unix>[.N], never over another
// such file. Readers may call it under the shared lock: a rename is atomic, and the only
// other party that could be moving the same file is another reader, whose rename then
// fails with ENOENT.
func (s *FileStore) moveAside(path string) (string, error) {
	base := path + ".corrupt-" + strconv.FormatInt(s.now().Unix(), 10)
	target := base
	for n := 2; ; n++ {
		if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
			break
		}
		target = base + "." + strconv.Itoa(n)
	}
	if err := os.Rename(path, target); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			err = le.Err
		}
		return "", fileError("move aside corrupt run history", path, s.runs, err)
	}
	return target, syncDir(s.runs)
}

// prune applies retention, as at now, to runs sorted newest first. A zero now applies
// only the count: it is a version 1 file's, whose writer applied its age limit already.
// Runs past the age limit are the oldest (by At, which sorts first), so retention cuts
// runs short and copies nothing.
func (s *FileStore) prune(runs []Run, now time.Time) []Run {
	if s.opts.Retention > 0 && !now.IsZero() {
		cutoff := now.Add(-s.opts.Retention)
		if i := slices.IndexFunc(runs, func(r Run) bool { return r.At().Before(cutoff) }); i >= 0 {
			runs = runs[:i]
		}
	}
	if n := s.opts.MaxRunsPerJob; n > 0 && len(runs) > n {
		runs = runs[:n]
	}
	return runs
}

// writeJob replaces the job's file with a compacted log of runs, retention applied as at
// now, and remembers it.
func (s *FileStore) writeJob(job string, runs []Run, now time.Time) error {
	path := s.jobPath(job)
	delete(s.logs, job)
	slices.SortFunc(runs, compareNewest)
	runs = s.prune(runs, now)
	data, headerLen, err := encodeJob(job, runs, now)
	if err != nil {
		return fmt.Errorf("write run history %s: %w", path, err)
	}
	fi, err := s.writeAtomic(path, data)
	if err != nil {
		return fileError("write run history", path, s.runs, err)
	}
	s.logs[job] = &logState{
		file:   fi,
		header: bytes.Clone(data[:headerLen]),
		size:   int64(len(data)),
		lines:  len(runs),
		live:   len(runs),
	}
	sum := summarize(runs) // the header's time is now: readers apply retention as it was here
	s.logs[job].sum = &sum
	return nil
}

// writeAtomic replaces path with data so that a crash at any point leaves either the old
// or the new content: the data goes to a temporary file in the same directory, is synced
// with its mode and owner, and renamed over path; the directory is synced last so that
// the rename itself survives a power loss. It returns the new file's stat.
func (s *FileStore) writeAtomic(path string, data []byte) (os.FileInfo, error) {
	f, err := os.CreateTemp(s.runs, tmpPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return nil, err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := s.writeData(f, data); err != nil {
		return nil, err
	}
	if err := s.secure(f, nil); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return nil, err
	}
	renamed = true
	return fi, syncDir(s.runs)
}

func writeAll(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some file systems cannot sync a directory and say EINVAL; nothing more can be done.
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// fileError describes a failed file operation: what was done, on which path, the cause
// without the operating system's repetition of the (often temporary) path, and what to do.
func fileError(op, path, dir string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	var advice string
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		advice = "; free space on the file system holding " + dir + ", or lower state.retention or state.max_runs_per_job"
	case errors.Is(err, syscall.EROFS):
		advice = "; the file system is read-only: make " + dir + " writable (with systemd, StateDirectory= or ReadWritePaths=)"
	case errors.Is(err, fs.ErrPermission):
		advice = "; give the user xacctd runs as access to " + dir + " (e.g. chown -R that user), or run this command as that user"
	}
	return fmt.Errorf("%s %s: %w%s", op, path, err, advice)
}
