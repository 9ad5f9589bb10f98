package pgstate_test

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xacctd/xacctd/pkg/pgstate"
)

// The tests in this file reproduce defects found in review (now fixed): they keep them fixed.

// TestStepDownReleasesTheLock: a leader whose campaign ends releases the leader lock, and
// keeps it released while it is not campaigning.
func TestStepDownReleasesTheLock(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	conn := connect(t, dsn)
	name := dbName(t, dsn)
	core, _ := observer.New(zapcore.InfoLevel)
	// A fast tick makes the window (between the step-down's state change and Campaign's
	// return) easy to hit; with the default 1s tick it is hit about once in 500 step-downs.
	tk := 2 * time.Millisecond
	fast := pgstate.Options{Logger: zap.New(core), Tick: tk, Timeout: timeout, Settle: time.Millisecond, IdleSessionTimeout: idle}
	db := open(t, dsn, fast, nil)
	for i := range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = db.Campaign(ctx, func(term context.Context) { time.Sleep(time.Duration(rand.Int64N(int64(tk)))); cancel(); <-term.Done() })
		}()
		<-done
		cancel()
		time.Sleep(5 * fast.Tick)
		var held bool
		if err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
			AND objid = 1 AND objsubid = 2 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = $1))`, name).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held {
			t.Fatalf("step-down %d: the leader lock is still held by an instance that no longer campaigns", i+1)
		}
	}
}

// TestCloseEndsTheTerm: Close while a term runs ends the term: the lock is released by
// Close, so another instance may lead.
func TestCloseEndsTheTerm(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	a := newCandidate(t, dsn, "A", false)
	a.campaign(t)
	if _, ok := waitFor(tick+settle+slack, a.db.Leading); !ok {
		t.Fatal("A did not lead")
	}
	if err := a.db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-a.ended:
		t.Logf("term ended with cause %v", e.cause)
	case <-time.After(time.Second):
		t.Error("Close released the leader lock but the term's context did not end")
	}
	if a.db.Leading() {
		t.Error("Leading after Close")
	}
}

// TestOnLeaderMayUseTheDB: OnLeader is called while the DB holds its state mutex, so a
// callback that asks the DB anything that takes it (Connected) deadlocks the DB.
func TestOnLeaderMayUseTheDB(t *testing.T) {
	t.Parallel()
	var db *pgstate.DB
	var calls, returned atomic.Int32
	opts, _ := testOptions()
	opts.OnLeader = func(bool) {
		calls.Add(1)
		db.Connected()
		returned.Add(1)
	}
	db, err := pgstate.Open(context.Background(), newDatabase(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = db.Campaign(ctx, func(term context.Context) { <-term.Done() }) }()
	if _, ok := waitFor(tick+settle+slack, func() bool { return calls.Load() > 0 }); !ok {
		t.Fatal("OnLeader not called")
	}
	if _, ok := waitFor(time.Second, func() bool { return returned.Load() == calls.Load() }); !ok {
		// Deadlocked: Close would hang too; leave the DB behind.
		t.Fatal("OnLeader calling Connected deadlocked the DB")
	}
	cancel()
	_ = db.Close()
}
