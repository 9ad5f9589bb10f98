package sdnotify

import (
	"syscall"
	"unsafe"
)

// clockMonotonic is CLOCK_MONOTONIC from <time.h>, the clock systemd compares MONOTONIC_USEC
// with. The runtime's monotonic clock is not exposed as an absolute value, and syscall has
// no ClockGettime, so this asks the kernel directly (a few calls per reload; no vDSO needed).
const clockMonotonic = 1

// monotonicUsec is CLOCK_MONOTONIC in microseconds.
func monotonicUsec() (int64, error) {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, errno
	}
	return int64(ts.Sec)*1e6 + int64(ts.Nsec)/1e3, nil
}
