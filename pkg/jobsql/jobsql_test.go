package jobsql

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York must resolve on hosts without a zoneinfo database

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/internal/redshiftsim"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/jobtemplate"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	roleA  = "arn:aws:iam::111111111111:role/xacctd/RedshiftLakeAccess"
	roleB  = "arn:aws:iam::222222222222:role/xacctd/LakeWriter"
	kmsKey = "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	bucket = "acme-redshift-exports"
	prefix = "redshift/analytics/"
	base   = "s3://" + bucket + "/" + prefix
)

func testTarget() Target {
	return Target{Bucket: bucket, Prefix: prefix, BucketRegion: "us-east-1", ClusterRegion: "us-east-1", RoleARNs: []string{roleA}}
}

func chainTarget() Target {
	t := testTarget()
	t.RoleARNs = []string{roleA, roleB}
	return t
}

func crossRegionTarget() Target {
	t := testTarget()
	t.BucketRegion = "eu-west-1"
	return t
}

var sampleData = jobtemplate.Data{
	ScheduledTime: time.Date(2026, time.January, 2, 3, 4, 5, 0, time.UTC),
	RunID:         "20260102T030405Z-7f3a",
	Job:           "orders-nightly",
}

func ptr[T any](v T) *T { return &v }

// unloadJob is a job as config.Load leaves it: defaults filled in.
func unloadJob(u config.Unload) *config.Job {
	if u.Format == "" {
		u.Format = "csv"
	}
	if u.Options.Compression == "" {
		u.Options.Compression = "none"
	}
	return &config.Job{Name: "orders-nightly", Pair: "analytics-to-lake", Unload: &u}
}

func copyJob(c config.Copy) *config.Job {
	if c.Format == "" {
		c.Format = "csv"
	}
	if c.Options.Compression == "" {
		c.Options.Compression = "none"
	}
	return &config.Job{Name: "events-hourly", Pair: "analytics-to-lake", Copy: &c}
}

type goldenCase struct {
	name   string
	job    *config.Job
	target Target
	data   jobtemplate.Data
	// probe, when set, renders the statement instead of Render; job then describes the
	// same statement for the read-back check.
	probe     func(Target) Statement
	wantQuery string // the rendered unload query when it differs from the template text
	wantURL   string
}

