package redshiftsim

import (
	"strings"
	"unicode/utf8"
)

// tokenKind classifies a lexical token of Redshift (PostgreSQL-like) SQL.
type tokenKind int

const (
	tokEOF         tokenKind = iota
	tokIdent                 // unquoted identifier or keyword; val is lower-cased
	tokQuotedIdent           // "ident"; val is the unescaped name
	tokString                // 'literal', E'literal' or $tag$literal$tag$; val is the unescaped value
	tokNumber                // 123, 6.2
	tokPunct                 // ( ) , ; . and any other single character or operator run
)

type token struct {
	kind tokenKind
	val  string // normalised value (see tokenKind)
	pos  int    // byte offset of the token's first byte in the source
	end  int    // byte offset just after the token
}

// lexer splits SQL text into tokens, skipping whitespace and comments.
//
// String literals follow Redshift's rules, which are also PostgreSQL's with
// standard_conforming_strings=off (the stand-in runs its backend sessions that
// way): ” is a quote, a backslash escapes the next character. Only \\ and \'
// are translated; any other backslash sequence is kept as written so that the
// text handed on to PostgreSQL means the same thing it meant to Redshift.
type lexer struct {
	src string
	pos int
}

func (l *lexer) errorf(pos int, format string, args ...any) *Error {
	return syntaxErrorAt(l.src, pos, format, args...)
}

// next returns the next token or a syntax error for unterminated literals.
func (l *lexer) next() (token, *Error) {
	if err := l.skipSpaceAndComments(); err != nil {
		return token{}, err
	}
	src := l.src
	start := l.pos
	if start >= len(src) {
		return token{kind: tokEOF, pos: start, end: start}, nil
	}
	c := src[start]
	switch {
	case (c == 'E' || c == 'e') && start+1 < len(src) && src[start+1] == '\'':
		l.pos++
		return l.lexString(start)
	case c == '\'':
		return l.lexString(start)
	case c == '"':
		return l.lexQuotedIdent(start)
	case c == '$':
		if tok, ok, err := l.lexDollar(start); ok || err != nil {
			return tok, err
		}
		l.pos++
		for l.pos < len(src) && isDigit(src[l.pos]) {
			l.pos++
		}
		return token{kind: tokPunct, val: src[start:l.pos], pos: start, end: l.pos}, nil
	case isIdentStart(c):
		l.pos++
		for l.pos < len(src) && isIdentChar(src[l.pos]) {
			l.pos++
		}
		return token{kind: tokIdent, val: strings.ToLower(src[start:l.pos]), pos: start, end: l.pos}, nil
	case isDigit(c) || (c == '.' && start+1 < len(src) && isDigit(src[start+1])):
		l.pos++
		for l.pos < len(src) && (isDigit(src[l.pos]) || src[l.pos] == '.') {
			l.pos++
		}
		return token{kind: tokNumber, val: src[start:l.pos], pos: start, end: l.pos}, nil
	default:
		// Single-character punctuation; operators are split into characters,
		// which is all statement splitting and the two statements need.
		_, size := utf8.DecodeRuneInString(src[start:])
		l.pos += size
		return token{kind: tokPunct, val: src[start:l.pos], pos: start, end: l.pos}, nil
	}
}

func (l *lexer) skipSpaceAndComments() *Error {
	src := l.src
	for l.pos < len(src) {
		c := src[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case c == '-' && l.pos+1 < len(src) && src[l.pos+1] == '-':
			for l.pos < len(src) && src[l.pos] != '\n' {
				l.pos++
			}
		case c == '/' && l.pos+1 < len(src) && src[l.pos+1] == '*':
			start := l.pos
			depth := 0
			for {
				if l.pos+1 >= len(src) {
					l.pos = len(src)
					return l.errorf(start, "unterminated /* comment at or near %q", truncate(src[start:]))
				}
				switch {
				case src[l.pos] == '/' && src[l.pos+1] == '*':
					depth++
					l.pos += 2
				case src[l.pos] == '*' && src[l.pos+1] == '/':
					depth--
					l.pos += 2
				default:
					l.pos++
				}
				if depth == 0 {
					break
				}
			}
		default:
			return nil
		}
	}
	return nil
}

