package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// fileVersion is the format of job files. A reader meeting a newer one refuses it rather
// than move it aside: it is not corrupt, and an older xacctd must not start a new history
// over it.
const fileVersion = 1

type jobFile struct {
	Version int    `json:"version"`
	Job     string `json:"job"`
	Runs    []Run  `json:"runs"`
}

type newerFormatError struct{ version int }

func (e newerFormatError) Error() string {
	return fmt.Sprintf("format version %d is newer than this xacctd understands (%d); upgrade xacctd", e.version, fileVersion)
}

// decodeJob parses a job file. Any error but newerFormatError means the file is corrupt.
func decodeJob(job string, data []byte) ([]Run, error) {
	var f jobFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	switch {
	case f.Version > fileVersion:
		return nil, newerFormatError{f.Version}
	case f.Version < 1:
		return nil, errors.New("no format version")
	case f.Job != job:
		return nil, fmt.Errorf("it holds the history of job %q", f.Job)
	}
	for i := range f.Runs {
		f.Runs[i].Job = job
		f.Runs[i] = normalize(f.Runs[i])
	}
	// Files we write are sorted already; this costs little and covers hand-edited ones.
	slices.SortFunc(f.Runs, compareNewest)
	return f.Runs, nil
}

// encodeJob renders a job file with one run per line, so that grep, tail and diff work on
// it, and without HTML escaping, so that errors read as they were written.
func encodeJob(job string, runs []Run) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(64 + 400*len(runs))
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	fmt.Fprintf(&b, `{"version":%d,"job":`, fileVersion)
	if err := enc.Encode(job); err != nil {
		return nil, err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	b.WriteString(`,"runs":[`)
	for i, r := range runs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
		if err := enc.Encode(r); err != nil {
			return nil, fmt.Errorf("encode run %s: %w", r.ID, err)
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteString("\n]}\n")
	return b.Bytes(), nil
}
