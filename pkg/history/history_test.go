package history

import (
	"os"
	"regexp"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 8, 3, 0, 0, 0, ny) // 07:00 UTC
	seen := map[string]bool{}
	for range 1000 {
		id := NewID(at)
		if !regexp.MustCompile(`^20260308T070000Z-[0-9a-f]{12}$`).MatchString(id) {
			t.Fatalf("NewID = %q, want the UTC time and 12 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
	if a, b := NewID(at), NewID(at.Add(time.Second)); a >= b {
		t.Errorf("IDs do not sort by time: %q >= %q", a, b)
	}
}

func TestFinished(t *testing.T) {
	tests := []struct {
		give Outcome
		want bool
	}{
		{Running, false},
		{Succeeded, true},
		{Failed, true},
		{TimedOut, true},
		{Skipped, true},
		{Interrupted, true},
	}
	for _, tt := range tests {
		if got := (Run{Outcome: tt.give}).Finished(); got != tt.want {
			t.Errorf("Run{Outcome: %s}.Finished() = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestCurrentOwner(t *testing.T) {
	o := CurrentOwner()
	host, _ := os.Hostname()
	if o.PID != os.Getpid() || o.Host != host {
		t.Errorf("CurrentOwner = %+v, want host %q pid %d", o, host, os.Getpid())
	}
	if _, err := os.Stat("/proc/sys/kernel/random/boot_id"); err == nil && o.Boot == "" {
		t.Error("CurrentOwner has no boot ID although the kernel offers one")
	}
}
