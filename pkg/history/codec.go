package history

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// fileVersion is the format of job files this xacctd writes. A reader meeting a newer one
// refuses it rather than move it aside: it is not corrupt, and an older xacctd must not
// start a new history over it.
//
// Version 1 was one JSON document, {"version":1,"job":...,"runs":[...]}, rewritten whole
// by every write; it is still read, and replaced by version 2 the first time its job is
// written. Version 2 is a log: a header line, then one run per line, appended. Every
// format from version 2 on starts with a one-line JSON object holding its version, so
// that a reader can tell a newer format from a corrupt file.
const fileVersion = 2

// fileHeader is the first line of a version 2 file.
type fileHeader struct {
	Version int    `json:"version"`
	Job     string `json:"job"`
	// Written is when the file was written (compacted), by its writer's clock.
	Written time.Time `json:"written,omitzero"`
	// Generation is random, new with every compaction: a store that remembers a file by its
	// header knows that a file with another header has been replaced, even if it has the
	// same inode number.
	Generation string `json:"generation,omitempty"`
}

// logLine is a run line of a version 2 file: the run and, on appended lines, when it was
// recorded by the writer's clock (retention counts from there). Compacted lines go without
// it; the header says when they were written.
type logLine struct {
	Run
	Written time.Time `json:"written,omitzero"`
}

// jobFileV1 is a version 1 file.
type jobFileV1 struct {
	Version int    `json:"version"`
	Job     string `json:"job"`
	Runs    []Run  `json:"runs"`
}

type newerFormatError struct{ version int }

func (e newerFormatError) Error() string {
	return fmt.Sprintf("format version %d is newer than this xacctd understands (%d); upgrade xacctd", e.version, fileVersion)
}

// jobData is a job file as read.
type jobData struct {
	version int
	// runs holds each run once, as its last line has it, newest first; retention has not
	// been applied.
	runs []Run
	// written is when the history was last written, by the clock of its writer then: the
	// time its retention was or is to be applied at. Zero for version 1 files, which were
	// pruned when written.
	written time.Time

	// For version 2 files:
	header []byte // the header line with its newline (a part of the data read)
	lines  int    // run lines, superseded ones included
	end    int64  // offset after the last complete line; what follows is an unfinished append
}

// decodeJob parses a job file of either version. Any error but newerFormatError means the
// file is corrupt.
func decodeJob(job string, data []byte) (jobData, error) {
	if nl := bytes.IndexByte(data, '\n'); nl >= 0 {
		var h fileHeader
		if json.Unmarshal(data[:nl], &h) == nil && h.Version >= 2 {
			switch {
			case h.Version > fileVersion:
				return jobData{}, newerFormatError{h.Version}
			case h.Job != job:
				return jobData{}, fmt.Errorf("it holds the history of job %q", h.Job)
			}
			d := jobData{version: h.Version, written: normTime(h.Written), header: data[:nl+1]}
			if err := d.decodeLines(job, data[nl+1:]); err != nil {
				return jobData{}, err
			}
			d.end += int64(nl + 1)
			return d, nil
		}
	}
	return decodeV1(job, data)
}

// decodeLines parses the run lines of a version 2 file, body being what follows its
// header. Bytes after the last newline are an append that did not finish (the process or
// the machine stopped mid-write): never acknowledged, they are left out. Any other line
// that is not a run makes the file corrupt.
//
// The last line of a run wins. Lines are taken from the end, and a line whose run has a
// later one is only checked to be JSON, not decoded: a run usually has two lines (running,
// then finished), and decoding is most of a read's cost.
func (d *jobData) decodeLines(job string, body []byte) error {
	ends := make([]int, 0, bytes.Count(body, []byte{'\n'})) // of each line, newline excluded
	for i := 0; ; {
		nl := bytes.IndexByte(body[i:], '\n')
		if nl < 0 {
			break
		}
		i += nl
		ends = append(ends, i)
		i++
	}
	if len(ends) > 0 {
		d.end = int64(ends[len(ends)-1] + 1)
	}
	seen := make(map[string]struct{}, len(ends))
	d.runs = make([]Run, 0, len(ends))
	last := true // the line being read is the last one
	for i := len(ends) - 1; i >= 0; i-- {
		start := 0
		if i > 0 {
			start = ends[i-1] + 1
		}
		line := body[start:ends[i]]
		if len(bytes.TrimSpace(line)) == 0 {
			continue // a hand edit's blank line; we never write one
		}
		lineNo := i + 2 // the header is line 1
		d.lines++
		if id, ok := quickID(line); ok {
			if _, later := seen[string(id)]; later {
				if !json.Valid(line) {
					return lineError(lineNo, json.Unmarshal(line, new(any)))
				}
				continue
			}
		}
		var l logLine
		var err error
		if last {
			err = json.Unmarshal(line, &l) // the last line says when the history was written
			if !l.Written.IsZero() {
				d.written = normTime(l.Written)
			}
			last = false
		} else {
			err = json.Unmarshal(line, &l.Run) // "written" is skipped, and that is faster
		}
		if err != nil {
			return lineError(lineNo, err)
		}
		if l.ID == "" {
			return fmt.Errorf("line %d: run has no id", lineNo)
		}
		if _, later := seen[l.ID]; later {
			continue
		}
		seen[l.ID] = struct{}{}
		l.Job = job
		d.runs = append(d.runs, normalize(l.Run))
	}
	slices.SortFunc(d.runs, compareNewest)
	return nil
}

