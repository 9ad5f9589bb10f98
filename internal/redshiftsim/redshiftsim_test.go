package redshiftsim_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/xacctd/xacctd/internal/redshiftsim"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connConfig(t *testing.T, user, password string) *pgx.ConnConfig {
	t.Helper()
	return connConfigAt(t, world.addr, user, password)
}

func connConfigAt(t *testing.T, addr, user, password string) *pgx.ConnConfig {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=dev sslmode=prefer", host, port))
	if err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Password = user, password
	return cfg
}

func connect(t *testing.T, user, password string) *pgx.Conn {
	t.Helper()
	ctx := testContext(t)
	conn, err := pgx.ConnectConfig(ctx, connConfig(t, user, password))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func connectLoader(t *testing.T) *pgx.Conn { return connect(t, loader, loaderPassword) }

// asPgError fails the test unless err is a *pgconn.PgError.
func asPgError(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("error = %v (%T), want a *pgconn.PgError", err, err)
	}
	return pgErr
}

// objects returns the objects under prefix in the lake bucket, read with
// the lake account's own credentials.
func objects(t *testing.T, bucket, prefix string) map[string][]byte {
	t.Helper()
	ctx := testContext(t)
	c := world.s3(world.lake)
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("list %s/%s: %v", bucket, prefix, err)
	}
	got := map[string][]byte{}
	for _, o := range out.Contents {
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatalf("get %s: %v", aws.ToString(o.Key), err)
		}
		body, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got[aws.ToString(o.Key)] = body
	}
	return got
}

func putObject(t *testing.T, bucket, key, body string) {
	t.Helper()
	_, err := world.s3(world.lake).PutObject(testContext(t), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
	})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func unload(query, to, role, options string) string {
	return fmt.Sprintf("UNLOAD (%s) TO '%s' IAM_ROLE '%s' %s", quoteLiteral(query), to, role, options)
}

// quoteLiteral is how xacctd renders the inner query: quotes and
// backslashes doubled.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

const salesQuery = `SELECT id, customer, note, amount, paid FROM public.sales WHERE customer <> 'nobody''s' ORDER BY id`

func TestUnloadCSVToOtherAccount(t *testing.T) {
	ctx := testContext(t)
	conn := connectLoader(t)
	to := "s3://" + exportBucket + "/csv/sales_"
	tag, err := conn.Exec(ctx, unload(salesQuery, to, roleUnload, "FORMAT AS CSV HEADER"))
	if err != nil {
		t.Fatalf("UNLOAD: %v", err)
	}
	if tag.String() != "UNLOAD" {
		t.Errorf("command tag = %q, want UNLOAD", tag.String())
	}
	want := map[string][]byte{
		"csv/sales_0000_part_00": []byte("id,customer,note,amount,paid\n" +
			"1,O'Brien,\"it's \"\"quoted\"\", with a comma\",10.50,t\n" +
			"2,Ng,,3.00,f\n" +
			"3,Back\\slash,,0.25,\n"),
	}
	if diff := cmp.Diff(want, objects(t, exportBucket, "csv/"), bytesAsString); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}

	// A second run refuses the non-empty destination ...
	_, err = conn.Exec(ctx, unload(salesQuery, to, roleUnload, "FORMAT AS CSV HEADER"))
	pgErr := asPgError(t, err)
	wantMsg := "Specified unload destination on S3 is not empty. Consider using a different bucket / prefix, manually removing the target files in S3, or using the ALLOWOVERWRITE option."
	if pgErr.Code != "XX000" || pgErr.Message != wantMsg {
		t.Errorf("second UNLOAD: %s %q, want XX000 %q", pgErr.Code, pgErr.Message, wantMsg)
	}
	// ... the session is still usable, ALLOWOVERWRITE overwrites ...
	if _, err := conn.Exec(ctx, unload(`SELECT 'new' AS a`, to, roleUnload, "CSV ALLOWOVERWRITE")); err != nil {
		t.Fatalf("UNLOAD ALLOWOVERWRITE: %v", err)
	}
	if got := string(objects(t, exportBucket, "csv/")["csv/sales_0000_part_00"]); got != "new\n" {
		t.Errorf("after ALLOWOVERWRITE: %q, want %q", got, "new\n")
	}
	// ... and CLEANPATH removes what was there first.
	putObject(t, exportBucket, "csv/sales_stale", "old")
	if _, err := conn.Exec(ctx, unload(`SELECT 1 AS a`, to, roleUnload, "CSV CLEANPATH PARALLEL OFF")); err != nil {
		t.Fatalf("UNLOAD CLEANPATH: %v", err)
	}
	if diff := cmp.Diff(map[string][]byte{"csv/sales_000": []byte("1\n")}, objects(t, exportBucket, "csv/"), bytesAsString); diff != "" {
		t.Errorf("after CLEANPATH (-want +got):\n%s", diff)
	}
}

