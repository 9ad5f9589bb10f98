package sdnotify

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "unsafe" // go:linkname
)

// nanotime is the runtime's own CLOCK_MONOTONIC reading (through the vDSO), an independent
// check of monotonicUsec's raw system call.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// fakeSystemd listens where NOTIFY_SOCKET points, as systemd does.
type fakeSystemd struct {
	t    *testing.T
	conn *net.UnixConn
	addr string
}

func listen(t *testing.T, addr string) *fakeSystemd {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fakeSystemd{t: t, conn: conn, addr: addr}
}

// pathSocket is a socket file in a fresh directory; t.TempDir can exceed the 108 bytes a
// socket path may have.
func pathSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdnotify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "notify")
}

func abstractSocket() string {
	return "@xacctd-sdnotify-test-" + rand.Text()
}

// next returns the next datagram.
func (f *fakeSystemd) next() string {
	f.t.Helper()
	buf := make([]byte, 4096)
	if err := f.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		f.t.Fatal(err)
	}
	n, _, err := f.conn.ReadFromUnix(buf)
	if err != nil {
		f.t.Fatalf("no datagram on %s: %v", f.addr, err)
	}
	return string(buf[:n])
}

// none fails if another datagram arrives.
func (f *fakeSystemd) none() {
	f.t.Helper()
	buf := make([]byte, 4096)
	if err := f.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		f.t.Fatal(err)
	}
	n, _, err := f.conn.ReadFromUnix(buf)
	if err == nil {
		f.t.Errorf("unexpected datagram %q", buf[:n])
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		f.t.Errorf("reading %s: %v", f.addr, err)
	}
}

func TestSendsDatagrams(t *testing.T) {
	for name, addr := range map[string]string{
		"path":     pathSocket(t),
		"abstract": abstractSocket(),
	} {
		t.Run(name, func(t *testing.T) {
			sd := listen(t, addr)
			n := NewFromEnv(env(map[string]string{"NOTIFY_SOCKET": addr}))
			if !n.Enabled() {
				t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
			}
			tests := []struct {
				name string
				give func() error
				want string
			}{
				{"Ready", func() error { return n.Ready("3 pairs ready, 12 jobs scheduled") }, "READY=1\nSTATUS=3 pairs ready, 12 jobs scheduled"},
				{"Ready without status", func() error { return n.Ready("") }, "READY=1"},
				{"Stopping", func() error { return n.Stopping("stopping: waiting for 2 runs") }, "STOPPING=1\nSTATUS=stopping: waiting for 2 runs"},
				{"Status", func() error { return n.Status("reconciling") }, "STATUS=reconciling"},
				{"Status on one line", func() error { return n.Status("bad\nREADY=1\r\n") }, "STATUS=bad READY=1  "},
				{"Watchdog", n.Watchdog, "WATCHDOG=1"},
			}
			for _, tt := range tests {
				if err := tt.give(); err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if got := sd.next(); got != tt.want {
					t.Errorf("%s sent %q, want %q", tt.name, got, tt.want)
				}
			}
			if err := n.Status(""); err != nil {
				t.Errorf("Status(\"\") = %v, want nil", err)
			}
			sd.none()
		})
	}
}

func TestReloading(t *testing.T) {
	addr := abstractSocket()
	sd := listen(t, addr)
	n := NewFromEnv(env(map[string]string{"NOTIFY_SOCKET": addr}))

	before := nanotime() / 1e3
	if err := n.Reloading("reloading /etc/xacctd/config.yaml\n"); err != nil {
		t.Fatal(err)
	}
	after := nanotime() / 1e3

	got := sd.next()
	m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=([0-9]+)\nSTATUS=reloading /etc/xacctd/config\.yaml $`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("Reloading sent %q, want RELOADING=1, MONOTONIC_USEC=<µs> and the status on one line", got)
	}
	usec, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d, want CLOCK_MONOTONIC at the call, between %d and %d", usec, before, after)
	}
	sd.none()
}

func TestMonotonicUsecAdvances(t *testing.T) {
	a, err := monotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	b, err := monotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	if d := b - a; d < 20_000 || d > 5_000_000 {
		t.Errorf("CLOCK_MONOTONIC advanced %dµs over a 20ms sleep", d)
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string // in the error
	}{
		{"nobody listening", pathSocket(t), "sd_notify READY"},
		{"relative path", "notify.sock", "neither an absolute path nor an abstract socket"},
		{"vsock", "vsock:2:1234", "neither an absolute path nor an abstract socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NewFromEnv(env(map[string]string{"NOTIFY_SOCKET": tt.give})).Ready("ready")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ready() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Each message is one datagram of its own even when sent from many goroutines.
func TestConcurrentSends(t *testing.T) {
	addr := abstractSocket()
	sd := listen(t, addr)
	n := NewFromEnv(env(map[string]string{"NOTIFY_SOCKET": addr}))
	const senders = 20
	errs := make(chan error, senders)
	for i := range senders {
		go func() { errs <- n.Status(fmt.Sprintf("sender %d", i)) }()
	}
	// Read while they send: the socket queues only net.unix.max_dgram_qlen datagrams (10 by
	// default), like systemd's.
	seen := map[string]bool{}
	for range senders {
		seen[sd.next()] = true
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range senders {
		if want := fmt.Sprintf("STATUS=sender %d", i); !seen[want] {
			t.Errorf("datagram %q not received", want)
		}
	}
	sd.none()
}

// A systemd that does not read its socket makes a send fail after the timeout rather than
// block the watchdog loop or a reload for ever.
func TestSendToFullQueueTimesOut(t *testing.T) {
	addr := abstractSocket()
	listen(t, addr) // never read
	n := NewFromEnv(env(map[string]string{"NOTIFY_SOCKET": addr}))
	n.timeout = 50 * time.Millisecond
	for i := range 10_000 {
		start := time.Now()
		err := n.Watchdog()
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("send %d: %v, want a deadline error", i, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a send to a full queue took %v, want about %v", d, n.timeout)
		}
		return
	}
	t.Fatal("10000 datagrams queued on a socket nobody reads; want the queue to fill")
}
