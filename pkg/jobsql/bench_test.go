package jobsql

import (
	"testing"

	"github.com/xacctd/xacctd/pkg/config"
)

// BenchmarkRenderUnload measures a typical nightly job: two templates parsed and executed,
// quoting and a handful of options.
func BenchmarkRenderUnload(b *testing.B) {
	j := unloadJob(config.Unload{
		Query:  `SELECT * FROM sales.orders WHERE order_date = '{{ .ScheduledTime.Format "2006-01-02" }}' AND note <> 'it''s \d'`,
		To:     `orders/{{ .ScheduledTime.Format "2006/01/02" }}/`,
		Format: "parquet",
		Options: config.UnloadOptions{
			PartitionBy: []string{"region"}, CleanPath: true, MaxFileSize: "256MB", KMSKeyID: kmsKey,
		},
	})
	tg := chainTarget()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(j, tg, sampleData); err != nil {
			b.Fatal(err)
		}
	}
}
