package history

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Tests of the version 2 format: appends, unfinished appends, compaction, and reading and
// migrating version 1 files.

// corruptReports collects OnCorrupt calls.
type corruptReports struct {
	mu    sync.Mutex
	calls []string // path: error
}

func (c *corruptReports) add(path string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, path+": "+err.Error())
}

func (c *corruptReports) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

func mustRuns(t *testing.T, s *FileStore, job string) []Run {
	t.Helper()
	runs, err := s.Runs(context.Background(), job, 0)
	if err != nil {
		t.Fatalf("Runs(%s): %v", job, err)
	}
	return runs
}

// logLines returns the lines of a version 2 file after checking its header, failing the
// test unless every line is complete and a run.
func logLines(t *testing.T, path string) (header fileHeader, runs []logLine) {
	t.Helper()
	data := readFile(t, path)
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a complete line:\n%s", path, data)
	}
	lines := bytes.Split(data[:len(data)-1], []byte("\n"))
	if err := json.Unmarshal(lines[0], &header); err != nil || header.Version != 2 {
		t.Fatalf("%s: header %q: %v", path, lines[0], err)
	}
	for i, line := range lines[1:] {
		var l logLine
		if err := json.Unmarshal(line, &l); err != nil || l.ID == "" {
			t.Fatalf("%s line %d %q: %v", path, i+2, line, err)
		}
		runs = append(runs, l)
	}
	return header, runs
}

func lineIDs(lines []logLine) []string {
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.ID
	}
	return ids
}

func appendToFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
}

