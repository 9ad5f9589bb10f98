package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// haProxy relays TCP to PostgreSQL for one daemon, and can cut its connections: closing
// both sides of every live connection and refusing new ones until restored.
type haProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	down   bool
}

func newHAProxy(t *testing.T, target string) *haProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &haProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
	return p
}

func (p *haProxy) relay(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// cut closes every relayed connection; with down, new ones are refused until cut(false).
func (p *haProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for c := range p.conns {
		c.Close()
	}
}

// haDaemon is one `xacctd run` process with its logs.
type haDaemon struct {
	name   string
	cmd    *exec.Cmd
	http   string
	mu     sync.Mutex
	raw    bytes.Buffer
	exited chan error
}

func (d *haDaemon) Write(b []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.raw.Write(b)
}

// events parses the log so far and returns the lines with event name (all when "").
func (d *haDaemon) events(name string) []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(d.raw.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m = map[string]any{"event": "!not-json", "line": sc.Text()}
		}
		if name == "" || m["event"] == name {
			out = append(out, m)
		}
	}
	return out
}

func (d *haDaemon) count(event string) int { return len(d.events(event)) }

// eventTime is when the n-th (0-based) line of event was logged.
func (d *haDaemon) eventTime(t *testing.T, event string, n int) time.Time {
	t.Helper()
	ev := d.events(event)
	if len(ev) <= n {
		t.Fatalf("%s logged %d %s, want more than %d", d.name, len(ev), event, n)
	}
	ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev[n]["ts"]))
	if err != nil {
		t.Fatalf("%s: %s has no RFC 3339 ts: %v", d.name, event, ev[n])
	}
	return ts
}

