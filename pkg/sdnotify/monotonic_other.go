//go:build !linux

package sdnotify

import "errors"

// monotonicUsec exists only where systemd does; elsewhere NOTIFY_SOCKET is never set and
// Reloading is a no-op before it gets here.
func monotonicUsec() (int64, error) {
	return 0, errors.New("CLOCK_MONOTONIC is read only on Linux")
}
