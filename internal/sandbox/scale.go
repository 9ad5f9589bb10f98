package sandbox

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// ScaleConfig returns a configuration of n pairs spread over accounts/2 warehouse accounts
// (clusters of at most 50 roles, created in moto here) and accounts/2 lake accounts (buckets
// of 20 pairs), for benchmarks. jobsPerPair UNLOAD jobs per pair run at 03:00 (they do not
// fire during a benchmark). The world's own accounts are not used; moto creates accounts on
// first use.
func (w *World) ScaleConfig(ctx context.Context, pairs, accounts, jobsPerPair int) (string, error) {
	var cfg strings.Builder
	cfg.WriteString("version: 1\naccounts:\n")
	half := max(accounts/2, 1)
	wh := func(i int) string { return fmt.Sprintf("1111111111%02d", i) }
	lk := func(i int) string { return fmt.Sprintf("2222222222%02d", i) }
	for i := 0; i < half; i++ {
		fmt.Fprintf(&cfg, "  wh%d: {id: \"%s\", role_arn: \"arn:aws:iam::%s:role/%s\"}\n", i, wh(i), wh(i), AdminRoleName)
		fmt.Fprintf(&cfg, "  lake%d: {id: \"%s\", role_arn: \"arn:aws:iam::%s:role/%s\"}\n", i, lk(i), lk(i), AdminRoleName)
	}
	clusters := (pairs + 49) / 50
	cfg.WriteString("clusters:\n")
	for c := 0; c < clusters; c++ {
		acct := c % half
		fmt.Fprintf(&cfg, "  c%d: {account: wh%d, identifier: bench-%d, database: dev, user: loader}\n", c, acct, c)
		if err := w.createCluster(ctx, wh(acct), fmt.Sprintf("bench-%d", c)); err != nil {
			return "", err
		}
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
	if jobsPerPair > 0 {
		cfg.WriteString("jobs:\n")
		for i := 0; i < pairs; i++ {
			for j := 0; j < jobsPerPair; j++ {
				fmt.Fprintf(&cfg, "  - {name: j%d-%d, pair: p%d, schedule: \"%d 3 * * *\", timezone: Europe/Berlin, unload: {query: \"SELECT * FROM t%d\", to: \"out/{{ .ScheduledTime.Format \\\"2006/01/02\\\" }}/\"}}\n", i, j, i, j%60, j)
			}
		}
	}
	return cfg.String(), nil
}

func (w *World) createCluster(ctx context.Context, account, id string) error {
	base := w.BaseConfig()
	cfg := base.Copy()
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base), adminRoleARN(account)))
	_, err := redshift.NewFromConfig(cfg).CreateCluster(ctx, &redshift.CreateClusterInput{
		ClusterIdentifier: aws.String(id), NodeType: aws.String("ra3.xlplus"), NumberOfNodes: aws.Int32(2),
		ClusterType: aws.String("multi-node"), MasterUsername: aws.String("awsuser"),
		MasterUserPassword: aws.String("Bench1password"), DBName: aws.String("dev"),
	})
	if err != nil {
		return fmt.Errorf("create cluster %s in %s: %w", id, account, err)
	}
	return nil
}