// lexString reads a single-quoted literal whose opening quote is at l.pos.
func (l *lexer) lexString(start int) (token, *Error) {
	src := l.src
	var b strings.Builder
	i := l.pos + 1
	for {
		if i >= len(src) {
			l.pos = len(src)
			return token{}, l.errorf(start, "unterminated quoted string at or near %q", truncate(src[start:]))
		}
		c := src[i]
		switch {
		case c == '\'' && i+1 < len(src) && src[i+1] == '\'':
			b.WriteByte('\'')
			i += 2
		case c == '\'':
			l.pos = i + 1
			return token{kind: tokString, val: b.String(), pos: start, end: l.pos}, nil
		case c == '\\' && i+1 < len(src):
			switch src[i+1] {
			case '\\', '\'':
				b.WriteByte(src[i+1])
			default:
				b.WriteByte('\\')
				b.WriteByte(src[i+1])
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
}

func (l *lexer) lexQuotedIdent(start int) (token, *Error) {
	src := l.src
	var b strings.Builder
	i := start + 1
	for {
		if i >= len(src) {
			l.pos = len(src)
			return token{}, l.errorf(start, "unterminated quoted identifier at or near %q", truncate(src[start:]))
		}
		if src[i] == '"' {
			if i+1 < len(src) && src[i+1] == '"' {
				b.WriteByte('"')
				i += 2
				continue
			}
			l.pos = i + 1
			if b.Len() == 0 {
				return token{}, l.errorf(start, "zero-length delimited identifier at or near %q", `""`)
			}
			return token{kind: tokQuotedIdent, val: b.String(), pos: start, end: l.pos}, nil
		}
		b.WriteByte(src[i])
		i++
	}
}

// lexDollar reads a dollar-quoted string ($$...$$ or $tag$...$tag$) if one
// starts at start; ok is false when the dollar sign starts something else.
func (l *lexer) lexDollar(start int) (tok token, ok bool, err *Error) {
	src := l.src
	i := start + 1
	if i < len(src) && isIdentStart(src[i]) {
		for i < len(src) && isIdentChar(src[i]) && src[i] != '$' {
			i++
		}
	}
	if i >= len(src) || src[i] != '$' {
		return token{}, false, nil
	}
	delim := src[start : i+1]
	body := i + 1
	j := strings.Index(src[body:], delim)
	if j < 0 {
		l.pos = len(src)
		return token{}, true, l.errorf(start, "unterminated dollar-quoted string at or near %q", truncate(src[start:]))
	}
	l.pos = body + j + len(delim)
	return token{kind: tokString, val: src[body : body+j], pos: start, end: l.pos}, true, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

func truncate(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	// Cut on a rune boundary.
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// splitStatements splits a simple-query string into its statements at
// top-level semicolons, dropping statements that are empty or only comments.
// ok is false when the text cannot be tokenised (an unterminated literal):
// the caller then hands the whole text to PostgreSQL, which reports it.
func splitStatements(sql string) (stmts []string, ok bool) {
	l := &lexer{src: sql}
	start := 0
	nonEmpty := false
	for {
		tok, err := l.next()
		if err != nil {
			return nil, false
		}
		if tok.kind == tokEOF {
			if nonEmpty {
				stmts = append(stmts, sql[start:])
			}
			return stmts, true
		}
		if tok.kind == tokPunct && tok.val == ";" {
			if nonEmpty {
				stmts = append(stmts, sql[start:tok.end])
			}
			start = tok.end
			nonEmpty = false
			continue
		}
		nonEmpty = true
	}
}
