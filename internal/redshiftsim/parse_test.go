package redshiftsim

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func strPtr(s string) *string { return &s }

func TestParseUnload(t *testing.T) {
	const role = "arn:aws:iam::111111111111:role/unload"
	tests := []struct {
		name string
		give string
		want *Unload
	}{
		{
			name: "minimal",
			give: `UNLOAD ('select 1') TO 's3://b/p/' IAM_ROLE '` + role + `'`,
			want: &Unload{Query: "select 1", To: "s3://b/p/", IAMRoles: []string{role}, Format: "TEXT"},
		},
		{
			name: "doubled quotes and backslashes",
			give: `unload ('SELECT ''it''''s'' AS a, ''a\\\\b'' AS b, \'x\' AS c') to 's3://b/p' iam_role '` + role + `';`,
			want: &Unload{Query: `SELECT 'it''s' AS a, 'a\\b' AS b, 'x' AS c`, To: "s3://b/p", IAMRoles: []string{role}, Format: "TEXT"},
		},
		{
			name: "other backslash sequences are kept",
			give: `UNLOAD ('select ''a\nb''') TO 's3://b/p' IAM_ROLE '` + role + `'`,
			want: &Unload{Query: `select 'a\nb'`, To: "s3://b/p", IAMRoles: []string{role}, Format: "TEXT"},
		},
		{
			name: "comments and whitespace",
			give: "  -- leading\n/* block /* nested */ */ UNLOAD\n('select 1')\tTO 's3://b/p' -- c\n IAM_ROLE '" + role + "' /* x */ ;  -- end",
			want: &Unload{Query: "select 1", To: "s3://b/p", IAMRoles: []string{role}, Format: "TEXT"},
		},
		{
			name: "role chain",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE '` + role + `,arn:aws:iam::222222222222:role/lake'`,
			want: &Unload{Query: "select 1", To: "s3://b/p", IAMRoles: []string{role, "arn:aws:iam::222222222222:role/lake"}, Format: "TEXT"},
		},
		{
			name: "default role",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE default`,
			want: &Unload{Query: "select 1", To: "s3://b/p", IAMRoles: []string{"default"}, Format: "TEXT"},
		},
		{
			name: "all csv options",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE '` + role + `' FORMAT AS CSV HEADER DELIMITER AS ';' ALLOWOVERWRITE
				PARALLEL OFF MANIFEST VERBOSE GZIP MAXFILESIZE AS 6.2 GB REGION AS 'eu-west-1' ENCRYPTED AUTO KMS_KEY_ID 'k'
				PARTITION BY (a, "B") INCLUDE EXTENSION 'csv' NULL AS 'NULL'`,
			want: &Unload{
				Query: "select 1", To: "s3://b/p", IAMRoles: []string{role}, Format: "CSV", Header: true, Delimiter: ";",
				AllowOverwrite: true, ParallelOff: true, Manifest: true, ManifestVerbose: true, Compression: "GZIP",
				MaxFileSize: maxFileSizeLimit, Region: "eu-west-1", Encrypted: true, EncryptedAuto: true, KMSKeyID: "k",
				PartitionBy: []string{"a", `"B"`}, PartitionInclude: true, Extension: "csv", NullAs: strPtr("NULL"),
			},
		},
		{
			name: "json, cleanpath, parallel true, maxfilesize mb",
			give: `UNLOAD ('select 1') TO 's3://b/p' FORMAT JSON CLEANPATH PARALLEL TRUE MAXFILESIZE 5 MB IAM_ROLE '` + role + `'`,
			want: &Unload{Query: "select 1", To: "s3://b/p", IAMRoles: []string{role}, Format: "JSON", CleanPath: true, MaxFileSize: 5 << 20},
		},
		{
			name: "text options",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE '` + role + `' ADDQUOTES ESCAPE NULL 'n' PARALLEL BZIP2`,
			want: &Unload{Query: "select 1", To: "s3://b/p", IAMRoles: []string{role}, Format: "TEXT", AddQuotes: true, Escape: true,
				NullAs: strPtr("n"), Compression: "BZIP2"},
		},
		{
			name: "parquet",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE '` + role + `' PARQUET ROWGROUPSIZE 128 MB`,
			want: &Unload{Query: "select 1", To: "s3://b/p", IAMRoles: []string{role}, Format: "PARQUET", RowGroupSize: 128 << 20},
		},
		{
			name: "credentials with a role chain",
			give: `UNLOAD ('select 1') TO 's3://b/p' CREDENTIALS AS 'aws_iam_role=` + role + `,arn:aws:iam::222222222222:role/lake'`,
			want: &Unload{Query: "select 1", To: "s3://b/p", IAMRoles: []string{role, "arn:aws:iam::222222222222:role/lake"}, Format: "TEXT"},
		},
		{
			name: "dollar-quoted query",
			give: `UNLOAD ($$select 'a'$$) TO 's3://b/p' IAM_ROLE '` + role + `'`,
			want: &Unload{Query: "select 'a'", To: "s3://b/p", IAMRoles: []string{role}, Format: "TEXT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.give)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(Statement(tt.want), got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCopy(t *testing.T) {
	const role = "arn:aws:iam::111111111111:role/unload"
	tests := []struct {
		name string
		give string
		want *Copy
	}{
		{
			name: "minimal",
			give: `COPY t FROM 's3://b/p' IAM_ROLE '` + role + `'`,
			want: &Copy{Table: "t", From: "s3://b/p", IAMRoles: []string{role}, Format: "TEXT"},
		},
		{
			name: "qualified table and columns",
			give: `copy "My Schema".tbl ("A", b , c) from 's3://b/p' iam_role '` + role + `' format as csv ignoreheader as 1 delimiter ';' gzip region 'us-east-1' dateformat 'auto' timeformat as 'auto' maxerror 3 emptyasnull blanksasnull null as '\\N';`,
			want: &Copy{
				Table: `"My Schema".tbl`, Columns: []string{`"A"`, "b", "c"}, ColumnKeys: []string{"A", "b", "c"},
				From: "s3://b/p", IAMRoles: []string{role}, Format: "CSV", IgnoreHeader: 1, Delimiter: ";", Compression: "GZIP",
				Region: "us-east-1", DateFormat: "auto", TimeFormat: "auto", MaxError: 3, EmptyAsNull: true, BlanksAsNull: true,
				NullAs: strPtr(`\N`),
			},
		},
		{
			name: "json auto",
			give: `COPY db.s.t FROM 's3://b/p' IAM_ROLE '` + role + `' JSON 'auto ignorecase' MANIFEST`,
			want: &Copy{Table: "db.s.t", From: "s3://b/p", IAMRoles: []string{role}, Format: "JSON", JSONOption: "auto ignorecase", Manifest: true},
		},
		{
			name: "format json without argument",
			give: `COPY t FROM 's3://b/p' IAM_ROLE '` + role + `' FORMAT JSON`,
			want: &Copy{Table: "t", From: "s3://b/p", IAMRoles: []string{role}, Format: "JSON", JSONOption: "auto"},
		},
		{
			name: "csv quote",
			give: `COPY t FROM 's3://b/p' IAM_ROLE '` + role + `' CSV QUOTE AS '%'`,
			want: &Copy{Table: "t", From: "s3://b/p", IAMRoles: []string{role}, Format: "CSV", Quote: "%"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.give)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(Statement(tt.want), got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const role = "'arn:aws:iam::111111111111:role/r'"
	tests := []struct {
		name string
		give string
		want Error
	}{
		{
			name: "unknown option",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE ` + role + ` BOGUS`,
			want: Error{Code: codeSyntaxError, Message: `syntax error at or near "BOGUS"`, Position: 79},
		},
		{
			name: "missing parenthesis",
			give: `UNLOAD 'select 1' TO 's3://b/p' IAM_ROLE ` + role,
			want: Error{Code: codeSyntaxError, Message: `syntax error at or near "'select 1'"`, Position: 8},
		},
		{
			name: "end of input",
			give: `UNLOAD ('select 1') TO`,
			want: Error{Code: codeSyntaxError, Message: "syntax error at end of input", Position: 23},
		},
		{
			name: "unterminated string",
			give: `UNLOAD ('select 1) TO 's3://b/p'`,
			want: Error{Code: codeSyntaxError, Message: `syntax error at or near "s3"`, Position: 24},
		},
		{
			name: "really unterminated string",
			give: `UNLOAD ('select 1`,
			want: Error{Code: codeSyntaxError, Message: `unterminated quoted string at or near "'select 1"`, Position: 9},
		},
		{
			name: "duplicate option",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE ` + role + ` CSV JSON`,
			want: Error{Code: codeSyntaxError, Message: "conflicting or redundant options", Position: 83},
		},
		{
			name: "missing role",
			give: `UNLOAD ('select 1') TO 's3://b/p'`,
			want: Error{Code: codeInvalidParamValue, Message: "UNLOAD requires IAM_ROLE: the sandbox stand-in supports only role-based authorization"},
		},
		{
			name: "cleanpath and allowoverwrite",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE ` + role + ` CLEANPATH ALLOWOVERWRITE`,
			want: Error{Code: codeInvalidParamValue, Message: "CLEANPATH and ALLOWOVERWRITE options cannot be used together"},
		},
		{
			name: "json with header",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE ` + role + ` JSON HEADER`,
			want: Error{Code: codeInvalidParamValue, Message: "JSON cannot be used with HEADER, DELIMITER, FIXEDWIDTH, ADDQUOTES, ESCAPE or NULL AS"},
		},
		{
			name: "small maxfilesize",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE ` + role + ` MAXFILESIZE 1 MB`,
			want: Error{Code: codeInvalidParamValue, Message: "MAXFILESIZE must be between 5 MB and 6.2 GB"},
		},
		{
			name: "not s3",
			give: `UNLOAD ('select 1') TO 'file:///tmp' IAM_ROLE ` + role,
			want: Error{Code: codeInvalidParamValue, Message: `Invalid S3 location "file:///tmp": UNLOAD destination must be an s3:// path`, Position: 24},
		},
		{
			name: "role with space",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE 'arn:aws:iam::1:role/a, arn:aws:iam::2:role/b'`,
			want: Error{Code: codeInvalidParamValue, Message: `Invalid IAM_ROLE " arn:aws:iam::2:role/b": each role must be an IAM role ARN (comma-separated, no spaces, for a chain)`, Position: 44},
		},
		{
			name: "trailing garbage",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE ` + role + `; select 1`,
			want: Error{Code: codeSyntaxError, Message: `syntax error at or near "select"`, Position: 80},
		},
		{
			name: "access keys",
			give: `UNLOAD ('select 1') TO 's3://b/p' ACCESS_KEY_ID 'AKIA' SECRET_ACCESS_KEY 'x'`,
			want: Error{Code: codeFeatureNotSupport, Message: "ACCESS_KEY_ID (key-based authorization) is not supported by the sandbox stand-in",
				Hint: "see internal/redshiftsim/README.md for what the stand-in implements"},
		},
		{
			name: "role twice",
			give: `UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE ` + role + ` CREDENTIALS 'aws_iam_role=arn:aws:iam::1:role/x'`,
			want: Error{Code: codeSyntaxError, Message: "conflicting or redundant options", Position: 79},
		},
		{
			name: "copy unknown option",
			give: `COPY t FROM 's3://b/p' IAM_ROLE ` + role + ` FILLRECORD`,
			want: Error{Code: codeSyntaxError, Message: `syntax error at or near "FILLRECORD"`, Position: 68},
		},
		{
			name: "copy ignoreheader not a number",
			give: `COPY t FROM 's3://b/p' IAM_ROLE ` + role + ` CSV IGNOREHEADER x`,
			want: Error{Code: codeSyntaxError, Message: `syntax error at or near "x"`, Position: 85},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.give)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if diff := cmp.Diff(tt.want, *err); diff != "" {
				t.Errorf("Parse error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		give     string
		wantOurs bool
		wantErr  bool
	}{
		{give: "select 1", wantOurs: false},
		{give: "  /* c */ -- x\n unload ('select 1') to 's3://b/p' iam_role 'arn:aws:iam::1:role/r'", wantOurs: true},
		{give: "UNLOAD nonsense", wantErr: true},
		{give: "COPY t FROM STDIN", wantOurs: false},
		{give: "COPY t (a, b) FROM '/tmp/file'", wantOurs: false},
		{give: "COPY t TO STDOUT", wantOurs: false},
		{give: "COPY (select 1) TO STDOUT", wantOurs: false},
		{give: "COPY t (a) FROM 's3://b/p' IAM_ROLE 'arn:aws:iam::1:role/r' CSV", wantOurs: true},
		{give: "COPY t FROM 'S3://b/p' IAM_ROLE 'arn:aws:iam::1:role/r'", wantOurs: true, wantErr: true},
		{give: "COPY t FROM 's3://b/p' BOGUS", wantOurs: true, wantErr: true},
		{give: "select 'unterminated", wantOurs: false},
		{give: "", wantOurs: false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			stmt, err := Classify(tt.give)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Classify error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (stmt != nil) != tt.wantOurs {
				t.Errorf("Classify statement = %#v, want ours %v", stmt, tt.wantOurs)
			}
		})
	}
}

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		give   string
		want   []string
		wantOK bool
	}{
		{give: "select 1", want: []string{"select 1"}, wantOK: true},
		{give: "select 1; select ';' ; -- c\n ;", want: []string{"select 1;", " select ';' ;"}, wantOK: true},
		{give: "do $x$ begin; end $x$; select 2", want: []string{"do $x$ begin; end $x$;", " select 2"}, wantOK: true},
		{give: `select "a;b"; select E'\';'`, want: []string{`select "a;b";`, ` select E'\';'`}, wantOK: true},
		{give: "select 'x", wantOK: false},
		{give: "  ", want: nil, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, ok := splitStatements(tt.give)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("splitStatements (-want +got):\n%s", diff)
			}
		})
	}
}

