package redshiftsim

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// column is a target column of COPY.
type column struct {
	written  string // as written in SQL (quoting kept)
	name     string // as PostgreSQL stores it
	isString bool   // CHAR/VARCHAR/TEXT: empty fields load as '' unless EMPTYASNULL
}

// field is one parsed input value; nil value means NULL.
type field struct {
	value  *string
	quoted bool
}

// execCopy runs COPY FROM S3: look up the table, authorize the role chain,
// list and read the objects, parse them, and load the rows into the table
// with COPY FROM STDIN as the session user (inside the client's transaction).
func (ss *session) execCopy(ctx context.Context, c *Copy) (result, *Error) {
	res := result{kind: "copy", location: c.From}
	switch {
	case c.Format == "PARQUET" || c.Format == "ORC" || c.Format == "AVRO":
		return res, notSupported("COPY with FORMAT " + c.Format)
	case c.Compression == "ZSTD":
		return res, notSupported("COPY with ZSTD")
	case c.Format == "JSON" && !strings.HasPrefix(strings.ToLower(c.JSONOption), "auto"):
		return res, notSupported("COPY with a JSONPaths file")
	}
	cols, perr, fatal := ss.copyColumns(c)
	if fatal != nil {
		res.fatal = fatal
		return res, &Error{Code: codeConnectionFailure, Message: "backend connection lost"}
	}
	if perr != nil {
		return res, perr
	}
	bucket, prefix, perr := splitS3URL(c.From)
	if perr != nil {
		return res, perr
	}
	creds, perr := ss.srv.aws.assumeChain(ctx, c.IAMRoles, ss.user)
	if perr != nil {
		return res, perr
	}
	s3c := ss.srv.aws.s3Client(creds, c.Region)

	type object struct{ bucket, key string }
	var objects []object
	if c.Manifest {
		entries, perr := readManifest(ctx, s3c, bucket, prefix)
		if perr != nil {
			return res, perr
		}
		for _, e := range entries {
			b, k, perr := splitS3URL(e.URL)
			if perr != nil {
				return res, perr
			}
			objects = append(objects, object{b, k})
		}
	} else {
		keys, err := listKeys(ctx, s3c, bucket, prefix, false)
		if err != nil {
			return res, s3Error(err, fmt.Sprintf("Listing bucket=%s prefix=%s", bucket, prefix))
		}
		for _, k := range keys {
			if !strings.HasSuffix(k, "/") {
				objects = append(objects, object{bucket, k})
			}
		}
	}
	if len(objects) == 0 {
		return res, redshiftError(codeRedshiftErrorCode, fmt.Sprintf("The specified S3 prefix '%s' does not exist", prefix),
			"s3://"+bucket+"/"+prefix, "s3_utility.cpp:665")
	}

	var rows [][]*string
	badRows := 0
	for _, o := range objects {
		data, err := getObject(ctx, s3c, o.bucket, o.key)
		if err != nil {
			return res, s3Error(err, fmt.Sprintf("S3 object bucket=%s key=%s", o.bucket, o.key))
		}
		if data, err = decompress(data, c.Compression); err != nil {
			return res, loadFailed(c.Table, fmt.Sprintf("s3://%s/%s: %v", o.bucket, o.key, err))
		}
		got, bad, err := parseObject(c, cols, data)
		if err != nil {
			return res, loadFailed(c.Table, fmt.Sprintf("s3://%s/%s: %v", o.bucket, o.key, err))
		}
		badRows += len(bad)
		if badRows > c.MaxError {
			return res, loadFailed(c.Table, fmt.Sprintf("s3://%s/%s: %s", o.bucket, o.key, bad[0]))
		}
		rows = append(rows, got...)
	}
	if err := ctx.Err(); err != nil {
		return res, &Error{Code: codeQueryCanceled, Message: "canceling statement due to user request"}
	}

	written := make([]string, len(cols))
	for i, col := range cols {
		written[i] = col.written
	}
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (FORMAT csv)", c.Table, strings.Join(written, ", "))
	tag, err := ss.copyIn(sql, func(write func([]byte) error) error {
		var line []byte
		for _, r := range rows {
			line = appendPGCSV(line[:0], r)
			if err := write(line); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			res.fatal = err
			return res, &Error{Code: codeConnectionFailure, Message: "backend connection lost"}
		}
		// Privileges, unknown columns and the like are reported as they are;
		// bad data is a load error, as in Redshift.
		if strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23") {
			return res, loadFailed(c.Table, pe.Message)
		}
		return res, pe
	}
	n, _ := strconv.ParseInt(strings.TrimPrefix(tag, "COPY "), 10, 64)
	res.rows = n
	res.tag = fmt.Sprintf("COPY %d", n)
	res.notice = fmt.Sprintf("Load into table '%s' completed, %d record(s) loaded successfully.", tableName(c.Table), n)
	return res, nil
}

