package history

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var t0 = time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC)

// openStore opens a FileStore on dir and closes it when the test ends.
func openStore(t testing.TB, dir string, opts FileOptions) *FileStore {
	t.Helper()
	s, err := OpenFile(dir, opts)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// finished returns a succeeded scheduled run of job, owned by this process.
func finished(job, id string, scheduled time.Time) Run {
	return Run{
		ID: id, Job: job, Pair: "analytics-to-lake", Cluster: "analytics", Kind: "unload",
		Trigger: TriggerSchedule, ScheduledTime: scheduled,
		Start: scheduled.Add(time.Second), End: scheduled.Add(time.Minute),
		Attempt: 1, Outcome: Succeeded, Owner: CurrentOwner(),
	}
}

func record(t testing.TB, s Store, runs ...Run) {
	t.Helper()
	for _, r := range runs {
		if err := s.Record(context.Background(), r); err != nil {
			t.Fatalf("Record %s: %v", r.ID, err)
		}
	}
}

func runIDs(runs []Run) []string {
	ids := make([]string, 0, len(runs))
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	return ids
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordReplacesRunningRun(t *testing.T) {
	s := openStore(t, t.TempDir(), FileOptions{})
	rows, files := int64(1200), 3
	start := Run{
		ID: "r1", Job: "daily", Pair: "p", Cluster: "c", Kind: "unload", Trigger: TriggerSchedule,
		ScheduledTime: t0, Start: t0.Add(time.Second), Attempt: 1, Outcome: Running, Owner: CurrentOwner(),
	}
	end := start
	end.End = t0.Add(time.Minute)
	end.Outcome = Failed
	end.Attempt = 2
	end.ErrorClass, end.ErrorCode = "s3_access", "AccessDenied"
	end.Error = `UNLOAD to "s3://lake/<x>" & more: access denied`
	end.Hint = "check the bucket policy"
	end.Rows, end.Files = &rows, &files

	record(t, s, start)
	got, err := s.Runs(context.Background(), "daily", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Run{start}, got); diff != "" {
		t.Errorf("after start (-want +got):\n%s", diff)
	}
	if got[0].Finished() {
		t.Error("a running run reports Finished")
	}

	record(t, s, end)
	got, err = s.Runs(context.Background(), "daily", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Run{end}, got); diff != "" {
		t.Errorf("after end (-want +got):\n%s", diff)
	}
	if !got[0].Finished() {
		t.Error("a failed run does not report Finished")
	}
	// Errors are stored as written, and the file is a header line, then one line per
	// record of the run: it was appended to, not rewritten.
	data := string(readFile(t, filepath.Join(s.runs, "daily.json")))
	if !strings.Contains(data, `"s3://lake/<x>\" & more`) {
		t.Errorf("error text escaped in file:\n%s", data)
	}
	lines := strings.SplitAfter(data, "\n")
	wantPrefixes := []string{`{"version":2,"job":"daily","written":"`, `{"id":"r1","job":"daily",`, `{"id":"r1","job":"daily",`, ""}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("file has %d lines, want a header and 2 runs:\n%s", len(lines)-1, data)
	}
	for i, want := range wantPrefixes {
		if !strings.HasPrefix(lines[i], want) || (want != "" && !strings.HasSuffix(lines[i], "}\n")) {
			t.Errorf("line %d = %q, want a line starting %q", i+1, lines[i], want)
		}
	}
	if !strings.Contains(lines[1], `"outcome":"running"`) || !strings.Contains(lines[2], `"outcome":"failed"`) {
		t.Errorf("run lines out of order:\n%s", data)
	}
}

func TestRunsOrderAndLimit(t *testing.T) {
	skipped := finished("j", "skip", t0.Add(2*time.Hour))
	skipped.Start, skipped.End, skipped.Outcome, skipped.Attempt = time.Time{}, time.Time{}, Skipped, 0
	lateStart := finished("j", "late-start", t0.Add(2*time.Hour))
	lateStart.Start = t0.Add(2*time.Hour + 5*time.Second)
	give := []Run{ // recorded in this order
		finished("j", "b", t0),
		finished("j", "c", t0.Add(3*time.Hour)),
		skipped,
		finished("j", "a", t0), // same times as b: ID decides
		lateStart,
		finished("j", "oldest", t0.Add(-time.Hour)),
	}
	all := []string{"c", "late-start", "skip", "b", "a", "oldest"}
	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"zero is all", 0, all},
		{"negative is all", -1, all},
		{"limit", 2, all[:2]},
		{"limit above count", 10, all},
	}
	s := openStore(t, t.TempDir(), FileOptions{})
	record(t, s, give...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Runs(context.Background(), "j", tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, runIDs(got)); diff != "" {
				t.Errorf("IDs (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("unknown job", func(t *testing.T) {
		got, err := s.Runs(context.Background(), "never-ran", 0)
		if err != nil || len(got) != 0 {
			t.Errorf("Runs = %v, %v; want none, nil", got, err)
		}
	})
}

