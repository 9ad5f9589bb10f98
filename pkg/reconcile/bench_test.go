package reconcile_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/xacctd/xacctd/internal/awsconn"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/reconcile"
)

// benchWorld writes a config of n pairs spread over accounts/2 warehouse accounts (each
// with clusters of at most 50 roles) and accounts/2 lake accounts (buckets of 20 pairs), and
// creates the clusters in moto.
func benchWorld(b *testing.B, ctx context.Context, pairs, accounts int) *config.Config {
	b.Helper()
	if err := world.Reset(ctx); err != nil {
		b.Fatal(err)
	}
	var cfg strings.Builder
	cfg.WriteString("version: 1\naccounts:\n")
	half := accounts / 2
	wh := func(i int) string { return fmt.Sprintf("1111111111%02d", i) }
	lk := func(i int) string { return fmt.Sprintf("2222222222%02d", i) }
	for i := 0; i < half; i++ {
		fmt.Fprintf(&cfg, "  wh%d: {id: \"%s\", role_arn: \"arn:aws:iam::%s:role/xacctd-admin\"}\n", i, wh(i), wh(i))
		fmt.Fprintf(&cfg, "  lake%d: {id: \"%s\", role_arn: \"arn:aws:iam::%s:role/xacctd-admin\"}\n", i, lk(i), lk(i))
	}
	clusters := (pairs + 49) / 50
	cfg.WriteString("clusters:\n")
	for c := 0; c < clusters; c++ {
		acct := c % half
		fmt.Fprintf(&cfg, "  c%d: {account: wh%d, identifier: bench-%d, database: dev, user: loader}\n", c, acct, c)
		createCluster(b, ctx, wh(acct), fmt.Sprintf("bench-%d", c))
	}
	buckets := (pairs + 19) / 20
	cfg.WriteString("buckets:\n")
	for k := 0; k < buckets; k++ {
		fmt.Fprintf(&cfg, "  b%d: {account: lake%d, name: bench-bucket-%d, create: true}\n", k, k%half, k)
	}
	cfg.WriteString("pairs:\n")
	for i := 0; i < pairs; i++ {
		fmt.Fprintf(&cfg, "  - {name: p%d, cluster: c%d, bucket: b%d, prefix: \"p%d/\", access: [unload, copy], role: {name: BenchRole%d, db_users: [loader]}}\n", i, i/50, i/20, i, i)
	}
	c, err := config.Parse("bench.yml", []byte(cfg.String()))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func createCluster(b *testing.B, ctx context.Context, account, id string) {
	b.Helper()
	base := world.BaseConfig()
	cfg := base.Copy()
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base), "arn:aws:iam::"+account+":role/xacctd-admin"))
	_, err := redshift.NewFromConfig(cfg).CreateCluster(ctx, &redshift.CreateClusterInput{
		ClusterIdentifier: aws.String(id), NodeType: aws.String("ra3.xlplus"), NumberOfNodes: aws.Int32(2),
		ClusterType: aws.String("multi-node"), MasterUsername: aws.String("awsuser"),
		MasterUserPassword: aws.String("Bench1password"), DBName: aws.String("dev"),
	})
	if err != nil {
		b.Fatal(err)
	}
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
