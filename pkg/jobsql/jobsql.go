package jobsql

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/xacctd/xacctd/pkg/awsid"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/jobtemplate"
)

// Target is where a pair's statements point: filled by the caller from the reconciler's
// desired state.
type Target struct {
	Bucket        string   // bucket name
	Prefix        string   // the pair's prefix, ends with "/"
	BucketRegion  string   // may be empty when unknown: no REGION is rendered then
	ClusterRegion string   // REGION AS '<BucketRegion>' is rendered only when the two differ
	RoleARNs      []string // IAM_ROLE: one role, or the chain in order, joined with ","
}

// Statement is one rendered statement.
type Statement struct {
	Kind string // "unload" or "copy"
	SQL  string // the whole statement, one clause per line, no trailing semicolon
	URL  string // the s3:// location it writes to or reads from (bucket + prefix + rendered to/from)
}

// maxChain is Redshift's limit on the roles of one IAM_ROLE chain.
const maxChain = 10

// maxKeyPrefixBytes leaves room under S3's 1024-byte key limit for the names UNLOAD appends
// (slice and part numbers, extension, compression suffix); config validation uses the same.
const maxKeyPrefixBytes = 1024 - 64

// Validate reports what is wrong with t, or nil. Render checks it; ProbeUnload and ProbeCopy
// return no error, so their callers check it first.
func (t Target) Validate() error {
	if t.Bucket == "" {
		return errors.New("target: the bucket name is empty: a statement needs the pair's bucket")
	}
	if err := awsid.CheckBucketName(t.Bucket); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if !strings.HasSuffix(t.Prefix, "/") {
		return fmt.Errorf("target: prefix %q must end with /: it is the pair's key prefix", t.Prefix)
	}
	if msg := keyProblem(t.Prefix); msg != "" {
		return fmt.Errorf("target: prefix %q %s", t.Prefix, msg)
	}
	for _, r := range []string{t.BucketRegion, t.ClusterRegion} {
		if r == "" {
			continue
		}
		if err := awsid.CheckRegion(r); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	if len(t.RoleARNs) == 0 {
		return errors.New("target: no IAM role: a statement needs the pair's role (or role chain) for IAM_ROLE; check that the pair's roles are in the desired state")
	}
	if len(t.RoleARNs) > maxChain {
		return fmt.Errorf("target: a role chain has at most %d roles, not %d", maxChain, len(t.RoleARNs))
	}
	for i, arn := range t.RoleARNs {
		if _, err := awsid.ParseRoleARN(arn); err != nil {
			return fmt.Errorf("target: role %d of IAM_ROLE: %w", i+1, err)
		}
		// IAM allows commas in role names and paths; Redshift splits IAM_ROLE at them.
		if strings.Contains(arn, ",") {
			return fmt.Errorf("target: role %d of IAM_ROLE, %q, has a comma: Redshift splits IAM_ROLE at commas, so the role cannot be used from Redshift; rename it", i+1, arn)
		}
	}
	return nil
}

// Render renders the job's UNLOAD or COPY. Errors name the field (unload.query, copy.from
// ...) but not the job: the caller adds it.
func Render(j *config.Job, t Target, d jobtemplate.Data) (Statement, error) {
	switch {
	case j == nil:
		return Statement{}, errors.New("no job to render")
	case j.Unload != nil && j.Copy != nil:
		return Statement{}, errors.New("the job has both unload and copy: give exactly one")
	case j.Unload != nil:
		return Unload(j, t, d)
	case j.Copy != nil:
		return Copy(j, t, d)
	}
	return Statement{}, errors.New("the job has neither unload nor copy: give exactly one")
}

// Unload renders the job's UNLOAD statement.
func Unload(j *config.Job, t Target, d jobtemplate.Data) (Statement, error) {
	if j == nil || j.Unload == nil {
		return Statement{}, errors.New("the job has no unload")
	}
	if err := t.Validate(); err != nil {
		return Statement{}, err
	}
	u := j.Unload
	query, err := renderTemplate("unload.query", u.Query, d)
	if err != nil {
		return Statement{}, err
	}
	if err := checkQuery("unload.query", query); err != nil {
		return Statement{}, err
	}
	url, err := t.renderLocation("unload.to", u.To, d)
	if err != nil {
		return Statement{}, err
	}
	format, err := formatName("unload.format", u.Format)
	if err != nil {
		return Statement{}, err
	}

	var s sqlWriter
	s.line("UNLOAD (" + QuoteLiteral(query) + ")")
	s.line("TO " + QuoteLiteral(url))
	s.iamRole(t)
	s.line("FORMAT AS " + format)
	if err := unloadOptions(&s, u.Options); err != nil {
		return Statement{}, err
	}
	s.region(t)
	return finish("unload", s.String(), url)
}

// unloadOptions writes the options in the fixed order of the layout that --dry-run shows.
func unloadOptions(s *sqlWriter, o config.UnloadOptions) error {
	const p = "unload.options"
	if len(o.PartitionBy) > 0 {
		cols, err := columnList(p+".partition_by", o.PartitionBy)
		if err != nil {
			return err
		}
		if o.PartitionInclude {
			cols += " INCLUDE"
		}
		s.line("PARTITION BY " + cols)
	}
	if o.Manifest {
		if o.ManifestVerbose {
			s.line("MANIFEST VERBOSE")
		} else {
			s.line("MANIFEST")
		}
	}
	if o.Header {
		s.line("HEADER")
	}
	if o.Delimiter != "" {
		s.line("DELIMITER AS " + QuoteLiteral(o.Delimiter))
	}
	if o.NullAs != nil {
		s.line("NULL AS " + QuoteLiteral(*o.NullAs))
	}
	if err := compression(s, p+".compression", o.Compression); err != nil {
		return err
	}
	if o.AllowOverwrite {
		s.line("ALLOWOVERWRITE")
	}
	if o.CleanPath {
		s.line("CLEANPATH")
	}
	if o.Parallel != nil && !*o.Parallel {
		s.line("PARALLEL OFF")
	}
	if o.MaxFileSize != "" {
		size, err := sizeClause(p+".maxfilesize", o.MaxFileSize)
		if err != nil {
			return err
		}
		s.line("MAXFILESIZE AS " + size)
	}
	if o.RowGroupSize != "" {
		size, err := sizeClause(p+".rowgroupsize", o.RowGroupSize)
		if err != nil {
			return err
		}
		s.line("ROWGROUPSIZE AS " + size)
	}
	switch {
	case o.KMSKeyID != "":
		s.line("ENCRYPTED")
		s.line("KMS_KEY_ID " + QuoteLiteral(o.KMSKeyID))
	case o.Encrypted:
		// Plain ENCRYPTED without a key asks for client-side encryption with a
		// MASTER_SYMMETRIC_KEY, which xacctd never has; AUTO is SSE-KMS with the bucket's
		// default key, which is what encrypted: true means.
		s.line("ENCRYPTED AUTO")
	}
	if o.Extension != "" {
		s.line("EXTENSION " + QuoteLiteral(o.Extension))
	}
	return nil
}

// Copy renders the job's COPY statement.
func Copy(j *config.Job, t Target, d jobtemplate.Data) (Statement, error) {
	if j == nil || j.Copy == nil {
		return Statement{}, errors.New("the job has no copy")
	}
	if err := t.Validate(); err != nil {
		return Statement{}, err
	}
	c := j.Copy
	if !tableRe.MatchString(c.Table) {
		return Statement{}, fmt.Errorf("copy.table %q is not a table name: use table or schema.table with letters, digits, _ and $", c.Table)
	}
	table := tableName(c.Table)
	if len(c.Columns) > 0 {
		cols, err := columnList("copy.columns", c.Columns)
		if err != nil {
			return Statement{}, err
		}
		table += " " + cols
	}
	url, err := t.renderLocation("copy.from", c.From, d)
	if err != nil {
		return Statement{}, err
	}
	format, err := formatName("copy.format", c.Format)
	if err != nil {
		return Statement{}, err
	}
	if format == "JSON" {
		format += " 'auto'" // match keys to column names; jsonpaths files are not offered
	}

	var s sqlWriter
	s.line("COPY " + table)
	s.line("FROM " + QuoteLiteral(url))
	s.iamRole(t)
	s.line("FORMAT AS " + format)
	if err := copyOptions(&s, c.Options); err != nil {
		return Statement{}, err
	}
	s.region(t)
	return finish("copy", s.String(), url)
}

// finish checks the whole statement for what the templates' checks cannot see: option values
// (null_as, delimiter ...) are quoted but not otherwise restricted here.
func finish(kind, sql, url string) (Statement, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		return Statement{}, fmt.Errorf("%s.options: a value has a NUL byte, which no statement can carry: remove it", kind)
	}
	if !utf8.ValidString(sql) {
		return Statement{}, fmt.Errorf("%s.options: a value is not valid UTF-8: fix it in the job's options", kind)
	}
	return Statement{Kind: kind, SQL: sql, URL: url}, nil
}