func loadFailed(table, detail string) *Error {
	e := redshiftError(codeRedshiftErrorCode,
		fmt.Sprintf("Load into table '%s' failed.  Check 'stl_load_errors' system table for details.", tableName(table)),
		detail, "s3_utility.cpp:1110")
	return e
}

// tableName is the last part of a table reference, unquoted, as Redshift
// names tables in its messages.
func tableName(ref string) string {
	l := &lexer{src: ref}
	name := ref
	for {
		tok, err := l.next()
		if err != nil || tok.kind == tokEOF {
			return name
		}
		if tok.kind == tokIdent || tok.kind == tokQuotedIdent {
			name = tok.val
		}
	}
}

// copyColumns resolves the target columns and whether each is a string type.
func (ss *session) copyColumns(c *Copy) (cols []column, perr *Error, fatal error) {
	sql := `SELECT a.attname, t.typcategory FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid ` +
		`WHERE a.attrelid = ` + sqlLiteral(c.Table) + `::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ` +
		`ORDER BY a.attnum`
	var all []column
	_, err := ss.simpleQuery(sql, nil, func(v [][]byte) error {
		name := string(v[0])
		all = append(all, column{written: quoteIdent(name), name: name, isString: string(v[1]) == "S"})
		return nil
	})
	if err != nil {
		if errors.As(err, &perr) {
			return nil, perr, nil
		}
		return nil, nil, err
	}
	if len(c.Columns) == 0 {
		return all, nil, nil
	}
	for i, key := range c.ColumnKeys {
		col := column{written: c.Columns[i], name: key}
		for _, a := range all {
			if a.name == key {
				col.isString = a.isString
			}
		}
		cols = append(cols, col)
	}
	return cols, nil, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

type manifestEntry struct {
	URL       string `json:"url"`
	Mandatory bool   `json:"mandatory"`
}

func readManifest(ctx context.Context, c *s3.Client, bucket, key string) ([]manifestEntry, *Error) {
	data, err := getObject(ctx, c, bucket, key)
	if err != nil {
		return nil, s3Error(err, fmt.Sprintf("Manifest bucket=%s key=%s", bucket, key))
	}
	var m struct {
		Entries []manifestEntry `json:"entries"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, redshiftError(codeRedshiftErrorCode, "Manifest file is not in correct json format",
			fmt.Sprintf("s3://%s/%s: %v", bucket, key, err), "manifest.cpp:132")
	}
	return m.Entries, nil
}

func getObject(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func decompress(data []byte, compression string) ([]byte, error) {
	switch compression {
	case "GZIP":
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return io.ReadAll(zr)
	case "BZIP2":
		return io.ReadAll(bzip2.NewReader(bytes.NewReader(data)))
	}
	return data, nil
}

// parseObject turns one object's content into rows for cols. bad lists the
// rows that were skipped (for MAXERROR).
func parseObject(c *Copy, cols []column, data []byte) (rows [][]*string, bad []string, err error) {
	if c.Format == "JSON" {
		return parseJSONObjects(c, cols, data)
	}
	data = skipLines(data, c.IgnoreHeader)
	var records [][]field
	switch c.Format {
	case "CSV":
		delim, quote := byte(','), byte('"')
		if c.Delimiter != "" {
			delim = c.Delimiter[0]
		}
		if c.Quote != "" {
			quote = c.Quote[0]
		}
		records = readCSV(data, delim, quote)
	default:
		delim := byte('|')
		if c.Delimiter != "" {
			delim = c.Delimiter[0]
		}
		records = readText(data, delim, c.Escape, c.RemoveQuotes)
	}
	nullAs := `\N`
	if c.NullAs != nil {
		nullAs = *c.NullAs
	}
	for i, rec := range records {
		if len(rec) != len(cols) {
			reason := "Extra column(s) found"
			if len(rec) < len(cols) {
				reason = "Delimiter not found"
			}
			bad = append(bad, fmt.Sprintf("line %d: %s", i+1+c.IgnoreHeader, reason))
			continue
		}
		row := make([]*string, len(cols))
		for j, f := range rec {
			row[j] = loadValue(c, cols[j], f, nullAs)
		}
		rows = append(rows, row)
	}
	return rows, bad, nil
}

// loadValue applies Redshift's NULL rules to one field.
func loadValue(c *Copy, col column, f field, nullAs string) *string {
	if f.value == nil {
		return nil
	}
	v := *f.value
	switch {
	case !f.quoted && v == nullAs:
		return nil
	case v == "":
		if !col.isString || c.EmptyAsNull {
			return nil
		}
	case strings.TrimSpace(v) == "":
		if !col.isString || c.BlanksAsNull {
			return nil
		}
	}
	return &v
}

func skipLines(data []byte, n int) []byte {
	for ; n > 0 && len(data) > 0; n-- {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil
		}
		data = data[i+1:]
	}
	return data
}

// readCSV reads RFC 4180 style records, keeping whether a field was quoted.
func readCSV(data []byte, delim, quote byte) [][]field {
	var records [][]field
	var rec []field
	var cur []byte
	quoted, inQuotes, started := false, false, false
	endField := func() {
		s := string(cur)
		rec = append(rec, field{value: &s, quoted: quoted})
		cur, quoted = cur[:0], false
	}
	endRecord := func() {
		endField()
		records = append(records, rec)
		rec, started = nil, false
	}
	for i := 0; i < len(data); i++ {
		ch := data[i]
		if inQuotes {
			switch {
			case ch == quote && i+1 < len(data) && data[i+1] == quote:
				cur = append(cur, quote)
				i++
			case ch == quote:
				inQuotes = false
			default:
				cur = append(cur, ch)
			}
			continue
		}
		switch {
		case ch == quote && len(cur) == 0 && !quoted:
			inQuotes, quoted, started = true, true, true
		case ch == delim:
			started = true
			endField()
		case ch == '\n':
			endRecord()
		case ch == '\r' && i+1 < len(data) && data[i+1] == '\n':
		default:
			started = true
			cur = append(cur, ch)
		}
	}
	if started || len(rec) > 0 {
		endRecord()
	}
	return records
}

// readText reads delimited text: one record per line, optional backslash
// escapes (ESCAPE) and surrounding quotes (REMOVEQUOTES).
func readText(data []byte, delim byte, escape, removeQuotes bool) [][]field {
	var records [][]field
	var rec []field
	var cur []byte
	started := false
	endField := func() {
		s := string(cur)
		if removeQuotes && len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
			s = s[1 : len(s)-1]
		}
		rec = append(rec, field{value: &s})
		cur = cur[:0]
	}
	for i := 0; i < len(data); i++ {
		ch := data[i]
		switch {
		case escape && ch == '\\' && i+1 < len(data):
			i++
			cur = append(cur, data[i])
			started = true
		case ch == delim:
			endField()
			started = true
		case ch == '\n':
			endField()
			records = append(records, rec)
			rec, started = nil, false
		case ch == '\r' && i+1 < len(data) && data[i+1] == '\n':
		default:
			cur = append(cur, ch)
			started = true
		}
	}
	if started || len(rec) > 0 {
		endField()
		records = append(records, rec)
	}
	return records
}

// parseJSONObjects reads JSON 'auto': a stream of objects whose keys name
// columns (case-insensitively).
func parseJSONObjects(c *Copy, cols []column, data []byte) (rows [][]*string, bad []string, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for n := 1; ; n++ {
		var obj map[string]json.RawMessage
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return rows, bad, nil
			}
			return nil, nil, fmt.Errorf("record %d: invalid JSON object: %v", n, err)
		}
		byKey := make(map[string]json.RawMessage, len(obj))
		for k, v := range obj {
			byKey[strings.ToLower(k)] = v
		}
		row := make([]*string, len(cols))
		for i, col := range cols {
			raw, ok := obj[col.name]
			if !ok {
				raw, ok = byKey[strings.ToLower(col.name)]
			}
			if !ok {
				continue
			}
			v, isNull := jsonScalar(raw)
			if isNull || (v == "" && (!col.isString || c.EmptyAsNull)) ||
				(strings.TrimSpace(v) == "" && v != "" && (!col.isString || c.BlanksAsNull)) {
				continue
			}
			row[i] = &v
		}
		rows = append(rows, row)
	}
}

func jsonScalar(raw json.RawMessage) (v string, isNull bool) {
	var x any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&x); err != nil {
		return string(raw), false
	}
	switch t := x.(type) {
	case nil:
		return "", true
	case string:
		return t, false
	case json.Number:
		return t.String(), false
	case bool:
		return strconv.FormatBool(t), false
	default:
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return string(raw), false
		}
		return b.String(), false
	}
}

// appendPGCSV renders a row for PostgreSQL's COPY ... (FORMAT csv): NULL as
// an unquoted empty field, every value quoted.
func appendPGCSV(dst []byte, row []*string) []byte {
	for i, v := range row {
		if i > 0 {
			dst = append(dst, ',')
		}
		if v == nil {
			continue
		}
		dst = append(dst, '"')
		dst = append(dst, strings.ReplaceAll(*v, `"`, `""`)...)
		dst = append(dst, '"')
	}
	return append(dst, '\n')
}