// TestHighAvailability runs two daemons (separate processes) against the sandbox and one
// PostgreSQL holding their shared state, each through its own TCP proxy. Two jobs are due
// every minute; each execution inserts a row on the cluster, so that doubles would show
// there and not only in the history. Over about four minutes:
//   - both start at once on an empty database: the schema is migrated once;
//   - one leads, the other follows (ready, /status and /metrics say follower);
//   - the leader is SIGKILLed two seconds before a minute: the follower takes over within
//     15 s and the occurrence due meanwhile runs once (caught up from the shared history);
//   - the killed one is started again and follows;
//   - the new leader's database connections are cut (and refused for 12 s): it steps down
//     within the check bound, the other takes over, and the cut one reconnects as follower;
//   - in the end every minute from the first to the last ran exactly once per job, on the
//     cluster and in the history, with nothing lost, doubled, interrupted or left running.
func TestHighAvailability(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about four minutes of wall-clock time (every-minute jobs)")
	}
	ctx := context.Background()
	if err := world.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := xacctdBinary(t)

	// The state database, owned by an ordinary role (what an operator would give xacctd).
	const statePassword = "ha-St4te-Pa55word"
	superDSN, err := world.Postgres.CreateDatabase(ctx, "xacctd_ha_state")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = world.Postgres.DropDatabase(context.Background(), "xacctd_ha_state") })
	execSQL(t, superDSN, `DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'xacctd_state') THEN
			CREATE ROLE xacctd_state LOGIN PASSWORD '`+statePassword+`';
		END IF; END $$`,
		`ALTER DATABASE xacctd_ha_state OWNER TO xacctd_state`)
	// On the cluster: every execution of a job leaves a row.
	execSQL(t, world.PostgresDSN, `DROP TABLE IF EXISTS public.ha_ticks`,
		`CREATE TABLE public.ha_ticks (job text NOT NULL, scheduled text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
		`CREATE OR REPLACE FUNCTION public.ha_tick(job text, scheduled text) RETURNS int LANGUAGE sql VOLATILE SECURITY DEFINER
			AS $$ INSERT INTO public.ha_ticks (job, scheduled) VALUES (job, scheduled) RETURNING 1 $$`,
		`GRANT EXECUTE ON FUNCTION public.ha_tick(text, text) TO PUBLIC`)

	u, err := url.Parse(superDSN)
	if err != nil {
		t.Fatal(err)
	}
	pgAddr := u.Host
	config := func(name string) (path, listen string) {
		listen = freePort(t)
		path = filepath.Join(work, name+".yaml")
		var jobs strings.Builder
		for _, j := range []string{"tick-a", "tick-b"} {
			fmt.Fprintf(&jobs, `  - name: %s
    pair: lake
    schedule: "* * * * *"
    catch_up: 10m
    unload:
      query: SELECT public.ha_tick('%s', '{{ .ScheduledTime.Format "2006-01-02T15:04" }}') AS n
      to: '%s/{{ .RunID }}/'
`, j, j, j)
		}
		cfg := "version: 1\n" + world.ConfigFragment() + `buckets:
  lake: {account: lake, name: ha-lake, create: true}
pairs:
  - {name: lake, cluster: analytics, bucket: lake, prefix: ha/, access: [unload], role: {name: HaLake, db_users: [etl_loader]}}
jobs:
` + jobs.String() + `state: {backend: postgres, dsn_env: XACCTD_STATE_DSN}
http: {listen: ` + listen + `}
`
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path, listen
	}
	cfgA, httpA := config("a")
	cfgB, httpB := config("b")
	if out, err := exec.Command(bin, "apply", "--config", cfgA, "--log-format", "json").CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	proxies := map[string]*haProxy{"a": newHAProxy(t, pgAddr), "b": newHAProxy(t, pgAddr)}
	dsnVia := func(p *haProxy) string {
		v := *u
		v.User = url.UserPassword("xacctd_state", statePassword)
		v.Host = p.ln.Addr().String()
		return v.String()
	}
	var all []*haDaemon
	start := func(name, cfg, listen string) *haDaemon {
		t.Helper()
		d := &haDaemon{name: name, http: listen, exited: make(chan error, 1)}
		d.cmd = exec.Command(bin, "run", "--config", cfg, "--log-format", "json")
		d.cmd.Env = append(os.Environ(), "XACCTD_STATE_DSN="+dsnVia(proxies[name[:1]]))
		d.cmd.Stderr, d.cmd.Stdout = d, d
		if err := d.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { d.exited <- d.cmd.Wait() }()
		all = append(all, d)
		t.Cleanup(func() {
			if d.cmd.ProcessState == nil {
				_ = d.cmd.Process.Kill()
			}
			if t.Failed() {
				t.Logf("--- log of %s ---\n%s", d.name, d.raw.String())
			}
		})
		return d
	}

	// 1. Both at once, on an empty database.
	a := start("a", cfgA, httpA)
	b := start("b", cfgB, httpB)
	waitFor(t, "both daemons started", 60*time.Second, func() bool { return a.count("daemon.started") == 1 && b.count("daemon.started") == 1 })
	if m := a.count("state.migrated") + b.count("state.migrated"); m != 1 {
		t.Errorf("state.migrated logged %d times by two instances starting together, want 1", m)
	}
	if o := a.count("state.opened") + b.count("state.opened"); o != 1 {
		t.Errorf("state.opened (schema already current) logged %d times, want 1 (by the instance that did not migrate)", o)
	}
	var versions, distinct int
	queryRow(t, superDSN, `SELECT count(*), count(DISTINCT version) FROM xacctd_schema_migrations`, &versions, &distinct)
	if versions != distinct || versions < 2 {
		t.Errorf("xacctd_schema_migrations: %d rows, %d distinct versions; want each version once", versions, distinct)
	}

	// 2. One leads, the other follows.
	var leader, follower *haDaemon
	waitFor(t, "a leader", 30*time.Second, func() bool { return a.count("leader.acquired")+b.count("leader.acquired") > 0 })
	if a.count("leader.acquired") > 0 {
		leader, follower = a, b
	} else {
		leader, follower = b, a
	}
	if follower.count("leader.acquired") != 0 {
		t.Fatal("both instances became leader")
	}
	checkRole(t, follower, "follower", 200)
	waitFor(t, "the leader ready", 60*time.Second, func() bool { code, _ := httpGet(t, "http://"+leader.http+"/readyz"); return code == 200 })
	checkRole(t, leader, "leader", 200)

	// The first minute runs on the leader.
	waitFor(t, "the first minute's runs", 75*time.Second, func() bool { return leader.count("job.succeeded") >= 2 })
	if follower.count("job.started") != 0 {
		t.Fatalf("the follower started jobs")
	}

	// 3. SIGKILL the leader 2 s before the next minute.
	killAt := time.Now().Truncate(time.Minute).Add(time.Minute - 2*time.Second)
	time.Sleep(time.Until(killAt))
	killed := time.Now()
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-leader.exited
	waitFor(t, "the follower to take over", 20*time.Second, func() bool { return follower.count("leader.acquired") == 1 })
	takeover := follower.eventTime(t, "leader.acquired", 0).Sub(killed)
	t.Logf("takeover after SIGKILL: %s", takeover.Round(time.Millisecond))
	if takeover > 15*time.Second {
		t.Errorf("takeover after SIGKILL took %s, want under 15s", takeover)
	}
	newLeader := follower
	// The killed instance comes back, as a follower.
	restarted := start(leader.name+"2", map[*haDaemon]string{a: cfgA, b: cfgB}[leader], leader.http)
	waitFor(t, "the restarted instance started", 60*time.Second, func() bool { return restarted.count("daemon.started") == 1 })
	checkRole(t, restarted, "follower", 200)

	// The new leader runs the minute that came due while nobody led, and the next one.
	waitFor(t, "two minutes on the new leader", 150*time.Second, func() bool { return newLeader.count("job.succeeded") >= 4 })

	// 4. Cut the new leader's database connections 20 s into a minute.
	cutAt := time.Now().Truncate(time.Minute).Add(20 * time.Second)
	if time.Now().After(cutAt) {
		cutAt = cutAt.Add(time.Minute)
	}
	time.Sleep(time.Until(cutAt))
	proxy := proxies[newLeader.name[:1]]
	cut := time.Now()
	proxy.cut(true)
	waitFor(t, "the cut leader to step down", 10*time.Second, func() bool { return newLeader.count("leader.lost") == 1 })
	stepDown := newLeader.eventTime(t, "leader.lost", 0).Sub(cut)
	t.Logf("step-down after the connection cut: %s", stepDown.Round(time.Millisecond))
	if stepDown > 5*time.Second {
		t.Errorf("the leader stepped down %s after losing its database, want within the check bound (3s + slack)", stepDown)
	}
	waitFor(t, "the restarted instance to take over", 20*time.Second, func() bool { return restarted.count("leader.acquired") == 1 })
	t.Logf("takeover after the cut: %s", restarted.eventTime(t, "leader.acquired", 0).Sub(cut).Round(time.Millisecond))
	time.Sleep(time.Until(cut.Add(12 * time.Second)))
	proxy.cut(false)
	waitFor(t, "the cut instance to reconnect", 20*time.Second, func() bool { return newLeader.count("state.connection_restored") >= 1 })
	checkRole(t, newLeader, "follower", 200)
	if newLeader.count("leader.acquired") != 1 {
		t.Errorf("the cut instance became leader again while the other led")
	}

	// 5. The third leader runs the next minute; then both stop cleanly.
	waitFor(t, "a minute on the third leader", 90*time.Second, func() bool { return restarted.count("job.succeeded") >= 2 })
	for _, d := range []*haDaemon{newLeader, restarted} {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, d := range []*haDaemon{newLeader, restarted} {
		select {
		case err := <-d.exited:
			if err != nil {
				t.Errorf("%s exited with %v after SIGTERM, want 0", d.name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not stop after SIGTERM", d.name)
		}
	}

	// Nothing new starts on the cut leader from the moment it lost the lead, to the end.
	lostAt := newLeader.eventTime(t, "leader.lost", 0)
	for i, ev := range newLeader.events("job.started") {
		if at := newLeader.eventTime(t, "job.started", i); at.After(lostAt) {
			t.Errorf("the cut leader started a job after leader.lost: %v", ev)
		}
	}

	// Every minute from the first to the last ran exactly once per job: on the cluster...
	for _, job := range []string{"tick-a", "tick-b"} {
		rows := queryStrings(t, world.PostgresDSN, `SELECT scheduled || ' x' || count(*) FROM public.ha_ticks WHERE job = $1 GROUP BY scheduled ORDER BY scheduled`, job)
		var minutes []time.Time
		for _, r := range rows {
			if !strings.HasSuffix(r, " x1") {
				t.Errorf("%s: occurrence executed more than once on the cluster: %s", job, r)
			}
			m, err := time.Parse("2006-01-02T15:04", strings.Fields(r)[0])
			if err != nil {
				t.Fatal(err)
			}
			minutes = append(minutes, m)
		}
		if len(minutes) < 4 {
			t.Errorf("%s ran %d minutes, want at least 4: %v", job, len(minutes), rows)
		}
		for i := 1; i < len(minutes); i++ {
			if minutes[i].Sub(minutes[i-1]) != time.Minute {
				t.Errorf("%s: occurrence(s) lost between %s and %s: %v", job, minutes[i-1].Format("15:04"), minutes[i].Format("15:04"), rows)
			}
		}
		t.Logf("%s: %d minutes, each executed once: %s .. %s", job, len(minutes), rows[0], rows[len(rows)-1])
		// ... and in the shared history: one succeeded run per minute, nothing else.
		hist := queryStrings(t, superDSN, `SELECT to_char(scheduled_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') || ' ' || string_agg(outcome || '/' || trigger, ',')
			FROM xacctd_runs WHERE job = $1 GROUP BY scheduled_time ORDER BY scheduled_time`, job)
		if len(hist) != len(minutes) {
			t.Errorf("%s: history has %d occurrences, the cluster %d:\n%v\n%v", job, len(hist), len(minutes), hist, rows)
		}
		for _, h := range hist {
			f := strings.Fields(h)
			if len(f) != 2 || strings.Contains(f[1], ",") || !strings.HasPrefix(f[1], "succeeded/") {
				t.Errorf("%s: occurrence %s in history, want exactly one succeeded run", job, h)
			}
		}
	}

	// Logs: JSON with documented events, and the state password nowhere.
	known := knownEvents(t)
	for _, d := range all {
		for _, m := range d.events("") {
			if ev, _ := m["event"].(string); !known[ev] {
				t.Errorf("%s logged an event docs/events.md does not list: %v", d.name, m)
			}
		}
		if strings.Contains(d.raw.String(), statePassword) {
			t.Errorf("%s logged the state database password", d.name)
		}
	}
}

// checkRole asserts /status's role, /readyz's code and the xacctd_leader metric.
func checkRole(t *testing.T, d *haDaemon, role string, ready int) {
	t.Helper()
	var st map[string]any
	waitFor(t, d.name+" /status role "+role, 10*time.Second, func() bool {
		code, body := httpGet(t, "http://"+d.http+"/status")
		return code == 200 && json.Unmarshal([]byte(body), &st) == nil && st["role"] == role
	})
	if code, body := httpGet(t, "http://"+d.http+"/healthz"); code != 200 {
		t.Errorf("%s (%s): /healthz %d %s, want 200", d.name, role, code, body)
	}
	if code, body := httpGet(t, "http://"+d.http+"/readyz"); code != ready {
		t.Errorf("%s (%s): /readyz %d %s, want %d", d.name, role, code, body, ready)
	}
	want := "xacctd_leader 0"
	if role == "leader" {
		want = "xacctd_leader 1"
	}
	if _, body := httpGet(t, "http://"+d.http+"/metrics"); !strings.Contains(body, want) {
		t.Errorf("%s (%s): /metrics lacks %q", d.name, role, want)
	}
	if role == "follower" {
		cur, _ := st["current_leader"].(map[string]any)
		if cur == nil || cur["held"] != true {
			t.Errorf("%s: a follower's /status names no current leader: %v", d.name, st["current_leader"])
		}
	}
}

// withConn runs f on a new connection to dsn.
func withConn(t *testing.T, dsn string, f func(ctx context.Context, conn *pgx.Conn)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	f(ctx, conn)
}

func execSQL(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) {
		for _, s := range stmts {
			if _, err := conn.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	})
}

func queryRow(t *testing.T, dsn, sql string, dest ...any) {
	t.Helper()
	withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) {
		if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	})
}

func queryStrings(t *testing.T, dsn, sql string, args ...any) (out []string) {
	t.Helper()
	withConn(t, dsn, func(ctx context.Context, conn *pgx.Conn) {
		rows, err := conn.Query(ctx, sql, args...)
		if err == nil {
			out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	})
	return out
}
