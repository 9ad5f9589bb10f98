package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

const example = "../../examples/config.yaml"

func TestValidate(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("version: 1\naccounts:\n  a: {id: \"12\"}\nclusters:\n  c: {account: b, identifier: c, database: db, user: u, password: hunter2-secret}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{name: "valid", args: []string{"validate", "--config", example}, wantCode: 0, wantStdout: "valid (accounts: 2"},
		{name: "valid from XACCTD_CONFIG", args: []string{"validate"}, env: example, wantCode: 0, wantStdout: "valid"},
		{name: "invalid: every problem with position", args: []string{"validate", "--config", bad}, wantCode: 1, wantStderr: []string{
			bad + ":3:7: accounts.a.id: \"12\" is not an AWS account id",
			bad + ":5:7: clusters.c.account: there is no account named \"b\"",
			bad + ":5:57: clusters.c.password: secrets must not be written",
			"3 problem(s); nothing was applied",
		}},
		{name: "missing file", args: []string{"validate", "--config", "/nonexistent/x.yml"}, wantCode: 1, wantStderr: []string{"no such file"}},
		{name: "default path", args: []string{"validate"}, wantCode: 1, wantStderr: []string{"/etc/xacctd/config.yaml"}},
		{name: "bad output flag", args: []string{"validate", "--config", example, "--output", "xml"}, wantCode: ExitUsage},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: ExitUsage, wantStderr: []string{"unknown command"}},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "xacctd "},
		{name: "jobs without subcommand", args: []string{"jobs"}, wantCode: ExitUsage},
		{name: "run takes no arguments", args: []string{"run", "--config", example, "extra"}, wantCode: 64, wantStderr: []string{`unexpected argument "extra"`}},
		{name: "plan with invalid config applies nothing", args: []string{"plan", "--config", bad}, wantCode: 1, wantStderr: []string{"nothing was applied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XACCTD_CONFIG", tt.env)
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout %q lacks %q", stdout, tt.wantStdout)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stdout+stderr, "hunter2") {
				t.Errorf("secret value printed")
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("version: 1\naccounts:\n  a: {id: \"111111111111\", rol_arn: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := run(t, "validate", "--config", bad, "--output", "json")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var got struct {
		Valid    bool
		Problems []problemJSON
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	want := problemJSON{File: bad, Line: 3, Column: 27, Path: "accounts.a.rol_arn", Message: `unknown key "rol_arn"; did you mean "role_arn"?`}
	if got.Valid || len(got.Problems) != 1 || got.Problems[0] != want {
		t.Errorf("got %+v, want one problem %+v", got, want)
	}
	code, stdout, _ = run(t, "validate", "--config", example, "--output", "json")
	if code != 0 || !strings.Contains(stdout, `"valid": true`) {
		t.Errorf("valid config: exit %d, %s", code, stdout)
	}
}