func lineError(lineNo int, err error) error {
	return fmt.Errorf("line %d: invalid JSON: %w", lineNo, err)
}

// quickID returns the ID of a line as we write them, {"id":"..." with no escapes in the
// ID, without decoding it; ok is false for other lines.
func quickID(line []byte) (id []byte, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"id":"`))
	if !ok {
		return nil, false
	}
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil, false
	}
	return rest[:end], true
}

// scanLines checks lines appended to a version 2 file, data starting after a complete
// line, and returns how many runs they hold and the offset after the last complete one;
// what follows is an append that did not finish.
func scanLines(data []byte) (n int, end int64, err error) {
	for {
		nl := bytes.IndexByte(data[end:], '\n')
		if nl < 0 {
			return n, end, nil
		}
		line := data[end : end+int64(nl)]
		end += int64(nl) + 1
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l logLine
		if err := json.Unmarshal(line, &l); err != nil {
			return 0, 0, fmt.Errorf("invalid JSON: %w", err)
		}
		if l.ID == "" {
			return 0, 0, errors.New("run has no id")
		}
		n++
	}
}

// decodeV1 parses a version 1 file, or recognises a newer format that does not start with
// a header line.
func decodeV1(job string, data []byte) (jobData, error) {
	var f jobFileV1
	if err := json.Unmarshal(data, &f); err != nil {
		var probe struct {
			Version int `json:"version"`
		}
		if json.NewDecoder(bytes.NewReader(data)).Decode(&probe) == nil && probe.Version > fileVersion {
			return jobData{}, newerFormatError{probe.Version}
		}
		return jobData{}, fmt.Errorf("invalid JSON: %w", err)
	}
	switch {
	case f.Version > fileVersion:
		return jobData{}, newerFormatError{f.Version}
	case f.Version < 1:
		return jobData{}, errors.New("no format version")
	case f.Version != 1:
		return jobData{}, fmt.Errorf("format version %d without its header line", f.Version)
	case f.Job != job:
		return jobData{}, fmt.Errorf("it holds the history of job %q", f.Job)
	}
	for i := range f.Runs {
		f.Runs[i].Job = job
		f.Runs[i] = normalize(f.Runs[i])
	}
	// Files we wrote are sorted already; this costs little and covers hand-edited ones.
	slices.SortFunc(f.Runs, compareNewest)
	return jobData{version: 1, runs: f.Runs}, nil
}

// newEncoder returns an encoder that writes to b without HTML escaping, so that errors read
// as they were written.
func newEncoder(b *bytes.Buffer) *json.Encoder {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	return enc
}

// encodeLines renders runs as lines to append, each stamped with written.
func encodeLines(runs []Run, written time.Time) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(512 * len(runs))
	enc := newEncoder(&b)
	for _, r := range runs {
		if err := enc.Encode(logLine{Run: r, Written: normTime(written)}); err != nil {
			return nil, fmt.Errorf("encode run %s: %w", r.ID, err)
		}
	}
	return b.Bytes(), nil
}

// encodeJob renders a compacted version 2 file: the header, written at written with a new
// generation, then one line per run. It returns the data and the length of the header line.
func encodeJob(job string, runs []Run, written time.Time) ([]byte, int, error) {
	var gen [8]byte
	_, _ = rand.Read(gen[:]) // crypto/rand.Read never returns an error
	var b bytes.Buffer
	b.Grow(128 + 450*len(runs))
	enc := newEncoder(&b)
	h := fileHeader{Version: fileVersion, Job: job, Written: normTime(written), Generation: hex.EncodeToString(gen[:])}
	if err := enc.Encode(h); err != nil {
		return nil, 0, err
	}
	headerLen := b.Len()
	for _, r := range runs {
		if err := enc.Encode(logLine{Run: r}); err != nil {
			return nil, 0, fmt.Errorf("encode run %s: %w", r.ID, err)
		}
	}
	return b.Bytes(), headerLen, nil
}
