package pgstate_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/pgstate"
)

// candidate is one instance campaigning for the leader lock.
type candidate struct {
	name string
	db   *pgstate.DB
	logs *observer.ObservedLogs

	cancel context.CancelFunc
	done   chan struct{} // Campaign returned
	err    error         // Campaign's, once done

	leads   atomic.Int32   // lead calls so far
	started chan int64     // each term's number, when lead is called
	ended   chan endedTerm // each term, when its context ends
	hold    chan struct{}  // lead returns only once this is closed (after its ctx ended)
	holdOff func()         // closes hold, once
	onMu    sync.Mutex     // guards on and session
	on      []bool         // OnLeader calls
	session []bool         // OnSession calls
	termCtx atomic.Value   // the latest term's context
}

type endedTerm struct {
	cause error
	at    time.Time
}

// newCandidate opens dsn for an instance called name (its Version). With hold, lead does
// not return after its context ends until release is called.
func newCandidate(t *testing.T, dsn, name string, hold bool) *candidate {
	t.Helper()
	c := &candidate{name: name, started: make(chan int64, 10), ended: make(chan endedTerm, 10), done: make(chan struct{})}
	if hold {
		c.hold = make(chan struct{})
		c.holdOff = sync.OnceFunc(func() { close(c.hold) })
	}
	opts, logs := testOptions()
	opts.Version = name
	opts.OnLeader = func(leading bool) {
		c.onMu.Lock()
		c.on = append(c.on, leading)
		c.onMu.Unlock()
	}
	opts.OnSession = func(up bool) {
		c.onMu.Lock()
		c.session = append(c.session, up)
		c.onMu.Unlock()
	}
	c.logs = logs
	c.db = open(t, dsn, opts, logs)
	return c
}

// campaign starts the candidate's Campaign; it is stopped (and waited for) when the test
// ends, before the DB is closed.
func (c *candidate) campaign(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		c.err = c.db.Campaign(ctx, c.lead)
	}()
	t.Cleanup(func() {
		cancel()
		c.release()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s: Campaign did not return within 5s of its context's end", c.name)
		}
	})
}

func (c *candidate) lead(ctx context.Context) {
	c.leads.Add(1)
	c.termCtx.Store(ctx)
	c.started <- c.db.Term()
	<-ctx.Done()
	c.ended <- endedTerm{cause: context.Cause(ctx), at: time.Now()}
	if c.hold != nil {
		<-c.hold
	}
}

func (c *candidate) release() {
	if c.holdOff != nil {
		c.holdOff()
	}
}

func (c *candidate) onLeader() []bool {
	c.onMu.Lock()
	defer c.onMu.Unlock()
	return append([]bool(nil), c.on...)
}

// waitStarted returns the next term's number, as Term reported when lead was called.
func (c *candidate) waitStarted(t *testing.T) int64 {
	t.Helper()
	select {
	case term := <-c.started:
		return term
	case <-time.After(time.Second):
		t.Fatalf("%s: lead was not called", c.name)
		return 0
	}
}

// waitEnded returns the next term end within d.
func (c *candidate) waitEnded(t *testing.T, d time.Duration) endedTerm {
	t.Helper()
	select {
	case e := <-c.ended:
		return e
	case <-time.After(d):
		t.Fatalf("%s: the term's context did not end within %v", c.name, d)
		return endedTerm{}
	}
}

// dbName is the database a DSN names.
func dbName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// leaderSession returns the backend pid of the session holding the leader lock of the
// database, failing unless exactly one xacctd session holds it.
func leaderSession(t *testing.T, conn *pgx.Conn, db string) int {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.objid = 1 AND l.objsubid = 2 AND l.granted
		AND l.database = (SELECT oid FROM pg_database WHERE datname = $1)`, db)
	if err != nil {
		t.Fatal(err)
	}
	type holder struct {
		PID int
		App string
	}
	hs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[holder])
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || !strings.HasPrefix(hs[0].App, "xacctd") {
		t.Fatalf("leader lock holders = %+v, want one xacctd session", hs)
	}
	return hs[0].PID
}

// kill ends the backend pid from the server's side, as a failing network or a DBA would.
func kill(t *testing.T, conn *pgx.Conn, pid int) time.Time {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)
		FROM pg_stat_activity WHERE application_name LIKE 'xacctd%' AND pid = $1`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
	return time.Now()
}

