package jobrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5/pgconn"
)

// Error classes: every failed run carries one (docs/events.md, `error_class`).
const (
	ClassAuth        = "auth"        // the database or AWS refused who we are
	ClassPermission  = "permission"  // Redshift refused the role (association, trust) or a table privilege
	ClassS3Access    = "s3_access"   // S3 refused or had nothing / something unexpected at the location
	ClassSQL         = "sql"         // the statement itself failed (syntax, data, missing table)
	ClassTimeout     = "timeout"     // the run took longer than its timeout
	ClassNetwork     = "network"     // connection lost or cluster unavailable: transient, retried
	ClassConfig      = "config"      // the job cannot be rendered or its cluster not found
	ClassInternal    = "internal"    // a bug in xacctd (a panic)
	ClassInterrupted = "interrupted" // xacctd stopped or the operator cancelled
)

// Failure is a classified run failure: what Redshift (or AWS) said and what to do next.
type Failure struct {
	Class     string
	Code      string // SQLSTATE or AWS error code, when there is one
	Message   string // the server's message (never a secret)
	Hint      string // the likely cause and the next step
	Transient bool   // worth retrying: connection lost, cluster unavailable
	Err       error
}

func (f *Failure) Error() string {
	msg := f.Message
	if f.Code != "" {
		msg += " (" + f.Code + ")"
	}
	return f.Class + ": " + msg
}

func (f *Failure) Unwrap() error { return f.Err }

// Classify turns an error from connecting or executing into a Failure.
func Classify(err error) *Failure {
	if err == nil {
		return nil
	}
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifyPg(pgErr, err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return classifyAWS(apiErr, err)
	}
	if isNetwork(err) {
		return &Failure{Class: ClassNetwork, Message: firstLine(err.Error()), Transient: true, Err: err,
			Hint: "the connection to the cluster failed or was lost; xacctd retries it (retries); if it persists, check the endpoint, security groups and that the cluster is available"}
	}
	return &Failure{Class: ClassSQL, Message: firstLine(err.Error()), Err: err}
}

