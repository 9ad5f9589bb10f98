package reconcile_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/xacctd/xacctd/internal/awsconn"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/reconcile"
)

// benchWorld resets the world and returns a config of n pairs (sandbox.ScaleConfig).
func benchWorld(b *testing.B, ctx context.Context, pairs, accounts int) *config.Config {
	b.Helper()
	if err := world.Reset(ctx); err != nil {
		b.Fatal(err)
	}
	text, err := world.ScaleConfig(ctx, pairs, accounts, 0)
	if err != nil {
		b.Fatal(err)
	}
	c, err := config.Parse("bench.yml", []byte(text))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkReconcile reports, per size, the AWS calls and wall time of a first apply and of
// the no-op plan that follows. Calls are the stable figure on moto; times are noisy.
// Run: make bench (or go test -run '^$' -bench Reconcile -benchtime 1x ./pkg/reconcile).
func BenchmarkReconcile(b *testing.B) {
	for _, accounts := range []int{2, 4} {
		for _, pairs := range []int{1, 10, 100, 500} {
			b.Run(fmt.Sprintf("pairs=%d/accounts=%d", pairs, accounts), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				var applyCalls, planCalls int
				var applyTime, planTime time.Duration
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					cfg := benchWorld(b, ctx, pairs, accounts)
					counter := awsconn.NewCounter()
					r := &reconcile.Reconciler{Config: cfg, Clients: awsconn.Clients{Accounts: awsconn.New(cfg, counter)},
						Options: reconcile.ApplyOptions{RetryBase: 200 * time.Millisecond, WaitInSync: 2 * time.Minute}}
					b.StartTimer()
					start := time.Now()
					res := r.Apply(ctx)
					applyTime += time.Since(start)
					if !res.InSync() {
						b.Fatalf("not in sync: %+v", res.After.Plan.Conflicts)
					}
					applyCalls, _ = counter.Snapshot()

					counter2 := awsconn.NewCounter()
					r.Clients = awsconn.Clients{Accounts: awsconn.New(cfg, counter2)}
					start = time.Now()
					snap := r.Plan(ctx)
					planTime += time.Since(start)
					if !snap.Plan.Empty() {
						b.Fatalf("no-op plan has changes: %d", len(snap.Plan.Changes))
					}
					planCalls, _ = counter2.Snapshot()
				}
				b.ReportMetric(float64(applyCalls), "apply-calls")
				b.ReportMetric(float64(applyTime.Milliseconds())/float64(b.N), "apply-ms")
				b.ReportMetric(float64(planCalls), "noop-plan-calls")
				b.ReportMetric(float64(planTime.Milliseconds())/float64(b.N), "noop-plan-ms")
				b.ReportMetric(float64(planCalls)/float64(pairs), "noop-calls/pair")
			})
		}
	}
}
