package sdnotify

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// env is a fake environment for NewFromEnv.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestWatchdogInterval(t *testing.T) {
	ours := strconv.Itoa(os.Getpid())
	other := strconv.Itoa(os.Getpid() + 1)
	tests := []struct {
		name string
		give map[string]string
		want time.Duration
	}{
		{"set, no pid", map[string]string{"WATCHDOG_USEC": "60000000"}, 30 * time.Second},
		{"set, our pid", map[string]string{"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": ours}, 30 * time.Second},
		{"odd microseconds", map[string]string{"WATCHDOG_USEC": "3"}, 1500 * time.Nanosecond},
		{"another process", map[string]string{"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": other}, 0},
		{"unset", map[string]string{}, 0},
		{"pid only", map[string]string{"WATCHDOG_PID": ours}, 0},
		{"garbage usec", map[string]string{"WATCHDOG_USEC": "60s"}, 0},
		{"garbage pid", map[string]string{"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "me"}, 0},
		{"zero", map[string]string{"WATCHDOG_USEC": "0"}, 0},
		{"negative", map[string]string{"WATCHDOG_USEC": "-5"}, 0},
		{"overflow", map[string]string{"WATCHDOG_USEC": "99999999999999999999"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"NOTIFY_SOCKET": "/run/systemd/notify"}
			for k, v := range tt.give {
				vars[k] = v
			}
			if got := NewFromEnv(env(vars)).WatchdogInterval(); got != tt.want {
				t.Errorf("WatchdogInterval() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWatchdogIntervalWithoutSocket(t *testing.T) {
	// Pings could not be delivered, so the daemon must not schedule them.
	n := NewFromEnv(env(map[string]string{"WATCHDOG_USEC": "60000000"}))
	if got := n.WatchdogInterval(); got != 0 {
		t.Errorf("WatchdogInterval() without NOTIFY_SOCKET = %v, want 0", got)
	}
}

func TestNoOpOutsideSystemd(t *testing.T) {
	for name, n := range map[string]*Notifier{
		"unset":      NewFromEnv(env(nil)),
		"zero value": {},
		"nil":        nil,
	} {
		t.Run(name, func(t *testing.T) {
			if n.Enabled() {
				t.Error("Enabled() = true, want false")
			}
			calls := map[string]func() error{
				"Ready":     func() error { return n.Ready("ready") },
				"Reloading": func() error { return n.Reloading("reloading") },
				"Stopping":  func() error { return n.Stopping("stopping") },
				"Status":    func() error { return n.Status("status") },
				"Watchdog":  n.Watchdog,
			}
			for call, f := range calls {
				if err := f(); err != nil {
					t.Errorf("%s() = %v, want nil", call, err)
				}
			}
		})
	}
}

func TestNewReadsEnvironment(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "@xacctd-test")
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := New()
	if !n.Enabled() || n.WatchdogInterval() != 2*time.Second {
		t.Errorf("New() = enabled %v, interval %v; want true, 2s", n.Enabled(), n.WatchdogInterval())
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if New().Enabled() {
		t.Error("New() with an empty NOTIFY_SOCKET is enabled")
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct{ give, want string }{
		{"3 pairs ready", "3 pairs ready"},
		{"a\nREADY=1", "a READY=1"},
		{"a\r\nb", "a  b"},
		{"nul\x00byte", "nul byte"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := oneLine(tt.give); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
