// Package jobsql renders the UNLOAD and COPY statement of a job, and the probe statements
// of `xacctd check --probe`. It is pure: a statement is a function of the job, the pair's
// target and the template data, so `--dry-run` prints exactly what a run sends.
//
// # Quoting
//
// Every value that reaches the SQL as text (the inner query of UNLOAD, the S3 location, the
// IAM_ROLE list, KMS key, delimiter, NULL AS, DATEFORMAT, region ...) goes through
// [QuoteLiteral]: single quotes around it, every ' doubled and every \ doubled.
//
// Doubling the quote alone is not enough on Redshift. Redshift string literals behave like
// PostgreSQL's with standard_conforming_strings off, and it cannot be turned on: a backslash
// escapes the next character. Take the query
//
//	SELECT 'a\\b', 'x\''
//
// Doubling ' only would give
//
//	UNLOAD ('SELECT ''a\\b'', ''x\''''') ...
//
// in which Redshift reads \\ as one backslash (the query changes meaning) and \' as an
// escaped quote, so the literal no longer ends where we meant and what follows it is parsed
// as SQL. Doubling \ as well makes Redshift read back exactly the text the job's template
// rendered, as its own QUOTE_LITERAL does. The rendered query is therefore the query exactly
// as the user would type it at a Redshift prompt.
//
// Because the quoting assumes backslash escapes, the statements must reach Redshift as
// written: send them with pgx's Exec and no arguments (the simple protocol, no client-side
// rewriting). They hold no credentials, only IAM_ROLE.
//
// # Identifiers
//
// Column, table and partition names come from the configuration, where they are checked
// against a plain identifier pattern. They are written bare, as a person would, except
// reserved words (order, timestamp, user ...), which are double-quoted in lower case:
// unquoted names fold to lower case, so "order" names the same column as Order would, and
// the statement stays valid.
//
// # Runtime checks
//
// Configurations are validated with sample template data at load time, but real data can
// differ. Each render therefore checks again what the rendered text must satisfy: a
// non-empty query without a trailing semicolon, a destination that stays under the pair's
// prefix, no control characters in keys, no NUL byte and only UTF-8 in SQL. Enumerated
// options and identifiers are checked again too, so that no Job value, validated or not,
// can put unquoted text into a statement. Combinations of options that Redshift refuses
// (cleanpath with allowoverwrite, header with parquet ...) are left to config validation;
// Redshift reports them if one gets through.
package jobsql
