package redshiftsim

import (
	"fmt"
	"strconv"
	"strings"
)

// Statement is a parsed statement the stand-in executes itself.
type Statement interface{ statement() }

// Unload is a parsed UNLOAD statement.
type Unload struct {
	Query    string   // the inner query, unescaped
	To       string   // s3://bucket/prefix
	IAMRoles []string // role chain; the single element "default" for IAM_ROLE default
	Format   string   // TEXT (default), CSV, JSON or PARQUET
	Header   bool
	// Delimiter is the field delimiter; empty means the format's default.
	Delimiter        string
	FixedWidth       string
	AllowOverwrite   bool
	CleanPath        bool
	ParallelOff      bool
	Manifest         bool
	ManifestVerbose  bool
	Compression      string // "", GZIP, BZIP2 or ZSTD
	MaxFileSize      int64  // bytes; 0 means the default (6.2 GB)
	RowGroupSize     int64
	Region           string
	Encrypted        bool
	EncryptedAuto    bool
	KMSKeyID         string
	PartitionBy      []string
	PartitionInclude bool
	Extension        string
	AddQuotes        bool
	NullAs           *string
	Escape           bool
}

// Copy is a parsed COPY table FROM 's3://...' statement.
type Copy struct {
	Table      string   // the table reference as written (quoting kept), usable in SQL
	Columns    []string // column references as written (quoting kept)
	ColumnKeys []string // column names as PostgreSQL sees them (unquoted ones lower-cased)
	From       string   // s3://bucket/prefix (or the manifest object with MANIFEST)
	IAMRoles   []string
	Format     string // TEXT (default), CSV, JSON, PARQUET, ORC or AVRO
	JSONOption string // for JSON: 'auto', 'auto ignorecase' or a jsonpaths location
	Quote      string // CSV QUOTE character; empty means '"'
	// IgnoreHeader is the number of leading lines skipped in every file.
	IgnoreHeader int
	Delimiter    string
	Compression  string // "", GZIP, BZIP2 or ZSTD
	Manifest     bool
	Region       string
	DateFormat   string
	TimeFormat   string
	MaxError     int
	EmptyAsNull  bool
	BlanksAsNull bool
	// TruncateColumns is accepted; the stand-in does not truncate (PostgreSQL refuses a
	// value longer than its column, so the load fails as without the option).
	TruncateColumns bool
	NullAs          *string
	Escape          bool
	RemoveQuotes    bool
}

func (*Unload) statement() {}
func (*Copy) statement()   {}

// Classify reports whether sql is a statement the stand-in executes itself.
// It returns (nil, nil) for anything that should go to PostgreSQL unchanged:
// every statement except UNLOAD and COPY ... FROM 's3://...'.
func Classify(sql string) (Statement, *Error) {
	l := &lexer{src: sql}
	first, err := l.next()
	if err != nil || first.kind != tokIdent {
		return nil, nil
	}
	switch first.val {
	case "unload":
		return Parse(sql)
	case "copy":
		if copyFromS3(l) {
			return Parse(sql)
		}
	}
	return nil, nil
}

// copyFromS3 looks past "COPY table [(cols)] FROM" for an s3:// literal.
func copyFromS3(l *lexer) bool {
	depth := 0
	for {
		tok, err := l.next()
		if err != nil || tok.kind == tokEOF || (tok.kind == tokPunct && tok.val == ";") {
			return false
		}
		switch {
		case tok.kind == tokPunct && tok.val == "(":
			depth++
		case tok.kind == tokPunct && tok.val == ")":
			depth--
		case depth == 0 && tok.kind == tokIdent && (tok.val == "from" || tok.val == "to"):
			if tok.val == "to" {
				return false
			}
			src, err := l.next()
			return err == nil && src.kind == tokString && strings.HasPrefix(strings.ToLower(src.val), "s3://")
		}
	}
}

