// Package pgstate is the PostgreSQL state backend (state.backend: postgres), shared by the
// daemons of several hosts: the run history (a history.Store whose Claim makes a scheduled
// occurrence run at most once across instances), the schema and its migrations, and leader
// election.
//
// # Sessions and locks
//
// Each process holds one dedicated connection, its session, for as long as it runs. The
// session holds a session-level advisory lock on a key of its own (the instance lock), and
// the leader's session also holds the leader lock. PostgreSQL releases both the moment the
// session ends, so they say who is alive without relying on clocks:
//
//   - a run left "running" whose owner's instance lock is not held belongs to a process that
//     ended or lost its session (Recover marks it interrupted);
//   - the leader is whoever holds the leader lock.
//
// A keeper goroutine checks the session every Tick (each check bounded by Timeout); the
// leader's check confirms that its session still holds the leader lock. A check that fails
// ends the session (the connection is closed, releasing the locks) and, for the leader,
// ends its term at once: the term's context is cancelled with ErrLeadershipLost before
// anything else happens. The session asks the server to end it after IdleSessionTimeout
// without a check (idle_session_timeout, PostgreSQL 14+), so that a leader whose host
// vanishes without closing its connection frees the leader lock within that bound.
//
// A new leader waits Settle (Tick + Timeout: the longest an old leader that lost its session
// may take to notice) after taking the lock before it starts its term, so that the terms of
// two instances never overlap while both are working as they should. Claims make at-most-once
// hold even if they did: a scheduled occurrence is recorded (claimed) before it runs, and the
// database refuses a second claim of the same job and scheduled time.
//
// Takeover after the leader dies: the lock is free as soon as the server notices (at once
// when the process dies, since its kernel closes the connection; IdleSessionTimeout when
// its host vanishes), plus up to Tick for a follower's next try, plus Settle. With the
// defaults, 1s + 3s after a crash and about 10s after a host disappears.
//
// # Namespaces
//
// Tables are created in the connection's current schema (set search_path in the DSN to use
// another), named xacctd_*. Advisory lock keys are derived from the database and schema
// names, so deployments that share a server but not a schema do not contend.
package pgstate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/logging"
)

// ErrLeadershipLost is the cause of a term's context when this instance loses the leader
// lock (its session failed a check or ended).
var ErrLeadershipLost = errors.New("leadership lost: this instance's state-database session failed or no longer holds the leader lock")