func TestUnfinishedAppendIgnored(t *testing.T) {
	line := func(id string) string {
		data, err := encodeLines([]Run{finished("j", id, t0.Add(time.Hour))}, t0)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	whole := line("torn")
	tails := []struct{ name, tail string }{
		{"half a line", whole[:len(whole)/2]},
		{"all but the newline", whole[:len(whole)-1]},
		{"a brace", "{"},
		{"zeros, as a file system can leave after a crash", "\x00\x00\x00\x00\x00\x00\x00\x00"},
	}
	for _, tt := range tails {
		// The store that records next:
		//   read:  has read the file, as after a restart (the daemon's Recover reads them all);
		//   cold:  has not seen the file before;
		//   warm:  appended the last whole line, then another process's append did not finish.
		for _, which := range []string{"read", "cold", "warm"} {
			t.Run(tt.name+"/"+which, func(t *testing.T) {
				dir := t.TempDir()
				var reports corruptReports
				opts := FileOptions{OnCorrupt: reports.add}
				s := openStore(t, dir, opts)
				record(t, s, finished("j", "a", t0), finished("j", "b", t0.Add(time.Minute)))
				path := filepath.Join(s.runs, "j.json")
				appendToFile(t, path, tt.tail)
				before := readFile(t, path)
				reader := openStore(t, dir, opts)
				switch which {
				case "read":
					s = reader
				case "cold":
					s = openStore(t, dir, opts)
				}

				if diff := cmp.Diff([]string{"b", "a"}, runIDs(mustRuns(t, reader, "j"))); diff != "" {
					t.Errorf("runs with an unfinished append at the end (-want +got):\n%s", diff)
				}
				latest, err := reader.Latest(context.Background())
				if err != nil || latest["j"].ID != "b" {
					t.Errorf("Latest = %v, %v; want b", latest, err)
				}
				if diff := cmp.Diff(before, readFile(t, path)); diff != "" {
					t.Errorf("reading changed the file (-want +got):\n%s", diff)
				}

				record(t, s, finished("j", "c", t0.Add(2*time.Minute)))
				if diff := cmp.Diff([]string{"c", "b", "a"}, runIDs(mustRuns(t, s, "j"))); diff != "" {
					t.Errorf("runs after the next Record (-want +got):\n%s", diff)
				}
				_, lines := logLines(t, path) // the unfinished append is gone, every line whole
				if diff := cmp.Diff([]string{"a", "b", "c"}, lineIDs(lines)); diff != "" {
					t.Errorf("lines in the file (-want +got):\n%s", diff)
				}
				fresh := openStore(t, dir, opts)
				if diff := cmp.Diff([]string{"c", "b", "a"}, runIDs(mustRuns(t, fresh, "j"))); diff != "" {
					t.Errorf("runs read by a new store (-want +got):\n%s", diff)
				}
				if got := reports.get(); len(got) != 0 {
					t.Errorf("OnCorrupt called for an unfinished append: %q", got)
				}
			})
		}
	}
}

func TestCorruptLog(t *testing.T) {
	good := func(id string, minute int) string {
		data, err := encodeLines([]Run{finished("j", id, t0.Add(time.Duration(minute)*time.Minute))}, t0)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	header := `{"version":2,"job":"j","written":"2026-03-08T07:00:00Z","generation":"0011223344556677"}` + "\n"
	tests := []struct {
		name    string
		give    string
		wantErr string
	}{
		{"malformed line in the middle", header + good("a", 0) + "{\"id\":\"b\",\"job\n" + good("c", 2), "line 3: invalid JSON"},
		{"malformed last line, newline and all", header + good("a", 0) + "{\"id\":\"b\"\n", "line 3: invalid JSON"},
		{"superseded line malformed", header + "{\"id\":\"a\",]\n" + good("a", 0), "line 2: invalid JSON"},
		{"wrong types", header + `{"id":"a","attempt":"one"}` + "\n", "line 2: invalid JSON: json: cannot unmarshal"},
		{"run without id", header + `{"job":"j","outcome":"succeeded"}` + "\n", "line 2: run has no id"},
		{"another job's log", strings.Replace(header, `"job":"j"`, `"job":"k"`, 1) + good("a", 0), `it holds the history of job "k"`},
		{"version 2 without its header line", `{"version":2,"job":"j","runs":[]}`, "format version 2 without its header line"},
	}
	now := time.Unix(1_800_000_000, 0)
	for _, tt := range tests {
		for _, op := range []string{"Runs", "Record", "Record after an append by another process"} {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				var reports corruptReports
				s := openStore(t, t.TempDir(), FileOptions{Now: func() time.Time { return now }, OnCorrupt: reports.add})
				path := filepath.Join(s.runs, "j.json")
				if op == "Record after an append by another process" {
					// This store knows the file up to its first run, then the rest is appended.
					first := header + good("a", 0)
					rest, ok := strings.CutPrefix(tt.give, first)
					if !ok {
						t.Skip("the damage is not in lines appended after the first run")
					}
					if err := os.WriteFile(path, []byte(first), 0o600); err != nil {
						t.Fatal(err)
					}
					if len(mustRuns(t, s, "j")) != 1 {
						t.Fatal("setup: first run not read")
					}
					appendToFile(t, path, rest)
				} else if err := os.WriteFile(path, []byte(tt.give), 0o600); err != nil {
					t.Fatal(err)
				}
				var want []string
				if op == "Runs" {
					if got, err := s.Runs(context.Background(), "j", 0); err != nil || len(got) != 0 {
						t.Fatalf("Runs = %v, %v; want no runs and no error", runIDs(got), err)
					}
				} else {
					record(t, s, finished("j", "new", now))
					want = []string{"new"}
				}
				if diff := cmp.Diff(want, runIDs(mustRuns(t, s, "j")), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("runs after (-want +got):\n%s", diff)
				}
				aside := path + ".corrupt-1800000000"
				if diff := cmp.Diff(tt.give, string(readFile(t, aside))); diff != "" {
					t.Errorf("content moved aside (-want +got):\n%s", diff)
				}
				got := reports.get()
				if len(got) != 1 || !strings.HasPrefix(got[0], path+": ") || !strings.Contains(got[0], tt.wantErr) || !strings.Contains(got[0], "moved it to "+aside) {
					t.Errorf("OnCorrupt calls = %q; want one for %s saying %q and where it went", got, path, tt.wantErr)
				}
			})
		}
	}
}