func leaderInfo(t *testing.T, db *pgstate.DB) pgstate.LeaderInfo {
	t.Helper()
	li, err := db.Leader(context.Background())
	if err != nil {
		t.Fatalf("Leader: %v", err)
	}
	return li
}

// TestElection: of two instances one leads; it steps down when its campaign ends, and the
// other takes over.
func TestElection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := newDatabase(t)
	a := newCandidate(t, dsn, "A", false)
	b := newCandidate(t, dsn, "B", false)

	if li := leaderInfo(t, a.db); li.Held || li.Term != 0 {
		t.Errorf("Leader before any campaign = %+v, want none", li)
	}
	if a.db.Leading() || a.db.Term() != 0 {
		t.Error("A leads before campaigning")
	}

	began := time.Now()
	a.campaign(t)
	b.campaign(t)
	took, ok := waitFor(tick+settle+slack, func() bool { return a.db.Leading() || b.db.Leading() })
	if !ok {
		t.Fatalf("no leader within %v", took)
	}
	t.Logf("first leader after %v", time.Since(began).Round(time.Millisecond))
	if time.Since(began) < settle {
		t.Errorf("a leader after %v, before Settle (%v) passed", time.Since(began), settle)
	}
	leader, follower := a, b
	if b.db.Leading() {
		leader, follower = b, a
	}
	// Long enough for the follower to have tried the lock several times and settled.
	if !holdsFor(settle+3*tick, func() bool { return leader.db.Leading() && !follower.db.Leading() }) {
		t.Fatalf("leadership changed without cause: %s leading %v, %s leading %v",
			leader.name, leader.db.Leading(), follower.name, follower.db.Leading())
	}
	term := leader.db.Term()
	if term <= 0 || follower.db.Term() != 0 {
		t.Errorf("terms: leader %d, follower %d; want a positive one and 0", term, follower.db.Term())
	}
	if got := leader.waitStarted(t); got != term {
		t.Errorf("lead started with Term() %d, want %d", got, term)
	}
	if n, m := leader.leads.Load(), follower.leads.Load(); n != 1 || m != 0 {
		t.Errorf("lead called %d times on the leader and %d on the follower, want 1 and 0", n, m)
	}
	if diff := cmp.Diff([]bool{true}, leader.onLeader()); diff != "" {
		t.Errorf("leader's OnLeader calls (-want +got):\n%s", diff)
	}
	if got := follower.onLeader(); len(got) != 0 {
		t.Errorf("follower's OnLeader calls = %v, want none", got)
	}
	for _, ev := range []string{"leader.acquired", "leader.settling"} {
		if n, m := events(leader.logs, ev), events(follower.logs, ev); n != 1 || m != 0 {
			t.Errorf("%s logged %d times by the leader and %d by the follower, want 1 and 0", ev, n, m)
		}
	}

	// Followers see who leads.
	li := leaderInfo(t, follower.db)
	host, _ := os.Hostname()
	if !li.Held || li.Term != term || li.Host != host || li.PID != os.Getpid() || li.Version != leader.name {
		t.Errorf("Leader on the follower = %+v, want held, term %d, host %s, pid %d, version %s", li, term, host, os.Getpid(), leader.name)
	}
	if age := time.Since(li.Since); age < 0 || age > 10*time.Second || li.Since.Location() != time.UTC {
		t.Errorf("Leader Since = %v, want a recent UTC time", li.Since)
	}

	// Runs recorded during a term carry it.
	record(t, leader.db, finished("j", "by-leader", t0))
	record(t, follower.db, finished("j", "by-follower", t0.Add(time.Hour)))
	conn := connect(t, dsn)
	termOf := map[string]*int64{}
	for _, id := range []string{"by-leader", "by-follower"} {
		var v *int64
		if err := conn.QueryRow(ctx, `SELECT leader_term FROM xacctd_runs WHERE id = $1`, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		termOf[id] = v
	}
	if v := termOf["by-leader"]; v == nil || *v != term {
		t.Errorf("leader_term of the leader's run = %v, want %d", v, term)
	}
	if v := termOf["by-follower"]; v != nil {
		t.Errorf("leader_term of the follower's run = %d, want NULL", *v)
	}

	// The leader steps down: its campaign ends.
	stepped := time.Now()
	leader.cancel()
	e := leader.waitEnded(t, time.Second)
	if !errors.Is(e.cause, context.Canceled) || errors.Is(e.cause, pgstate.ErrLeadershipLost) {
		t.Errorf("stepping down ended the term with cause %v, want context.Canceled", e.cause)
	}
	select {
	case <-leader.done:
		if leader.err != nil {
			t.Errorf("Campaign returned %v, want nil", leader.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Campaign did not return after its context ended")
	}
	if leader.db.Leading() || leader.db.Term() != 0 {
		t.Errorf("after stepping down: Leading %v, Term %d", leader.db.Leading(), leader.db.Term())
	}
	if n := events(leader.logs, "leader.released"); n != 1 {
		t.Errorf("leader.released logged %d times, want once", n)
	}
	if n := events(leader.logs, "leader.lost"); n != 0 {
		t.Errorf("stepping down logged leader.lost %d times", n)
	}
	if diff := cmp.Diff([]bool{true, false}, leader.onLeader()); diff != "" {
		t.Errorf("leader's OnLeader calls (-want +got):\n%s", diff)
	}

	took, ok = waitFor(tick+settle+slack, follower.db.Leading)
	takeover := time.Since(stepped)
	if !ok {
		t.Fatalf("%s did not take over within %v of the step-down", follower.name, took)
	}
	t.Logf("takeover after a step-down: %v (bound: Tick %v + Settle %v)", takeover.Round(time.Millisecond), tick, settle)
	if takeover < settle {
		t.Errorf("takeover after %v, before Settle (%v)", takeover, settle)
	}
	newTerm := follower.db.Term()
	if newTerm <= term {
		t.Errorf("new term %d, want more than %d", newTerm, term)
	}
	if diff := cmp.Diff([]bool{true}, follower.onLeader()); diff != "" {
		t.Errorf("new leader's OnLeader calls (-want +got):\n%s", diff)
	}
	if n := events(follower.logs, "leader.acquired"); n != 1 {
		t.Errorf("leader.acquired logged %d times by the new leader, want once", n)
	}
	li = leaderInfo(t, leader.db)
	if !li.Held || li.Term != newTerm || li.Version != follower.name {
		t.Errorf("Leader on the old leader = %+v, want held, term %d, version %s", li, newTerm, follower.name)
	}

	// The terms are recorded; the one that stepped down is marked released.
	rows, err := conn.Query(ctx, `SELECT term, version, released_at IS NOT NULL FROM xacctd_leader_terms ORDER BY term`)
	if err != nil {
		t.Fatal(err)
	}
	type termRow struct {
		Term     int64
		Version  string
		Released bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[termRow])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]termRow{{term, leader.name, true}, {newTerm, follower.name, false}}, got); diff != "" {
		t.Errorf("xacctd_leader_terms (-want +got):\n%s", diff)
	}

	// The old leader, no longer campaigning, stays out.
	if !holdsFor(3*tick, func() bool { return !leader.db.Leading() && follower.db.Leading() }) {
		t.Error("leadership moved again after the takeover")
	}
}