// Options configures a DB.
type Options struct {
	Logger  *zap.Logger
	Version string // recorded with each leader term
	// Retention and MaxRunsPerJob limit the run history per job (state.retention,
	// state.max_runs_per_job); 0 means no limit.
	Retention     time.Duration
	MaxRunsPerJob int
	// Tick is how often the session is checked and, while campaigning, the leader lock tried
	// (default 1s). Timeout bounds each check (default 2s).
	Tick, Timeout time.Duration
	// Settle is how long a new leader waits after taking the lock before its term starts
	// (default Tick + Timeout).
	Settle time.Duration
	// IdleSessionTimeout asks the server to end the session after this long without a check
	// (default 6s; must exceed Tick + Timeout). Servers before PostgreSQL 14 ignore it; TCP
	// keepalives are set as well.
	IdleSessionTimeout time.Duration
	// OpTimeout bounds each history operation (default 10s).
	OpTimeout time.Duration
	// OnLeader is called with true when a term starts and false when it ends.
	OnLeader func(leading bool)
	// OnSession is called with false when the session is lost and true when it is back.
	OnSession func(up bool)
	// Now is the clock for recovered runs and retention (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = o.Tick + o.Timeout
	}
	if o.IdleSessionTimeout <= 0 {
		o.IdleSessionTimeout = 6 * time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 10 * time.Second
	}
	if o.OnLeader == nil {
		o.OnLeader = func(bool) {}
	}
	if o.OnSession == nil {
		o.OnSession = func(bool) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// DB is an open state database. It is safe for concurrent use.
type DB struct {
	opts  Options
	log   *zap.Logger
	cfg   *pgx.ConnConfig // for the session; holds the password, never logged
	pool  *pgxpool.Pool
	ns    int32 // (ns, 0) migrations, (ns, 1) the leader lock
	insNS int32 // (insNS, key) instance locks
	owner history.Owner

	connMu sync.Mutex // serializes use of sess
	cbMu   sync.Mutex // orders OnLeader calls (taken before mu, never held by mu's holders)
	sess   *pgx.Conn
	key    atomic.Int32 // the live session's instance key; 0 without a session
	term   atomic.Int64 // the current leader term, 0 when not leading

	mu         sync.Mutex
	connected  bool
	downSince  time.Time
	lastErr    string
	campaign   bool
	leading    bool // this session holds the leader lock
	busy       bool // a term is settling or running: the lock is not tried again
	termCancel context.CancelCauseFunc
	acquired   chan struct{}

	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool
}

// Open connects to the state database, migrates its schema and starts the session. The
// DSN is never logged or put into an error.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	opts.defaults()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("the state database DSN does not parse (not shown, it may hold a password): %s", scrub(err, dsn))
	}
	owner := history.CurrentOwner()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = fmt.Sprintf("xacctd %s pid %d", owner.Host, owner.PID)
	}
	pcfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pcfg.ConnConfig = cfg.Copy()
	pcfg.MaxConns = 4
	pcfg.MinConns = 0
	pcfg.MaxConnIdleTime = time.Minute
	pcfg.HealthCheckPeriod = 15 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("state database: %s", scrub(err, dsn))
	}
	d := &DB{opts: opts, log: opts.Logger, cfg: cfg, pool: pool, owner: owner,
		acquired: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := d.setup(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state database: %s", scrub(err, dsn))
	}
	go d.keep()
	return d, nil
}

// setup derives the lock namespaces, migrates and opens the session.
func (d *DB) setup(ctx context.Context) error {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	var db, schema string
	if err := c.QueryRow(ctx, `SELECT current_database(), coalesce(current_schema(), '')`).Scan(&db, &schema); err != nil {
		return err
	}
	if schema == "" {
		return errors.New("no current schema: no schema in the search_path exists and is usable by this role " +
			"(it needs USAGE and CREATE on the schema; PostgreSQL 15 no longer grants CREATE on public to every role); " +
			"grant them, or set search_path in the DSN to a schema the role owns")
	}
	d.ns = hash31("xacctd leader\x00" + db + "\x00" + schema)
	d.insNS = hash31("xacctd instance\x00" + db + "\x00" + schema)
	from, applied, err := migrate(ctx, c.Conn(), d.ns, fmt.Sprintf("%s pid %d", d.owner.Host, d.owner.PID))
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		var names []string
		for _, m := range applied {
			names = append(names, fmt.Sprintf("%d %s", m.Version, m.Name))
		}
		d.log.Info("state database schema migrated", logging.Event("state.migrated"), zap.Int("from_version", from),
			zap.Int("to_version", applied[len(applied)-1].Version), zap.Strings("migrations", names),
			zap.String("database", db), zap.String("schema", schema))
	} else {
		d.log.Info("state database schema is current", logging.Event("state.opened"), zap.Int("schema_version", from),
			zap.String("database", db), zap.String("schema", schema))
	}
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if err := d.connectLocked(ctx); err != nil {
		return err
	}
	d.connected = true
	return nil
}

// hash31 is a positive int32 key for an advisory lock.
func hash31(s string) int32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	v := int32(h.Sum32() & 0x7fffffff)
	if v == 0 {
		v = 1
	}
	return v
}

// scrub returns err's text without dsn or its password in it.
func scrub(err error, dsn string) string {
	msg := err.Error()
	if dsn != "" {
		msg = strings.ReplaceAll(msg, dsn, "[dsn]")
	}
	if cfg, perr := pgconn.ParseConfig(dsn); perr == nil && cfg.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.Password, "[redacted]")
	}
	return msg
}

