package jobsql

import (
	"path"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/xacctd/xacctd/internal/redshiftsim"
	"github.com/xacctd/xacctd/pkg/config"
)

// fuzzSeeds are the strings quoting is most likely to get wrong.
var fuzzSeeds = []string{
	"", "'", "''", "'''", `\`, `\\`, `\'`, `'\`, `\''`,
	`SELECT regexp_substr(sku, '\d+') FROM t`, `E'\n'`, `E'\\'`, `'\\'`,
	"$$", "$$x$$", "$tag$ ' \\ $tag$", "SELECT $$it's$$",
	"SELECT 1\nFROM t\n", "a\r\nb\tc", "Zürich – 東京 🚀", "'Zürich – 東京 🚀'",
	"--", "/*", "*/", "SELECT 1 -- x", ";", "SELECT 1;", "SELECT 1; ", " \t\n",
	"../x", "/x", "a/../b", "a/./b", "a//b", ".", "..",
	"a\x00b", "\xff", "\xc3", "\u2028", "\u0085",
	") TO 's3://evil/' --", "') TO 's3://evil/' IAM_ROLE 'x' --", `\') TO 's3://evil/' --`,
}

const fuzzRole = "arn:aws:iam::111111111111:role/r"

// FuzzQuoteLiteral: QuoteLiteral round-trips through UnquoteLiteral and through the sandbox's
// Redshift stand-in for every string, and Render with that string as the rendered query or
// destination either refuses it for a stated reason or renders a statement that reads back
// as exactly that query, under the pair's prefix.
func FuzzQuoteLiteral(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit := QuoteLiteral(s)
		got, err := UnquoteLiteral(lit)
		if err != nil {
			t.Fatalf("UnquoteLiteral(QuoteLiteral(%q)): %v", s, err)
		}
		if got != s {
			t.Fatalf("UnquoteLiteral(QuoteLiteral(%q)) = %q", s, got)
		}

		// No input is skipped: the stand-in reads literals byte by byte, so NUL bytes and
		// invalid UTF-8 round-trip too. Whether a statement can carry them to a server is
		// Render's question, checked below.
		sql := "UNLOAD (" + lit + ") TO 's3://b/p/' IAM_ROLE '" + fuzzRole + "'"
		parsed, perr := redshiftsim.Parse(sql)
		if perr != nil {
			t.Fatalf("stand-in refuses %s: %v", sql, perr)
		}
		if q := parsed.(*redshiftsim.Unload).Query; q != s {
			t.Fatalf("stand-in reads %q, want %q", q, s)
		}

		checkRenderQuery(t, s)
		checkRenderTo(t, s)
	})
}

// checkRenderQuery renders s as a job's query (through .RunID: template text itself cannot
// carry arbitrary strings).
func checkRenderQuery(t *testing.T, s string) {
	t.Helper()
	j := unloadJob(config.Unload{Query: "{{ .RunID }}", To: "out/"})
	d := sampleData
	d.RunID = s
	st, err := Render(j, testTarget(), d)
	trimmed := strings.TrimSpace(s)
	refuse := trimmed == "" || strings.HasSuffix(trimmed, ";") || strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s)
	if refuse {
		if err == nil {
			t.Fatalf("Render accepted query %q:\n%s", s, st.SQL)
		}
		return
	}
	if err != nil {
		t.Fatalf("Render refused query %q: %v", s, err)
	}
	parsed, perr := redshiftsim.Parse(st.SQL)
	if perr != nil {
		t.Fatalf("stand-in refuses the statement for query %q: %v\n%s", s, perr, st.SQL)
	}
	u := parsed.(*redshiftsim.Unload)
	if u.Query != s {
		t.Fatalf("stand-in reads query %q, want %q", u.Query, s)
	}
	if u.To != st.URL || st.URL != base+"out/" {
		t.Fatalf("TO %q, URL %q, want %q", u.To, st.URL, base+"out/")
	}
}

// checkRenderTo renders s as a job's destination (through .Job).
func checkRenderTo(t *testing.T, s string) {
	t.Helper()
	j := unloadJob(config.Unload{Query: "SELECT 1", To: "{{ .Job }}"})
	d := sampleData
	d.Job = s
	st, err := Render(j, testTarget(), d)
	refuse := s == "" || strings.HasPrefix(s, "/") || strings.IndexFunc(s, unicode.IsControl) >= 0 ||
		!utf8.ValidString(s) || len(prefix)+len(s) > 1024-64
	for _, seg := range strings.Split(s, "/") {
		refuse = refuse || seg == "." || seg == ".."
	}
	if refuse {
		if err == nil {
			t.Fatalf("Render accepted destination %q: %s", s, st.URL)
		}
		return
	}
	if err != nil {
		t.Fatalf("Render refused destination %q: %v", s, err)
	}
	if st.URL != base+s {
		t.Fatalf("URL = %q, want %q", st.URL, base+s)
	}
	if clean := path.Clean("/" + prefix + s); !strings.HasPrefix(clean+"/", "/"+prefix) {
		t.Fatalf("destination %q resolves to %q, outside the prefix", s, clean)
	}
	parsed, perr := redshiftsim.Parse(st.SQL)
	if perr != nil {
		t.Fatalf("stand-in refuses the statement for destination %q: %v\n%s", s, perr, st.SQL)
	}
	if to := parsed.(*redshiftsim.Unload).To; to != st.URL {
		t.Fatalf("stand-in reads TO %q, want %q", to, st.URL)
	}
}

// FuzzUnquoteLiteral: UnquoteLiteral accepts only what QuoteLiteral writes.
func FuzzUnquoteLiteral(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
		f.Add(QuoteLiteral(s))
	}
	f.Fuzz(func(t *testing.T, lit string) {
		s, err := UnquoteLiteral(lit)
		if err != nil {
			return
		}
		if back := QuoteLiteral(s); back != lit {
			t.Fatalf("UnquoteLiteral(%q) = %q, which quotes to %q", lit, s, back)
		}
	})
}
