package config

import (
	"fmt"
	"strings"
	"testing"
)

// generated returns a valid config with the given numbers of pairs and jobs, spread over two
// accounts, enough clusters to stay under Redshift's role quota, and 50 buckets (20 pairs
// each: one bucket policy holds about 28 bucket-policy pairs within S3's 20 KB).
func generated(pairs, jobs int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\naccounts:\n  warehouse: {id: \"111111111111\", role_arn: \"arn:aws:iam::111111111111:role/xacctd-admin\"}\n  lake: {id: \"222222222222\", role_arn: \"arn:aws:iam::222222222222:role/xacctd-admin\"}\n")
	clusters := pairs/40 + 1
	b.WriteString("clusters:\n")
	for i := 0; i < clusters; i++ {
		fmt.Fprintf(&b, "  c%d: {account: warehouse, identifier: cluster-%d, database: analytics, user: etl_loader}\n", i, i)
	}
	b.WriteString("buckets:\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "  b%d: {account: lake, name: acme-bucket-%d, create: true}\n", i, i)
	}
	b.WriteString("pairs:\n")
	for i := 0; i < pairs; i++ {
		fmt.Fprintf(&b, "  - {name: pair-%d, cluster: c%d, bucket: b%d, prefix: \"p%d/\", access: [unload, copy], role: {name: Role%d, db_users: [etl_loader]}}\n", i, i/40, i%50, i, i)
	}
	b.WriteString("jobs:\n")
	for i := 0; i < jobs; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&b, "  - {name: job-%d, pair: pair-%d, schedule: \"%d * * * *\", timezone: America/New_York, unload: {query: \"SELECT * FROM t WHERE d = '{{ .ScheduledTime.Format \\\"2006-01-02\\\" }}'\", to: \"out/{{ .ScheduledTime.Format \\\"2006/01/02\\\" }}/\", format: parquet, options: {cleanpath: true, maxfilesize: 256MB}}}\n", i, i%pairs, i%60)
		} else {
			fmt.Fprintf(&b, "  - {name: job-%d, pair: pair-%d, schedule: \"@hourly\", copy: {table: staging.t%d, from: \"in/\", format: json}}\n", i, i%pairs, i)
		}
	}
	return []byte(b.String())
}

func TestGeneratedConfigIsValid(t *testing.T) {
	cfg, err := Parse("gen.yml", generated(1000, 5000))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Pairs) != 1000 || len(cfg.Jobs) != 5000 {
		t.Fatalf("got %d pairs, %d jobs", len(cfg.Pairs), len(cfg.Jobs))
	}
}

// BenchmarkLoad1000Pairs5000Jobs measures decoding and validating a large file (every
// template rendered, every schedule parsed). It reports ms per load.
func BenchmarkLoad1000Pairs5000Jobs(b *testing.B) {
	data := generated(1000, 5000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse("gen.yml", data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load")
}
