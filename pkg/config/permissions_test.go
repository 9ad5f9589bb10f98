package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// permSecret is planted in every secret file: no warning may carry it.
const permSecret = "planted-secret-content-Vq7Lr2"

// TestPermissionWarnings: the configuration file warns when every user may change it, or read
// it while it names secret files; a secret file warns when every user may read or change it.
// Group bits never warn (the documented install is 0640 root:xacctd). Missing files, an unset
// $CREDENTIALS_DIRECTORY and files that are not regular are skipped.
func TestPermissionWarnings(t *testing.T) {
	type want struct {
		Kind, Mode, Fix string
		Keys            []string
		File            string // relative to the test directory
	}
	tests := []struct {
		name       string
		configMode fs.FileMode
		secretMode fs.FileMode // of every secret file the config names
		files      string      // the *_file lines: {dir} is the test directory
		credsDir   bool        // $CREDENTIALS_DIRECTORY set to {dir}/creds
		want       []want
	}{
		{name: "documented install: 0640 and 0600", configMode: 0o640, secretMode: 0o600, files: "pw", want: nil},
		{name: "group-readable secret is the operator's choice", configMode: 0o640, secretMode: 0o640, files: "pw", want: nil},
		{name: "owner-only everything", configMode: 0o600, secretMode: 0o400, files: "pw ext dsn", want: nil},
		{name: "world-readable config without secret files", configMode: 0o644, secretMode: 0o600, files: "", want: nil},
		{name: "world-readable config naming a secret file", configMode: 0o644, secretMode: 0o600, files: "pw", want: []want{
			{Kind: "config", Mode: "0644", Fix: "chmod o-r {config}", Keys: []string{"clusters.c.password_file"}, File: "config.yaml"},
		}},
		{name: "world-readable config naming three secret files", configMode: 0o604, secretMode: 0o600, files: "pw ext dsn", want: []want{
			{Kind: "config", Mode: "0604", Fix: "chmod o-r {config}", Keys: []string{"accounts.a.external_id_file", "clusters.c.password_file", "state.dsn_file"}, File: "config.yaml"},
		}},
		{name: "world-writable config, even without secret files", configMode: 0o662, secretMode: 0o600, files: "", want: []want{
			{Kind: "config", Mode: "0662", Fix: "chmod o-w {config}", Keys: []string{}, File: "config.yaml"},
		}},
		{name: "world-readable and writable config naming a secret", configMode: 0o666, secretMode: 0o600, files: "pw", want: []want{
			{Kind: "config", Mode: "0666", Fix: "chmod o-rw {config}", Keys: []string{"clusters.c.password_file"}, File: "config.yaml"},
		}},
		{name: "world-readable secret file", configMode: 0o640, secretMode: 0o644, files: "pw", want: []want{
			{Kind: "secret", Mode: "0644", Fix: "chmod o-r {dir}/pw", Keys: []string{"clusters.c.password_file"}, File: "pw"},
		}},
		{name: "world-writable secret file", configMode: 0o600, secretMode: 0o602, files: "ext", want: []want{
			{Kind: "secret", Mode: "0602", Fix: "chmod o-w {dir}/ext", Keys: []string{"accounts.a.external_id_file"}, File: "ext"},
		}},
		{name: "every file open to everyone", configMode: 0o644, secretMode: 0o666, files: "pw ext dsn", want: []want{
			{Kind: "config", Mode: "0644", Fix: "chmod o-r {config}", Keys: []string{"accounts.a.external_id_file", "clusters.c.password_file", "state.dsn_file"}, File: "config.yaml"},
			{Kind: "secret", Mode: "0666", Fix: "chmod o-rw {dir}/dsn", Keys: []string{"state.dsn_file"}, File: "dsn"},
			{Kind: "secret", Mode: "0666", Fix: "chmod o-rw {dir}/ext", Keys: []string{"accounts.a.external_id_file"}, File: "ext"},
			{Kind: "secret", Mode: "0666", Fix: "chmod o-rw {dir}/pw", Keys: []string{"clusters.c.password_file"}, File: "pw"},
		}},
		{name: "one file named by two keys is one warning", configMode: 0o600, secretMode: 0o644, files: "same", want: []want{
			{Kind: "secret", Mode: "0644", Fix: "chmod o-r {dir}/same", Keys: []string{"accounts.a.external_id_file", "clusters.c.password_file"}, File: "same"},
		}},
		{name: "CREDENTIALS_DIRECTORY expanded", configMode: 0o600, secretMode: 0o644, files: "creds", credsDir: true, want: []want{
			{Kind: "secret", Mode: "0644", Fix: "chmod o-r {dir}/creds/pw", Keys: []string{"clusters.c.password_file"}, File: "creds/pw"},
		}},
		{name: "CREDENTIALS_DIRECTORY unset: skipped", configMode: 0o600, secretMode: 0o644, files: "creds", credsDir: false, want: nil},
		{name: "missing secret file: skipped", configMode: 0o600, secretMode: 0o644, files: "missing", want: nil},
		{name: "not a regular file: skipped", configMode: 0o600, secretMode: 0o644, files: "devnull", want: nil},
		{name: "symbolic link: the target's mode counts", configMode: 0o600, secretMode: 0o644, files: "link", want: []want{
			{Kind: "secret", Mode: "0644", Fix: "chmod o-r {dir}/link", Keys: []string{"clusters.c.password_file"}, File: "link"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("CREDENTIALS_DIRECTORY", "")
			if tt.credsDir {
				t.Setenv("CREDENTIALS_DIRECTORY", filepath.Join(dir, "creds"))
			}
			secret := func(name string) string {
				path := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(permSecret+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.secretMode); err != nil {
					t.Fatal(err)
				}
				return path
			}
			var pwFile, extFile, dsnFile string
			for _, f := range strings.Fields(tt.files) {
				switch f {
				case "pw":
					pwFile = secret("pw")
				case "ext":
					extFile = secret("ext")
				case "dsn":
					dsnFile = secret("dsn")
				case "same":
					pwFile = secret("same")
					extFile = pwFile
				case "creds":
					secret("creds/pw")
					pwFile = "$CREDENTIALS_DIRECTORY/pw"
				case "missing":
					pwFile = filepath.Join(dir, "missing")
				case "devnull":
					pwFile = os.DevNull
				case "link":
					target := secret("target")
					pwFile = filepath.Join(dir, "link")
					if err := os.Symlink(target, pwFile); err != nil {
						t.Fatal(err)
					}
				}
			}
			text := "version: 1\naccounts:\n  a:\n    id: \"111111111111\"\n    role_arn: arn:aws:iam::111111111111:role/admin\n"
			if extFile != "" {
				text += fmt.Sprintf("    external_id_file: %q\n", extFile)
			}
			text += "clusters:\n  c: {account: a, identifier: c, database: db, user: u"
			if pwFile != "" {
				text += fmt.Sprintf(", auth: password, password_file: %q", pwFile)
			}
			text += "}\n"
			if dsnFile != "" {
				text += fmt.Sprintf("state: {backend: postgres, dsn_file: %q}\n", dsnFile)
			}
			path := filepath.Join(dir, "config.yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.configMode); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.PermissionWarnings()
			var gotW []want
			for _, w := range got {
				rel, _ := filepath.Rel(dir, w.File)
				fix := strings.ReplaceAll(strings.ReplaceAll(w.Fix, path, "{config}"), dir, "{dir}")
				keys := w.Keys
				if keys == nil {
					keys = []string{}
				}
				gotW = append(gotW, want{Kind: w.Kind, Mode: w.ModeString(), Fix: fix, Keys: keys, File: rel})
				if !strings.Contains(w.Reason, w.File) || !strings.Contains(w.Reason, "every user") {
					t.Errorf("reason %q does not name the file and who may reach it", w.Reason)
				}
			}
			if diff := cmp.Diff(tt.want, gotW); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if s := fmt.Sprintf("%+v %#v", got, got); strings.Contains(s, permSecret) {
				t.Errorf("a warning carries the secret file's content: %s", s)
			}
		})
	}
}

// TestPermissionFixQuotesPath: the suggested command can be pasted into a shell.
func TestPermissionFixQuotesPath(t *testing.T) {
	tests := []struct{ give, want string }{
		{"/etc/xacctd/config.yaml", "chmod o-r /etc/xacctd/config.yaml"},
		{"/etc/x acctd/it's.yaml", `chmod o-r '/etc/x acctd/it'\''s.yaml'`},
	}
	for _, tt := range tests {
		if got := fixCommand(0o004, tt.give); got != tt.want {
			t.Errorf("fixCommand(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestSecretReferenceNotEchoed: a secret pasted into a *_env or *_file key by mistake is
// refused without being repeated (validate's output, config.reload_failed in the journal).
func TestSecretReferenceNotEchoed(t *testing.T) {
	const pasted = "Pa$$w0rd!planted-9Xk"
	text := fmt.Sprintf(`version: 1
accounts:
  a: {id: "111111111111", role_arn: "arn:aws:iam::111111111111:role/admin", external_id_env: %[1]q}
  b: {id: "222222222222", role_arn: "arn:aws:iam::222222222222:role/admin", external_id_file: %[1]q}
clusters:
  c: {account: a, identifier: c, database: db, user: u, auth: password, password_env: %[1]q}
  d: {account: a, identifier: d, database: db, user: u, auth: password, password_file: %[1]q}
state: {backend: postgres, dsn_file: %[1]q}
`, pasted)
	_, err := Parse("pasted.yml", []byte(text))
	cerr, ok := err.(*Error)
	if !ok {
		t.Fatalf("err = %v, want *Error", err)
	}
	wantPaths := map[string]bool{"accounts.a.external_id_env": true, "accounts.b.external_id_file": true,
		"clusters.c.password_env": true, "clusters.d.password_file": true, "state.dsn_file": true}
	for _, p := range cerr.Problems {
		if strings.Contains(p.Msg, "planted") || strings.Contains(p.Msg, "w0rd") {
			t.Errorf("%s: message repeats the value: %s", p.Path, p.Msg)
		}
		if wantPaths[p.Path] && !strings.Contains(p.Msg, "not the secret itself") {
			t.Errorf("%s: message %q does not say what to give instead", p.Path, p.Msg)
		}
		delete(wantPaths, p.Path)
	}
	if len(wantPaths) > 0 {
		t.Errorf("no problem reported at %v; problems:\n%v", wantPaths, err)
	}
	if strings.Contains(err.Error(), "planted") {
		t.Errorf("error repeats the value:\n%v", err)
	}
}

// TestHTTPListenDefaultsToLoopback: without an http section the daemon's endpoint is on
// loopback only, and the example keeps it there.
func TestHTTPListenDefaultsToLoopback(t *testing.T) {
	for _, path := range []string{"testdata/minimal.good.yml", "../../examples/config.yaml"} {
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.HTTP.Listen != "127.0.0.1:9464" {
			t.Errorf("%s: http.listen = %q, want 127.0.0.1:9464", path, cfg.HTTP.Listen)
		}
	}
}