func TestTimesNormalised(t *testing.T) {
	s := openStore(t, t.TempDir(), FileOptions{})
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	r := finished("j", "r", time.Date(2026, 3, 8, 3, 0, 0, 123456789, ny))
	record(t, s, r)
	got, err := s.Runs(context.Background(), "j", 0)
	if err != nil {
		t.Fatal(err)
	}
	st := got[0].ScheduledTime
	if st.Location() != time.UTC || st.Nanosecond() != 123456000 || !st.Equal(r.ScheduledTime.Truncate(time.Microsecond)) {
		t.Errorf("ScheduledTime = %v, want %v in UTC at microsecond precision", st, r.ScheduledTime)
	}
}

func TestRetention(t *testing.T) {
	now := t0.Add(100 * 24 * time.Hour)
	ages := []time.Duration{1 * time.Hour, 24 * time.Hour, 89 * 24 * time.Hour, 91 * 24 * time.Hour, 200 * 24 * time.Hour}
	tests := []struct {
		name      string
		retention time.Duration
		max       int
		want      []string
	}{
		{"keep everything", 0, 0, []string{"new", "age0", "age1", "age2", "age3", "age4"}},
		{"by age", 2160 * time.Hour, 0, []string{"new", "age0", "age1", "age2"}},
		{"by count", 0, 3, []string{"new", "age0", "age1"}},
		{"count tighter than age", 2160 * time.Hour, 2, []string{"new", "age0"}},
		{"age tighter than count", 48 * time.Hour, 1000, []string{"new", "age0", "age1"}},
		{"short retention keeps only the new run", time.Hour / 2, 0, []string{"new"}},
		{"a backfill of an old occurrence counts from when it ran", 2160 * time.Hour, 0, []string{"backfill", "new", "age0", "age1", "age2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Seed without retention, then write once with it.
			seed := openStore(t, dir, FileOptions{})
			for i, age := range ages {
				record(t, seed, finished("j", fmt.Sprintf("age%d", i), now.Add(-age)))
			}
			s := openStore(t, dir, FileOptions{Retention: tt.retention, MaxRunsPerJob: tt.max, Now: func() time.Time { return now }})
			record(t, s, finished("j", "new", now))
			if strings.Contains(tt.name, "backfill") {
				old := finished("j", "backfill", now.Add(-300*24*time.Hour))
				old.Trigger, old.Start, old.End = TriggerManual, now.Add(2*time.Second), now.Add(3*time.Second)
				record(t, s, old)
			}
			got, err := s.Runs(context.Background(), "j", 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, runIDs(got)); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPermissions(t *testing.T) {
	tests := []struct {
		name          string
		umask         int
		preRunsDir    fs.FileMode // 0: runs/ does not exist yet
		wantRunsDir   fs.FileMode
		preState      bool // the state directory exists already, 0755
		wantStateMode fs.FileMode
	}{
		{"permissive umask", 0o000, 0, 0o700, false, 0o700},
		{"usual umask", 0o022, 0, 0o700, false, 0o700},
		{"strict umask", 0o077, 0, 0o700, false, 0o700},
		{"umask without owner write", 0o277, 0, 0o700, false, 0o700},
		{"runs dir pre-created 0755 is tightened", 0o000, 0o755, 0o700, true, 0o755},
		{"runs dir pre-created 0770 is tightened", 0o022, 0o770, 0o700, true, 0o755},
		{"runs dir 0500 is the administrator's choice", 0o022, 0o500, 0o500, true, 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The state directory is not ours when it exists already (systemd makes it with
			// StateDirectoryMode=); we only create it 0700 when it is missing.
			dir := filepath.Join(t.TempDir(), "state", "xacctd")
			if tt.preState {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tt.preRunsDir != 0 {
				if err := os.Mkdir(filepath.Join(dir, "runs"), 0o700); err != nil {
					t.Fatal(err)
				}
				// A read-only runs directory can only be used if the lock file exists.
				if err := os.WriteFile(filepath.Join(dir, "runs", ".lock"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(filepath.Join(dir, "runs"), tt.preRunsDir); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(filepath.Join(dir, "runs"), 0o700) }) // so TempDir can remove it
			}
			old := syscall.Umask(tt.umask)
			defer syscall.Umask(old)
			s, err := OpenFile(dir, FileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tt.wantRunsDir&0o200 != 0 {
				record(t, s, finished("j", "r", t0))
			}
			syscall.Umask(old)

			want := map[string]fs.FileMode{
				dir:                                 tt.wantStateMode | fs.ModeDir,
				filepath.Join(dir, "runs"):          tt.wantRunsDir | fs.ModeDir,
				filepath.Join(dir, "runs", ".lock"): 0o600,
			}
			if tt.wantRunsDir&0o200 != 0 {
				want[filepath.Join(dir, "runs", "j.json")] = 0o600
			}
			got := map[string]fs.FileMode{}
			for p := range want {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				got[p] = st.Mode()
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("modes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLeftoverTempFileRemovedOnOpen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, FileOptions{})
	record(t, s, finished("j", "kept", t0))
	runs := filepath.Join(dir, "runs")
	before := readFile(t, filepath.Join(runs, "j.json"))
	// What a crash between CreateTemp and Rename leaves: a partial new version.
	leftover := filepath.Join(runs, ".tmp-j.json-123456")
	if err := os.WriteFile(leftover, before[:len(before)/2], 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, dir, FileOptions{})
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover temp file still there after OpenFile (stat: %v)", err)
	}
	if diff := cmp.Diff(before, readFile(t, filepath.Join(runs, "j.json"))); diff != "" {
		t.Errorf("job file changed (-want +got):\n%s", diff)
	}
	got, err := s2.Runs(context.Background(), "j", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"kept"}, runIDs(got)); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{"truncated by a crash", `{"version":1,"job":"j","runs":[{"id":"x"`, "invalid JSON: unexpected end of JSON input"},
		{"empty", ``, "invalid JSON: unexpected end of JSON input"},
		{"not JSON", "\x00\x00\x00", "invalid JSON: invalid character"},
		{"wrong types", `{"version":1,"job":"j","runs":"many"}`, "invalid JSON: json: cannot unmarshal"},
		{"no version", `{"job":"j","runs":[]}`, "no format version"},
		{"another job's file", `{"version":1,"job":"other","runs":[]}`, `it holds the history of job "other"`},
	}
	now := time.Unix(1_800_000_000, 0)
	for _, tt := range tests {
		for _, op := range []string{"Runs", "Record"} {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				type report struct{ path, err string }
				var reports []report
				var mu sync.Mutex
				s := openStore(t, t.TempDir(), FileOptions{Now: func() time.Time { return now }, OnCorrupt: func(path string, err error) {
					mu.Lock()
					defer mu.Unlock()
					reports = append(reports, report{path, err.Error()})
				}})
				path := filepath.Join(s.runs, "j.json")
				if err := os.WriteFile(path, []byte(tt.give), 0o600); err != nil {
					t.Fatal(err)
				}
				var want []string
				switch op {
				case "Runs":
					got, err := s.Runs(context.Background(), "j", 0)
					if err != nil || len(got) != 0 {
						t.Fatalf("Runs = %v, %v; want no runs and no error", got, err)
					}
				case "Record":
					record(t, s, finished("j", "new", now))
					want = []string{"new"}
				}
				got, err := s.Runs(context.Background(), "j", 0)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, runIDs(got), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("runs after (-want +got):\n%s", diff)
				}

				aside := path + ".corrupt-1800000000"
				if diff := cmp.Diff(tt.give, string(readFile(t, aside))); diff != "" {
					t.Errorf("content moved aside (-want +got):\n%s", diff)
				}
				if len(reports) != 1 || reports[0].path != path ||
					!strings.Contains(reports[0].err, tt.wantErr) || !strings.Contains(reports[0].err, "moved it to "+aside) {
					t.Errorf("OnCorrupt calls = %q; want one for %s saying %q and where it went", reports, path, tt.wantErr)
				}
				latest, err := s.Latest(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := latest["j.json.corrupt-1800000000"]; ok || len(latest) != len(want) {
					t.Errorf("Latest = %v: the moved-aside file must not count as a job", latest)
				}
			})
		}
	}

	t.Run("a second corruption in the same second keeps the first", func(t *testing.T) {
		s := openStore(t, t.TempDir(), FileOptions{Now: func() time.Time { return now }})
		path := filepath.Join(s.runs, "j.json")
		for _, content := range []string{"first", "second"} {
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Runs(context.Background(), "j", 0); err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]string{
			"first":  string(readFile(t, path+".corrupt-1800000000")),
			"second": string(readFile(t, path+".corrupt-1800000000.2")),
		}
		if diff := cmp.Diff(map[string]string{"first": "first", "second": "second"}, got); diff != "" {
			t.Errorf("moved-aside files (-want +got):\n%s", diff)
		}
	})
}

func TestNewerFormatRefused(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"one document", `{"version":3,"job":"j","runs":[],"shards":["x"]}`},
		{"header line", "{\"version\":3,\"job\":\"j\"}\n{\"id\":\"r\",\"v3\":true}\n"},
		{"header over several lines", "{\n  \"version\": 3,\n  \"job\": \"j\"\n}\n{\"id\":\"r\"}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), FileOptions{})
			path := filepath.Join(s.runs, "j.json")
			content := []byte(tt.content)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := s.Runs(context.Background(), "j", 0)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "upgrade xacctd") {
				t.Errorf("Runs error = %v; want one naming %s and saying to upgrade", err, path)
			}
			if err := s.Record(context.Background(), finished("j", "r", t0)); err == nil {
				t.Error("Record over a newer format succeeded")
			}
			if diff := cmp.Diff(content, readFile(t, path)); diff != "" {
				t.Errorf("file changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiskFullKeepsOldFile(t *testing.T) {
	s := openStore(t, t.TempDir(), FileOptions{})
	record(t, s, finished("j", "old", t0))
	path := filepath.Join(s.runs, "j.json")
	before := readFile(t, path)
	// Half of the new content fits, then the disk is full.
	s.writeData = func(f *os.File, data []byte) error {
		if _, err := f.Write(data[:len(data)/2]); err != nil {
			return err
		}
		return &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	err := s.Record(context.Background(), finished("j", "new", t0.Add(time.Hour)))
	want := "write run history " + path + ": no space left on device; free space"
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Record error = %v; want one starting %q that is ENOSPC", err, want)
	}
	if diff := cmp.Diff(before, readFile(t, path)); diff != "" {
		t.Errorf("job file changed (-want +got):\n%s", diff)
	}
	entries, err := os.ReadDir(s.runs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// asOrdinaryUser makes a test of permission errors meaningful when the tests run as root
// (as CI does), which bypasses file permissions: it runs the same test again in a copy of
// the test binary as the user nobody and fails with that run's output unless it passed.
// It returns true in the root process, which then has nothing more to do.
func asOrdinaryUser(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		return false
	}
	const nobody = 65534
	dir, err := os.MkdirTemp("", "xacctd-history-nobody-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "history.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s as the user nobody (the tests run as root, which bypasses file permissions): %v\n%s", t.Name(), err, out)
	}
	return true
}

func TestReadOnlyDirectory(t *testing.T) {
	if asOrdinaryUser(t) {
		return
	}
	s := openStore(t, t.TempDir(), FileOptions{})
	record(t, s, finished("j", "old", t0))
	path := filepath.Join(s.runs, "j.json")
	before := readFile(t, path)
	if err := os.Chmod(s.runs, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(s.runs, 0o700) })

	err := s.Record(context.Background(), finished("j", "new", t0.Add(time.Hour)))
	want := "write run history " + path + ": permission denied; give the user xacctd runs as access to " + s.runs
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Record error = %v; want one starting %q", err, want)
	}
	if diff := cmp.Diff(before, readFile(t, path)); diff != "" {
		t.Errorf("job file changed (-want +got):\n%s", diff)
	}
	// Reading still works.
	got, err := s.Runs(context.Background(), "j", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"old"}, runIDs(got)); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestUnreadableFile(t *testing.T) {
	if asOrdinaryUser(t) {
		return
	}
	s := openStore(t, t.TempDir(), FileOptions{})
	record(t, s, finished("j", "old", t0))
	path := filepath.Join(s.runs, "j.json")
	if err := os.Chmod(path, 0o000); err != nil {
		t.Fatal(err)
	}
	want := "read run history " + path + ": permission denied; give the user xacctd runs as access to"
	for name, call := range map[string]func() error{
		"Runs":   func() error { _, err := s.Runs(context.Background(), "j", 0); return err },
		"Latest": func() error { _, err := s.Latest(context.Background()); return err },
		"Record": func() error { return s.Record(context.Background(), finished("j", "new", t0)) },
	} {
		if err := call(); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s error = %v; want one starting %q", name, err, want)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Runs(context.Background(), "j", 0)
	if err != nil || len(got) != 1 {
		t.Errorf("after fixing the mode: Runs = %v, %v; want the old run", runIDs(got), err)
	}
}

func TestNewFilesTakeStateDirOwnerWhenRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give files away; this covers `sudo xacctd jobs run`")
	}
	const uid, gid = 65534, 65534
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir, FileOptions{})
	record(t, s, finished("j", "r", t0))
	for _, p := range []string{"runs", "runs/.lock", "runs/j.json"} {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != uid || sys.Gid != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, sys.Uid, sys.Gid, uid, gid)
		}
	}
}

func TestConcurrentStores(t *testing.T) {
	const stores, writers = 2, 2
	perWriter := 200
	if testing.Short() {
		perWriter = 20
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, stores*writers)
	for i := range stores {
		s := openStore(t, dir, FileOptions{MaxRunsPerJob: 100_000})
		for w := range writers {
			wg.Go(func() {
				for n := range perWriter {
					id := fmt.Sprintf("s%d-w%d-%03d", i, w, n)
					if err := s.Record(context.Background(), finished("shared", id, t0.Add(time.Duration(n)*time.Minute))); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := openStore(t, dir, FileOptions{}).Runs(context.Background(), "shared", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != stores*writers*perWriter {
		t.Errorf("stored %d runs, want %d: concurrent writes were lost", len(got), stores*writers*perWriter)
	}
}

const helperDirEnv = "XACCTD_HISTORY_HELPER_DIR"

// TestHelperProcess is the writer subprocess of TestConcurrentProcesses.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("helper of TestConcurrentProcesses; it runs only as that test's subprocess")
	}
	n, err := strconv.Atoi(os.Getenv("XACCTD_HISTORY_HELPER_RUNS"))
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir, FileOptions{})
	fmt.Println("ready")
	for i := range n {
		record(t, s, finished("shared", fmt.Sprintf("child-%03d", i), t0.Add(time.Duration(i)*time.Minute)))
	}
}

func TestConcurrentProcesses(t *testing.T) {
	const perProcess = 200
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, "XACCTD_HISTORY_HELPER_RUNS="+strconv.Itoa(perProcess))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewScanner(stdout)
	var rest strings.Builder
	if !out.Scan() || out.Text() != "ready" {
		cmd.Wait()
		t.Fatalf("helper did not start: %q %s", out.Text(), stderr.String())
	}
	// The helper is writing now; write alongside it.
	s := openStore(t, dir, FileOptions{})
	for i := range perProcess {
		record(t, s, finished("shared", fmt.Sprintf("parent-%03d", i), t0.Add(time.Duration(i)*time.Minute)))
	}
	for out.Scan() {
		rest.WriteString(out.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s%s", err, rest.String(), stderr.String())
	}

	got, err := s.Runs(context.Background(), "shared", 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.ID] = true
	}
	var missing []string
	for i := range perProcess {
		for _, who := range []string{"parent", "child"} {
			if id := fmt.Sprintf("%s-%03d", who, i); !seen[id] {
				missing = append(missing, id)
			}
		}
	}
	if len(missing) > 0 || len(got) != 2*perProcess {
		t.Errorf("stored %d runs, want %d; missing %v", len(got), 2*perProcess, missing)
	}
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	name, err := exec.LookPath("true")
	if err != nil {
		name = os.Args[0] // this test binary, running no tests, exits as quickly
	}
	cmd := exec.Command(name, "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestRecover(t *testing.T) {
	me := CurrentOwner()
	dead := me
	dead.PID = deadPID(t)
	otherHost := Owner{Host: me.Host + "-other", PID: dead.PID, Boot: me.Boot}
	beforeReboot := me // same PID as ours, but from an earlier boot
	beforeReboot.Boot = "00000000-0000-0000-0000-000000000000"
	noBoot := dead // written before Owner had Boot
	noBoot.Boot = ""

	running := func(job, id string, o Owner) Run {
		r := finished(job, id, t0)
		r.End, r.Outcome, r.Owner = time.Time{}, Running, o
		return r
	}
	now := t0.Add(time.Hour)
	interrupted := func(r Run) Run {
		r.Outcome, r.End = Interrupted, now
		r.Error = fmt.Sprintf("the process running it (pid %d on %s) ended without recording an outcome", r.Owner.PID, r.Owner.Host)
		r.Hint = "see that process's log for why it stopped; `xacctd jobs run " + r.Job + "` runs the job now, otherwise it runs at its next scheduled time"
		return r
	}
	finishedByDead := finished("a", "a-done", t0.Add(-time.Hour))
	finishedByDead.Owner = dead

	tests := []struct {
		name        string
		give        Run
		wantChanged bool
	}{
		{"dead PID on this host", running("a", "a-dead", dead), true},
		{"dead PID, no boot ID recorded", running("b", "b-dead", noBoot), true},
		{"this process", running("c", "c-mine", me), false},
		{"another host", running("d", "d-other", otherHost), false},
		{"earlier boot, same PID as ours", running("e", "e-reboot", beforeReboot), me.Boot != ""},
		{"finished run of a dead process", finishedByDead, false},
	}
	s := openStore(t, t.TempDir(), FileOptions{})
	var wantChanged []Run
	want := map[string]Run{}
	for _, tt := range tests {
		record(t, s, tt.give)
		want[tt.give.ID] = tt.give
		if tt.wantChanged {
			wantChanged = append(wantChanged, interrupted(tt.give))
			want[tt.give.ID] = interrupted(tt.give)
		}
	}
	changed, err := s.Recover(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantChanged, changed); diff != "" {
		t.Errorf("changed (-want +got):\n%s", diff)
	}
	got := map[string]Run{}
	for _, job := range []string{"a", "b", "c", "d", "e"} {
		runs, err := s.Runs(context.Background(), job, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			got[r.ID] = r
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored after Recover (-want +got):\n%s", diff)
	}

	again, err := s.Recover(context.Background(), now.Add(time.Hour))
	if err != nil || len(again) != 0 {
		t.Errorf("second Recover = %v, %v; want nothing to do", again, err)
	}
}

func TestLatestAndLastScheduled(t *testing.T) {
	run := func(job, id string, trigger string, outcome Outcome, scheduled time.Time) Run {
		r := finished(job, id, scheduled)
		r.Trigger, r.Outcome = trigger, outcome
		return r
	}
	give := []Run{
		run("hourly", "h1", TriggerSchedule, Succeeded, t0),
		run("hourly", "h2", TriggerSchedule, Skipped, t0.Add(time.Hour)), // skipped still counts
		run("hourly", "h3", TriggerManual, Succeeded, t0.Add(3*time.Hour)),
		run("hourly", "h4", TriggerSchedule, Interrupted, t0.Add(2*time.Hour)), // cut short: runs again
		run("daily", "d1", TriggerCatchUp, Failed, t0.Add(-24*time.Hour)),
		run("daily", "d2", TriggerManual, Succeeded, t0),
		run("adhoc", "x1", TriggerManual, Succeeded, t0),
	}
	s := openStore(t, t.TempDir(), FileOptions{})
	record(t, s, give...)

	last, err := s.LastScheduled(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantLast := map[string]time.Time{"hourly": t0.Add(time.Hour), "daily": t0.Add(-24 * time.Hour)}
	if diff := cmp.Diff(wantLast, last); diff != "" {
		t.Errorf("LastScheduled (-want +got):\n%s", diff)
	}

	latest, err := s.Latest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	gotLatest := map[string]string{}
	for job, r := range latest {
		gotLatest[job] = r.ID
	}
	if diff := cmp.Diff(map[string]string{"hourly": "h3", "daily": "d2", "adhoc": "x1"}, gotLatest); diff != "" {
		t.Errorf("Latest (-want +got):\n%s", diff)
	}
}

func TestRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, FileOptions{})
	valid := finished("j", "r", t0)
	tests := []struct {
		name    string
		give    func(Run) Run
		wantErr string
	}{
		{"path traversal", func(r Run) Run { r.Job = "../../etc/x"; return r }, `invalid job name "../../etc/x"`},
		{"slash", func(r Run) Run { r.Job = "a/b"; return r }, `invalid job name "a/b"`},
		{"dot dot", func(r Run) Run { r.Job = ".."; return r }, `invalid job name ".."`},
		{"hidden", func(r Run) Run { r.Job = ".lock"; return r }, `invalid job name ".lock"`},
		{"empty job", func(r Run) Run { r.Job = ""; return r }, `invalid job name ""`},
		{"too long", func(r Run) Run { r.Job = strings.Repeat("a", 65); return r }, `invalid job name`},
		{"NUL", func(r Run) Run { r.Job = "a\x00b"; return r }, `invalid job name`},
		{"no ID", func(r Run) Run { r.ID = ""; return r }, "job j: run has no ID; make one with history.NewID"},
		{"unknown outcome", func(r Run) Run { r.Outcome = "ok"; return r }, `unknown outcome "ok"`},
		{"unknown trigger", func(r Run) Run { r.Trigger = "cron"; return r }, `unknown trigger "cron"`},
		{"unencodable time", func(r Run) Run { r.ScheduledTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC); return r }, "year outside of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Record(context.Background(), tt.give(valid))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Record error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := s.Runs(context.Background(), "../x", 0); err == nil {
		t.Error("Runs accepted a path as job name")
	}
	entries, err := os.ReadDir(filepath.Join(dir, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != ".lock" {
		t.Errorf("files after rejected records: %v, want only .lock", entries)
	}
	if _, err := OpenFile("", FileOptions{}); err == nil {
		t.Error("OpenFile accepted an empty directory")
	}
}

func TestContextCancelledWhileLocked(t *testing.T) {
	s := openStore(t, t.TempDir(), FileOptions{})
	// Another process holding the lock: a separate open file description, as flock sees it.
	other, err := os.Open(filepath.Join(s.runs, lockName))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = s.Record(ctx, finished("j", "r", t0))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "lock run history") {
		t.Errorf("Record error = %v, want the lock wait to end with the context", err)
	}
	// A shared lock elsewhere does not block readers.
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Runs(context.Background(), "j", 0); err != nil {
		t.Errorf("Runs under another reader's shared lock: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s, err := OpenFile(t.TempDir(), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Record(context.Background(), finished("j", "r", t0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Latest(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Latest after Close = %v, want ErrClosed", err)
	}
}

// seedBench returns a store whose job "bench" has existing finished runs, an hour apart,
// in a compacted file, and MaxRunsPerJob existing.
func seedBench(b *testing.B, existing int) *FileStore {
	b.Helper()
	s := openStore(b, b.TempDir(), FileOptions{MaxRunsPerJob: existing, Retention: 2160 * time.Hour, Now: func() time.Time { return t0 }})
	runs := make([]Run, existing)
	for i := range runs {
		rows := int64(i)
		runs[i] = finished("bench", fmt.Sprintf("seed-%04d", i), t0.Add(-time.Duration(i)*time.Hour))
		runs[i].Rows = &rows
	}
	if err := s.writeJob("bench", runs, t0); err != nil {
		b.Fatal(err)
	}
	return s
}

// cpuTime returns the CPU time, user and system, the process has used so far. Record's
// wall time is mostly waiting for fsync; its CPU time is what a busy daemon pays.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecord records one new run at a time into a job with 1,000 runs, the most it
// keeps. Run it long enough (-benchtime 5s) for compactions to be counted in.
func BenchmarkRecord(b *testing.B) {
	const existing = 1000
	s := seedBench(b, existing)
	i := 0
	cpu := cpuTime(b)
	for b.Loop() {
		i++
		if err := s.Record(context.Background(), finished("bench", fmt.Sprintf("new-%06d", i), t0.Add(time.Duration(i)*time.Second))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	got, err := s.Runs(context.Background(), "bench", 0)
	if err != nil || len(got) != existing {
		b.Fatalf("after benchmark: %d runs, %v; want %d", len(got), err, existing)
	}
}

// BenchmarkRuns reads a job's 1,000 runs from its file as large as it gets: 1,000 runs,
// then 531 more recorded as running and again as finished, just short of compaction.
func BenchmarkRuns(b *testing.B) {
	const existing = 1000
	s := seedBench(b, existing)
	for i := range compactSlack/2 + existing/2 - 1 {
		r := finished("bench", fmt.Sprintf("new-%06d", i), t0.Add(time.Duration(i)*time.Second))
		r.Outcome, r.End = Running, time.Time{}
		record(b, s, r)
		r.Outcome, r.End = Succeeded, r.Start.Add(time.Minute)
		record(b, s, r)
	}
	for b.Loop() {
		got, err := s.Runs(context.Background(), "bench", 0)
		if err != nil || len(got) != existing {
			b.Fatalf("%d runs, %v; want %d", len(got), err, existing)
		}
	}
}

// BenchmarkDaemonStart is what the daemon reads as it starts: Recover, Latest and
// LastScheduled on a fresh store, over 10 jobs whose files are as large as they get (see
// BenchmarkRuns).
func BenchmarkDaemonStart(b *testing.B) {
	const jobs, existing = 10, 1000
	dir := b.TempDir()
	opts := FileOptions{MaxRunsPerJob: existing, Retention: 2160 * time.Hour, Now: func() time.Time { return t0 }}
	s := openStore(b, dir, opts)
	for j := range jobs {
		job := fmt.Sprintf("job%02d", j)
		runs := make([]Run, existing)
		for i := range runs {
			runs[i] = finished(job, fmt.Sprintf("seed-%04d", i), t0.Add(-time.Duration(i)*time.Hour))
		}
		if err := s.writeJob(job, runs, t0); err != nil {
			b.Fatal(err)
		}
		for i := range compactSlack/2 + existing/2 - 1 {
			r := finished(job, fmt.Sprintf("new-%06d", i), t0.Add(time.Duration(i)*time.Second))
			r.Outcome, r.End = Running, time.Time{}
			record(b, s, r)
			r.Outcome, r.End = Succeeded, r.Start.Add(time.Minute)
			record(b, s, r)
		}
	}
	ctx := context.Background()
	for b.Loop() {
		s, err := OpenFile(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Recover(ctx, t0); err != nil {
			b.Fatal(err)
		}
		latest, err := s.Latest(ctx)
		if err != nil || len(latest) != jobs {
			b.Fatal(latest, err)
		}
		if _, err := s.LastScheduled(ctx); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
