package pgstate_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xacctd/xacctd/internal/sandbox/postgres"
	"github.com/xacctd/xacctd/pkg/pgstate"
)

// srv is the package's one throwaway PostgreSQL server; every test gets its own database.
var srv *postgres.Server

// maxParallel bounds the tests running at once: each holds a few connections, and the
// server takes 100.
const maxParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.parallel"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > maxParallel {
			_ = f.Value.Set(strconv.Itoa(maxParallel))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	s, err := postgres.Start(ctx, postgres.Options{})
	cancel()
	if err != nil {
		// A missing PostgreSQL must fail loudly, never skip.
		fmt.Fprintln(os.Stderr, "pgstate tests need a PostgreSQL server:", err)
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

// Small timings, so that election tests take about a second each.
const (
	tick    = 100 * time.Millisecond
	timeout = 500 * time.Millisecond
	idle    = 2 * time.Second
	settle  = tick + timeout // the default Settle
	// slack absorbs scheduling, the race detector and a loaded CI machine.
	slack = time.Second
)

var dbSeq atomic.Int64

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// newDatabase creates an empty database for the test and returns its superuser DSN.
func newDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", dbSeq.Add(1), nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	dsn, err := srv.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// testOptions are the small timings, with a logger that the returned observer records.
func testOptions() (pgstate.Options, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return pgstate.Options{
		Logger: zap.New(core), Tick: tick, Timeout: timeout, IdleSessionTimeout: idle,
	}, logs
}

// open opens dsn, closes the DB when the test ends, and checks that nothing it logged
// holds the server's password.
func open(t testing.TB, dsn string, opts pgstate.Options, logs *observer.ObservedLogs) *pgstate.DB {
	t.Helper()
	db, err := pgstate.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if logs != nil {
			noSecretLogged(t, logs, srv.SuperPassword)
		}
	})
	return db
}

// noSecretLogged fails the test if any log entry's message or fields contain secret.
func noSecretLogged(t testing.TB, logs *observer.ObservedLogs, secret string) {
	t.Helper()
	for _, e := range logs.All() {
		text := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(text, secret) {
			t.Errorf("log entry %q holds the password: %s", e.Message, text)
		}
	}
}

// eventField is the field logging.Event adds.
func eventField(name string) zap.Field { return zap.String("event", name) }

// events counts the entries logged with event name.
func events(logs *observer.ObservedLogs, name string) int {
	return logs.FilterField(eventField(name)).Len()
}

// connect opens a plain superuser connection, closed when the test ends.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitFor polls cond every 10ms until it holds or within passes; it returns how long it took
// and whether cond held.
func waitFor(within time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > within {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdsFor reports whether cond holds throughout d (polled every 10ms).
func holdsFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if !cond() {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}