// TestLeaderSessionKilled: the leader's session is ended by the server. Its term ends at
// once with ErrLeadershipLost, the follower takes over, and the old leader reconnects as a
// follower.
func TestLeaderSessionKilled(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	conn := connect(t, dsn)
	a := newCandidate(t, dsn, "A", false)
	b := newCandidate(t, dsn, "B", false)
	a.campaign(t)
	if took, ok := waitFor(tick+settle+slack, a.db.Leading); !ok {
		t.Fatalf("A alone did not lead within %v", took)
	}
	b.campaign(t)
	if !holdsFor(settle+2*tick, func() bool { return a.db.Leading() && !b.db.Leading() }) {
		t.Fatal("B took over from a healthy leader")
	}
	term := a.db.Term()
	if got := a.waitStarted(t); got != term {
		t.Errorf("lead started with Term() %d, want %d", got, term)
	}

	killed := kill(t, conn, leaderSession(t, conn, dbName(t, dsn)))
	e := a.waitEnded(t, tick+timeout+slack)
	lost := e.at.Sub(killed)
	t.Logf("leader noticed the loss of its session after %v (bound: Tick %v + Timeout %v)", lost.Round(time.Millisecond), tick, timeout)
	if e.cause != pgstate.ErrLeadershipLost {
		t.Errorf("term ended with cause %v, want ErrLeadershipLost", e.cause)
	}
	if lost > tick+timeout+slack/2 {
		t.Errorf("the loss was noticed after %v, want within Tick + Timeout", lost)
	}
	if a.db.Leading() || a.db.Term() != 0 {
		t.Errorf("after the loss: A Leading %v, Term %d", a.db.Leading(), a.db.Term())
	}
	if _, ok := waitFor(time.Second, func() bool { return events(a.logs, "leader.lost") == 1 }); !ok {
		t.Errorf("leader.lost logged %d times, want once", events(a.logs, "leader.lost"))
	}
	if diff := cmp.Diff([]bool{true, false}, a.onLeader()); diff != "" {
		t.Errorf("A's OnLeader calls (-want +got):\n%s", diff)
	}

	took, ok := waitFor(2*tick+settle+slack, b.db.Leading)
	takeover := time.Since(killed)
	if !ok {
		t.Fatalf("B did not take over within %v", took)
	}
	t.Logf("takeover after the leader's session was killed: %v (bound: 2 Tick + Settle = %v)", takeover.Round(time.Millisecond), 2*tick+settle)
	if b.db.Term() <= term {
		t.Errorf("B's term %d, want more than %d", b.db.Term(), term)
	}

	if _, ok := waitFor(2*tick+slack, func() bool { return events(a.logs, "state.connection_restored") >= 1 }); !ok {
		t.Error("A did not log state.connection_restored")
	}
	if n := events(a.logs, "state.connection_lost"); n != 1 {
		t.Errorf("state.connection_lost logged %d times, want once", n)
	}
	if ok, why := a.db.Connected(); !ok {
		t.Errorf("A not connected after reconnecting: %s", why)
	}
	a.onMu.Lock()
	sessionCalls := append([]bool(nil), a.session...)
	a.onMu.Unlock()
	if diff := cmp.Diff([]bool{false, true}, sessionCalls); diff != "" {
		t.Errorf("A's OnSession calls (-want +got):\n%s", diff)
	}
	if !holdsFor(settle+3*tick, func() bool { return !a.db.Leading() && b.db.Leading() }) {
		t.Errorf("after reconnecting: A Leading %v, B Leading %v; want A to follow", a.db.Leading(), b.db.Leading())
	}
	if n, m := a.leads.Load(), b.leads.Load(); n != 1 || m != 1 {
		t.Errorf("lead called %d times on A and %d on B, want once each", n, m)
	}
	li := leaderInfo(t, a.db)
	if !li.Held || li.Term != b.db.Term() || li.Version != "B" {
		t.Errorf("Leader on A = %+v, want held, term %d, version B", li, b.db.Term())
	}
	// A's history still works through its pool.
	record(t, a.db, finished("j", "after-loss", t0))
}

