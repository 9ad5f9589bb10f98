package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xacctd/xacctd/internal/sandbox"
)

var world *sandbox.World

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, sandbox.Options{RoleDelay: 200 * time.Millisecond}, &world))
}

// TestPlanApplyCheckExitCodes drives the commands as an operator would: plan (2, changes
// pending), apply (0), plan (0, no changes), check (0, ready), and plan with a conflict (1).
func TestPlanApplyCheckExitCodes(t *testing.T) {
	if err := world.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := "version: 1\n" + world.ConfigFragment() + fmt.Sprintf(`buckets:
  exports: {account: lake, name: cli-exports, create: true}
pairs:
  - {name: p, cluster: %s, bucket: exports, prefix: data/, access: [unload], role: {name: CliRole, db_users: [%s]}}
`, world.Cluster, world.DBUser)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"plan", "--config", path, "--log-format", "json"}, ExitChanges, "Plan: 11 to create"},
		{[]string{"apply", "--config", path, "--output", "json"}, ExitOK, `"in_sync": true`},
		{[]string{"plan", "--config", path, "--output", "json"}, ExitOK, `"create": 0`},
		{[]string{"check", "--config", path}, ExitOK, "pair p (bucket-policy): ready"},
	}
	for _, s := range steps {
		code, stdout, stderr := run(t, s.args...)
		if code != s.wantCode || !strings.Contains(stdout, s.want) {
			t.Fatalf("xacctd %v: exit %d (want %d), stdout lacks %q:\n%s\n%s", s.args, code, s.wantCode, s.want, stdout, stderr)
		}
		if strings.Contains(stdout+stderr, world.DBPassword) || strings.Contains(stdout+stderr, sandbox.BaseSecretAccessKey) {
			t.Fatalf("xacctd %v printed a secret", s.args)
		}
	}
	// stats count every request: the no-op plan is 2 per account + 4 per bucket + 1.
	_, stdout, _ := run(t, "plan", "--config", path, "--output", "json")
	var doc struct {
		Stats struct {
			APICalls    int            `json:"api_calls"`
			ByOperation map[string]int `json:"by_operation"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Stats.APICalls != 2*2+4+1 || doc.Stats.ByOperation["s3:GetBucketPolicy"] != 1 {
		t.Errorf("stats = %+v", doc.Stats)
	}
	// A conflict: the configured role name belongs to a role xacctd does not own.
	conflict := strings.Replace(cfg, "name: CliRole", "name: "+sandbox.AdminRoleName+", path: /", 1)
	if err := os.WriteFile(path, []byte(conflict), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := run(t, "plan", "--config", path)
	if code != ExitError || !strings.Contains(stdout, "not managed by xacctd") {
		t.Errorf("plan with a conflict: exit %d\n%s", code, stdout)
	}
}

// TestJobsCommands drives the job commands as an operator would after apply: check --probe
// passes, jobs run of an UNLOAD succeeds (0) and is in jobs history and jobs list, --dry-run
// prints the statement without running it, a job of a pair whose trust refuses the user
// fails (1) with its class and hint, and check --probe names that pair's broken link (1).
func TestJobsCommands(t *testing.T) {
	if err := world.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	cfg := "version: 1\n" + world.ConfigFragment() + fmt.Sprintf(`buckets:
  exports: {account: lake, name: cli-jobs, create: true}
pairs:
  - {name: p, cluster: %[1]s, bucket: exports, prefix: data/, access: [unload, copy], role: {name: CliJobs, db_users: [%[2]s]}}
jobs:
  - name: export
    pair: p
    schedule: "0 2 * * *"
    timezone: America/New_York
    unload: {query: "SELECT * FROM %[3]s WHERE status <> 'it''s'", to: 'orders/{{ .ScheduledTime.Format "2006-01-02" }}/'}
state: {dir: %[4]s}
`, world.Cluster, world.DBUser, world.SampleTable, state)
	path := filepath.Join(t.TempDir(), "config.yaml")
	write := func(text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg)
	if code, out, errOut := run(t, "apply", "--config", path); code != ExitOK {
		t.Fatalf("apply: %d\n%s\n%s", code, out, errOut)
	}
	steps := []struct {
		args     []string
		wantCode int
		want     []string
	}{
		{[]string{"check", "--config", path, "--probe"}, ExitOK, []string{"ok   probe: unload to s3://cli-jobs/data/_xacctd_probe/check/", "ok   probe: copy from"}},
		{[]string{"jobs", "run", "export", "--config", path, "--dry-run", "--at", "2026-07-04T02:00"}, ExitOK,
			[]string{"UNLOAD ('SELECT * FROM sales.orders WHERE status <> ''it''''s''')", "TO 's3://cli-jobs/data/orders/2026-07-04/'", "scheduled 2026-07-04T02:00:00-04:00"}},
		{[]string{"jobs", "run", "--config", path, "export", "--at", "2026-07-04T02:00"}, ExitOK, []string{fmt.Sprintf("succeeded, %d rows", len(sandbox.SampleRows()))}},
		{[]string{"jobs", "history", "export", "--config", path}, ExitOK, []string{"2026-07-04 02:00:00 EDT", "manual", "succeeded"}},
		{[]string{"jobs", "list", "--config", path}, ExitOK, []string{"export", "0 2 * * * (America/New_York)", fmt.Sprintf("succeeded 2026-07-04 02:00 EDT (%d rows)", len(sandbox.SampleRows()))}},
		{[]string{"jobs", "run", "--config", path, "nope"}, ExitUsage, nil},
		{[]string{"jobs", "run", "--config", path}, ExitUsage, nil},
	}
	for _, s := range steps {
		code, stdout, stderr := run(t, s.args...)
		if code != s.wantCode {
			t.Fatalf("xacctd %v: exit %d (want %d):\n%s\n%s", s.args, code, s.wantCode, stdout, stderr)
		}
		for _, w := range s.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("xacctd %v: stdout lacks %q:\n%s\nstderr:\n%s", s.args, w, stdout, stderr)
			}
		}
		if strings.Contains(stdout+stderr, world.DBPassword) {
			t.Fatalf("xacctd %v printed the database password", s.args)
		}
	}
	// The run is in the state directory, private.
	files, _ := filepath.Glob(filepath.Join(state, "runs", "*.json"))
	if len(files) != 1 {
		t.Fatalf("state files %v", files)
	}
	if st, err := os.Stat(files[0]); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}

	// The trust allows another database user only: the job fails with its class and hint,
	// and the probe names the broken link.
	write(strings.Replace(cfg, "db_users: ["+world.DBUser+"]", "db_users: [someone_else]", 1))
	if code, out, errOut := run(t, "apply", "--config", path); code != ExitOK {
		t.Fatalf("apply: %d\n%s\n%s", code, out, errOut)
	}
	code, stdout, _ := run(t, "jobs", "run", "export", "--config", path)
	if code != ExitError || !strings.Contains(stdout, "failed") || !strings.Contains(stdout, "permission: User") || !strings.Contains(stdout, "hint:") {
		t.Errorf("jobs run on a refused trust: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, "check", "--config", path, "--probe")
	if code != ExitError || !strings.Contains(stdout, "broken link: role trust") {
		t.Errorf("check --probe on a refused trust: exit %d\n%s", code, stdout)
	}
}