// Parse parses one UNLOAD or COPY ... FROM 's3://...' statement, optionally
// followed by a semicolon.
func Parse(sql string) (Statement, *Error) {
	p := &parser{lex: lexer{src: sql}, src: sql}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var stmt Statement
	var err *Error
	switch {
	case p.isKeyword("unload"):
		stmt, err = p.parseUnload()
	case p.isKeyword("copy"):
		stmt, err = p.parseCopy()
	default:
		return nil, p.unexpected()
	}
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tokPunct && p.tok.val == ";" {
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if p.tok.kind != tokEOF {
		return nil, p.unexpected()
	}
	return stmt, nil
}

type parser struct {
	lex  lexer
	src  string
	tok  token
	seen map[string]bool
}

func (p *parser) advance() *Error {
	tok, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = tok
	return nil
}

func (p *parser) isKeyword(kw string) bool { return p.tok.kind == tokIdent && p.tok.val == kw }

func (p *parser) isPunct(s string) bool { return p.tok.kind == tokPunct && p.tok.val == s }

// unexpected is PostgreSQL's and Redshift's generic syntax error at the current token.
func (p *parser) unexpected() *Error {
	if p.tok.kind == tokEOF {
		return syntaxErrorAt(p.src, len(p.src), "syntax error at end of input")
	}
	return syntaxErrorAt(p.src, p.tok.pos, "syntax error at or near %q", p.src[p.tok.pos:p.tok.end])
}

func (p *parser) expectKeyword(kw string) *Error {
	if !p.isKeyword(kw) {
		return p.unexpected()
	}
	return p.advance()
}

func (p *parser) expectPunct(s string) *Error {
	if !p.isPunct(s) {
		return p.unexpected()
	}
	return p.advance()
}

// optionalKeyword consumes kw if it is the current token.
func (p *parser) optionalKeyword(kw string) (bool, *Error) {
	if !p.isKeyword(kw) {
		return false, nil
	}
	return true, p.advance()
}

func (p *parser) expectString() (string, *Error) {
	if p.tok.kind != tokString {
		return "", p.unexpected()
	}
	v := p.tok.val
	return v, p.advance()
}

func (p *parser) expectInt() (int, *Error) {
	if p.tok.kind != tokNumber {
		return 0, p.unexpected()
	}
	n, err := strconv.Atoi(p.tok.val)
	if err != nil || n < 0 {
		return 0, syntaxErrorAt(p.src, p.tok.pos, "invalid integer value %q", p.tok.val)
	}
	return n, p.advance()
}

// markOption records an option keyword and refuses a repeated one the way
// PostgreSQL does for duplicate options.
func (p *parser) markOption(name string, pos int) *Error {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[name] {
		return syntaxErrorAt(p.src, pos, "conflicting or redundant options")
	}
	p.seen[name] = true
	return nil
}

// parseRoles parses what follows IAM_ROLE: 'arn[,arn...]' or DEFAULT.
func (p *parser) parseRoles() ([]string, *Error) {
	if p.isKeyword("default") {
		return []string{"default"}, p.advance()
	}
	pos := p.tok.pos
	s, err := p.expectString()
	if err != nil {
		return nil, err
	}
	roles := strings.Split(s, ",")
	for _, r := range roles {
		if !strings.HasPrefix(r, "arn:") || !strings.Contains(r, ":role/") {
			return nil, &Error{Code: codeInvalidParamValue, Position: charPos(p.src, pos),
				Message: fmt.Sprintf("Invalid IAM_ROLE %q: each role must be an IAM role ARN (comma-separated, no spaces, for a chain)", r)}
		}
	}
	if len(roles) > 10 {
		return nil, &Error{Code: codeInvalidParamValue, Position: charPos(p.src, pos),
			Message: "A role chain can contain at most 10 roles"}
	}
	return roles, nil
}

// parseCredentials parses the older CREDENTIALS [AS] 'aws_iam_role=arn[,arn]'
// form. Access keys are refused: the stand-in only does role-based access.
func (p *parser) parseCredentials(kw string, pos int) ([]string, *Error) {
	if kw != "credentials" {
		return nil, notSupported(strings.ToUpper(kw) + " (key-based authorization)")
	}
	if _, err := p.optionalKeyword("as"); err != nil {
		return nil, err
	}
	s, err := p.expectString()
	if err != nil {
		return nil, err
	}
	roles, ok := strings.CutPrefix(s, "aws_iam_role=")
	if !ok || strings.Contains(roles, ";") {
		return nil, notSupported("CREDENTIALS other than 'aws_iam_role=<arn>' (key-based authorization)")
	}
	sub := &parser{lex: lexer{src: "'" + strings.ReplaceAll(roles, "'", "''") + "'"}, src: p.src}
	if err := sub.advance(); err != nil {
		return nil, err
	}
	list, perr := sub.parseRoles()
	if perr != nil {
		perr.Position = charPos(p.src, pos)
	}
	return list, perr
}

// parseSize parses "n [MB|GB]" (MB when no unit) into bytes.
func (p *parser) parseSize() (int64, *Error) {
	if p.tok.kind != tokNumber {
		return 0, p.unexpected()
	}
	f, err := strconv.ParseFloat(p.tok.val, 64)
	if err != nil || f <= 0 {
		return 0, syntaxErrorAt(p.src, p.tok.pos, "invalid size value %q", p.tok.val)
	}
	if err := p.advance(); err != nil {
		return 0, err
	}
	mult := float64(1 << 20)
	switch {
	case p.isKeyword("mb"):
		if err := p.advance(); err != nil {
			return 0, err
		}
	case p.isKeyword("gb"):
		mult = 1 << 30
		if err := p.advance(); err != nil {
			return 0, err
		}
	}
	return int64(f * mult), nil
}

func (p *parser) parseUnload() (*Unload, *Error) {
	u := &Unload{Format: "TEXT"}
	if err := p.advance(); err != nil { // UNLOAD
		return nil, err
	}
	if err := p.expectPunct("("); err != nil {
		return nil, err
	}
	q, err := p.expectString()
	if err != nil {
		return nil, err
	}
	u.Query = q
	if err := p.expectPunct(")"); err != nil {
		return nil, err
	}
	if err := p.expectKeyword("to"); err != nil {
		return nil, err
	}
	toPos := p.tok.pos
	if u.To, err = p.expectString(); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(u.To, "s3://") {
		return nil, &Error{Code: codeInvalidParamValue, Position: charPos(p.src, toPos),
			Message: fmt.Sprintf("Invalid S3 location %q: UNLOAD destination must be an s3:// path", u.To)}
	}
	for p.tok.kind == tokIdent {
		if err := p.unloadOption(u); err != nil {
			return nil, err
		}
	}
	if u.IAMRoles == nil {
		return nil, &Error{Code: codeInvalidParamValue,
			Message: "UNLOAD requires IAM_ROLE: the sandbox stand-in supports only role-based authorization"}
	}
	return u, validateUnload(u)
}

func (p *parser) unloadOption(u *Unload) *Error {
	pos, end := p.tok.pos, p.tok.end
	kw := p.tok.val
	// Option groups that share a slot, as Redshift treats them.
	slot := kw
	switch kw {
	case "credentials", "access_key_id", "secret_access_key", "session_token":
		slot = "iam_role"
	case "csv", "json", "parquet", "format":
		slot = "format"
	case "gzip", "bzip2", "zstd":
		slot = "compression"
	}
	if err := p.markOption(slot, pos); err != nil {
		return err
	}
	if err := p.advance(); err != nil {
		return err
	}
	var err *Error
	switch kw {
	case "iam_role":
		u.IAMRoles, err = p.parseRoles()
	case "credentials", "access_key_id", "secret_access_key", "session_token":
		u.IAMRoles, err = p.parseCredentials(kw, pos)
	case "format":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		switch {
		case p.isKeyword("csv"), p.isKeyword("json"), p.isKeyword("parquet"):
			u.Format = strings.ToUpper(p.tok.val)
			err = p.advance()
		default:
			return p.unexpected()
		}
	case "csv", "json", "parquet":
		u.Format = strings.ToUpper(kw)
	case "header":
		u.Header = true
	case "delimiter":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		u.Delimiter, err = p.expectString()
	case "fixedwidth":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		u.FixedWidth, err = p.expectString()
	case "allowoverwrite":
		u.AllowOverwrite = true
	case "cleanpath":
		u.CleanPath = true
	case "parallel":
		switch {
		case p.isKeyword("on"), p.isKeyword("true"):
			err = p.advance()
		case p.isKeyword("off"), p.isKeyword("false"):
			u.ParallelOff = true
			err = p.advance()
		}
	case "manifest":
		u.Manifest = true
		u.ManifestVerbose, err = p.optionalKeyword("verbose")
	case "gzip", "bzip2", "zstd":
		u.Compression = strings.ToUpper(kw)
	case "maxfilesize":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		u.MaxFileSize, err = p.parseSize()
	case "rowgroupsize":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		u.RowGroupSize, err = p.parseSize()
	case "region":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		u.Region, err = p.expectString()
	case "encrypted":
		u.Encrypted = true
		u.EncryptedAuto, err = p.optionalKeyword("auto")
	case "kms_key_id":
		u.KMSKeyID, err = p.expectString()
	case "partition":
		if err = p.expectKeyword("by"); err != nil {
			return err
		}
		if u.PartitionBy, _, err = p.parseIdentList(); err != nil {
			return err
		}
		u.PartitionInclude, err = p.optionalKeyword("include")
	case "extension":
		u.Extension, err = p.expectString()
	case "addquotes":
		u.AddQuotes = true
	case "null":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		var s string
		s, err = p.expectString()
		u.NullAs = &s
	case "escape":
		u.Escape = true
	default:
		return syntaxErrorAt(p.src, pos, "syntax error at or near %q", p.src[pos:end])
	}
	return err
}

// parseIdentList parses "(a, "B", c)" and returns the names as written and
// as PostgreSQL folds them.
func (p *parser) parseIdentList() (written, keys []string, err *Error) {
	if err := p.expectPunct("("); err != nil {
		return nil, nil, err
	}
	for {
		switch p.tok.kind {
		case tokIdent:
			written = append(written, p.src[p.tok.pos:p.tok.end])
			keys = append(keys, p.tok.val)
		case tokQuotedIdent:
			written = append(written, p.src[p.tok.pos:p.tok.end])
			keys = append(keys, p.tok.val)
		default:
			return nil, nil, p.unexpected()
		}
		if err := p.advance(); err != nil {
			return nil, nil, err
		}
		if p.isPunct(")") {
			return written, keys, p.advance()
		}
		if err := p.expectPunct(","); err != nil {
			return nil, nil, err
		}
	}
}

func validateUnload(u *Unload) *Error {
	conflict := func(msg string) *Error { return &Error{Code: codeInvalidParamValue, Message: msg} }
	switch {
	case u.AllowOverwrite && u.CleanPath:
		return conflict("CLEANPATH and ALLOWOVERWRITE options cannot be used together")
	case u.KMSKeyID != "" && !u.Encrypted:
		return conflict("KMS_KEY_ID requires the ENCRYPTED option")
	case u.Delimiter != "" && u.FixedWidth != "":
		return conflict("DELIMITER and FIXEDWIDTH options cannot be used together")
	case u.Delimiter != "" && len([]rune(u.Delimiter)) != 1:
		return conflict("DELIMITER must be a single character")
	case u.MaxFileSize != 0 && (u.MaxFileSize < 5<<20 || u.MaxFileSize > maxFileSizeLimit):
		return conflict("MAXFILESIZE must be between 5 MB and 6.2 GB")
	case u.RowGroupSize != 0 && u.Format != "PARQUET":
		return conflict("ROWGROUPSIZE can only be used with FORMAT PARQUET")
	}
	switch u.Format {
	case "CSV":
		if u.FixedWidth != "" || u.AddQuotes || u.Escape {
			return conflict("CSV cannot be used with FIXEDWIDTH, ADDQUOTES or ESCAPE")
		}
	case "JSON", "PARQUET":
		if u.Header || u.Delimiter != "" || u.FixedWidth != "" || u.AddQuotes || u.Escape || u.NullAs != nil {
			return conflict(u.Format + " cannot be used with HEADER, DELIMITER, FIXEDWIDTH, ADDQUOTES, ESCAPE or NULL AS")
		}
		if u.Format == "PARQUET" && u.Compression != "" {
			return conflict("PARQUET cannot be used with GZIP, BZIP2 or ZSTD")
		}
	}
	if u.Header && u.FixedWidth != "" {
		return conflict("HEADER cannot be used with FIXEDWIDTH")
	}
	return nil
}

func (p *parser) parseCopy() (*Copy, *Error) {
	c := &Copy{Format: "TEXT"}
	if err := p.advance(); err != nil { // COPY
		return nil, err
	}
	start := p.tok.pos
	for i := 0; ; i++ {
		if p.tok.kind != tokIdent && p.tok.kind != tokQuotedIdent {
			return nil, p.unexpected()
		}
		end := p.tok.end
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.isPunct(".") || i == 2 {
			c.Table = p.src[start:end]
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if p.isPunct("(") {
		var err *Error
		if c.Columns, c.ColumnKeys, err = p.parseIdentList(); err != nil {
			return nil, err
		}
	}
	if err := p.expectKeyword("from"); err != nil {
		return nil, err
	}
	var err *Error
	if c.From, err = p.expectString(); err != nil {
		return nil, err
	}
	for p.tok.kind == tokIdent {
		if err := p.copyOption(c); err != nil {
			return nil, err
		}
	}
	if c.IAMRoles == nil {
		return nil, &Error{Code: codeInvalidParamValue,
			Message: "COPY from S3 requires IAM_ROLE: the sandbox stand-in supports only role-based authorization"}
	}
	return c, validateCopy(c)
}

func (p *parser) copyOption(c *Copy) *Error {
	pos, end := p.tok.pos, p.tok.end
	kw := p.tok.val
	slot := kw
	switch kw {
	case "credentials", "access_key_id", "secret_access_key", "session_token":
		slot = "iam_role"
	case "csv", "json", "parquet", "orc", "avro", "format":
		slot = "format"
	case "gzip", "bzip2", "zstd":
		slot = "compression"
	}
	if err := p.markOption(slot, pos); err != nil {
		return err
	}
	if err := p.advance(); err != nil {
		return err
	}
	var err *Error
	switch kw {
	case "iam_role":
		c.IAMRoles, err = p.parseRoles()
	case "credentials", "access_key_id", "secret_access_key", "session_token":
		c.IAMRoles, err = p.parseCredentials(kw, pos)
	case "format":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		if p.tok.kind != tokIdent {
			return p.unexpected()
		}
		switch f := p.tok.val; f {
		case "csv", "json", "parquet", "orc", "avro":
			if err = p.advance(); err != nil {
				return err
			}
			return p.formatArgs(c, f)
		default:
			return p.unexpected()
		}
	case "csv", "json", "parquet", "orc", "avro":
		return p.formatArgs(c, kw)
	case "ignoreheader":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		c.IgnoreHeader, err = p.expectInt()
	case "delimiter":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		c.Delimiter, err = p.expectString()
	case "gzip", "bzip2", "zstd":
		c.Compression = strings.ToUpper(kw)
	case "manifest":
		c.Manifest = true
	case "region":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		c.Region, err = p.expectString()
	case "dateformat":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		c.DateFormat, err = p.expectString()
	case "timeformat":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		c.TimeFormat, err = p.expectString()
	case "maxerror":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		c.MaxError, err = p.expectInt()
	case "emptyasnull":
		c.EmptyAsNull = true
	case "blanksasnull":
		c.BlanksAsNull = true
	case "null":
		if _, err = p.optionalKeyword("as"); err != nil {
			return err
		}
		var s string
		s, err = p.expectString()
		c.NullAs = &s
	case "escape":
		c.Escape = true
	case "removequotes":
		c.RemoveQuotes = true
	case "truncatecolumns":
		c.TruncateColumns = true
	default:
		return syntaxErrorAt(p.src, pos, "syntax error at or near %q", p.src[pos:end])
	}
	return err
}

// formatArgs parses what may follow a COPY format name: CSV [QUOTE [AS] 'c'],
// JSON ['auto' | 'auto ignorecase' | 's3://jsonpaths'].
func (p *parser) formatArgs(c *Copy, format string) *Error {
	c.Format = strings.ToUpper(format)
	switch format {
	case "csv":
		if p.isKeyword("quote") {
			if err := p.advance(); err != nil {
				return err
			}
			if _, err := p.optionalKeyword("as"); err != nil {
				return err
			}
			q, err := p.expectString()
			if err != nil {
				return err
			}
			c.Quote = q
		}
	case "json":
		c.JSONOption = "auto"
		if p.tok.kind == tokString {
			c.JSONOption = p.tok.val
			return p.advance()
		}
	}
	return nil
}

func validateCopy(c *Copy) *Error {
	conflict := func(msg string) *Error { return &Error{Code: codeInvalidParamValue, Message: msg} }
	if !strings.HasPrefix(c.From, "s3://") {
		return conflict(fmt.Sprintf("Invalid S3 location %q", c.From))
	}
	if c.Delimiter != "" && len([]rune(c.Delimiter)) != 1 {
		return conflict("DELIMITER must be a single character")
	}
	if c.Quote != "" && len([]rune(c.Quote)) != 1 {
		return conflict("QUOTE must be a single character")
	}
	if c.Format == "JSON" && (c.IgnoreHeader > 0 || c.Delimiter != "" || c.NullAs != nil) {
		return conflict("JSON cannot be used with IGNOREHEADER, DELIMITER or NULL AS")
	}
	if c.Format == "CSV" && (c.Escape || c.RemoveQuotes) {
		return conflict("CSV cannot be used with ESCAPE or REMOVEQUOTES")
	}
	return nil
}

// maxFileSizeLimit is Redshift's upper bound for MAXFILESIZE, 6.2 GB.
const maxFileSizeLimit = int64(62 * (1 << 30) / 10)
