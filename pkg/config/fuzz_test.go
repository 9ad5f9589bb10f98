package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: no input makes Parse panic or hang; an accepted file renders to YAML that is
// accepted again; a rejected file yields problems with real positions and no empty message.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	files = append(files, examplePath)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b, *b]\n"))
	f.Add([]byte("version: 1\naccounts: {a: {id: \"1\"}}\n<<: {x: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yml", data)
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Parse error is %T, want *Error: %v", err, err)
			}
			if len(cerr.Problems) == 0 {
				t.Fatal("*Error with no problems")
			}
			for _, p := range cerr.Problems {
				if p.Line < 1 || p.Column < 1 || strings.TrimSpace(p.Msg) == "" {
					t.Fatalf("bad problem %+v", p)
				}
			}
			return
		}
		out, err := cfg.YAML()
		if err != nil {
			t.Fatalf("YAML() of an accepted config: %v", err)
		}
		if _, err := Parse("again.yml", out); err != nil {
			t.Fatalf("rendered config is rejected:\n%v\n---\n%s", err, out)
		}
	})
}