func copyOptions(s *sqlWriter, o config.CopyOptions) error {
	const p = "copy.options"
	if o.IgnoreHeader < 0 {
		return fmt.Errorf("%s.ignoreheader is %d: give the number of lines to skip, 0 or more", p, o.IgnoreHeader)
	}
	if o.MaxError < 0 {
		return fmt.Errorf("%s.maxerror is %d: give the number of rows that may fail, 0 or more", p, o.MaxError)
	}
	if o.IgnoreHeader > 0 {
		s.line(fmt.Sprintf("IGNOREHEADER %d", o.IgnoreHeader))
	}
	if o.Delimiter != "" {
		s.line("DELIMITER AS " + QuoteLiteral(o.Delimiter))
	}
	if o.NullAs != nil {
		s.line("NULL AS " + QuoteLiteral(*o.NullAs))
	}
	if err := compression(s, p+".compression", o.Compression); err != nil {
		return err
	}
	if o.Manifest {
		s.line("MANIFEST")
	}
	if o.DateFormat != "" {
		s.line("DATEFORMAT AS " + QuoteLiteral(o.DateFormat))
	}
	if o.TimeFormat != "" {
		s.line("TIMEFORMAT AS " + QuoteLiteral(o.TimeFormat))
	}
	if o.MaxError > 0 {
		s.line(fmt.Sprintf("MAXERROR %d", o.MaxError))
	}
	if o.EmptyAsNull {
		s.line("EMPTYASNULL")
	}
	if o.BlanksAsNull {
		s.line("BLANKSASNULL")
	}
	if o.TruncateColumns {
		s.line("TRUNCATECOLUMNS")
	}
	return nil
}