func TestRecordAppends(t *testing.T) {
	s := openStore(t, t.TempDir(), FileOptions{MaxRunsPerJob: 100})
	path := filepath.Join(s.runs, "j.json")
	record(t, s, finished("j", "a", t0))
	h1, _ := logLines(t, path)
	st1, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	running := finished("j", "b", t0.Add(time.Hour))
	running.Outcome, running.End = Running, time.Time{}
	record(t, s, running, finished("j", "b", t0.Add(time.Hour)))
	h2, lines := logLines(t, path)
	st2, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(st1, st2) || h1 != h2 {
		t.Error("the file was replaced, not appended to")
	}
	if diff := cmp.Diff([]string{"a", "b", "b"}, lineIDs(lines)); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if !lines[0].Written.IsZero() || !lines[1].Written.After(t0) {
		t.Errorf("written stamps %v, %v: want none on the line the file was created with, and the time of the append on appended ones", lines[0].Written, lines[1].Written)
	}
	got := mustRuns(t, s, "j")
	if diff := cmp.Diff([]Run{finished("j", "b", t0.Add(time.Hour)), finished("j", "a", t0)}, got); diff != "" {
		t.Errorf("runs: the last line of a run wins (-want +got):\n%s", diff)
	}
}

func TestCompaction(t *testing.T) {
	t.Run("by count", func(t *testing.T) {
		const max = 10
		s := openStore(t, t.TempDir(), FileOptions{MaxRunsPerJob: max})
		path := filepath.Join(s.runs, "j.json")
		compactions := 0
		var gen string
		for i := range 300 {
			r := finished("j", fmt.Sprintf("r%03d", i), t0.Add(time.Duration(i)*time.Minute))
			r.Outcome, r.End = Running, time.Time{}
			record(t, s, r, finished("j", r.ID, r.ScheduledTime))
			h, lines := logLines(t, path)
			if h.Generation != gen {
				compactions++
				gen = h.Generation
			}
			if len(lines) > 2*max+compactSlack {
				t.Fatalf("after %d runs the file has %d lines: not compacted", i+1, len(lines))
			}
		}
		if compactions < 5 {
			t.Errorf("%d compactions in 600 records, want several", compactions)
		}
		want := []string{"r299", "r298", "r297", "r296", "r295", "r294", "r293", "r292", "r291", "r290"}
		if diff := cmp.Diff(want, runIDs(mustRuns(t, s, "j"))); diff != "" {
			t.Errorf("runs (-want +got):\n%s", diff)
		}

		// Compaction keeps the newest runs, one line each, superseded lines gone.
		if err := s.locked(context.Background(), syscall.LOCK_EX, func() error {
			d, err := s.readJob("j", true)
			if err != nil {
				return err
			}
			return s.writeJob("j", d.runs, s.now())
		}); err != nil {
			t.Fatal(err)
		}
		_, lines := logLines(t, path)
		if diff := cmp.Diff(want, lineIDs(lines)); diff != "" {
			t.Errorf("lines of a compacted file (-want +got):\n%s", diff)
		}
		for _, l := range lines {
			if l.Outcome != Succeeded {
				t.Errorf("compacted line of %s is %s, want its last version", l.ID, l.Outcome)
			}
		}
	})

	t.Run("by age", func(t *testing.T) {
		now := t0
		s := openStore(t, t.TempDir(), FileOptions{Retention: 24 * time.Hour, Now: func() time.Time { return now }})
		path := filepath.Join(s.runs, "j.json")
		for i := range 500 { // one an hour
			now = t0.Add(time.Duration(i) * time.Hour)
			record(t, s, finished("j", fmt.Sprintf("r%03d", i), now.Add(-time.Second)))
		}
		// Readers leave expired runs out whether or not they are still in the file.
		runs := mustRuns(t, s, "j")
		if len(runs) != 25 || runs[0].ID != "r499" || runs[24].ID != "r475" {
			t.Errorf("runs %v, want r499 down to r475", runIDs(runs))
		}
		_, lines := logLines(t, path)
		if len(lines) > 2*25+compactSlack {
			t.Errorf("%d lines for 25 live runs: expired runs not compacted away", len(lines))
		}
		if lines[0].ID < "r400" {
			t.Errorf("the file still holds %s, expired long ago", lines[0].ID)
		}
	})

	t.Run("unlimited", func(t *testing.T) {
		s := openStore(t, t.TempDir(), FileOptions{})
		path := filepath.Join(s.runs, "j.json")
		for i := range 400 {
			r := finished("j", fmt.Sprintf("r%03d", i), t0.Add(time.Duration(i)*time.Minute))
			r.Outcome, r.End = Running, time.Time{}
			record(t, s, r, finished("j", r.ID, r.ScheduledTime))
		}
		if got := mustRuns(t, s, "j"); len(got) != 400 {
			t.Errorf("%d runs, want all 400", len(got))
		}
		if _, lines := logLines(t, path); len(lines) > 2*400+compactSlack || len(lines) == 800 {
			t.Errorf("%d lines for 400 runs", len(lines))
		}
	})

	t.Run("failed compaction loses nothing", func(t *testing.T) {
		s := openStore(t, t.TempDir(), FileOptions{MaxRunsPerJob: 1})
		full := false
		s.writeData = func(f *os.File, data []byte) error {
			if full && strings.HasPrefix(filepath.Base(f.Name()), tmpPrefix) {
				return &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
			}
			return writeAll(f, data)
		}
		for i := range 2 + compactSlack {
			record(t, s, finished("j", fmt.Sprintf("r%03d", i), t0.Add(time.Duration(i)*time.Minute)))
		}
		full = true
		last := finished("j", "last", t0.Add(24*time.Hour))
		err := s.Record(context.Background(), last)
		if err == nil || !strings.Contains(err.Error(), "run last recorded, but compacting the job's history failed") || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Record error = %v; want one saying the run was recorded and the compaction failed for lack of space", err)
		}
		if got := runIDs(mustRuns(t, s, "j")); !slices.Equal(got, []string{"last"}) {
			t.Errorf("runs %v, want the run recorded", got)
		}
		full = false
		record(t, s, finished("j", "after", t0.Add(48*time.Hour)))
		if _, lines := logLines(t, filepath.Join(s.runs, "j.json")); !slices.Equal(lineIDs(lines), []string{"after"}) {
			t.Errorf("lines after the next Record: %v, want it compacted", lineIDs(lines))
		}
	})
}