// quoteLiteral renders s the way xacctd does for the inner query.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`UNLOAD ('select ''it''''s'' AS a') TO 's3://b/p/' IAM_ROLE 'arn:aws:iam::1:role/a,arn:aws:iam::2:role/b' FORMAT AS CSV HEADER GZIP`,
		`UNLOAD ('select 1') TO 's3://b/p' IAM_ROLE default JSON PARALLEL OFF MANIFEST VERBOSE MAXFILESIZE 6.2 GB`,
		`unload ($$select '\'$$) to 's3://b/p' iam_role 'arn:aws:iam::1:role/a' partition by (a) include cleanpath;`,
		`COPY s.t (a, "B") FROM 's3://b/p' IAM_ROLE 'arn:aws:iam::1:role/a' FORMAT AS JSON 'auto' GZIP`,
		`copy t from 's3://b/p' iam_role 'arn:aws:iam::1:role/a' csv ignoreheader 1 delimiter ';' null as '\\N'`,
		`/* a /* b */ */ -- c` + "\n" + `UNLOAD ('x') TO 's3://b' IAM_ROLE 'arn:aws:iam::1:role/a'`,
		`UNLOAD ('select 1`,
		`select 1; select 'a''b'; "x""y"`,
		`E'\\'`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		if stmt, err := Classify(sql); err != nil {
			if err.Position < 0 || err.Position > utf8.RuneCountInString(sql)+1 {
				t.Fatalf("position %d out of range for %q", err.Position, sql)
			}
		} else if u, ok := stmt.(*Unload); ok {
			// The inner query survives a render/parse round trip.
			again := `UNLOAD (` + quoteLiteral(u.Query) + `) TO 's3://b/p' IAM_ROLE 'arn:aws:iam::1:role/a'`
			st2, err := Parse(again)
			if err != nil {
				t.Fatalf("reparse %q: %v", again, err)
			}
			if got := st2.(*Unload).Query; got != u.Query {
				t.Fatalf("round trip: got %q, want %q", got, u.Query)
			}
		}
		splitStatements(sql)
		// Any inner query round-trips through xacctd's quoting.
		q := `UNLOAD (` + quoteLiteral(sql) + `) TO 's3://b/p' IAM_ROLE 'arn:aws:iam::1:role/a'`
		st, err := Parse(q)
		if err != nil {
			t.Fatalf("Parse(%q): %v", q, err)
		}
		if got := st.(*Unload).Query; got != sql {
			t.Fatalf("inner query: got %q, want %q", got, sql)
		}
	})
}