// connectLocked opens the session: a connection that the server ends when it stays idle
// too long, holding an instance lock on a new random key. A new key each time: runs this
// process recorded under the previous session are judged by that session (ended), so that
// a run cut short while the database was unreachable, and never recorded as interrupted,
// is recovered by the next leader instead of looking alive for ever.
func (d *DB) connectLocked(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, d.opts.Timeout+3*time.Second)
	defer cancel()
	cfg := d.cfg.Copy()
	dialer := &net.Dialer{KeepAlive: 5 * time.Second, Timeout: d.opts.Timeout + 3*time.Second}
	cfg.DialFunc = dialer.DialContext
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = conn.Close(context.Background())
		}
	}()
	for _, set := range []string{
		fmt.Sprintf("SET idle_session_timeout = %d", d.opts.IdleSessionTimeout.Milliseconds()),
		"SET tcp_keepalives_idle = 5", "SET tcp_keepalives_interval = 2", "SET tcp_keepalives_count = 2",
	} {
		if _, err := conn.Exec(ctx, set); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && (pe.Code == "42704" || pe.Code == "0A000") { // unknown setting, unsupported
				d.log.Warn("the state database does not take a session setting; takeover after a vanished host may be slower",
					logging.Event("state.setting_ignored"), zap.String("setting", set), zap.String("error_code", pe.Code))
				continue
			}
			return err
		}
	}
	for i := 0; ; i++ {
		key := rand.Int32N(1<<31-1) + 1
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, d.insNS, key).Scan(&got); err != nil {
			return err
		}
		if got {
			d.key.Store(key)
			break
		}
		if i > 20 {
			return errors.New("no free instance key after 20 tries")
		}
	}
	d.sess = conn
	ok = true
	return nil
}

// keep checks the session every Tick until Close.
func (d *DB) keep() {
	defer close(d.done)
	t := time.NewTicker(d.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.tick()
	}
}