// TestNoNewTermBeforeLeadReturns: after a loss, an instance whose lead has not returned
// yet does not start another term, even with the lock free.
func TestNoNewTermBeforeLeadReturns(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	conn := connect(t, dsn)
	a := newCandidate(t, dsn, "A", true)
	a.campaign(t)
	if took, ok := waitFor(tick+settle+slack, a.db.Leading); !ok {
		t.Fatalf("A did not lead within %v", took)
	}
	first := a.waitStarted(t)
	kill(t, conn, leaderSession(t, conn, dbName(t, dsn)))
	if e := a.waitEnded(t, tick+timeout+slack); e.cause != pgstate.ErrLeadershipLost {
		t.Errorf("term ended with cause %v, want ErrLeadershipLost", e.cause)
	}
	if _, ok := waitFor(2*tick+slack, func() bool { return events(a.logs, "state.connection_restored") >= 1 }); !ok {
		t.Fatal("A did not reconnect")
	}
	// lead is still winding down: no new term, however long it takes.
	if !holdsFor(2*(tick+settle), func() bool { return !a.db.Leading() && a.db.Term() == 0 && a.leads.Load() == 1 }) {
		t.Fatalf("a new term started before lead returned: Leading %v, Term %d, lead calls %d", a.db.Leading(), a.db.Term(), a.leads.Load())
	}
	if n := events(a.logs, "leader.acquired"); n != 1 {
		t.Errorf("leader.acquired logged %d times while lead was still running, want once", n)
	}
	ctx, _ := a.termCtx.Load().(context.Context)
	if ctx == nil || context.Cause(ctx) != pgstate.ErrLeadershipLost {
		t.Error("the running lead's context is not cancelled with ErrLeadershipLost")
	}

	released := time.Now()
	a.release()
	took, ok := waitFor(tick+settle+slack, a.db.Leading)
	if !ok {
		t.Fatalf("no new term within %v of lead returning", took)
	}
	t.Logf("new term %v after lead returned", time.Since(released).Round(time.Millisecond))
	if second := a.waitStarted(t); second <= first {
		t.Errorf("second term %d, want more than %d", second, first)
	}
	if n := a.leads.Load(); n != 2 {
		t.Errorf("lead called %d times, want 2", n)
	}
	if diff := cmp.Diff([]bool{true, false, true}, a.onLeader()); diff != "" {
		t.Errorf("OnLeader calls (-want +got):\n%s", diff)
	}
}

