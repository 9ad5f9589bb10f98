package jobrun

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestClassify(t *testing.T) {
	redshiftDetail := "\n  -----------------------------------------------\n  error:  x\n  code:      8001\n"
	tests := []struct {
		name          string
		give          error
		wantClass     string
		wantTransient bool
		wantHint      string // a substring
	}{
		{"wrong password", &pgconn.PgError{Code: "28P01", Message: `password authentication failed for user "etl"`}, ClassAuth, false, "password_env"},
		{"role not associated", &pgconn.PgError{Code: "XX000", Message: "Not authorized to get credentials of role arn:aws:iam::1:role/r", Detail: redshiftDetail}, ClassPermission, false, "xacctd check"},
		{"trust refuses the user", &pgconn.PgError{Code: "XX000", Message: "User arn:aws:redshift:us-east-1:1:dbuser:c/u is not authorized to assume IAM Role arn:aws:iam::1:role/r"}, ClassPermission, false, "db_users"},
		{"s3 access denied", &pgconn.PgError{Code: "XX000", Message: "S3ServiceException:Access Denied,Status 403,Error AccessDenied,Rid x,ExtRid y,CanRetry 1"}, ClassS3Access, false, "bucket policy"},
		{"destination not empty", &pgconn.PgError{Code: "XX000", Message: "Specified unload destination on S3 is not empty. Consider using a different bucket / prefix, manually removing the target files in S3, or using the ALLOWOVERWRITE option."}, ClassS3Access, false, "allowoverwrite"},
		{"nothing to copy", &pgconn.PgError{Code: "XX000", Message: "The specified S3 prefix 'x/' does not exist"}, ClassS3Access, false, "jobs history"},
		{"bad data", &pgconn.PgError{Code: "XX000", Message: "Load into table 't' failed.  Check 'stl_load_errors' system table for details.", Detail: "invalid input syntax for type integer"}, ClassSQL, false, "stl_load_errors"},
		{"missing table", &pgconn.PgError{Code: "42P01", Message: `relation "sales.nope" does not exist`}, ClassSQL, false, "missing table"},
		{"no privilege", &pgconn.PgError{Code: "42501", Message: "permission denied for relation orders"}, ClassPermission, false, "grant"},
		{"statement timeout", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, ClassTimeout, false, "timeout"},
		{"cluster restarting", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, ClassNetwork, true, "retries"},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, ClassNetwork, true, "retries"},
		{"connection lost", fmt.Errorf("exec: %w", io.ErrUnexpectedEOF), ClassNetwork, true, "retries"},
		{"cluster unavailable", unavailable("analytics", "paused"), ClassNetwork, true, "paused"},
		{"aws access denied", &smithy.GenericAPIError{Code: "AccessDenied", Message: "not allowed"}, ClassAuth, false, "GetClusterCredentials"},
		{"aws cluster not found", &smithy.GenericAPIError{Code: "ClusterNotFound", Message: "no"}, ClassConfig, false, "identifier"},
		{"aws throttled", &smithy.GenericAPIError{Code: "Throttling", Message: "slow down"}, ClassNetwork, true, "retries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Classify(tt.give)
			if f.Class != tt.wantClass || f.Transient != tt.wantTransient || !strings.Contains(f.Hint, tt.wantHint) {
				t.Errorf("Classify = class %q transient %v hint %q; want %q %v containing %q", f.Class, f.Transient, f.Hint, tt.wantClass, tt.wantTransient, tt.wantHint)
			}
			if strings.Contains(f.Message, "-----") {
				t.Errorf("message carries Redshift's dashed detail block: %q", f.Message)
			}
		})
	}
}

func TestScrubbedPassword(t *testing.T) {
	s := &pgxSession{password: "hunter2-secret"}
	err := s.scrub(fmt.Errorf("connect: user=etl password=hunter2-secret: %w", io.EOF))
	if strings.Contains(err.Error(), "hunter2-secret") || !errors.Is(err, io.EOF) {
		t.Errorf("scrub = %q (unwraps to EOF: %v)", err, errors.Is(err, io.EOF))
	}
	if f := Classify(err); strings.Contains(f.Error(), "hunter2-secret") {
		t.Errorf("classified failure leaks the password: %s", f.Error())
	}
}
