package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a configuration file, with where it is.
type Problem struct {
	File   string
	Line   int
	Column int
	Path   string // path.to.key, e.g. pairs[0].role.name
	Msg    string
}

func (p Problem) String() string {
	path := p.Path
	if path == "" {
		path = "(top)"
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", p.File, p.Line, p.Column, path, p.Msg)
}

// Error holds every problem found in a configuration file. Load returns it (as error)
// whenever the file is not valid; nothing in an invalid file is ever used.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects problems during decoding and validation.
type problems struct {
	file string
	pos  positions
	list []Problem
}

// addf records a problem at path; the position is that of the key, or of the nearest
// enclosing key when path itself is not in the file (a missing required key).
func (ps *problems) addf(path, format string, args ...any) {
	line, col := ps.pos.lookup(path)
	ps.list = append(ps.list, Problem{File: ps.file, Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// has reports whether a problem was already recorded at path (a value that did not decode
// is not checked again).
func (ps *problems) has(path string) bool {
	for _, p := range ps.list {
		if p.Path == path {
			return true
		}
	}
	return false
}

// addAt records a problem at an explicit position.
func (ps *problems) addAt(line, col int, path, format string, args ...any) {
	ps.list = append(ps.list, Problem{File: ps.file, Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	sort.SliceStable(ps.list, func(i, j int) bool {
		a, b := ps.list[i], ps.list[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	// The same problem can be reached twice (an alias used in two places); say it once.
	out := ps.list[:0]
	seen := map[string]bool{}
	for _, p := range ps.list {
		if k := p.String(); !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return &Error{Problems: out}
}

// positions maps a key path to where it stands in the file: the key's line and column for
// mapping entries, the item's for sequence items.
type positions map[string][2]int

func (p positions) lookup(path string) (int, int) {
	for {
		if lc, ok := p[path]; ok {
			return lc[0], lc[1]
		}
		if path == "" {
			return 1, 1
		}
		path = parentPath(path)
	}
}

// parentPath drops the last element of a key path: a.b[2].c -> a.b[2] -> a.b -> a -> "".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// Pos returns the line and column of a key path in the file the Config came from (1, 1 when
// unknown), so that later stages can point at the config when they report a problem.
func (c *Config) Pos(path string) (line, col int) {
	return c.pos.lookup(path)
}