func classifyPg(e *pgconn.PgError, err error) *Failure {
	f := &Failure{Class: ClassSQL, Code: e.Code, Message: e.Message, Err: err}
	if d := strings.TrimSpace(e.Detail); d != "" && !strings.HasPrefix(d, "---") {
		// Redshift's internal errors carry a dashed block that repeats the message; other
		// details (the reason of a failed load) help.
		f.Message += ": " + firstLine(d)
	}
	msg := e.Message
	switch {
	case e.Code == "28P01" || e.Code == "28000":
		f.Class = ClassAuth
		f.Hint = "the cluster refused the database login: check the password (password_env/password_file) with auth: password, or redshift:GetClusterCredentials for the user with auth: iam"
	case e.Code == "57014" && strings.Contains(msg, "statement timeout"):
		f.Class = ClassTimeout
		f.Hint = "the statement ran longer than the job's timeout (statement_timeout on the server): raise timeout or make the query cheaper"
	case strings.HasPrefix(e.Code, "08") || e.Code == "57P01" || e.Code == "57P02" || e.Code == "57P03" || e.Code == "53300":
		f.Class, f.Transient = ClassNetwork, true
		f.Hint = "the cluster closed the connection or is not accepting connections (restart, maintenance, resize, too many connections); xacctd retries it"
	case e.Code == "42501":
		f.Class = ClassPermission
		f.Hint = "the database user lacks a privilege: grant it SELECT on the tables the UNLOAD reads, or INSERT on the table the COPY loads"
	case strings.Contains(msg, "Not authorized to get credentials of role"):
		f.Class = ClassPermission
		f.Hint = "Redshift cannot use the role: it is not associated with the cluster or not yet in-sync — run `xacctd check` (and `xacctd apply`)"
	case strings.Contains(msg, "is not authorized to assume IAM Role"):
		f.Class = ClassPermission
		f.Hint = "a role's trust policy does not let this database user (pair role.db_users) or the previous role of the chain assume it — run `xacctd plan` to see drift"
	case strings.Contains(msg, "S3ServiceException") || strings.Contains(msg, "S3 Query Exception"):
		f.Class = ClassS3Access
		switch {
		case strings.Contains(msg, "NoSuchBucket"):
			f.Hint = "the bucket does not exist — run `xacctd plan`"
		case strings.Contains(msg, "Access Denied") || strings.Contains(msg, "AccessDenied") || strings.Contains(msg, "Status 403"):
			f.Hint = "S3 refused the role: the bucket policy or the role's policy does not cover this prefix (drift, or a bucket setting xacctd does not own) — run `xacctd plan` and `xacctd check --probe`"
		case strings.Contains(msg, "KMS") || strings.Contains(msg, "kms"):
			f.Hint = "KMS refused the role: the key policy must allow the cluster's account (kms:GenerateDataKey/kms:Decrypt)"
		default:
			f.Hint = "S3 refused the request — run `xacctd check --probe`"
		}
	case strings.Contains(msg, "unload destination on S3 is not empty"):
		f.Class = ClassS3Access
		f.Hint = "files already exist at the destination: put {{ .RunID }} or the scheduled time into unload.to, or set unload.options.allowoverwrite or cleanpath"
	case strings.Contains(msg, "The specified S3 prefix") && strings.Contains(msg, "does not exist"):
		f.Class = ClassS3Access
		f.Hint = "nothing to load at copy.from: check that the job writing it ran (`xacctd jobs history`) and that from matches its destination"
	case strings.Contains(msg, "Load into table"):
		f.Hint = "rows in the files do not fit the table: see stl_load_errors on the cluster (or maxerror)"
	case strings.HasPrefix(e.Code, "42"):
		f.Hint = "the statement does not compile on the cluster: a missing table or column, or a syntax error in the query"
	case strings.HasPrefix(e.Code, "22") || strings.HasPrefix(e.Code, "23"):
		f.Hint = "the data does not fit: a conversion or constraint failed"
	}
	return f
}

func classifyAWS(e smithy.APIError, err error) *Failure {
	f := &Failure{Class: ClassConfig, Code: e.ErrorCode(), Message: e.ErrorMessage(), Err: err}
	if f.Message == "" {
		f.Message = firstLine(err.Error())
	}
	code := e.ErrorCode()
	switch {
	case code == "ClusterNotFound" || code == "ClusterNotFoundFault":
		f.Hint = "the cluster does not exist in its account and region: check clusters.*.identifier, account and region"
	case strings.Contains(code, "AccessDenied") || strings.Contains(code, "Unauthorized") || code == "InvalidClientTokenId" || code == "ExpiredToken":
		f.Class = ClassAuth
		f.Hint = "AWS refused xacctd's credentials for the cluster's account: it needs redshift:DescribeClusters and, with auth: iam, redshift:GetClusterCredentials for the database user (docs/operations.md)"
	case e.ErrorFault() == smithy.FaultServer || strings.Contains(code, "Throttl") || code == "InvalidClusterState" || code == "InvalidClusterStateFault":
		f.Class, f.Transient = ClassNetwork, true
		f.Hint = "AWS is busy or the cluster is changing state; xacctd retries it"
	}
	return f
}

func isNetwork(err error) bool {
	var netErr net.Error
	var connErr *pgconn.ConnectError
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "unexpected EOF")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// unavailable is the failure for a cluster that is not accepting jobs right now.
func unavailable(cluster, status string) *Failure {
	return &Failure{Class: ClassNetwork, Transient: true,
		Message: fmt.Sprintf("cluster %s is %s, not available", cluster, status),
		Hint:    "the cluster is paused, resizing or in maintenance; xacctd retries it, and the next occurrence runs normally"}
}
