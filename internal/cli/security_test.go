package cli

// Security tests of the command line on the sandbox: planted secrets (AWS base credentials,
// external ids from an environment variable and a file, database passwords from a file and an
// environment variable, right and wrong) never appear in any output, log line or history
// file; the run history is private whatever the umask; insecure modes are reported.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// secPlanted are distinctive values no output may contain.
type secPlanted map[string]string // value -> what it is

func (p secPlanted) check(t *testing.T, where, text string) {
	t.Helper()
	for v, what := range p {
		if strings.Contains(text, v) {
			t.Errorf("%s shows %s", where, what)
		}
	}
}

// secWriteFile writes a file with exactly mode (whatever the umask).
func secWriteFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestSecretsNeverPrinted runs every command an operator runs, in text and JSON, with debug
// logs, then the failure paths (wrong passwords from a file and from the environment, a role
// that cannot be assumed), and greps everything they print and the history they write.
// Under umask 0 the state directory is 0700 and its files 0600.
func TestSecretsNeverPrinted(t *testing.T) {
	if err := world.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	planted := secPlanted{
		world.DBPassword:                   "the database password (password_file)",
		"planted-aws-secret-key-Qm4Zr8":    "AWS_SECRET_ACCESS_KEY",
		"planted-aws-session-token-Hx9Pk2": "AWS_SESSION_TOKEN",
		"planted-external-id-env-Wc3Nb7":   "the external id from external_id_env",
		"planted-external-id-file-Tr6Bq1":  "the external id from external_id_file",
		"planted-wrong-password-file-Lp5":  "a wrong password from password_file",
		"planted-wrong-password-env-Jd8":   "a wrong password from password_env",
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "planted-aws-secret-key-Qm4Zr8")
	t.Setenv("AWS_SESSION_TOKEN", "planted-aws-session-token-Hx9Pk2")
	t.Setenv("XACCTD_TEST_EXTERNAL_ID", "planted-external-id-env-Wc3Nb7")
	t.Setenv("XACCTD_TEST_WRONG_PW", "planted-wrong-password-env-Jd8")

	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	secWriteFile(t, filepath.Join(creds, "db"), world.DBPassword+"\n", 0o400)
	secWriteFile(t, filepath.Join(creds, "wrong"), "planted-wrong-password-file-Lp5\n", 0o400)
	secWriteFile(t, filepath.Join(creds, "lake-external-id"), "planted-external-id-file-Tr6Bq1\n", 0o400)

	fragment := world.ConfigFragment()
	for old, repl := range map[string]string{
		"    role_arn: " + world.WarehouseRoleARN + "\n": "    role_arn: " + world.WarehouseRoleARN + "\n    external_id_env: XACCTD_TEST_EXTERNAL_ID\n",
		"    role_arn: " + world.LakeRoleARN + "\n":      "    role_arn: " + world.LakeRoleARN + "\n    external_id_file: $CREDENTIALS_DIRECTORY/lake-external-id\n",
		"    password_env: XACCTD_SANDBOX_DB_PASSWORD\n": "    password_file: $CREDENTIALS_DIRECTORY/db\n",
	} {
		if !strings.Contains(fragment, old) {
			t.Fatalf("the sandbox fragment lacks %q:\n%s", old, fragment)
		}
		fragment = strings.Replace(fragment, old, repl, 1)
	}
	state := filepath.Join(dir, "var", "state") // neither exists yet
	cfg := "version: 1\n" + fragment + fmt.Sprintf(`buckets:
  exports: {account: lake, name: cli-secrets, create: true}
pairs:
  - {name: p, cluster: %[1]s, bucket: exports, prefix: data/, access: [unload, copy], role: {name: CliSecrets, db_users: [%[2]s]}}
jobs:
  - name: export
    pair: p
    schedule: "0 2 * * *"
    unload: {query: "SELECT * FROM %[3]s", to: 'orders/{{ .RunID }}/'}
state: {dir: %[4]s}
`, world.Cluster, world.DBUser, world.SampleTable, state)
	path := filepath.Join(dir, "config.yaml")
	secWriteFile(t, path, cfg, 0o600)

	var everything strings.Builder
	var lastStdout string
	step := func(wantCode int, args ...string) string {
		t.Helper()
		args = append(args, "--config", path, "--log-level", "debug", "--log-format", "json")
		code, stdout, stderr := run(t, args...)
		lastStdout = stdout
		everything.WriteString(stdout + stderr)
		if wantCode >= 0 && code != wantCode {
			t.Fatalf("xacctd %v: exit %d, want %d\n%s\n%s", args, code, wantCode, stdout, stderr)
		}
		planted.check(t, fmt.Sprintf("xacctd %v", args), stdout+stderr)
		if strings.Contains(stderr, "config.insecure_permissions") {
			t.Errorf("xacctd %v warns about permissions of 0600/0400 files:\n%s", args, stderr)
		}
		return stdout + stderr
	}
	step(ExitOK, "validate")
	step(ExitOK, "validate", "--output", "json")
	step(ExitChanges, "plan")
	step(ExitChanges, "plan", "--output", "json")
	step(ExitOK, "apply", "--output", "json")
	step(ExitOK, "apply")
	step(ExitOK, "plan")
	step(ExitOK, "check", "--output", "json")
	out := step(ExitOK, "check", "--probe")
	if !strings.Contains(out, "ok   probe: unload") {
		t.Errorf("check --probe did not probe:\n%s", out)
	}
	out = step(ExitOK, "jobs", "run", "export", "--dry-run", "--at", "2026-07-04T02:00")
	if !strings.Contains(out, "UNLOAD (") || !strings.Contains(out, "IAM_ROLE") {
		t.Errorf("--dry-run printed no statement:\n%s", out)
	}
	out = step(ExitOK, "jobs", "run", "export", "--at", "2026-07-04T02:00")
	if !strings.Contains(out, "succeeded") {
		t.Errorf("jobs run with the password from a file and both external ids:\n%s", out)
	}

	// Failure paths: the cluster refuses a wrong password, from a file and from the
	// environment; their messages and the history they leave name no secret.
	for _, ref := range []string{"password_file: $CREDENTIALS_DIRECTORY/wrong", "password_env: XACCTD_TEST_WRONG_PW"} {
		secWriteFile(t, path, strings.Replace(cfg, "password_file: $CREDENTIALS_DIRECTORY/db", ref, 1), 0o600)
		out = step(ExitError, "jobs", "run", "export", "--at", "2026-07-05T02:00")
		if !strings.Contains(out, "failed") || !strings.Contains(out, "auth") {
			t.Errorf("jobs run with %s: want an auth failure:\n%s", ref, out)
		}
		step(ExitError, "check", "--probe", "--output", "json")
	}
	// AWS unreachable while assuming the roles (with external ids): the SDK's errors, as
	// printed and logged, name no secret. (moto lets any role be assumed, so an endpoint that
	// refuses connections is the way to an AWS error here.)
	secWriteFile(t, path, cfg, 0o600)
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	out = step(ExitError, "plan")
	if !strings.Contains(out, "AssumeRole") {
		t.Errorf("plan against an unreachable AWS: no AssumeRole error:\n%s", out)
	}
	step(ExitError, "apply", "--output", "json")
	step(ExitError, "jobs", "run", "export", "--at", "2026-07-06T02:00")
	t.Setenv("AWS_ENDPOINT_URL", world.Moto.URL)
	os.Unsetenv("AWS_MAX_ATTEMPTS") // t.Setenv's cleanup restores it
	step(ExitOK, "jobs", "history", "export")
	step(ExitOK, "jobs", "history", "export", "--output", "json")
	var hist struct {
		Runs []struct {
			Outcome    string `json:"outcome"`
			ErrorClass string `json:"error_class"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(lastStdout), &hist); err != nil || fmt.Sprint(hist.Runs) != "[{skipped } {failed auth} {failed auth} {succeeded }]" {
		t.Errorf("history: %v, %v: want (newest first) the skipped run without AWS, both auth failures, the success", err, hist.Runs)
	}
	step(ExitOK, "jobs", "list", "--output", "json")
	if !strings.Contains(everything.String(), `"event":"config.loaded"`) {
		t.Fatal("no log line captured: the grep above saw nothing")
	}

	// The run history: private whatever the umask, and free of secrets.
	var files int
	err := filepath.Walk(filepath.Join(dir, "var"), func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		switch {
		case info.IsDir() && info.Mode().Perm() != 0o700:
			t.Errorf("directory %s has mode %04o under umask 0, want 0700", p, info.Mode().Perm())
		case info.Mode().IsRegular():
			files++
			if info.Mode().Perm() != 0o600 {
				t.Errorf("file %s has mode %04o under umask 0, want 0600", p, info.Mode().Perm())
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			planted.check(t, "history file "+p, string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Errorf("%d files under the state directory: want the run history and its lock", files)
	}
}

// TestInsecurePermissionsWarned: a configuration readable by every user that names secret
// files, and a secret file readable by every user, are reported by validate and by the
// commands (config.insecure_permissions, with file, mode, keys and the fix), never with the
// secret; the documented modes are not.
func TestInsecurePermissionsWarned(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	const secret = "planted-perm-secret-Zt5"
	pw := filepath.Join(dir, "pw")
	secWriteFile(t, pw, secret+"\n", 0o644)
	path := filepath.Join(dir, "config.yaml")
	secWriteFile(t, path, `version: 1
accounts:
  a: {id: "111111111111"}
clusters:
  c: {account: a, identifier: c, database: db, user: u, auth: password, password_file: $CREDENTIALS_DIRECTORY/pw}
state: {dir: `+filepath.Join(dir, "state")+`}
`, 0o644)
	for _, args := range [][]string{{"validate"}, {"validate", "--output", "json"}, {"jobs", "list"}} {
		code, stdout, stderr := run(t, append(args, "--config", path, "--log-format", "json")...)
		if code != ExitOK {
			t.Fatalf("xacctd %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		var lines []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["event"] == "config.insecure_permissions" {
				lines = append(lines, m)
			}
		}
		want := map[string]string{"config": path, "secret": pw}
		for _, l := range lines {
			kind, _ := l["kind"].(string)
			if l["level"] != "warn" || l["file"] != want[kind] || l["mode"] != "0644" || l["fix"] != "chmod o-r "+want[kind] ||
				fmt.Sprint(l["keys"]) != "[clusters.c.password_file]" {
				t.Errorf("xacctd %v: %v", args, l)
			}
			delete(want, kind)
		}
		if len(want) > 0 {
			t.Errorf("xacctd %v: no warning for %v:\n%s", args, want, stderr)
		}
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("xacctd %v shows the secret", args)
		}
	}
	// The documented modes: config 0640, secret 0600 (0400 from LoadCredential=).
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, stderr := run(t, "validate", "--config", path, "--log-format", "json"); strings.Contains(stderr, "insecure_permissions") {
		t.Errorf("warning for documented modes:\n%s", stderr)
	}
}

// TestValidateNeverEchoesSecrets: inline secrets, secret-looking unknown keys and a secret
// pasted into a *_env or *_file key are refused by validate (text and JSON), plan and run,
// without their values.
func TestValidateNeverEchoesSecrets(t *testing.T) {
	pasted := filepath.Join(t.TempDir(), "pasted.yml")
	secWriteFile(t, pasted, `version: 1
accounts:
  a: {id: "111111111111", role_arn: "arn:aws:iam::111111111111:role/admin", external_id_env: "ext-PLANTED-5 x"}
clusters:
  c: {account: a, identifier: c, database: db, user: u, auth: password, password_file: "hunter2-PLANTED-6"}
`, 0o600)
	for _, file := range []string{"../../pkg/config/testdata/secrets.bad.yml", pasted} {
		for _, args := range [][]string{{"validate"}, {"validate", "--output", "json"}, {"plan"}, {"apply", "--output", "json"}, {"run"}, {"jobs", "list"}} {
			code, stdout, stderr := run(t, append(args, "--config", file)...)
			if code != ExitError {
				t.Errorf("xacctd %v on %s: exit %d, want 1", args, file, code)
			}
			if !strings.Contains(stdout+stderr, "secret") {
				t.Errorf("xacctd %v on %s does not say why:\n%s%s", args, file, stdout, stderr)
			}
			for _, s := range []string{"SECRET", "PLANTED", "hunter2", "wJalr"} {
				if strings.Contains(stdout+stderr, s) {
					t.Errorf("xacctd %v on %s shows secret material %q:\n%s%s", args, file, s, stdout, stderr)
				}
			}
		}
	}
}
