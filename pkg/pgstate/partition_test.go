package pgstate_test

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/xacctd/xacctd/pkg/pgstate"
)

// freezeProxy relays TCP and can freeze: from then on no byte passes in either direction
// and no connection is closed, as when a host vanishes from the network (no FIN, no RST).
type freezeProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
	thaw   chan struct{}
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target, thaw: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go p.pipe(s, c)
			go p.pipe(c, s)
		}
	}()
	return p
}

// pipe copies src to dst until frozen; a frozen pipe stops reading and holds both ends open.
func (p *freezeProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		frozen := p.frozen
		p.mu.Unlock()
		if frozen {
			<-p.thaw // drop what was read, hold the connection: a black hole
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

func (p *freezeProxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// TestVanishedLeader: the leader's host vanishes from the network without closing its
// connections. The leader stops its term within Tick + Timeout (its check gets no answer),
// the server ends the orphaned session after IdleSessionTimeout (releasing the lock), and the
// follower's term starts only after that: the two terms never overlap.
func TestVanishedLeader(t *testing.T) {
	t.Parallel()
	dsn := newDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newFreezeProxy(t, u.Host)
	via := *u
	via.Host = proxy.ln.Addr().String()

	a := newCandidate(t, via.String(), "a", false)
	a.campaign(t)
	a.waitStarted(t)
	b := newCandidate(t, dsn, "b", false)
	b.campaign(t)
	if _, ok := waitFor(2*settle, func() bool { return b.leads.Load() > 0 }); ok {
		t.Fatal("b led while a held the lock")
	}

	vanished := time.Now()
	proxy.freeze()
	end := a.waitEnded(t, tick+timeout+slack)
	if !errors.Is(end.cause, pgstate.ErrLeadershipLost) {
		t.Errorf("a's term ended with %v, want ErrLeadershipLost", end.cause)
	}
	t.Logf("a stopped its term %v after its network vanished", end.at.Sub(vanished).Round(time.Millisecond))

	var bStarted time.Time
	select {
	case <-b.started:
		bStarted = time.Now()
	case <-time.After(idle + tick + settle + 3*slack):
		t.Fatalf("b did not take over within IdleSessionTimeout + Tick + Settle (+slack) of a vanishing")
	}
	t.Logf("b's term started %v after a vanished (idle_session_timeout %v)", bStarted.Sub(vanished).Round(time.Millisecond), idle)
	if !bStarted.After(end.at) {
		t.Errorf("b's term started at %v, before a's ended at %v: the terms overlapped", bStarted, end.at)
	}
	if bStarted.Sub(vanished) < idle {
		t.Errorf("b took over %v after a vanished, before the server could have ended a's session (%v)", bStarted.Sub(vanished), idle)
	}
	close(proxy.thaw)
}
