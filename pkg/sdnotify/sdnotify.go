// Package sdnotify tells systemd about the daemon's state through the sd_notify protocol
// (https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html): readiness,
// reloads, shutdown, a one-line status and watchdog pings.
//
// Outside systemd ($NOTIFY_SOCKET unset) every method does nothing and returns nil, so the
// daemon calls them unconditionally.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notifier sends notifications to the socket systemd named in $NOTIFY_SOCKET. The zero value
// and the result of New outside systemd are no-ops. It is safe for concurrent use: each
// message is one datagram on a connection of its own, so a restarted systemd is picked up.
type Notifier struct {
	socket   string        // $NOTIFY_SOCKET: a path, or "@name" for an abstract socket
	watchdog time.Duration // ping interval; 0 when systemd does not watch this process
	timeout  time.Duration // bound on one send
}

// sendTimeout bounds a send to a socket whose queue is full (systemd busy or hung): the
// caller, a reload or the watchdog loop, gets an error instead of blocking for ever.
const sendTimeout = 5 * time.Second

// New reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. It never fails: without
// $NOTIFY_SOCKET the Notifier is a no-op.
func New() *Notifier { return NewFromEnv(os.Getenv) }

// NewFromEnv is New with the environment read through getenv, for tests.
func NewFromEnv(getenv func(string) string) *Notifier {
	n := &Notifier{socket: getenv("NOTIFY_SOCKET"), timeout: sendTimeout}
	if n.socket != "" {
		n.watchdog = watchdogInterval(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), os.Getpid())
	}
	return n
}

// watchdogInterval is half of usec when it is a positive number of microseconds and pid is
// empty or ours (systemd sets WATCHDOG_PID to the main process; a child that inherited the
// variables must not ping on its behalf); 0 otherwise.
func watchdogInterval(usec, pid string, ours int) time.Duration {
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != ours {
			return 0
		}
	}
	return time.Duration(us) * time.Microsecond / 2
}

// Enabled reports whether $NOTIFY_SOCKET was set, that is whether messages are sent at all.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Ready says that start-up (or a reload) is complete: "READY=1", then "STATUS=<status>"
// unless status is empty. Each method's status is kept on one line.
func (n *Notifier) Ready(status string) error {
	return n.send("READY=1", status)
}

// Reloading says that a configuration reload has begun; call Ready when it has ended,
// whether or not the new configuration was taken. MONOTONIC_USEC is required by systemd 253
// and later (Type=notify-reload); older versions ignore it.
func (n *Notifier) Reloading(status string) error {
	if !n.Enabled() {
		return nil
	}
	usec, err := monotonicUsec()
	if err != nil {
		return fmt.Errorf("sd_notify RELOADING: %w", err)
	}
	return n.send("RELOADING=1\nMONOTONIC_USEC="+strconv.FormatInt(usec, 10), status)
}

// Stopping says that shutdown has begun: "STOPPING=1" and the status.
func (n *Notifier) Stopping(status string) error {
	return n.send("STOPPING=1", status)
}

// Status sets the one line that `systemctl status` shows; an empty status sends nothing.
func (n *Notifier) Status(status string) error {
	return n.send("", status)
}

// Watchdog pings systemd's watchdog ("WATCHDOG=1"). Call it every WatchdogInterval, and not
// at all when that is 0.
func (n *Notifier) Watchdog() error {
	return n.send("WATCHDOG=1", "")
}

// WatchdogInterval is how often to call Watchdog: half of $WATCHDOG_USEC, so that one late
// ping does not get the service killed. It is 0 when systemd does not watch this process
// ($WATCHDOG_USEC unset or not a positive number, or $WATCHDOG_PID naming another process)
// or when $NOTIFY_SOCKET is unset.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// send writes state followed by "STATUS=<status>" (when status is not empty) as one datagram.
func (n *Notifier) send(state, status string) error {
	if !n.Enabled() {
		return nil
	}
	msg := state
	if status != "" {
		if msg != "" {
			msg += "\n"
		}
		msg += "STATUS=" + oneLine(status)
	}
	if msg == "" {
		return nil
	}
	if err := n.write(msg); err != nil {
		return fmt.Errorf("sd_notify %s: %w", firstKey(msg), err)
	}
	return nil
}

func (n *Notifier) write(msg string) error {
	// systemd hands out an absolute path or an abstract name ("@..."; Go's net package maps a
	// leading '@' to the abstract namespace). Newer systemd can also name a vsock address,
	// which a unix socket cannot reach: say so rather than fail obscurely.
	if !strings.HasPrefix(n.socket, "/") && !strings.HasPrefix(n.socket, "@") {
		return fmt.Errorf("NOTIFY_SOCKET %q is neither an absolute path nor an abstract socket (@name)", n.socket)
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	timeout := n.timeout
	if timeout <= 0 {
		timeout = sendTimeout
	}
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err = conn.Write([]byte(msg))
	return err
}

// oneLine keeps a status on one line: a newline would start another assignment, so a status
// holding "\nREADY=1" could otherwise speak for the daemon.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', 0:
			return ' '
		}
		return r
	}, s)
}

// firstKey names a message in errors by its first assignment ("READY", "STATUS", ...).
func firstKey(msg string) string {
	key, _, _ := strings.Cut(msg, "=")
	return key
}