// encodeV1 renders a version 1 file as the previous xacctd wrote them.
func encodeV1(t *testing.T, job string, runs []Run) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	fmt.Fprintf(&b, `{"version":1,"job":%q,"runs":[`, job)
	for i, r := range runs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteString("\n]}\n")
	return b.Bytes()
}

func TestVersion1Migrated(t *testing.T) {
	// testdata/v1-daily.json was written by the previous xacctd, whose format was version 1.
	v1 := readFile(t, filepath.Join("testdata", "v1-daily.json"))
	var want jobFileV1
	if err := json.Unmarshal(v1, &want); err != nil {
		t.Fatal(err)
	}
	if want.Version != 1 || len(want.Runs) != 4 {
		t.Fatalf("fixture: version %d, %d runs", want.Version, len(want.Runs))
	}
	setup := func(t *testing.T, opts FileOptions) (*FileStore, string) {
		s := openStore(t, t.TempDir(), opts)
		path := filepath.Join(s.runs, "daily.json")
		if err := os.WriteFile(path, v1, 0o600); err != nil {
			t.Fatal(err)
		}
		return s, path
	}

	t.Run("read", func(t *testing.T) {
		var reports corruptReports
		s, path := setup(t, FileOptions{OnCorrupt: reports.add})
		if diff := cmp.Diff(want.Runs, mustRuns(t, s, "daily")); diff != "" {
			t.Errorf("runs (-want +got):\n%s", diff)
		}
		latest, err := s.Latest(context.Background())
		if err != nil || latest["daily"].ID != want.Runs[0].ID {
			t.Errorf("Latest = %v, %v", latest, err)
		}
		last, err := s.LastScheduled(context.Background())
		if err != nil || !last["daily"].Equal(want.Runs[0].ScheduledTime) {
			t.Errorf("LastScheduled = %v, %v", last, err)
		}
		if diff := cmp.Diff(v1, readFile(t, path)); diff != "" {
			t.Errorf("reading changed the file (-want +got):\n%s", diff)
		}
		if got := reports.get(); len(got) != 0 {
			t.Errorf("OnCorrupt calls: %q", got)
		}
	})

	t.Run("migrated by Record", func(t *testing.T) {
		s, path := setup(t, FileOptions{})
		// The run left running is finished now, and a new run starts.
		done := want.Runs[3]
		done.Outcome, done.End = Succeeded, done.Start.Add(time.Minute)
		next := finished("daily", "20260309T070000Z-4a4b4c4d4e4f", t0.Add(24*time.Hour))
		record(t, s, done, next)
		h, lines := logLines(t, path)
		if h.Job != "daily" {
			t.Errorf("header %+v", h)
		}
		// The first Record migrates: every run once, the one recorded included; the second
		// appends.
		wantRuns := append([]Run{next}, want.Runs...)
		wantRuns[4] = done
		if diff := cmp.Diff(append(runIDs(want.Runs), next.ID), lineIDs(lines)); diff != "" {
			t.Errorf("lines (-want +got):\n%s", diff)
		}
		if lines[3].Outcome != Succeeded || !lines[3].Written.IsZero() || lines[4].Written.IsZero() {
			t.Errorf("lines %+v: want the migrated ones without a written stamp, the finished run among them, and the appended one with it", lines)
		}
		for _, s := range []*FileStore{s, openStore(t, filepath.Dir(s.runs), FileOptions{})} {
			if diff := cmp.Diff(wantRuns, mustRuns(t, s, "daily")); diff != "" {
				t.Errorf("runs after migration (-want +got):\n%s", diff)
			}
		}
	})

	t.Run("migration applies retention", func(t *testing.T) {
		s, path := setup(t, FileOptions{MaxRunsPerJob: 2})
		record(t, s, finished("daily", "new", t0.Add(24*time.Hour)))
		wantIDs := []string{"new", want.Runs[0].ID}
		if diff := cmp.Diff(wantIDs, runIDs(mustRuns(t, s, "daily"))); diff != "" {
			t.Errorf("runs (-want +got):\n%s", diff)
		}
		if _, lines := logLines(t, path); !slices.Equal(lineIDs(lines), wantIDs) {
			t.Errorf("lines %v, want %v", lineIDs(lines), wantIDs)
		}
	})

	t.Run("migrated by Recover", func(t *testing.T) {
		s := openStore(t, t.TempDir(), FileOptions{})
		dead := CurrentOwner()
		dead.PID = deadPID(t)
		r := finished("j", "orphan", t0)
		r.End, r.Outcome, r.Owner = time.Time{}, Running, dead
		path := filepath.Join(s.runs, "j.json")
		if err := os.WriteFile(path, encodeV1(t, "j", []Run{r}), 0o600); err != nil {
			t.Fatal(err)
		}
		changed, err := s.Recover(context.Background(), t0.Add(time.Hour))
		if err != nil || len(changed) != 1 || changed[0].Outcome != Interrupted {
			t.Fatalf("Recover = %v, %v", changed, err)
		}
		_, lines := logLines(t, path)
		if len(lines) != 1 || lines[0].Outcome != Interrupted {
			t.Errorf("lines after Recover: %+v", lines)
		}
	})
}

