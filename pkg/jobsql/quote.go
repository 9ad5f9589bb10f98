package jobsql

import (
	"fmt"
	"regexp"
	"strings"
)

// QuoteLiteral returns s as a Redshift string literal: in single quotes, every ' doubled and
// every \ doubled (see the package documentation for why both).
func QuoteLiteral(s string) string {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' || s[i] == '\\' {
			n++
		}
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('\'')
	// Byte-wise is safe for UTF-8: ' and \ never occur inside a multi-byte sequence.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' || c == '\\' {
			b.WriteByte(c)
		}
		b.WriteByte(c)
	}
	b.WriteByte('\'')
	return b.String()
}

// UnquoteLiteral is QuoteLiteral's inverse. It accepts exactly QuoteLiteral's output: a lone
// ' or \ inside the quotes, or the \' escape that Redshift would also take, is an error,
// because QuoteLiteral never writes them.
func UnquoteLiteral(lit string) (string, error) {
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
		return "", fmt.Errorf("%s is not a quoted literal: it must start and end with '", abbreviate(lit))
	}
	body := lit[1 : len(lit)-1]
	var b strings.Builder
	b.Grow(len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c == '\'' || c == '\\' {
			if i+1 == len(body) || body[i+1] != c {
				return "", fmt.Errorf("literal %s has a lone %c at byte %d: QuoteLiteral doubles every ' and \\", abbreviate(lit), c, i+1)
			}
			i++
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// abbreviate quotes s for an error message, cut short: literals can hold a whole query.
func abbreviate(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// identRe and tableRe are config validation's identifier patterns (pkg/config), repeated so
// that an unvalidated Job cannot put arbitrary text into a statement unquoted.
var (
	identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
	tableRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*$`)
)

// ident writes an identifier that matched identRe: bare, or double-quoted in lower case when
// it is a reserved word. Lower case keeps the meaning of the bare name, which Redshift (and
// PostgreSQL, behind the sandbox stand-in) fold to lower case.
func ident(name string) string {
	lower := strings.ToLower(name)
	if reserved[lower] {
		return `"` + lower + `"`
	}
	return name
}

// quoteIdent writes any string as a delimited identifier, for names that were never checked
// against identRe (ProbeCopy's table). Names that pass identRe keep ident's form.
func quoteIdent(name string) string {
	if identRe.MatchString(name) {
		return ident(name)
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// reserved holds Redshift's reserved words (docs.aws.amazon.com/redshift/latest/dg/
// r_pg_keywords.html) and PostgreSQL's reserved and type/function-name keywords, which the
// sandbox stand-in's backend refuses as bare column names. Quoting a name that is not
// reserved is harmless, so the union errs on the side of quoting.
var reserved = func() map[string]bool {
	const words = `
aes128 aes256 all allowoverwrite analyse analyze and any array as asc authorization az64
backup between binary blanksasnull both bytedict bzip2 case cast check collate column
constraint create credentials cross current_date current_time current_timestamp
current_user current_user_id default deferrable deflate defrag delta delta32k desc disable
distinct do else emptyasnull enable encode encrypt encryption end except explicit false for
foreign freeze from full globaldict256 globaldict64k grant group gzip having identity
ignore ilike in initially inner intersect interval into is isnull join leading left like
limit localtime localtimestamp lun luns lzo lzop minus mostly16 mostly32 mostly8 natural
new not notnull null nulls off offline offset oid old on only open or order outer overlaps
parallel partition percent permissions pivot placing primary raw readratio recover
references rejectlog resort respect restore right select session_user similar snapshot
some sysdate system table tag tdes text255 text32k then timestamp to top trailing true
truncatecolumns union unique unnest unpivot user using verbose wallet when where with
without
asymmetric collation concurrently current_catalog current_role current_schema fetch
lateral returning symmetric system_user tablesample variadic window`
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}()