func (c goldenCase) render(t *testing.T) Statement {
	t.Helper()
	if c.probe != nil {
		if err := c.target.Validate(); err != nil {
			t.Fatal(err)
		}
		return c.probe(c.target)
	}
	st, err := Render(c.job, c.target, c.data)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func goldenCases(t *testing.T) []goldenCase {
	t.Helper()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// 22:30 on the day DST starts in New York is already the next day in UTC: the
	// template must see the job's zone.
	nyData := jobtemplate.Data{
		ScheduledTime: time.Date(2026, time.March, 8, 22, 30, 0, 0, ny),
		RunID:         "20260309T023000Z-1",
		Job:           "orders-nightly",
	}
	return []goldenCase{
		{
			name:    "unload-minimal-csv",
			job:     unloadJob(config.Unload{Query: "SELECT * FROM sales.orders", To: "orders/"}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "orders/",
		},
		{
			name: "unload-csv-all-options",
			job: unloadJob(config.Unload{
				Query: "SELECT * FROM sales.orders", To: "orders/full_", Format: "csv",
				Options: config.UnloadOptions{
					Header: true, Delimiter: "|", Compression: "gzip",
					PartitionBy: []string{"region", "Order"}, PartitionInclude: true,
					Manifest: true, ManifestVerbose: true, AllowOverwrite: true,
					Parallel: ptr(false), MaxFileSize: "1.5GB", Encrypted: true, KMSKeyID: kmsKey,
					NullAs: ptr(`\N`), Extension: "csv",
				},
			}),
			target:  crossRegionTarget(),
			data:    sampleData,
			wantURL: base + "orders/full_",
		},
		{
			name: "unload-json",
			job: unloadJob(config.Unload{
				Query: "SELECT id, payload FROM events.raw", To: "events/json/", Format: "json",
				Options: config.UnloadOptions{Compression: "zstd", Manifest: true, Parallel: ptr(true), Encrypted: true},
			}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "events/json/",
		},
		{
			name: "unload-parquet-partitioned",
			job: unloadJob(config.Unload{
				Query: "SELECT * FROM sales.orders", To: "orders/parquet/", Format: "parquet",
				Options: config.UnloadOptions{
					PartitionBy: []string{"sale_date", "timestamp"}, PartitionInclude: true,
					RowGroupSize: "64MB", MaxFileSize: "256MB", KMSKeyID: kmsKey, CleanPath: true,
				},
			}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "orders/parquet/",
		},
		{
			name:    "unload-chain",
			job:     unloadJob(config.Unload{Query: "SELECT * FROM sales.orders", To: "orders/"}),
			target:  chainTarget(),
			data:    sampleData,
			wantURL: base + "orders/",
		},
		{
			name:    "unload-cross-region",
			job:     unloadJob(config.Unload{Query: "SELECT * FROM sales.orders", To: "orders/"}),
			target:  crossRegionTarget(),
			data:    sampleData,
			wantURL: base + "orders/",
		},
		{
			name: "unload-cleanpath",
			job: unloadJob(config.Unload{
				Query: "SELECT * FROM sales.orders", To: "orders/latest/",
				Options: config.UnloadOptions{CleanPath: true, Header: true},
			}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "orders/latest/",
		},
		{
			name: "unload-quotes",
			job: unloadJob(config.Unload{
				Query: `SELECT * FROM sales.orders WHERE status = 'shipped' AND note <> 'it''s' AND name = "O'Brien"`,
				To:    "quotes/",
			}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "quotes/",
		},
		{
			name: "unload-backslashes",
			job: unloadJob(config.Unload{
				Query: `SELECT regexp_substr(sku, '\d+') AS n, E'line\nnext' AS e, '\\' AS one, 'x\'' AS q FROM t WHERE path LIKE 'C:\\%'`,
				To:    "backslashes/",
			}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "backslashes/",
		},
		{
			name: "unload-dollar-quoting",
			job: unloadJob(config.Unload{
				Query: `SELECT $$it's a 'test'$$ AS a, $tag$ \ $$ $tag$ AS b`,
				To:    "dollar/",
			}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "dollar/",
		},
		{
			name: "unload-multiline-unicode",
			job: unloadJob(config.Unload{
				Query: "SELECT city, name\nFROM sales.stores -- Zürich first\nWHERE name = 'Zürich – 東京 🚀'\n  AND note LIKE '%\\_%'\n",
				To:    "stores/東京/",
			}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "stores/東京/",
		},
		{
			name: "unload-template",
			job: unloadJob(config.Unload{
				Query: `SELECT *, '{{ .Job }} at {{ .ScheduledTime.Format "15:04 MST" }}' AS note FROM sales.orders WHERE order_date = '{{ .ScheduledTime.Format "2006-01-02" }}' AND run <> '{{ .RunID }}'`,
				To:    `orders/{{ .ScheduledTime.Format "2006/01/02" }}/{{ .Job }}_`,
			}),
			target:    testTarget(),
			data:      nyData,
			wantQuery: `SELECT *, 'orders-nightly at 22:30 EDT' AS note FROM sales.orders WHERE order_date = '2026-03-08' AND run <> '20260309T023000Z-1'`,
			wantURL:   base + "orders/2026/03/08/orders-nightly_",
		},
		{
			name:    "copy-minimal-csv",
			job:     copyJob(config.Copy{Table: "staging.events", From: "events/"}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "events/",
		},
		{
			name: "copy-csv-all-options",
			job: copyJob(config.Copy{
				Table: "staging.events", Columns: []string{"id", "user", "Payload", "timestamp"},
				From: `events/{{ .ScheduledTime.Format "2006/01/02" }}/manifest`,
				Options: config.CopyOptions{
					IgnoreHeader: 1, Delimiter: ";", Compression: "gzip", Manifest: true,
					DateFormat: "YYYY-MM-DD", TimeFormat: "auto", MaxError: 10, EmptyAsNull: true,
					BlanksAsNull: true, NullAs: ptr(""), TruncateColumns: true,
				},
			}),
			target:  crossRegionTarget(),
			data:    sampleData,
			wantURL: base + "events/2026/01/02/manifest",
		},
		{
			name: "copy-json",
			job: copyJob(config.Copy{
				Table: "events", From: "events/json/", Format: "json",
				Options: config.CopyOptions{Compression: "bzip2", TimeFormat: "epochsecs", MaxError: 5},
			}),
			target:  chainTarget(),
			data:    sampleData,
			wantURL: base + "events/json/",
		},
		{
			name:    "copy-parquet",
			job:     copyJob(config.Copy{Table: "staging.order", From: "orders/parquet/", Format: "parquet"}),
			target:  testTarget(),
			data:    sampleData,
			wantURL: base + "orders/parquet/",
		},
		{
			name:    "probe-unload",
			probe:   func(t Target) Statement { return ProbeUnload(t, "20260102T030405Z-7f3a") },
			job:     unloadJob(config.Unload{Query: "SELECT 1", Options: config.UnloadOptions{AllowOverwrite: true, Parallel: ptr(false)}}),
			target:  crossRegionTarget(),
			wantURL: base + "_xacctd_probe/20260102T030405Z-7f3a/",
		},
		{
			name: "probe-copy",
			probe: func(t Target) Statement {
				return ProbeCopy(t, "xacctd_probe", base+"_xacctd_probe/20260102T030405Z-7f3a/")
			},
			job:     copyJob(config.Copy{Table: "xacctd_probe"}),
			target:  chainTarget(),
			wantURL: base + "_xacctd_probe/20260102T030405Z-7f3a/",
		},
	}
}

// TestGolden pins every statement as --dry-run prints it.
func TestGolden(t *testing.T) {
	for _, tt := range goldenCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.render(t)
			got := st.SQL + "\n"
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/jobsql -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("statement changed (-want +got); rerun with -update if intended:\n%s", diff)
			}
			if st.URL != tt.wantURL {
				t.Errorf("URL = %q, want %q", st.URL, tt.wantURL)
			}
			wantKind := "unload"
			if tt.job.Copy != nil {
				wantKind = "copy"
			}
			if st.Kind != wantKind {
				t.Errorf("Kind = %q, want %q", st.Kind, wantKind)
			}
			if strings.HasSuffix(strings.TrimSpace(st.SQL), ";") {
				t.Error("statement ends with a semicolon")
			}
		})
	}
}

// standInGaps are options Redshift accepts that the sandbox stand-in does not parse: the
// case's statement must fail on exactly that line, and parses without it. Remove an entry
// when the stand-in learns the option.
var standInGaps = map[string]string{}

// TestReadBack parses every golden statement with the sandbox's Redshift stand-in and checks
// that it means what the job says: the inner query is the rendered query byte for byte, the
// location is Statement.URL, IAM_ROLE is the target's chain, and each option arrives.
func TestReadBack(t *testing.T) {
	for _, tt := range goldenCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.render(t)
			sql := st.SQL
			if gap, ok := standInGaps[tt.name]; ok {
				_, perr := redshiftsim.Parse(sql)
				if perr == nil || perr.Message != `syntax error at or near "`+gap+`"` {
					t.Fatalf("stand-in gap %s: Parse error = %v, want a syntax error at %s (fixed? remove it from standInGaps)", gap, perr, gap)
				}
				sql = strings.Replace(sql, "\n"+gap, "", 1)
			}
			parsed, perr := redshiftsim.Parse(sql)
			if perr != nil {
				t.Fatalf("stand-in refuses the statement: %v\n%s", perr, sql)
			}
			switch got := parsed.(type) {
			case *redshiftsim.Unload:
				query := tt.job.Unload.Query
				if tt.wantQuery != "" {
					query = tt.wantQuery
				}
				// Partition columns arrive as written; compare them as Redshift resolves them.
				for i, c := range got.PartitionBy {
					got.PartitionBy[i] = strings.ToLower(strings.Trim(c, `"`))
				}
				if diff := cmp.Diff(wantUnload(t, tt.job.Unload, tt.target, query, st.URL), got); diff != "" {
					t.Errorf("parsed UNLOAD (-want +got):\n%s", diff)
				}
			case *redshiftsim.Copy:
				got.Table = strings.ToLower(strings.ReplaceAll(got.Table, `"`, ""))
				got.Columns = nil // written forms; ColumnKeys are the names PostgreSQL resolves
				if diff := cmp.Diff(wantCopy(tt.job.Copy, tt.target, st.URL), got); diff != "" {
					t.Errorf("parsed COPY (-want +got):\n%s", diff)
				}
			default:
				t.Fatalf("Parse returned %T", parsed)
			}
		})
	}
}

// wantUnload is what the stand-in should read from the rendered UNLOAD of u.
func wantUnload(t *testing.T, u *config.Unload, tg Target, query, url string) *redshiftsim.Unload {
	t.Helper()
	o := u.Options
	w := &redshiftsim.Unload{
		Query:            query,
		To:               url,
		IAMRoles:         tg.RoleARNs,
		Format:           strings.ToUpper(u.Format),
		Header:           o.Header,
		Delimiter:        o.Delimiter,
		AllowOverwrite:   o.AllowOverwrite,
		CleanPath:        o.CleanPath,
		ParallelOff:      o.Parallel != nil && !*o.Parallel,
		Manifest:         o.Manifest,
		ManifestVerbose:  o.ManifestVerbose,
		MaxFileSize:      sizeBytes(t, o.MaxFileSize),
		RowGroupSize:     sizeBytes(t, o.RowGroupSize),
		Encrypted:        o.Encrypted || o.KMSKeyID != "",
		EncryptedAuto:    o.Encrypted && o.KMSKeyID == "",
		KMSKeyID:         o.KMSKeyID,
		PartitionInclude: o.PartitionInclude,
		Extension:        o.Extension,
		NullAs:           o.NullAs,
	}
	if o.Compression != "none" {
		w.Compression = strings.ToUpper(o.Compression)
	}
	for _, c := range o.PartitionBy {
		w.PartitionBy = append(w.PartitionBy, strings.ToLower(c))
	}
	if tg.BucketRegion != tg.ClusterRegion {
		w.Region = tg.BucketRegion
	}
	return w
}

// wantCopy is what the stand-in should read from the rendered COPY of c.
func wantCopy(c *config.Copy, tg Target, url string) *redshiftsim.Copy {
	o := c.Options
	w := &redshiftsim.Copy{
		Table:        strings.ToLower(c.Table),
		From:         url,
		IAMRoles:     tg.RoleARNs,
		Format:       strings.ToUpper(c.Format),
		IgnoreHeader: o.IgnoreHeader,
		Delimiter:    o.Delimiter,
		Manifest:     o.Manifest,
		DateFormat:   o.DateFormat,
		TimeFormat:   o.TimeFormat,
		MaxError:     o.MaxError,
		EmptyAsNull:  o.EmptyAsNull,
		BlanksAsNull: o.BlanksAsNull,
		NullAs:       o.NullAs,

		TruncateColumns: o.TruncateColumns,
	}
	if c.Format == "json" {
		w.JSONOption = "auto"
	}
	if o.Compression != "none" {
		w.Compression = strings.ToUpper(o.Compression)
	}
	for _, col := range c.Columns {
		w.ColumnKeys = append(w.ColumnKeys, strings.ToLower(col))
	}
	if tg.BucketRegion != tg.ClusterRegion {
		w.Region = tg.BucketRegion
	}
	return w
}

// sizeBytes converts a config size the way the stand-in converts MAXFILESIZE.
func sizeBytes(t *testing.T, s string) int64 {
	t.Helper()
	if s == "" {
		return 0
	}
	n, unit := s[:len(s)-2], s[len(s)-2:]
	f, err := strconv.ParseFloat(n, 64)
	if err != nil {
		t.Fatal(err)
	}
	mult := float64(1 << 20)
	if unit == "GB" {
		mult = 1 << 30
	}
	return int64(f * mult)
}

func TestRenderErrors(t *testing.T) {
	noRoles := testTarget()
	noRoles.RoleARNs = nil
	noBucket := testTarget()
	noBucket.Bucket = ""
	badRole := testTarget()
	badRole.RoleARNs = []string{roleA + "," + roleB}
	badPrefix := testTarget()
	badPrefix.Prefix = "redshift/analytics"
	unload := func(query, to string) *config.Job { return unloadJob(config.Unload{Query: query, To: to}) }
	withData := func(runID string) jobtemplate.Data {
		d := sampleData
		d.RunID = runID
		return d
	}

	tests := []struct {
		name   string
		give   *config.Job
		target Target
		data   jobtemplate.Data
		want   string
	}{
		{
			name: "empty query",
			give: unload("  {{/* nothing today */}}\n", "x/"),
			want: "unload.query renders to an empty query: give the SELECT to unload",
		},
		{
			name: "query empty at runtime",
			give: unload("{{ .RunID }}", "x/"),
			data: withData(" \t"),
			want: "unload.query renders to an empty query: give the SELECT to unload",
		},
		{
			name: "trailing semicolon",
			give: unload("SELECT 1;\n", "x/"),
			want: "unload.query renders to a query ending with ;: remove the semicolon, the query is quoted inside UNLOAD ('...')",
		},
		{
			name: "query template does not parse",
			give: unload("SELECT {{ .RunID", "x/"),
			want: "unload.query: template does not parse: unclosed action",
		},
		{
			name: "query template does not render",
			give: unload("SELECT {{ .Nope }}", "x/"),
			want: `unload.query: template does not render: executing "unload.query" at <.Nope>: can't evaluate field Nope in type jobtemplate.Data (templates see .ScheduledTime, .RunID and .Job)`,
		},
		{
			name: "NUL in query",
			give: unload("SELECT '{{ .RunID }}'", "x/"),
			data: withData("a\x00b"),
			want: `unload.query renders to text with a NUL byte ("SELECT 'a\x00b'"), which no statement can carry: check the data the template uses`,
		},
		{
			name: "invalid UTF-8 in query",
			give: unload("SELECT '{{ .RunID }}'", "x/"),
			data: withData("\xff"),
			want: `unload.query renders to text that is not valid UTF-8 ("SELECT '\xff'"): check the data the template uses`,
		},
		{
			name: "dotdot in to",
			give: unload("SELECT 1", "../x"),
			want: `unload.to renders to "../x": a job can never leave its pair's prefix`,
		},
		{
			name: "dotdot from data",
			give: unload("SELECT 1", "orders/{{ .RunID }}/"),
			data: withData("../../other-pair"),
			want: `unload.to renders to "orders/../../other-pair/": a job can never leave its pair's prefix`,
		},
		{
			name: "dot segment",
			give: unload("SELECT 1", "orders/./x"),
			want: `unload.to renders to "orders/./x": remove the . segment, S3 keys are taken literally`,
		},
		{
			name: "leading slash",
			give: unload("SELECT 1", "/orders/"),
			want: `unload.to renders to "/orders/": remove the leading /, the path is relative to the pair's prefix`,
		},
		{
			name: "control character",
			give: unload("SELECT 1", "orders/{{ .RunID }}/"),
			data: withData("a\nb"),
			want: `unload.to renders to "orders/a\nb/", which has a control character: check the data the template uses`,
		},
		{
			name: "empty to",
			give: unload("SELECT 1", `{{ if false }}x{{ end }}`),
			want: "unload.to renders to an empty path: give the job its own destination under the pair's prefix",
		},
		{
			name: "key too long",
			give: unload("SELECT 1", strings.Repeat("a", 1000)),
			want: "unload.to renders to a key prefix of 1019 bytes; S3 keys are at most 1024 including the file names UNLOAD adds: shorten the path",
		},
		{
			name: "dotdot in copy from",
			give: copyJob(config.Copy{Table: "t", From: "events/../../x/"}),
			want: `copy.from renders to "events/../../x/": a job can never leave its pair's prefix`,
		},
		{
			name:   "no roles",
			give:   unload("SELECT 1", "x/"),
			target: noRoles,
			want:   "target: no IAM role: a statement needs the pair's role (or role chain) for IAM_ROLE; check that the pair's roles are in the desired state",
		},
		{
			name:   "no bucket",
			give:   unload("SELECT 1", "x/"),
			target: noBucket,
			want:   "target: the bucket name is empty: a statement needs the pair's bucket",
		},
		{
			name:   "comma inside a role ARN",
			give:   unload("SELECT 1", "x/"),
			target: badRole,
			want:   `target: role 1 of IAM_ROLE, "arn:aws:iam::111111111111:role/xacctd/RedshiftLakeAccess,arn:aws:iam::222222222222:role/xacctd/LakeWriter", has a comma: Redshift splits IAM_ROLE at commas, so the role cannot be used from Redshift; rename it`,
		},
		{
			name:   "prefix without slash",
			give:   unload("SELECT 1", "x/"),
			target: badPrefix,
			want:   `target: prefix "redshift/analytics" must end with /: it is the pair's key prefix`,
		},
		{
			name: "neither unload nor copy",
			give: &config.Job{Name: "x"},
			want: "the job has neither unload nor copy: give exactly one",
		},
		{
			name: "both unload and copy",
			give: &config.Job{Name: "x", Unload: &config.Unload{}, Copy: &config.Copy{}},
			want: "the job has both unload and copy: give exactly one",
		},
		{
			name: "unknown format",
			give: unloadJob(config.Unload{Query: "SELECT 1", To: "x/", Format: "orc"}),
			want: `unload.format "orc" is not csv, json or parquet`,
		},
		{
			name: "column name with SQL in it",
			give: unloadJob(config.Unload{Query: "SELECT 1", To: "x/", Options: config.UnloadOptions{PartitionBy: []string{"a) TO 's3://evil/'--"}}}),
			want: `unload.options.partition_by[0] "a) TO 's3://evil/'--" is not a column name: use letters, digits, _ and $`,
		},
		{
			name: "table name with SQL in it",
			give: copyJob(config.Copy{Table: "t; DROP TABLE x", From: "x/"}),
			want: `copy.table "t; DROP TABLE x" is not a table name: use table or schema.table with letters, digits, _ and $`,
		},
		{
			name: "size without unit",
			give: unloadJob(config.Unload{Query: "SELECT 1", To: "x/", Options: config.UnloadOptions{MaxFileSize: "256"}}),
			want: `unload.options.maxfilesize "256" is not a size: write a number with MB or GB, such as 256MB or 1GB`,
		},
		{
			name: "NUL in an option",
			give: copyJob(config.Copy{Table: "t", From: "x/", Options: config.CopyOptions{NullAs: ptr("\x00")}}),
			want: "copy.options: a value has a NUL byte, which no statement can carry: remove it",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target.Bucket == "" && target.RoleARNs == nil && target.Prefix == "" {
				target = testTarget()
			}
			data := tt.data
			if data.Job == "" {
				data = sampleData
			}
			st, err := Render(tt.give, target, data)
			if err == nil {
				t.Fatalf("Render succeeded, want error %q:\n%s", tt.want, st.SQL)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnquoteLiteralErrors(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: ``, want: `"" is not a quoted literal: it must start and end with '`},
		{give: `'`, want: `"'" is not a quoted literal: it must start and end with '`},
		{give: `abc`, want: `"abc" is not a quoted literal: it must start and end with '`},
		{give: `'a'b'`, want: `literal "'a'b'" has a lone ' at byte 2: QuoteLiteral doubles every ' and \`},
		{give: `'a\'`, want: `literal "'a\\'" has a lone \ at byte 2: QuoteLiteral doubles every ' and \`},
		{give: `'\''`, want: `literal "'\\''" has a lone \ at byte 1: QuoteLiteral doubles every ' and \`},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := UnquoteLiteral(tt.give)
			if err == nil {
				t.Fatalf("UnquoteLiteral(%q) = %q, want error", tt.give, got)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQuoteLiteral(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: ``, want: `''`},
		{give: `it's`, want: `'it''s'`},
		{give: `\d+`, want: `'\\d+'`},
		{give: `E'\n'`, want: `'E''\\n'''`},
		{give: `\'`, want: `'\\'''`},
		{give: "Zürich – 東京 🚀", want: "'Zürich – 東京 🚀'"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, QuoteLiteral(tt.give)); diff != "" {
				t.Errorf("QuoteLiteral(%q) (-want +got):\n%s", tt.give, diff)
			}
		})
	}
}

// TestIdentifiers: reserved words are quoted in lower case, everything else stays bare.
func TestIdentifiers(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "id", want: "id"},
		{give: "OrderDate", want: "OrderDate"},
		{give: "Order", want: `"order"`},
		{give: "timestamp", want: `"timestamp"`},
		{give: "user", want: `"user"`},
		{give: "a$b", want: "a$b"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if got := ident(tt.give); got != tt.want {
				t.Errorf("ident(%q) = %s, want %s", tt.give, got, tt.want)
			}
		})
	}
	if got, want := quoteIdent(`we"ird table`), `"we""ird table"`; got != want {
		t.Errorf("quoteIdent = %s, want %s", got, want)
	}
}

func TestProbeUnloadRunID(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "20260102T030405Z-7f3a", want: base + "_xacctd_probe/20260102T030405Z-7f3a/"},
		{give: "../../x", want: base + "_xacctd_probe/..-..-x/"},
		{give: "..", want: base + "_xacctd_probe/probe../"},
		{give: "", want: base + "_xacctd_probe/probe/"},
		{give: "a/b c'", want: base + "_xacctd_probe/a-b-c-/"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			st := ProbeUnload(testTarget(), tt.give)
			if st.URL != tt.want {
				t.Errorf("URL = %q, want %q", st.URL, tt.want)
			}
			parsed, perr := redshiftsim.Parse(st.SQL)
			if perr != nil {
				t.Fatal(perr)
			}
			if got := parsed.(*redshiftsim.Unload).To; got != st.URL {
				t.Errorf("TO = %q, want %q", got, st.URL)
			}
		})
	}
}