// ProbeDir is the folder under a pair's prefix that ProbeUnload writes to.
const ProbeDir = "_xacctd_probe/"

// ProbeUnload is the UNLOAD of `xacctd check --probe`: one row into
// <prefix>_xacctd_probe/<runID>/, overwriting what an earlier probe with the same id left.
// t must pass Validate. runID becomes one key segment: characters other than letters,
// digits, . _ - are replaced with -, so that no id can leave the probe folder; Statement.URL
// says where it went.
func ProbeUnload(t Target, runID string) Statement {
	url := "s3://" + t.Bucket + "/" + t.Prefix + ProbeDir + probeSegment(runID) + "/"
	var s sqlWriter
	s.line("UNLOAD (" + QuoteLiteral("SELECT 1") + ")")
	s.line("TO " + QuoteLiteral(url))
	s.iamRole(t)
	s.line("FORMAT AS CSV")
	s.line("ALLOWOVERWRITE")
	s.line("PARALLEL OFF")
	s.region(t)
	return Statement{Kind: "unload", SQL: s.String(), URL: url}
}

// ProbeCopy is the COPY of `xacctd check --probe` into table, a temporary table the caller
// created (a plain name: it is written as an identifier, double-quoted when it is not one),
// from url, a location under the pair's prefix. t must pass Validate.
func ProbeCopy(t Target, table, url string) Statement {
	parts := strings.Split(table, ".")
	for i, p := range parts {
		parts[i] = quoteIdent(p)
	}
	var s sqlWriter
	s.line("COPY " + strings.Join(parts, "."))
	s.line("FROM " + QuoteLiteral(url))
	s.iamRole(t)
	s.line("FORMAT AS CSV")
	s.region(t)
	return Statement{Kind: "copy", SQL: s.String(), URL: url}
}