var bytesAsString = cmp.Transformer("string", func(b []byte) string { return string(b) })

func TestUnloadFormats(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		options string
		want    map[string]string
	}{
		{
			name:    "default pipe-delimited text",
			query:   `SELECT 'a|b' AS x, NULL AS y, 'c' AS z`,
			options: "ESCAPE",
			want:    map[string]string{"0000_part_00": "a\\|b||c\n"},
		},
		{
			name:    "json",
			query:   `SELECT id, customer, note, amount, paid FROM public.sales ORDER BY id`,
			options: "FORMAT JSON PARALLEL OFF",
			want: map[string]string{"000": `{"id":1,"customer":"O'Brien","note":"it's \"quoted\", with a comma","amount":10.50,"paid":true}` + "\n" +
				`{"id":2,"customer":"Ng","note":null,"amount":3.00,"paid":false}` + "\n" +
				`{"id":3,"customer":"Back\\slash","note":"","amount":0.25,"paid":null}` + "\n"},
		},
		{
			name:    "delimiter, null as, addquotes, extension",
			query:   `SELECT 1 AS a, NULL::int AS b`,
			options: "DELIMITER AS ';' NULL AS 'NULL' ADDQUOTES EXTENSION 'txt'",
			want:    map[string]string{"0000_part_00.txt": "\"1\";NULL\n"},
		},
		{
			name:    "manifest verbose",
			query:   `SELECT 7 AS n`,
			options: "CSV MANIFEST VERBOSE",
			want: map[string]string{
				"0000_part_00": "7\n",
				"manifest": `{
  "entries": [
    {
      "url": "s3://lake-exports/formats/manifest_verbose/0000_part_00",
      "meta": {
        "content_length": 2,
        "record_count": 1
      }
    }
  ],
  "schema": {
    "elements": [
      {
        "name": "n",
        "type": {
          "base": "integer"
        }
      }
    ]
  },
  "meta": {
    "content_length": 2,
    "record_count": 1
  },
  "author": {
    "name": "Amazon Redshift",
    "version": "1.0.0"
  }
}
`,
			},
		},
	}
	conn := connectLoader(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := "formats/" + strings.NewReplacer(" ", "_", ",", "").Replace(tt.name) + "/"
			if _, err := conn.Exec(testContext(t), unload(tt.query, "s3://"+exportBucket+"/"+prefix, roleUnload, tt.options)); err != nil {
				t.Fatalf("UNLOAD: %v", err)
			}
			got := map[string]string{}
			for k, v := range objects(t, exportBucket, prefix) {
				got[strings.TrimPrefix(k, prefix)] = string(v)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnloadGzipAndCopyBack(t *testing.T) {
	ctx := testContext(t)
	conn := connectLoader(t)
	if _, err := conn.Exec(ctx, unload(salesQuery, "s3://"+exportBucket+"/gz/sales_", roleUnload, "CSV HEADER GZIP")); err != nil {
		t.Fatalf("UNLOAD: %v", err)
	}
	objs := objects(t, exportBucket, "gz/")
	body, ok := objs["gz/sales_0000_part_00.gz"]
	if !ok {
		t.Fatalf("objects = %v, want gz/sales_0000_part_00.gz", keys(objs))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	plain, _ := io.ReadAll(zr)
	if !strings.HasPrefix(string(plain), "id,customer,note,amount,paid\n1,O'Brien,") {
		t.Errorf("content = %q", plain)
	}

	if _, err := conn.Exec(ctx, `CREATE TABLE sales_copy (id int, customer text, note text, amount numeric(10,2), paid boolean)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = connectLoader(t).Exec(context.Background(), "DROP TABLE sales_copy") })
	tag, err := conn.Exec(ctx, fmt.Sprintf(`COPY sales_copy FROM 's3://%s/gz/sales_' IAM_ROLE '%s' FORMAT AS CSV IGNOREHEADER 1 GZIP`, exportBucket, roleUnload))
	if err != nil {
		t.Fatalf("COPY: %v", err)
	}
	if tag.String() != "COPY 3" {
		t.Errorf("command tag = %q, want COPY 3", tag.String())
	}
	type sale struct {
		ID       int
		Customer string
		Note     *string
		Amount   string
		Paid     *bool
	}
	rows, err := conn.Query(ctx, `SELECT id, customer, note, amount::text, paid FROM sales_copy ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sale])
	if err != nil {
		t.Fatal(err)
	}
	note, empty, yes, no := `it's "quoted", with a comma`, "", true, false
	// As in Redshift, an empty CSV field loads as '' into a text column
	// (NULL and '' both unload as an empty field).
	want := []sale{
		{1, "O'Brien", &note, "10.50", &yes},
		{2, "Ng", &empty, "3.00", &no},
		{3, `Back\slash`, &empty, "0.25", nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestCopyJSONAndText(t *testing.T) {
	ctx := testContext(t)
	conn := connectLoader(t)
	if _, err := conn.Exec(ctx, `CREATE TABLE events (id int, "Kind" text, payload text, ok boolean)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = connectLoader(t).Exec(context.Background(), "DROP TABLE events") })
	putObject(t, exportBucket, "in/json/part-1", `{"ID": 1, "kind": "a", "payload": {"x": [1, 2]}, "ok": true}
{"id": 2, "Kind": "b''c", "extra": 5}`)
	putObject(t, exportBucket, "in/json/part-2", `{"id": 3, "kind": "", "ok": null}`)
	putObject(t, exportBucket, "in/text/part-1", "4|d|p|t\n5|\\N||f\n")

	if _, err := conn.Exec(ctx, fmt.Sprintf(`COPY events FROM 's3://%s/in/json/' IAM_ROLE '%s' FORMAT AS JSON 'auto' EMPTYASNULL`, exportBucket, roleUnload)); err != nil {
		t.Fatalf("COPY JSON: %v", err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`COPY events (id, "Kind", payload, ok) FROM 's3://%s/in/text/' IAM_ROLE '%s'`, exportBucket, roleUnload)); err != nil {
		t.Fatalf("COPY text: %v", err)
	}
	rows, err := conn.Query(ctx, `SELECT id, coalesce("Kind", '<null>'), coalesce(payload, '<null>'), coalesce(ok::text, '<null>') FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id int
		var k, p, ok string
		err := r.Scan(&id, &k, &p, &ok)
		return fmt.Sprintf("%d %s %s %s", id, k, p, ok), err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`1 a {"x":[1,2]} true`,
		`2 b''c <null> <null>`,
		`3 <null> <null> <null>`,
		`4 d p true`,
		`5 <null>  false`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestRefusals(t *testing.T) {
	to := "s3://" + exportBucket + "/refused/"
	userNotAuthorized := func(role string) string {
		return "User " + dbUserARN(loader) + " is not authorized to assume IAM Role " + role
	}
	tests := []struct {
		name     string
		sql      string
		wantCode string
		wantMsg  string // exact, or a prefix when it ends in "..."
	}{
		{
			name:     "role not associated",
			sql:      unload("SELECT 1", to, roleUnassociated, ""),
			wantCode: "XX000", wantMsg: "Not authorized to get credentials of role " + roleUnassociated,
		},
		{
			name:     "association not in-sync",
			sql:      unload("SELECT 1", to, roleAdding, ""),
			wantCode: "XX000", wantMsg: "Not authorized to get credentials of role " + roleAdding,
		},
		{
			name:     "trust without redshift",
			sql:      unload("SELECT 1", to, roleDrifted, ""),
			wantCode: "XX000", wantMsg: "Not authorized to get credentials of role " + roleDrifted,
		},
		{
			name:     "external id list lacks the user",
			sql:      unload("SELECT 1", to, roleRestricted, ""),
			wantCode: "XX000", wantMsg: userNotAuthorized(roleRestricted),
		},
		{
			name:     "chained role does not trust the first",
			sql:      unload("SELECT 1", to, roleChainA+","+roleLakeStranger, ""),
			wantCode: "XX000", wantMsg: userNotAuthorized(roleLakeStranger),
		},
		{
			name:     "no bucket policy grant",
			sql:      unload("SELECT 1", "s3://"+closedBucket+"/x/", roleUnload, ""),
			wantCode: "XX000", wantMsg: "S3ServiceException:Access Denied,Status 403,Error AccessDenied,...",
		},
		{
			name:     "copy without bucket policy grant",
			sql:      fmt.Sprintf("COPY sales FROM 's3://%s/x/' IAM_ROLE '%s'", closedBucket, roleUnload),
			wantCode: "XX000", wantMsg: "S3ServiceException:Access Denied,Status 403,Error AccessDenied,...",
		},
		{
			name:     "copy from an empty prefix",
			sql:      fmt.Sprintf("COPY sales FROM 's3://%s/nothing-here/' IAM_ROLE '%s' CSV", exportBucket, roleUnload),
			wantCode: "XX000", wantMsg: "The specified S3 prefix 'nothing-here/' does not exist",
		},
		{
			name:     "unknown option",
			sql:      unload("SELECT 1", to, roleUnload, "FORMAT CSV SHINY"),
			wantCode: "42601", wantMsg: `syntax error at or near "SHINY"`,
		},
		{
			name:     "broken statement",
			sql:      `UNLOAD ('SELECT 1') 's3://b/p'`,
			wantCode: "42601", wantMsg: `syntax error at or near "'s3://b/p'"`,
		},
		{
			name:     "parquet",
			sql:      unload("SELECT 1", to, roleUnload, "FORMAT PARQUET"),
			wantCode: "0A000", wantMsg: "UNLOAD with FORMAT PARQUET is not supported by the sandbox stand-in",
		},
		{
			name:     "inner query error",
			sql:      unload("SELECT nope FROM public.sales", to, roleUnload, ""),
			wantCode: "42703", wantMsg: `column "nope" does not exist`,
		},
		{
			name:     "inner query without privilege",
			sql:      unload("SELECT * FROM pg_authid", to, roleUnload, ""),
			wantCode: "42501", wantMsg: "permission denied for table pg_authid",
		},
	}
	conn := connectLoader(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			_, err := conn.Exec(ctx, tt.sql)
			pgErr := asPgError(t, err)
			if pgErr.Code != tt.wantCode {
				t.Errorf("SQLSTATE = %s, want %s (message %q)", pgErr.Code, tt.wantCode, pgErr.Message)
			}
			if prefix, ok := strings.CutSuffix(tt.wantMsg, "..."); ok {
				if !strings.HasPrefix(pgErr.Message, prefix) {
					t.Errorf("message = %q, want prefix %q", pgErr.Message, prefix)
				}
			} else if pgErr.Message != tt.wantMsg {
				t.Errorf("message = %q, want %q", pgErr.Message, tt.wantMsg)
			}
			// The session stays usable.
			var one int
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("session unusable after refusal: %v", err)
			}
		})
	}
	if got := objects(t, exportBucket, "refused/"); len(got) != 0 {
		t.Errorf("refused statements wrote %v", keys(got))
	}
}

func TestRestrictedRoleAllowsListedUser(t *testing.T) {
	conn := connectLoader(t)
	if _, err := conn.Exec(testContext(t), unload("SELECT 1 AS a", "s3://"+exportBucket+"/restricted/", roleRestrictedOK, "")); err != nil {
		t.Fatalf("UNLOAD with a role whose ExternalId list names the user: %v", err)
	}
	if got := keys(objects(t, exportBucket, "restricted/")); !cmp.Equal(got, []string{"restricted/0000_part_00"}) {
		t.Errorf("objects = %v", got)
	}
}

func TestRoleChain(t *testing.T) {
	ctx := testContext(t)
	conn := connectLoader(t)
	// lake-writer is in the bucket's own account: no bucket policy needed.
	if _, err := conn.Exec(ctx, unload("SELECT 'chained' AS a", "s3://"+closedBucket+"/chain/", roleChainA+","+roleLakeWriter, "CSV")); err != nil {
		t.Fatalf("UNLOAD through a role chain: %v", err)
	}
	if diff := cmp.Diff(map[string][]byte{"chain/0000_part_00": []byte("chained\n")}, objects(t, closedBucket, "chain/"), bytesAsString); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE chained (a text)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = connectLoader(t).Exec(context.Background(), "DROP TABLE chained") })
	if _, err := conn.Exec(ctx, fmt.Sprintf("COPY chained FROM 's3://%s/chain/' IAM_ROLE '%s,%s' CSV", closedBucket, roleChainA, roleLakeWriter)); err != nil {
		t.Fatalf("COPY through a role chain: %v", err)
	}
	var a string
	if err := conn.QueryRow(ctx, "SELECT a FROM chained").Scan(&a); err != nil || a != "chained" {
		t.Errorf("loaded %q, %v", a, err)
	}
}

func TestTransactions(t *testing.T) {
	ctx := testContext(t)
	conn := connectLoader(t)
	if _, err := conn.Exec(ctx, `CREATE TABLE tx_copy (a text)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = connectLoader(t).Exec(context.Background(), "DROP TABLE tx_copy") })
	putObject(t, exportBucket, "tx/in", "x\ny\n")
	copySQL := fmt.Sprintf("COPY tx_copy FROM 's3://%s/tx/in' IAM_ROLE '%s' CSV", exportBucket, roleUnload)

	// COPY inside a transaction is rolled back with it.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, copySQL); err != nil {
		t.Fatalf("COPY in transaction: %v", err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM tx_copy").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows inside transaction = %d, %v; want 2", n, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM tx_copy").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after rollback = %d, %v; want 0", n, err)
	}

	// A refused UNLOAD aborts the transaction, as in Redshift.
	tx, err = conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, unload("SELECT 1", "s3://"+exportBucket+"/tx/out/", roleUnassociated, ""))
	asPgError(t, err)
	if got := conn.PgConn().TxStatus(); got != 'E' {
		t.Errorf("transaction status after refusal = %c, want E", got)
	}
	_, err = tx.Exec(ctx, copySQL)
	if pgErr := asPgError(t, err); pgErr.Code != "25P02" {
		t.Errorf("statement in aborted transaction: %s %s, want 25P02", pgErr.Code, pgErr.Message)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// Several statements in one simple query, ours among them.
	if _, err := conn.Exec(ctx, "BEGIN; "+copySQL+"; COMMIT"); err != nil {
		t.Fatalf("multi-statement query: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM tx_copy").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after multi-statement COPY = %d, %v; want 2", n, err)
	}
}

func TestUnloadThroughExtendedProtocol(t *testing.T) {
	ctx := testContext(t)
	conn := connectLoader(t)
	// Query (not Exec) uses Parse/Bind/Describe/Execute/Sync.
	rows, err := conn.Query(ctx, unload("SELECT 'ext' AS a", "s3://"+exportBucket+"/extended/", roleUnload, "CSV"))
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatalf("UNLOAD via extended protocol: %v", err)
	}
	if got := rows.CommandTag().String(); got != "UNLOAD" {
		t.Errorf("command tag = %q, want UNLOAD", got)
	}
	if got := string(objects(t, exportBucket, "extended/")["extended/0000_part_00"]); got != "ext\n" {
		t.Errorf("object = %q", got)
	}
	// Refusals arrive the same way.
	rows, _ = conn.Query(ctx, unload("SELECT 1", "s3://"+exportBucket+"/extended/", roleUnload, "CSV"))
	rows.Close()
	if pgErr := asPgError(t, rows.Err()); pgErr.Code != "XX000" {
		t.Errorf("refusal via extended protocol: %s %s", pgErr.Code, pgErr.Message)
	}
	var s string
	if err := conn.QueryRow(ctx, "SELECT $1::text || 'ok'", "still ").Scan(&s); err != nil || s != "still ok" {
		t.Errorf("after: %q, %v", s, err)
	}
}

func TestPasswordAuthentication(t *testing.T) {
	ctx := testContext(t)
	conn := connectLoader(t)
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != loader {
		t.Errorf("current_user = %q, %v", user, err)
	}
	_, err := pgx.ConnectConfig(ctx, connConfig(t, loader, "wrong"))
	pgErr := asPgError(t, err)
	if pgErr.Code != "28P01" || pgErr.Message != `password authentication failed for user "etl_loader"` {
		t.Errorf("wrong password: %s %q", pgErr.Code, pgErr.Message)
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s:%s@%s/dev?sslmode=disable", loader, loaderPassword, world.addr))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.ConnectConfig(ctx, cfg); err != nil {
		t.Errorf("sslmode=disable: %v", err)
	} else {
		c.Close(ctx)
	}
}

func TestTemporaryCredentials(t *testing.T) {
	ctx := testContext(t)
	rs := redshift.NewFromConfig(world.warehouse)
	tests := []struct {
		dbUser     string
		autoCreate bool
		wantUser   string
	}{
		{dbUser: loader, wantUser: loader},
		{dbUser: "new_analyst", autoCreate: true, wantUser: "new_analyst"},
	}
	for _, tt := range tests {
		t.Run(tt.dbUser, func(t *testing.T) {
			out, err := rs.GetClusterCredentials(ctx, &redshift.GetClusterCredentialsInput{
				ClusterIdentifier: aws.String(clusterID), DbUser: aws.String(tt.dbUser), DbName: aws.String("dev"),
				AutoCreate: aws.Bool(tt.autoCreate), DurationSeconds: aws.Int32(900),
			})
			if err != nil {
				t.Fatal(err)
			}
			user, password := aws.ToString(out.DbUser), aws.ToString(out.DbPassword)
			conn := connect(t, user, password)
			var got string
			if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&got); err != nil || got != tt.wantUser {
				t.Errorf("current_user = %q, %v; want %q", got, err, tt.wantUser)
			}
			_, err = pgx.ConnectConfig(ctx, connConfig(t, user, password+"x"))
			if pgErr := asPgError(t, err); pgErr.Code != "28P01" {
				t.Errorf("wrong temporary password: %s %s", pgErr.Code, pgErr.Message)
			}
		})
	}
	// The stand-in's dbuser ARN (ExternalId) is the mapped user's.
	out, err := rs.GetClusterCredentials(ctx, &redshift.GetClusterCredentialsInput{
		ClusterIdentifier: aws.String(clusterID), DbUser: aws.String(loader), DurationSeconds: aws.Int32(900),
	})
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, aws.ToString(out.DbUser), aws.ToString(out.DbPassword))
	if _, err := conn.Exec(ctx, unload("SELECT 1 AS a", "s3://"+exportBucket+"/iam-user/", roleRestrictedOK, "")); err != nil {
		t.Errorf("UNLOAD as IAM:%s with a restricted role naming it: %v", loader, err)
	}
}

func TestPassThrough(t *testing.T) {
	ctx := testContext(t)
	conn := connectLoader(t)
	var n int
	if err := conn.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Errorf("extended protocol with arguments: %d, %v", n, err)
	}
	res, err := conn.PgConn().Exec(ctx, `SELECT 'a\'b'`).ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "a'b" {
		t.Errorf("Redshift literal escapes: %v, %v", res, err)
	}
	if got := conn.PgConn().ParameterStatus("standard_conforming_strings"); got != "off" {
		t.Errorf("standard_conforming_strings = %q, want off (as Redshift)", got)
	}
	_, err = conn.Exec(ctx, "SELECT 1/0")
	if pgErr := asPgError(t, err); pgErr.Code != "22012" {
		t.Errorf("division by zero: %s", pgErr.Code)
	}
	batch := &pgx.Batch{}
	batch.Queue("SELECT 1")
	batch.Queue("SELECT customer FROM public.sales WHERE id = $1", 2)
	br := conn.SendBatch(ctx, batch)
	var one int
	var customer string
	if err := br.QueryRow().Scan(&one); err != nil {
		t.Fatal(err)
	}
	if err := br.QueryRow().Scan(&customer); err != nil || customer != "Ng" {
		t.Errorf("batch: %q, %v", customer, err)
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	// COPY FROM STDIN passes through untouched.
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE stdin_copy (a int)"); err != nil {
		t.Fatal(err)
	}
	tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader("1\n2\n"), "COPY stdin_copy FROM STDIN")
	if err != nil || tag.RowsAffected() != 2 {
		t.Errorf("COPY FROM STDIN: %v, %v", tag, err)
	}
}

func TestCancel(t *testing.T) {
	cfg := connConfig(t, loader, loaderPassword)
	// What xacctd does: cancel on the server when the context ends.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, CancelRequestDelay: 0, DeadlineDelay: 5 * time.Second}
	}
	conn, err := pgx.ConnectConfig(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tests := []struct {
		name string
		sql  string
	}{
		{name: "passed-through query", sql: "SELECT pg_sleep(10)"},
		{name: "unload inner query", sql: unload("SELECT pg_sleep(10)", "s3://"+exportBucket+"/cancel/", roleUnload, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err = conn.Exec(ctx, tt.sql)
			elapsed := time.Since(start)
			if pgErr := asPgError(t, err); pgErr.Code != "57014" {
				t.Errorf("cancelled statement: %s %s, want 57014", pgErr.Code, pgErr.Message)
			}
			if elapsed > 2*time.Second {
				t.Errorf("cancel took %v, want well under the 10 s sleep", elapsed)
			}
			var one int
			if err := conn.QueryRow(testContext(t), "SELECT 1").Scan(&one); err != nil {
				t.Errorf("connection after cancel: %v", err)
			}
		})
	}
	if got := objects(t, exportBucket, "cancel/"); len(got) != 0 {
		t.Errorf("cancelled UNLOAD wrote %v", keys(got))
	}
}

func TestMaxFileSizeAndManifest(t *testing.T) {
	conn := connectLoader(t)
	// 6 MB of rows with MAXFILESIZE 5 MB: two files, listed in the manifest.
	q := `SELECT lpad(g::text, 999, 'x') AS a FROM generate_series(1, 6000) g ORDER BY g`
	if _, err := conn.Exec(testContext(t), unload(q, "s3://"+exportBucket+"/big/t_", roleUnload, "MAXFILESIZE 5 MB MANIFEST")); err != nil {
		t.Fatalf("UNLOAD: %v", err)
	}
	objs := objects(t, exportBucket, "big/")
	if diff := cmp.Diff([]string{"big/t_0000_part_00", "big/t_0000_part_01", "big/t_manifest"}, keys(objs)); diff != "" {
		t.Fatalf("objects (-want +got):\n%s", diff)
	}
	if n := len(objs["big/t_0000_part_00"]); n > 5<<20 || n < 5<<20-1000 {
		t.Errorf("first file has %d bytes, want just under 5 MB", n)
	}
	if n := len(objs["big/t_0000_part_00"]) + len(objs["big/t_0000_part_01"]); n != 6000*1000 {
		t.Errorf("files hold %d bytes, want %d", n, 6000*1000)
	}
	want := `{
  "entries": [
    {
      "url": "s3://lake-exports/big/t_0000_part_00"
    },
    {
      "url": "s3://lake-exports/big/t_0000_part_01"
    }
  ]
}
`
	if diff := cmp.Diff(want, string(objs["big/t_manifest"])); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}

	// COPY ... MANIFEST loads the files the manifest lists.
	ctx := testContext(t)
	if _, err := conn.Exec(ctx, `CREATE TABLE big (a text)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = connectLoader(t).Exec(context.Background(), "DROP TABLE big") })
	tag, err := conn.Exec(ctx, fmt.Sprintf(`COPY big FROM 's3://%s/big/t_manifest' IAM_ROLE '%s' MANIFEST`, exportBucket, roleUnload))
	if err != nil {
		t.Fatalf("COPY MANIFEST: %v", err)
	}
	if tag.String() != "COPY 6000" {
		t.Errorf("command tag = %q, want COPY 6000", tag)
	}
}

func TestCloseEndsSessions(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, err := redshiftsim.New(world.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := pgx.ConnectConfig(testContext(t), connConfigAt(t, ln.Addr().String(), loader, loaderPassword))
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != ln.Addr().String() {
		t.Errorf("Addr() = %q, want %q", srv.Addr(), ln.Addr())
	}
	busy := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), "SELECT pg_sleep(5)")
		busy <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Close = %v, want nil", err)
	}
	if err := <-busy; err == nil {
		t.Errorf("statement in flight survived Close (%v after Close)", time.Since(start))
	}
	conn.Close(context.Background())
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before", n, before)
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	// Run something that logs, with a failing and a good password.
	_, _ = pgx.ConnectConfig(testContext(t), connConfig(t, loader, "Wrong-Secret-9"))
	connectLoader(t)
	entries := world.logs.All()
	if len(entries) == 0 {
		t.Fatal("no log entries recorded")
	}
	for _, e := range entries {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{loaderPassword, "Wrong-Secret-9", "SessionToken", "FQoG"} {
			if strings.Contains(line, secret) {
				t.Errorf("log entry holds a secret: %s", line)
			}
		}
	}
}
