package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestJobsCommandsPostgres: with state.backend postgres, `jobs run` writes the shared
// history (migrating an empty database first), `jobs history` and `jobs list` read it,
// and the DSN (with its password) never reaches the output.
func TestJobsCommandsPostgres(t *testing.T) {
	ctx := context.Background()
	if err := world.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	dsn, err := world.Postgres.CreateDatabase(ctx, "xacctd_cli_state")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = world.Postgres.DropDatabase(context.Background(), "xacctd_cli_state") })
	dsnFile := filepath.Join(t.TempDir(), "state-dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "version: 1\n" + world.ConfigFragment() + fmt.Sprintf(`buckets:
  exports: {account: lake, name: cli-pg, create: true}
pairs:
  - {name: p, cluster: %[1]s, bucket: exports, prefix: data/, access: [unload], role: {name: CliPg, db_users: [%[2]s]}}
jobs:
  - name: export
    pair: p
    schedule: "0 2 * * *"
    unload: {query: "SELECT * FROM %[3]s", to: 'orders/{{ .ScheduledTime.Format "2006-01-02" }}/'}
state: {backend: postgres, dsn_file: %[4]s}
`, world.Cluster, world.DBUser, world.SampleTable, dsnFile)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "apply", "--config", path); code != ExitOK {
		t.Fatalf("apply: %d\n%s\n%s", code, out, errOut)
	}
	password := ""
	if c, err := pgx.ParseConfig(dsn); err == nil {
		password = c.Password
	}
	for _, s := range []struct {
		args []string
		want []string
	}{
		{[]string{"jobs", "run", "export", "--config", path, "--at", "2026-07-04T02:00"}, []string{"succeeded"}},
		{[]string{"jobs", "history", "export", "--config", path}, []string{"2026-07-04 02:00:00 UTC", "manual", "succeeded"}},
		{[]string{"jobs", "list", "--config", path}, []string{"export", "succeeded 2026-07-04 02:00 UTC"}},
	} {
		code, stdout, stderr := run(t, s.args...)
		if code != ExitOK {
			t.Fatalf("xacctd %v: exit %d\n%s\n%s", s.args, code, stdout, stderr)
		}
		for _, w := range s.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("xacctd %v: stdout lacks %q:\n%s", s.args, w, stdout)
			}
		}
		if password == "" || strings.Contains(stdout+stderr, password) || strings.Contains(stdout+stderr, dsn) {
			t.Fatalf("xacctd %v printed the state DSN or its password (or the DSN has none: %q)", s.args, password)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM xacctd_runs WHERE job = 'export' AND outcome = 'succeeded' AND trigger = 'manual'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("xacctd_runs: %d succeeded manual runs (%v), want 1", n, err)
	}
	// A state database that cannot be reached: a clear error, no DSN.
	bad := strings.Replace(dsn, fmt.Sprint(world.Postgres.Port), "1", 1)
	if err := os.WriteFile(dsnFile, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, "jobs", "list", "--config", path)
	if code != ExitError || !strings.Contains(stderr, "state database") || strings.Contains(stdout+stderr, password) {
		t.Errorf("jobs list with the state database down: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
