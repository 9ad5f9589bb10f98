package redshiftsim

import (
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes the stand-in itself produces.
const (
	codeSyntaxError        = "42601"
	codeFeatureNotSupport  = "0A000"
	codeInternalError      = "XX000" // what Redshift uses for S3/IAM failures
	codeInvalidPassword    = "28P01"
	codeInvalidAuthSpec    = "28000"
	codeProtocolViolation  = "08P01"
	codeQueryCanceled      = "57014"
	codeInFailedSQLTx      = "25P02"
	codeConnectionFailure  = "08006"
	codeCannotConnectNow   = "57P03"
	codeAdminShutdown      = "57P01"
	codeInvalidParamValue  = "22023"
	codeRedshiftErrorCode  = "8001"  // Redshift's internal "code:" for S3 errors
	codeRedshiftCredsError = "30000" // Redshift's internal "code:" for credential errors
)

// Error is an error reported to the client as a PostgreSQL ErrorResponse.
type Error struct {
	Severity string // ERROR unless set
	Code     string // SQLSTATE
	Message  string
	Detail   string
	Hint     string
	Position int // 1-based character position in the statement, 0 if none
}

func (e *Error) Error() string {
	if e.Position > 0 {
		return fmt.Sprintf("%s (SQLSTATE %s) at position %d", e.Message, e.Code, e.Position)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

func (e *Error) response() *pgproto3.ErrorResponse {
	sev := e.Severity
	if sev == "" {
		sev = "ERROR"
	}
	return &pgproto3.ErrorResponse{
		Severity:            sev,
		SeverityUnlocalized: sev,
		Code:                e.Code,
		Message:             e.Message,
		Detail:              e.Detail,
		Hint:                e.Hint,
		Position:            int32(e.Position),
	}
}

func syntaxErrorAt(src string, bytePos int, format string, args ...any) *Error {
	return &Error{Code: codeSyntaxError, Message: fmt.Sprintf(format, args...), Position: charPos(src, bytePos)}
}

// charPos converts a byte offset into PostgreSQL's 1-based character position.
func charPos(src string, bytePos int) int {
	if bytePos > len(src) {
		bytePos = len(src)
	}
	return utf8.RuneCountInString(src[:bytePos]) + 1
}

func notSupported(feature string) *Error {
	return &Error{
		Code:    codeFeatureNotSupport,
		Message: feature + " is not supported by the sandbox stand-in",
		Hint:    "see internal/redshiftsim/README.md for what the stand-in implements",
	}
}

// redshiftError builds an XX000 error shaped like Redshift's: the message,
// then the dashed DETAIL block Redshift prints for internal errors.
func redshiftError(code, message, context, location string) *Error {
	detail := "\n  -----------------------------------------------\n" +
		"  error:  " + message + "\n" +
		"  code:      " + code + "\n" +
		"  context:   " + context + "\n" +
		"  query:     0\n" +
		"  location:  " + location + "\n" +
		"  process:   padbmaster [pid=1073741824]\n" +
		"  -----------------------------------------------\n"
	return &Error{Code: codeInternalError, Message: message, Detail: detail}
}