func TestOtherWritersSeen(t *testing.T) {
	// Two stores on one directory stand for two processes: each remembers the file as it
	// last saw it, and must notice what the other did since.
	dir := t.TempDir()
	a := openStore(t, dir, FileOptions{MaxRunsPerJob: 5})
	b := openStore(t, dir, FileOptions{MaxRunsPerJob: 5})
	latest := func(s *FileStore) string {
		t.Helper()
		l, err := s.Latest(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return l["j"].ID
	}
	last := func(s *FileStore) time.Time {
		t.Helper()
		l, err := s.LastScheduled(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return l["j"]
	}

	record(t, a, finished("j", "r00", t0))
	if got := latest(a); got != "r00" {
		t.Fatalf("Latest = %s", got)
	}
	record(t, b, finished("j", "r01", t0.Add(time.Minute))) // appended by b
	if got := latest(a); got != "r01" {
		t.Errorf("a's Latest after b appended = %s, want r01", got)
	}
	record(t, a, finished("j", "r02", t0.Add(2*time.Minute)))
	n := 3
	for ; n < 200; n++ { // b compacts, more than once
		record(t, b, finished("j", fmt.Sprintf("r%02d", n), t0.Add(time.Duration(n)*time.Minute)))
	}
	if got, want := last(a), t0.Add(199*time.Minute); !got.Equal(want) {
		t.Errorf("a's LastScheduled after b compacted = %v, want %v", got, want)
	}
	record(t, a, finished("j", "ra", t0.Add(time.Hour*10)))
	record(t, b, finished("j", "rb", t0.Add(time.Hour*11)))
	record(t, a, finished("j", "rc", t0.Add(time.Hour*12)))
	want := []string{"rc", "rb", "ra", "r199", "r198"}
	for name, s := range map[string]*FileStore{"a": a, "b": b} {
		if diff := cmp.Diff(want, runIDs(mustRuns(t, s, "j"))); diff != "" {
			t.Errorf("%s's runs (-want +got):\n%s", name, diff)
		}
	}
}

func TestLooseModeTightenedOnAppend(t *testing.T) {
	s := openStore(t, t.TempDir(), FileOptions{})
	record(t, s, finished("j", "a", t0))
	path := filepath.Join(s.runs, "j.json")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	record(t, s, finished("j", "b", t0.Add(time.Minute)))
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after an append, want 0600", st.Mode().Perm())
	}
}

func TestReadOnlyFileReplaced(t *testing.T) {
	if asOrdinaryUser(t) {
		return
	}
	// A file that cannot be appended to (someone made it 0400) is replaced, as every file
	// was by the previous format: the directory is what says whether history may be written.
	s := openStore(t, t.TempDir(), FileOptions{})
	record(t, s, finished("j", "a", t0))
	path := filepath.Join(s.runs, "j.json")
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	record(t, s, finished("j", "b", t0.Add(time.Minute)))
	if diff := cmp.Diff([]string{"b", "a"}, runIDs(mustRuns(t, s, "j"))); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

func TestHandEditedLog(t *testing.T) {
	// Lines need not be as xacctd writes them: any JSON object with an id is a run.
	s := openStore(t, t.TempDir(), FileOptions{})
	path := filepath.Join(s.runs, "j.json")
	content := `{"version":2,"job":"j"}
{"job":"j","outcome":"running","id":"a","trigger":"schedule","scheduled_time":"2026-03-08T07:00:00Z"}

{"id":"a","outcome":"succeeded","trigger":"schedule","scheduled_time":"2026-03-08T07:00:00Z"}
{"id":"we\"ird","outcome":"failed","trigger":"manual","scheduled_time":"2026-03-08T08:00:00Z"}
  {"id":"we\"ird","outcome":"succeeded","trigger":"manual","scheduled_time":"2026-03-08T08:00:00Z"}
`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	type short struct {
		ID      string
		Outcome Outcome
	}
	summary := func(runs []Run) []short {
		var out []short
		for _, r := range runs {
			out = append(out, short{r.ID, r.Outcome})
		}
		return out
	}
	want := []short{{`we"ird`, Succeeded}, {"a", Succeeded}}
	if diff := cmp.Diff(want, summary(mustRuns(t, s, "j"))); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
	record(t, s, finished("j", "b", t0.Add(time.Hour)))
	want = append([]short{{"b", Succeeded}}, want...)
	if diff := cmp.Diff(want, summary(mustRuns(t, s, "j"))); diff != "" {
		t.Errorf("runs after an append (-want +got):\n%s", diff)
	}
}

func TestAppendKeepsStateDirOwnerWhenRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give files away; this covers `sudo xacctd jobs run`")
	}
	const uid, gid = 65534, 65534
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir, FileOptions{})
	record(t, s, finished("j", "a", t0))
	path := filepath.Join(dir, "runs", "j.json")
	if err := os.Chown(path, 0, 0); err != nil { // as an older root-run xacctd could have left it
		t.Fatal(err)
	}
	record(t, s, finished("j", "b", t0.Add(time.Minute)))
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != uid || sys.Gid != gid {
		t.Errorf("job file owned by %d:%d after an append, want %d:%d", sys.Uid, sys.Gid, uid, gid)
	}
	if got := runIDs(mustRuns(t, s, "j")); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("runs %v", got)
	}
}
