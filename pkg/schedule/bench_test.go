package schedule

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xacctd/xacctd/pkg/config"
)

// lagRunner is a no-op runner that notes how late each occurrence started.
type lagRunner struct {
	clock Clock
	mu    sync.Mutex
	lags  []time.Duration
	done  chan struct{}
	want  int
}

func (r *lagRunner) Run(_ context.Context, occ Occurrence) error {
	lag := r.clock.Now().Sub(occ.Scheduled)
	r.mu.Lock()
	r.lags = append(r.lags, lag)
	if len(r.lags) == r.want {
		close(r.done)
	}
	r.mu.Unlock()
	return nil
}

func (r *lagRunner) Record(context.Context, Occurrence, string, string) {}

// BenchmarkFireLag1000 measures the scheduling overhead of 1,000 jobs due in the same
// minute against a no-op runner — on 10 clusters with the default limit of 2 concurrent jobs
// each (runs wait for slots), and with no limit (dispatch cost alone): fire lag (when Run starts minus the scheduled time) p50/p99/max and the heap the
// scheduler holds. A clock shifted to just before a minute boundary avoids waiting.
func BenchmarkFireLag1000(b *testing.B) {
	b.Run("10-clusters-limit-2", func(b *testing.B) { benchFireLag(b, 10, 2) })
	b.Run("1-cluster-no-limit", func(b *testing.B) { benchFireLag(b, 1, 1000) })
}

func benchFireLag(b *testing.B, clusters, limit int) {
	const jobs = 1000
	sched, err := config.CronParser.Parse("* * * * *")
	if err != nil {
		b.Fatal(err)
	}
	limits := map[string]int{}
	var entries []Entry
	for i := range jobs {
		cluster := fmt.Sprintf("c%d", i%clusters)
		limits[cluster] = limit
		entries = append(entries, Entry{Job: fmt.Sprintf("job%04d", i), Pair: "p", Cluster: cluster, Spec: "* * * * *",
			Schedule: sched, Location: time.UTC, Overlap: "skip", Enabled: true})
	}
	var p50, p99, worst time.Duration
	var heap uint64
	for b.Loop() {
		// Shift the clock so that it shows 200 ms before a full minute.
		real := time.Now()
		shift := OffsetClock{Offset: real.Truncate(time.Minute).Add(time.Minute - 200*time.Millisecond).Sub(real)}
		r := &lagRunner{clock: shift, done: make(chan struct{}), want: jobs}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := New(entries, limits, Options{Clock: shift, Runner: r})
		s.Start()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			b.Fatalf("only %d of %d jobs fired", len(r.lags), jobs)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		s.Stop(context.Background())
		slices.Sort(r.lags)
		p50, p99, worst = r.lags[jobs/2], r.lags[jobs*99/100], r.lags[jobs-1]
		heap = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	}
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-lag-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-lag-ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-lag-ms")
	b.ReportMetric(float64(heap)/1024, "heap-KiB")
}
