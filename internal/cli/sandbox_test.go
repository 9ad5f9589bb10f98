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