// TestSchemasDoNotContend: deployments in different schemas of one database have their own
// tables and their own leader.
func TestSchemasDoNotContend(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	conn := connect(t, dsn)
	if _, err := conn.Exec(context.Background(), `CREATE SCHEMA blue; CREATE SCHEMA green`); err != nil {
		t.Fatal(err)
	}
	blue := newCandidate(t, dsn+"&search_path=blue", "blue", false)
	green := newCandidate(t, dsn+"&search_path=green", "green", false)
	blue.campaign(t)
	green.campaign(t)
	if took, ok := waitFor(tick+settle+slack, func() bool { return blue.db.Leading() && green.db.Leading() }); !ok {
		t.Fatalf("blue leading %v, green leading %v after %v; want both", blue.db.Leading(), green.db.Leading(), took)
	}
	record(t, blue.db, finished("j", "blue-run", t0))
	if got := runs(t, green.db, "j", 0); len(got) != 0 {
		t.Errorf("green sees blue's runs: %v", runIDs(got))
	}
	if ok, _, err := green.db.Claim(context.Background(), running("j", "green-run", history.TriggerSchedule, t0)); err != nil || !ok {
		t.Errorf("green's Claim of an occurrence blue holds = %v, %v; want claimed", ok, err)
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE tablename = 'xacctd_runs' AND schemaname IN ('blue', 'green')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("xacctd_runs in %d of the two schemas", n)
	}
}

// TestLossWhileRecordingTerm: the session is lost while the new term is being recorded
// (the INSERT into xacctd_leader_terms is held up). The instance must not report a term
// afterwards, and leads again once it can.
func TestLossWhileRecordingTerm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := newDatabase(t)
	conn := connect(t, dsn)
	a := newCandidate(t, dsn, "A", false)

	blocker := connect(t, dsn)
	tx, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE xacctd_leader_terms IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	a.campaign(t)
	if _, ok := waitFor(tick+settle+slack, func() bool {
		var n int
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO xacctd_leader_terms%'`).Scan(&n)
		return n == 1
	}); !ok {
		t.Fatal("recording the term did not block on the table lock")
	}
	kill(t, conn, leaderSession(t, conn, dbName(t, dsn)))
	if _, ok := waitFor(tick+timeout+slack, func() bool { return events(a.logs, "leader.lost") == 1 }); !ok {
		t.Fatal("the loss was not noticed")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	lost := a.logs.FilterField(eventField("leader.lost")).All()[0].ContextMap()
	if lost["term_started"] != false {
		t.Errorf("leader.lost fields %v, want term_started false", lost)
	}
	// Whatever became of the term's record, the lost term is not reported.
	if !holdsFor(2*tick, func() bool { return !a.db.Leading() && a.db.Term() == 0 }) {
		t.Fatalf("after losing the lock while recording the term: Leading %v, Term %d, OnLeader calls %v",
			a.db.Leading(), a.db.Term(), a.onLeader())
	}
	if got := a.onLeader(); len(got) > 0 && got[len(got)-1] {
		t.Errorf("OnLeader calls %v end with true after the term was lost", got)
	}
	if n := events(a.logs, "leader.acquired"); n != 0 {
		t.Errorf("leader.acquired logged %d times for a term lost before it started", n)
	}
	t.Logf("lead called %d times for the term lost while being recorded", a.leads.Load())

	// With the lock free and the table writable again, A leads.
	if took, ok := waitFor(2*tick+settle+slack, a.db.Leading); !ok {
		t.Fatalf("A did not lead again within %v", took)
	}
	if got := a.onLeader(); len(got) == 0 || !got[len(got)-1] {
		t.Errorf("OnLeader calls %v, want them to end with true", got)
	}
	if li := leaderInfo(t, a.db); !li.Held || li.Term != a.db.Term() {
		t.Errorf("Leader = %+v, want held, term %d", li, a.db.Term())
	}
}
