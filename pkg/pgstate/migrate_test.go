package pgstate_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/pkg/pgstate"
)

// TestMigrateConcurrently starts 8 instances on an empty database at once: the schema is
// migrated once, by one of them, and all of them open.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	const n = 8
	dsn := newDatabase(t)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		dbs   [n]*pgstate.DB
		errs  [n]error
	)
	migrated, opened := 0, 0
	allLogs := make([]func() (int, int), n)
	for i := range n {
		opts, l := testOptions()
		allLogs[i] = func() (int, int) { return events(l, "state.migrated"), events(l, "state.opened") }
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			dbs[i], errs[i] = pgstate.Open(context.Background(), dsn, opts)
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { _ = dbs[i].Close() })
		m, o := allLogs[i]()
		migrated += m
		opened += o
		if m+o != 1 {
			t.Errorf("Open %d logged %d state.migrated and %d state.opened, want one of them", i, m, o)
		}
	}
	if migrated != 1 || opened != n-1 {
		t.Errorf("state.migrated logged %d times and state.opened %d times, want 1 and %d", migrated, opened, n-1)
	}

	conn := connect(t, dsn)
	rows, err := conn.Query(context.Background(), `SELECT version FROM xacctd_schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= pgstate.SchemaVersion(); v++ {
		want = append(want, v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("xacctd_schema_migrations versions (-want +got):\n%s", diff)
	}
	var by []string
	if err := conn.QueryRow(context.Background(), `SELECT array_agg(DISTINCT applied_by) FROM xacctd_schema_migrations`).Scan(&by); err != nil {
		t.Fatal(err)
	}
	if len(by) != 1 || !strings.Contains(by[0], " pid ") {
		t.Errorf("applied_by = %q, want one instance naming its pid", by)
	}

	// Every instance works on the schema.
	for i, db := range dbs {
		if db == nil {
			continue
		}
		if _, err := db.Runs(context.Background(), "j", 0); err != nil {
			t.Errorf("Runs through instance %d: %v", i, err)
		}
	}

	// A later start finds the schema current.
	opts, l := testOptions()
	open(t, dsn, opts, l)
	if m, o := events(l, "state.migrated"), events(l, "state.opened"); m != 0 || o != 1 {
		t.Errorf("a later Open logged state.migrated %d times and state.opened %d times, want 0 and 1", m, o)
	}
	if e := l.FilterField(eventField("state.opened")).All(); len(e) == 1 {
		if v, ok := e[0].ContextMap()["schema_version"]; !ok || v != int64(pgstate.SchemaVersion()) {
			t.Errorf("state.opened schema_version = %v, want %d", v, pgstate.SchemaVersion())
		}
	}
}

func TestMigratedEventNamesVersions(t *testing.T) {
	t.Parallel()
	opts, l := testOptions()
	open(t, newDatabase(t), opts, l)
	e := l.FilterField(eventField("state.migrated")).All()
	if len(e) != 1 {
		t.Fatalf("state.migrated logged %d times, want once", len(e))
	}
	f := e[0].ContextMap()
	if f["from_version"] != int64(0) || f["to_version"] != int64(pgstate.SchemaVersion()) {
		t.Errorf("state.migrated fields %v, want from_version 0 and to_version %d", f, pgstate.SchemaVersion())
	}
}

// TestNewerSchemaRefused: a database migrated by a newer xacctd is left alone.
func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	opts, l := testOptions()
	db := open(t, dsn, opts, l)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	newer := pgstate.SchemaVersion() + 1
	if _, err := conn.Exec(context.Background(), `INSERT INTO xacctd_schema_migrations (version, name) VALUES ($1, 'from the future')`, newer); err != nil {
		t.Fatal(err)
	}
	_, err := pgstate.Open(context.Background(), dsn, opts)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema = %v, want an error saying it is newer", err)
	}
	t.Log(err)
	if strings.Contains(err.Error(), srv.SuperPassword) || strings.Contains(err.Error(), dsn) {
		t.Errorf("error shows the DSN or password: %v", err)
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM xacctd_schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != pgstate.SchemaVersion()+1 {
		t.Errorf("%d migrations recorded after the refused Open, want %d (untouched)", n, pgstate.SchemaVersion()+1)
	}
	// Nothing of the refused instance stays connected.
	var sessions int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	if sessions != 0 {
		t.Errorf("%d sessions left on the database after the refused Open", sessions)
	}
}

// TestMissingSchemaRefused: a search_path naming no schema that exists is an error, not
// tables created somewhere unexpected.
func TestMissingSchemaRefused(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t) + "&search_path=nowhere"
	opts, _ := testOptions()
	if db, err := pgstate.Open(context.Background(), dsn, opts); err == nil {
		_ = db.Close()
		t.Fatal("Open with a search_path naming no schema succeeded")
	} else if !strings.Contains(err.Error(), "no current schema") {
		t.Errorf("Open error = %v, want one saying there is no current schema", err)
	}
}