var probeSegmentRe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func probeSegment(runID string) string {
	seg := probeSegmentRe.ReplaceAllString(runID, "-")
	if seg == "" || strings.Trim(seg, ".") == "" { // "", ".", "..": not a folder of its own
		seg = "probe" + seg
	}
	return seg
}

// renderLocation renders a to/from template and checks that it stays under the prefix.
func (t Target) renderLocation(field, text string, d jobtemplate.Data) (string, error) {
	rendered, err := renderTemplate(field, text, d)
	if err != nil {
		return "", err
	}
	return t.location(field, rendered)
}

// sqlWriter collects one clause per line.
type sqlWriter struct{ b strings.Builder }

func (w *sqlWriter) line(s string) {
	if w.b.Len() > 0 {
		w.b.WriteByte('\n')
	}
	w.b.WriteString(s)
}

// region writes REGION when the bucket is in another region than the cluster: Redshift
// looks for the bucket in its own region otherwise.
// iamRole writes IAM_ROLE with the target's role, or its chain joined by commas.
func (w *sqlWriter) iamRole(t Target) {
	w.line("IAM_ROLE " + QuoteLiteral(strings.Join(t.RoleARNs, ",")))
}

func (w *sqlWriter) region(t Target) {
	if t.BucketRegion != "" && t.BucketRegion != t.ClusterRegion {
		w.line("REGION AS " + QuoteLiteral(t.BucketRegion))
	}
}

func (w *sqlWriter) String() string { return w.b.String() }

// renderTemplate parses and executes one job template. Parsing on every render keeps Render
// a function of its inputs; it costs microseconds against a statement that runs for minutes.
func renderTemplate(field, text string, d jobtemplate.Data) (string, error) {
	t, err := jobtemplate.Parse(field, text)
	if err != nil {
		return "", fmt.Errorf("%s: template does not parse: %w", field, err)
	}
	out, err := jobtemplate.Render(t, d)
	if err != nil {
		return "", fmt.Errorf("%s: template does not render: %w (templates see .ScheduledTime, .RunID and .Job)", field, err)
	}
	if !utf8.ValidString(out) {
		return "", fmt.Errorf("%s renders to text that is not valid UTF-8 (%s): check the data the template uses", field, abbreviate(out))
	}
	if strings.IndexByte(out, 0) >= 0 {
		// The PostgreSQL protocol sends a statement as a NUL-terminated string: a NUL would
		// cut the statement short.
		return "", fmt.Errorf("%s renders to text with a NUL byte (%s), which no statement can carry: check the data the template uses", field, abbreviate(out))
	}
	return out, nil
}

func checkQuery(field, q string) error {
	trimmed := strings.TrimSpace(q)
	if trimmed == "" {
		return fmt.Errorf("%s renders to an empty query: give the SELECT to unload", field)
	}
	if strings.HasSuffix(trimmed, ";") {
		return fmt.Errorf("%s renders to a query ending with ;: remove the semicolon, the query is quoted inside UNLOAD ('...')", field)
	}
	return nil
}

