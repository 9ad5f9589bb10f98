package history

import (
	"context"
	"errors"
	"fmt"
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
	jobSuffix   = ".json"
)

// FileOptions tunes a FileStore. The zero value keeps everything forever.
type FileOptions struct {
	// Retention drops runs whose ScheduledTime is older than now-Retention whenever their
	// job's history is written (0: keep).
	Retention time.Duration
	// MaxRunsPerJob keeps the newest runs of a job when its history is written
	// (0: unlimited).
	MaxRunsPerJob int
	// Now is the clock for retention and for naming corrupt files; nil is time.Now.
	Now func() time.Time
	// OnCorrupt is called when a job file cannot be parsed and is moved aside, with the
	// file's path and an error saying what was wrong and where the file went. It is called
	// after the store's locks are released, so it may log at leisure. nil ignores it.
	OnCorrupt func(path string, err error)
}

// FileStore is the embedded Store: one JSON file per job under <dir>/runs, for a single
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

	// writeData writes a new job file's content; tests replace it to simulate a full disk.
	writeData func(f *os.File, data []byte) error
}

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
	if err := s.secure(f); err != nil {
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

// secure gives a file we created mode 0600 whatever the umask, and the owner chownTarget
// chose.
func (s *FileStore) secure(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
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

// Record inserts r, or replaces the stored run with r's ID, then applies retention to the
// job's history and writes it back atomically.
func (s *FileStore) Record(ctx context.Context, r Run) error {
	if err := checkRun(r); err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	r = normalize(r)
	return s.locked(ctx, syscall.LOCK_EX, func() error {
		runs, err := s.readJob(r.Job, true)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(runs, func(o Run) bool { return o.ID == r.ID }); i >= 0 {
			runs[i] = r
		} else {
			runs = append(runs, r)
		}
		slices.SortFunc(runs, compareNewest)
		return s.writeJob(r.Job, s.prune(runs))
	})
}

// Runs returns the job's runs, newest first, at most limit of them (limit <= 0: all).
func (s *FileStore) Runs(ctx context.Context, job string, limit int) ([]Run, error) {
	if err := checkJob(job); err != nil {
		return nil, fmt.Errorf("read run history: %w", err)
	}
	var runs []Run
	err := s.locked(ctx, syscall.LOCK_SH, func() error {
		var err error
		runs, err = s.readJob(job, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(runs) > limit {
		runs = slices.Clip(runs[:limit])
	}
	return runs, nil
}

// Latest returns, per job, the newest run. It reads every job file, one at a time.
func (s *FileStore) Latest(ctx context.Context) (map[string]Run, error) {
	out := make(map[string]Run)
	err := s.eachJob(ctx, func(job string, runs []Run) {
		if len(runs) > 0 {
			out[job] = runs[0]
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LastScheduled returns, per job, the latest ScheduledTime of its scheduled and catch-up
// runs, skipped ones included. It reads every job file, one at a time.
func (s *FileStore) LastScheduled(ctx context.Context) (map[string]time.Time, error) {
	out := make(map[string]time.Time)
	err := s.eachJob(ctx, func(job string, runs []Run) {
		for _, r := range runs {
			if r.Trigger != TriggerSchedule && r.Trigger != TriggerCatchUp {
				continue
			}
			if last, ok := out[job]; !ok || r.ScheduledTime.After(last) {
				out[job] = r.ScheduledTime
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachJob calls fn with every job's history under one shared lock, so that all of them
// come from the same moment.
func (s *FileStore) eachJob(ctx context.Context, fn func(job string, runs []Run)) error {
	return s.locked(ctx, syscall.LOCK_SH, func() error {
		jobs, err := s.jobs()
		if err != nil {
			return err
		}
		for _, job := range jobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			runs, err := s.readJob(job, false)
			if err != nil {
				return err
			}
			fn(job, runs)
		}
		return nil
	})
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
			runs, err := s.readJob(job, true)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			var fixed []Run
			for i, r := range runs {
				if r.Outcome != Running || !s.ownerGone(r.Owner) {
					continue
				}
				r.Outcome = Interrupted
				r.End = now
				r.ErrorClass, r.ErrorCode = "", "" // they described an earlier attempt, if anything
				r.Error = fmt.Sprintf("the process running it (pid %d on %s) ended without recording an outcome", r.Owner.PID, r.Owner.Host)
				r.Hint = fmt.Sprintf("see that process's log for why it stopped; `xacctd jobs run %s` runs the job now, otherwise it runs at its next scheduled time", job)
				runs[i] = r
				fixed = append(fixed, r)
			}
			if len(fixed) == 0 {
				continue
			}
			if err := s.writeJob(job, s.prune(runs)); err != nil {
				errs = append(errs, err)
				continue
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

// readJob returns the job's runs, newest first; none if it has no file. A file that
// cannot be parsed is moved aside and reads as empty. forWrite says the caller will
// replace the file: then failing to move it aside is an error, since writing would
// destroy it.
func (s *FileStore) readJob(job string, forWrite bool) ([]Run, error) {
	path := s.jobPath(job)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fileError("read run history", path, s.runs, err)
	}
	runs, err := decodeJob(job, data)
	if err == nil {
		return runs, nil
	}
	var newer newerFormatError
	if errors.As(err, &newer) {
		return nil, fmt.Errorf("read run history %s: %w", path, err)
	}
	moved, merr := s.moveAside(path)
	switch {
	case merr == nil:
		s.corrupt = append(s.corrupt, corruptFile{path, fmt.Errorf("%w; moved it to %s and started an empty history for job %s", err, moved, job)})
		return nil, nil
	case errors.Is(merr, fs.ErrNotExist):
		// Another reader holding the shared lock moved it first, and reports it.
		return nil, nil
	case forWrite:
		return nil, fmt.Errorf("run history %s cannot be parsed (%v) and cannot be moved aside, so it is left as it is: %w", path, err, merr)
	default:
		s.corrupt = append(s.corrupt, corruptFile{path, fmt.Errorf("%w; it could not be moved aside (%v), so job %s reads as having no runs until the file is fixed or removed", err, merr, job)})
		return nil, nil
	}
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

// prune applies retention to runs sorted newest first.
func (s *FileStore) prune(runs []Run) []Run {
	if s.opts.Retention > 0 {
		cutoff := s.now().Add(-s.opts.Retention)
		runs = slices.DeleteFunc(runs, func(r Run) bool { return r.At().Before(cutoff) })
	}
	if n := s.opts.MaxRunsPerJob; n > 0 && len(runs) > n {
		runs = runs[:n]
	}
	return runs
}

// writeJob replaces the job's file with runs.
func (s *FileStore) writeJob(job string, runs []Run) error {
	path := s.jobPath(job)
	data, err := encodeJob(job, runs)
	if err != nil {
		return fmt.Errorf("write run history %s: %w", path, err)
	}
	if err := s.writeAtomic(path, data); err != nil {
		return fileError("write run history", path, s.runs, err)
	}
	return nil
}

// writeAtomic replaces path with data so that a crash at any point leaves either the old
// or the new content: the data goes to a temporary file in the same directory, is synced
// with its mode and owner, and renamed over path; the directory is synced last so that
// the rename itself survives a power loss.
func (s *FileStore) writeAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(s.runs, tmpPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := s.writeData(f, data); err != nil {
		return err
	}
	if err := s.secure(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	renamed = true
	return syncDir(s.runs)
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
