package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var srv *Server

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	s, err := Start(ctx, Options{})
	cancel()
	if err != nil {
		// A missing PostgreSQL must fail loudly, never skip.
		fmt.Fprintln(os.Stderr, "postgres sandbox unavailable:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func TestCreateConnectDrop(t *testing.T) {
	ctx := context.Background()
	dsn, err := srv.CreateDatabase(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	var db string
	if err := conn.QueryRow(ctx, "select current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != "orders-db" {
		t.Errorf("current_database() = %q, want orders-db", db)
	}
	// The open session must not stop the drop.
	if err := srv.DropDatabase(ctx, "orders-db"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := srv.DropDatabase(ctx, "orders-db"); err != nil {
		t.Errorf("dropping a missing database: %v", err)
	}
}

func TestPasswordAuth(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE ROLE pw_user LOGIN PASSWORD 'it''s secret'"); err != nil {
		t.Fatal(err)
	}
	good := fmt.Sprintf("postgres://pw_user:%s@%s:%d/postgres?sslmode=disable", "it%27s%20secret", srv.Host, srv.Port)
	if c, err := pgx.Connect(ctx, good); err != nil {
		t.Errorf("right password refused: %v", err)
	} else {
		c.Close(ctx)
	}
	bad := fmt.Sprintf("postgres://pw_user:wrong@%s:%d/postgres?sslmode=disable", srv.Host, srv.Port)
	if c, err := pgx.Connect(ctx, bad); err == nil {
		c.Close(ctx)
		t.Error("wrong password accepted: TCP must use password auth")
	}
}

func TestStartStopLeavesNothing(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	s, err := Start(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second server started in %v on port %d", time.Since(start).Round(time.Millisecond), s.Port)
	if s.Port == srv.Port {
		t.Errorf("two servers on port %d", s.Port)
	}
	pid, dir := s.cmd.Process.Pid, s.dir
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data dir %s still exists (%v)", dir, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !os.IsNotExist(err) {
		t.Errorf("postgres %d still running", pid)
	}
	if c, err := pgx.Connect(ctx, s.DSN); err == nil {
		c.Close(ctx)
		t.Error("stopped server still accepts connections")
	}
}

func TestMissingBinaries(t *testing.T) {
	t.Setenv("XACCTD_PG_BINDIR", t.TempDir())
	_, err := Start(context.Background(), Options{})
	if err == nil {
		t.Fatal("Start succeeded without binaries")
	}
	t.Log(err)
}