// location checks a rendered to/from and returns its s3:// URL under the pair's prefix.
func (t Target) location(field, rendered string) (string, error) {
	if rendered == "" {
		return "", fmt.Errorf("%s renders to an empty path: give the job its own destination under the pair's prefix", field)
	}
	if strings.HasPrefix(rendered, "/") {
		return "", fmt.Errorf("%s renders to %q: remove the leading /, the path is relative to the pair's prefix", field, rendered)
	}
	if hasDotSegment(rendered, "..") {
		return "", fmt.Errorf("%s renders to %q: a job can never leave its pair's prefix", field, rendered)
	}
	if hasDotSegment(rendered, ".") {
		return "", fmt.Errorf("%s renders to %q: remove the . segment, S3 keys are taken literally", field, rendered)
	}
	if strings.IndexFunc(rendered, unicode.IsControl) >= 0 {
		return "", fmt.Errorf("%s renders to %q, which has a control character: check the data the template uses", field, rendered)
	}
	key := t.Prefix + rendered
	// The checks above already keep the key under the prefix; this states the invariant
	// itself, so that a future change to them cannot quietly break it.
	if !strings.HasPrefix(path.Clean("/"+key)+"/", "/"+t.Prefix) {
		return "", fmt.Errorf("%s renders to %q: a job can never leave its pair's prefix", field, rendered)
	}
	if len(key) > maxKeyPrefixBytes {
		return "", fmt.Errorf("%s renders to a key prefix of %d bytes; S3 keys are at most 1024 including the file names UNLOAD adds: shorten the path", field, len(key))
	}
	return "s3://" + t.Bucket + "/" + key, nil
}

func hasDotSegment(p, dots string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == dots {
			return true
		}
	}
	return false
}

// keyProblem says what is wrong with a pair prefix, or "".
func keyProblem(key string) string {
	switch {
	case strings.HasPrefix(key, "/"):
		return "must not start with /: S3 keys are relative to the bucket"
	case hasDotSegment(key, ".") || hasDotSegment(key, ".."):
		return "must not contain . or .. segments"
	case strings.IndexFunc(key, unicode.IsControl) >= 0:
		return "must not contain control characters"
	case !utf8.ValidString(key):
		return "is not valid UTF-8"
	}
	return ""
}

// formatName maps the config's format to its keyword; empty is the config default, csv.
func formatName(field, f string) (string, error) {
	switch f {
	case "", "csv":
		return "CSV", nil
	case "json":
		return "JSON", nil
	case "parquet":
		return "PARQUET", nil
	}
	return "", fmt.Errorf("%s %q is not csv, json or parquet", field, f)
}

// compression writes the compression keyword; empty and none write nothing.
func compression(s *sqlWriter, field, c string) error {
	switch c {
	case "", "none":
	case "gzip", "bzip2", "zstd":
		s.line(strings.ToUpper(c))
	default:
		return fmt.Errorf("%s %q is not none, gzip, bzip2 or zstd", field, c)
	}
	return nil
}

// sizeRe is config validation's size pattern; range checks are validation's.
var sizeRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*(MB|GB)$`)

// sizeClause turns "256MB" into "256 MB", the form Redshift documents.
func sizeClause(field, size string) (string, error) {
	m := sizeRe.FindStringSubmatch(size)
	if m == nil {
		return "", fmt.Errorf("%s %q is not a size: write a number with MB or GB, such as 256MB or 1GB", field, size)
	}
	return m[1] + " " + m[2], nil
}

func columnList(field string, cols []string) (string, error) {
	out := make([]string, len(cols))
	for i, c := range cols {
		if !identRe.MatchString(c) {
			return "", fmt.Errorf("%s[%d] %q is not a column name: use letters, digits, _ and $", field, i, c)
		}
		out[i] = ident(c)
	}
	return "(" + strings.Join(out, ", ") + ")", nil
}

// tableName writes a name that matched tableRe.
func tableName(t string) string {
	schema, table, ok := strings.Cut(t, ".")
	if !ok {
		return ident(t)
	}
	return ident(schema) + "." + ident(table)
}