// tick checks the session once: reconnects it when it is gone, confirms the leader lock
// when leading, tries to take it when campaigning, and otherwise pings.
func (d *DB) tick() {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.closed.Load() {
		return
	}
	if d.sess == nil {
		if err := d.connectLocked(context.Background()); err != nil {
			d.noteDown(err)
			return
		}
		d.noteUp()
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.Timeout)
	defer cancel()
	d.mu.Lock()
	leading, try := d.leading, d.campaign && !d.leading && !d.busy
	d.mu.Unlock()
	var err error
	switch {
	case leading:
		var held bool
		err = d.sess.QueryRow(ctx, heldSQL, d.ns).Scan(&held)
		if err == nil && !held {
			err = errors.New("the session no longer holds the leader lock (is a connection pooler in transaction mode between xacctd and PostgreSQL?)")
		}
	case try:
		var got bool
		if err = d.sess.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, 1)`, d.ns).Scan(&got); err == nil && got {
			d.mu.Lock()
			d.leading, d.busy = true, true
			d.mu.Unlock()
			select {
			case d.acquired <- struct{}{}:
			default:
			}
		}
	default:
		_, err = d.sess.Exec(ctx, `SELECT 1`)
	}
	if err != nil {
		d.dropLocked(err)
	}
}

// heldSQL says whether this session holds the leader lock.
const heldSQL = `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'
	AND classid = $1::int4::oid AND objid = 1 AND objsubid = 2 AND granted)`

// dropLocked ends the session after a failed check: the connection is closed (the server
// releases its locks when it notices), and a term in progress ends at once.
func (d *DB) dropLocked(err error) {
	d.lose(fmt.Sprintf("state database session failed: %v", err))
	if d.sess != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_ = d.sess.Close(ctx) // a Terminate message if the connection still works
		cancel()
		d.sess = nil
	}
	d.noteDown(err)
}

// lose ends this instance's leadership, if it leads: the term's context is cancelled first.
func (d *DB) lose(reason string) {
	d.cbMu.Lock()
	d.mu.Lock()
	if !d.leading {
		d.mu.Unlock()
		d.cbMu.Unlock()
		return
	}
	d.leading = false
	cancel := d.termCancel
	if cancel != nil {
		cancel(ErrLeadershipLost)
	}
	term := d.term.Swap(0)
	d.mu.Unlock()
	if term != 0 {
		d.opts.OnLeader(false)
	}
	d.cbMu.Unlock()
	if term == 0 { // still settling: the term never started
		d.log.Info("leader lock lost before the term started", logging.Event("leader.lost"), zap.String("reason", reason),
			zap.Bool("term_started", false))
		return
	}
	d.log.Error("leadership lost: no new work is started here; running jobs are cancelled", logging.Event("leader.lost"),
		zap.Int64("term", term), zap.String("reason", reason), zap.Bool("term_started", true))
}

func (d *DB) noteDown(err error) {
	d.mu.Lock()
	was := d.connected
	d.connected = false
	if was {
		d.downSince = d.opts.Now()
	}
	d.lastErr = err.Error()
	d.mu.Unlock()
	if was {
		d.opts.OnSession(false)
		d.log.Warn("state database session lost; reconnecting every tick", logging.Event("state.connection_lost"), zap.Error(err))
	}
}

func (d *DB) noteUp() {
	d.mu.Lock()
	since := d.downSince
	d.connected, d.lastErr = true, ""
	d.mu.Unlock()
	d.opts.OnSession(true)
	d.log.Info("state database session restored", logging.Event("state.connection_restored"),
		zap.Int64("down_ms", d.opts.Now().Sub(since).Milliseconds()))
}

// Connected reports whether the session is up, and the last error when it is not.
func (d *DB) Connected() (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connected, d.lastErr
}

// Leading reports whether this instance is in a leader term.
func (d *DB) Leading() bool { return d.term.Load() != 0 }

// Term is the current leader term number, 0 when not leading.
func (d *DB) Term() int64 { return d.term.Load() }

// Campaign tries to become the leader until ctx ends. Each time it wins it waits Settle,
// records a term and calls lead with a context that is cancelled (with cause
// ErrLeadershipLost) the moment leadership is lost, or when ctx ends. lead must return
// soon after a loss; after ctx ends it may take its time (running jobs' grace) and the
// lock is kept until it returns, then released. Campaign returns when ctx ends.
func (d *DB) Campaign(ctx context.Context, lead func(term context.Context)) error {
	d.mu.Lock()
	if d.campaign {
		d.mu.Unlock()
		return errors.New("already campaigning")
	}
	d.campaign = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.campaign = false
		d.mu.Unlock()
	}()
	// done ends a turn: busy (which keeps the keeper from taking the lock) is cleared only
	// after the lock was given back, and campaigning stops with it when ctx has ended, so
	// that no check in between takes the lock again.
	done := func() {
		d.mu.Lock()
		d.busy = false
		if ctx.Err() != nil {
			d.campaign = false
		}
		d.mu.Unlock()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.acquired:
		}
		took := d.opts.Now()
		d.log.Info("leader lock taken; waiting for a previous leader to notice before starting",
			logging.Event("leader.settling"), zap.Duration("settle", d.opts.Settle))
		t := time.NewTimer(d.opts.Settle)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		termCtx, cancel := context.WithCancelCause(ctx)
		d.mu.Lock()
		if !d.leading || ctx.Err() != nil {
			still := d.leading
			d.leading = false
			d.mu.Unlock()
			cancel(nil)
			if still {
				d.release()
			}
			done()
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		d.termCancel = cancel
		d.mu.Unlock()
		term := d.startTerm(termCtx)
		d.cbMu.Lock()
		d.mu.Lock()
		started := d.leading
		if started {
			d.term.Store(term)
		} else {
			d.termCancel = nil
		}
		d.mu.Unlock()
		if started {
			d.opts.OnLeader(true)
		}
		d.cbMu.Unlock()
		if !started { // lost while recording the term (lose logged it)
			cancel(nil)
			d.endTerm(term)
			done()
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		d.log.Info("this instance is the leader: it reconciles and runs the schedule", logging.Event("leader.acquired"),
			zap.Int64("term", term), zap.Int64("waited_ms", d.opts.Now().Sub(took).Milliseconds()))

		lead(termCtx)

		cancel(nil)
		d.cbMu.Lock()
		d.mu.Lock()
		still := d.leading
		d.leading, d.termCancel = false, nil
		if still {
			d.term.Store(0)
		}
		d.mu.Unlock()
		if still {
			d.opts.OnLeader(false)
		}
		d.cbMu.Unlock()
		if still { // stepped down by itself (shutdown): hand over at once
			d.release()
			d.endTerm(term)
			d.log.Info("leadership released", logging.Event("leader.released"), zap.Int64("term", term))
		}
		done()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// startTerm records a new leader term and returns its number (-1 when it could not be
// recorded: the term still runs, the number is only for the record).
func (d *DB) startTerm(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, d.opts.OpTimeout)
	defer cancel()
	var term int64
	err := d.pool.QueryRow(ctx, `INSERT INTO xacctd_leader_terms (host, pid, session, version) VALUES ($1, $2, $3, $4) RETURNING term`,
		d.owner.Host, d.owner.PID, d.key.Load(), d.opts.Version).Scan(&term)
	if err != nil {
		d.log.Error("leader term not recorded", logging.Event("state.write_failed"), zap.Error(err))
		return -1
	}
	_, _ = d.pool.Exec(ctx, `DELETE FROM xacctd_leader_terms WHERE term < $1`, term-1000)
	return term
}

func (d *DB) endTerm(term int64) {
	if term <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.OpTimeout)
	defer cancel()
	_, _ = d.pool.Exec(ctx, `UPDATE xacctd_leader_terms SET released_at = now() WHERE term = $1`, term)
}

// release gives the leader lock back.
func (d *DB) release() {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.Timeout)
	defer cancel()
	if _, err := d.sess.Exec(ctx, `SELECT pg_advisory_unlock($1, 1)`, d.ns); err != nil {
		d.dropLocked(err) // closing the session releases it as well
	}
}

// LeaderInfo describes the current leader, for followers' /status.
type LeaderInfo struct {
	Term    int64     `json:"term"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Version string    `json:"version,omitempty"`
	Since   time.Time `json:"since"`
	// Held says whether some instance holds the leader lock now; the term is the latest
	// recorded (a new leader records its term after Settle).
	Held bool `json:"held"`
}

// Leader reads the latest leader term and whether the leader lock is held.
func (d *DB) Leader(ctx context.Context) (LeaderInfo, error) {
	if d.closed.Load() {
		return LeaderInfo{}, history.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	var li LeaderInfo
	err := d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = $1::int4::oid AND objid = 1 AND objsubid = 2 AND granted)`, d.ns).Scan(&li.Held)
	if err != nil {
		return li, err
	}
	err = d.pool.QueryRow(ctx, `SELECT term, host, pid, version, acquired_at FROM xacctd_leader_terms ORDER BY term DESC LIMIT 1`).
		Scan(&li.Term, &li.Host, &li.PID, &li.Version, &li.Since)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	li.Since = li.Since.UTC()
	return li, err
}

// Close ends the session (releasing its locks) and closes the pool.
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.lose("the state database was closed") // a term must not outlive its lock
	close(d.stop)
	<-d.done
	d.connMu.Lock()
	if d.sess != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = d.sess.Close(ctx)
		cancel()
		d.sess = nil
	}
	d.connMu.Unlock()
	d.pool.Close()
	return nil
}
