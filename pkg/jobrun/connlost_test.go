package jobrun_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/jobrun"
)

// cutProxy relays TCP to a target and can cut every live connection, as a cluster that
// crashes or restarts mid-statement does.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	opened int
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.opened++
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opened
}

// TestConnectionLostMidUnload: the connection to the cluster dies while an UNLOAD runs.
// With retries the run is attempted again and succeeds — recorded once, as one succeeded
// run on attempt 2; without retries it is recorded failed with class network. No run is
// lost or recorded twice.
func TestConnectionLostMidUnload(t *testing.T) {
	for _, tt := range []struct {
		name        string
		retries     int
		wantOutcome history.Outcome
		wantAttempt int
	}{
		{"retried", 2, history.Succeeded, 2},
		{"no retries", 0, history.Failed, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, pairsAndJobs, false)
			proxy := newCutProxy(t, world.RedshiftEndpoint)
			e.cfg.Clusters["analytics"].Endpoint = proxy.ln.Addr().String()
			job := e.cfg.Job("orders-export")
			job.Retries = tt.retries
			job.Unload.Query = "SELECT order_id FROM sales.orders WHERE pg_sleep(CASE WHEN '{{ .RunID }}' <> '' THEN 0.2 ELSE 0 END) IS NOT NULL"
			job.Unload.To = "lost/{{ .RunID }}/a{{ .Job }}_"
			e.exec.Targets = jobrun.Targets(e.cfg)
			// Cut the first session once its statement is under way.
			go func() {
				deadline := time.Now().Add(10 * time.Second)
				for proxy.sessions() == 0 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(300 * time.Millisecond)
				proxy.cut()
			}()
			run, err := e.run("orders-export", time.Time{})
			if run.Outcome != tt.wantOutcome || run.Attempt != tt.wantAttempt {
				t.Fatalf("run %+v (err %v): want %s on attempt %d", run, err, tt.wantOutcome, tt.wantAttempt)
			}
			var f *jobrun.Failure
			if tt.wantOutcome == history.Failed && (!errors.As(err, &f) || f.Class != jobrun.ClassNetwork || run.ErrorClass != jobrun.ClassNetwork) {
				t.Errorf("failure %v / recorded class %q: want network", err, run.ErrorClass)
			}
			all, _ := e.store.Runs(t.Context(), "orders-export", 0)
			if len(all) != 1 {
				t.Errorf("%d runs recorded, want exactly 1: %+v", len(all), all)
			}
			if n := len(e.logs.FilterField(zap.String("event", "job.retry")).All()); n != tt.wantAttempt-1 {
				t.Errorf("%d job.retry events, want %d", n, tt.wantAttempt-1)
			}
		})
	}
}
