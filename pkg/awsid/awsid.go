// Package awsid checks and builds the AWS identifiers xacctd deals in: account ids, regions,
// partitions, ARNs, and the naming rules of IAM roles, S3 buckets and Redshift clusters.
//
// Every Check function returns nil or an error whose text says what is wrong and what is
// allowed, so that it can be shown to an operator as it is.
package awsid

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
)

var (
	accountIDRe   = regexp.MustCompile(`^[0-9]{12}$`)
	regionRe      = regexp.MustCompile(`^[a-z]{2}(-gov|-iso|-isob|-isoe|-isof)?-[a-z]+-[0-9]{1,2}$`)
	roleNameRe    = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]+$`)
	rolePathRe    = regexp.MustCompile(`^/([\x21-\x7E]*/)?$`)
	bucketCharsRe = regexp.MustCompile(`^[a-z0-9.-]+$`)
	clusterIDRe   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	dbIdentRe     = regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`)
	dbUserRe      = regexp.MustCompile(`^[a-z_][a-z0-9_$.@+-]*$`)
	kmsKeyARNRe   = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov|aws-iso(?:-[bef])?):kms:([a-z0-9-]+):([0-9]{12}):key/([A-Za-z0-9-]+)$`)
	roleARNRe     = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov|aws-iso(?:-[bef])?):iam::([0-9]{12}):role(/.*)?/([^/]+)$`)
)

// KnownRegions are the commercial, China and GovCloud regions at the time of writing. A
// region not listed here is still accepted when it has the shape of a region name (AWS adds
// regions); the list serves "did you mean" suggestions and partition lookups.
var KnownRegions = []string{
	"af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
	"ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ca-central-1", "ca-west-1",
	"cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
	"eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1",
	"me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1",
	"us-gov-west-1", "us-west-1", "us-west-2",
}

// CheckAccountID reports whether id is a 12-digit AWS account id.
func CheckAccountID(id string) error {
	if !accountIDRe.MatchString(id) {
		return fmt.Errorf("%q is not an AWS account id: it must be exactly 12 digits (quote it in YAML so leading zeros survive)", id)
	}
	return nil
}

// CheckRegion reports whether r has the shape of an AWS region name.
func CheckRegion(r string) error {
	if r == "" {
		return errors.New("region is empty: give an AWS region such as us-east-1")
	}
	if !regionRe.MatchString(r) {
		return fmt.Errorf("%q is not an AWS region name (such as us-east-1 or eu-west-2)", r)
	}
	return nil
}

// Partition returns the ARN partition of a region.
func Partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.Contains(region, "-isob-"):
		return "aws-iso-b"
	case strings.Contains(region, "-isoe-"):
		return "aws-iso-e"
	case strings.Contains(region, "-isof-"):
		return "aws-iso-f"
	case strings.Contains(region, "-iso-"):
		return "aws-iso"
	default:
		return "aws"
	}
}

// MaxClusterRoles is Redshift's quota of IAM roles associated with one cluster in region.
// It is 50 in most regions and 10 in a few (aws-facts.md, "Redshift roles").
func MaxClusterRoles(region string) int {
	switch {
	case region == "ap-northeast-3", region == "af-south-1", region == "eu-south-1",
		region == "ap-southeast-3", strings.HasPrefix(region, "us-gov-"),
		strings.Contains(region, "-iso"):
		return 10
	}
	return 50
}

// CheckRoleName applies IAM's rules for role names.
func CheckRoleName(name string) error {
	switch {
	case name == "":
		return errors.New("role name is empty")
	case len(name) > 64:
		return fmt.Errorf("role name %q is %d characters; IAM allows at most 64", name, len(name))
	case !roleNameRe.MatchString(name):
		return fmt.Errorf("role name %q has characters IAM does not allow: use letters, digits and + = , . @ _ -", name)
	}
	return nil
}

// CheckRolePath applies IAM's rules for paths: "/" or "/segment/.../" of printable ASCII.
func CheckRolePath(p string) error {
	switch {
	case len(p) > 512:
		return fmt.Errorf("role path is %d characters; IAM allows at most 512", len(p))
	case !rolePathRe.MatchString(p):
		return fmt.Errorf("role path %q is not valid: it must begin and end with / (like /xacctd/) and contain only printable ASCII", p)
	case strings.Contains(p, "//"):
		return fmt.Errorf("role path %q has an empty segment (//)", p)
	}
	return nil
}

// RoleARN builds the ARN of a role.
func RoleARN(partition, account, path, name string) string {
	if path == "" {
		path = "/"
	}
	return "arn:" + partition + ":iam::" + account + ":role" + path + name
}

// RoleARNParts is what ParseRoleARN finds in a role ARN.
type RoleARNParts struct {
	Partition, Account, Path, Name string
}

// ParseRoleARN splits an IAM role ARN into its parts.
func ParseRoleARN(arn string) (RoleARNParts, error) {
	m := roleARNRe.FindStringSubmatch(arn)
	if m == nil {
		return RoleARNParts{}, fmt.Errorf("%q is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)", arn)
	}
	path := m[3] + "/"
	if err := CheckRolePath(path); err != nil {
		return RoleARNParts{}, fmt.Errorf("role ARN %q: %w", arn, err)
	}
	if err := CheckRoleName(m[4]); err != nil {
		return RoleARNParts{}, fmt.Errorf("role ARN %q: %w", arn, err)
	}
	return RoleARNParts{Partition: m[1], Account: m[2], Path: path, Name: m[4]}, nil
}

// KMSKeyARNParts is what ParseKMSKeyARN finds in a key ARN.
type KMSKeyARNParts struct {
	Partition, Region, Account, KeyID string
}

// ParseKMSKeyARN accepts the ARN of a KMS key (not an alias: key policies and UNLOAD's
// KMS_KEY_ID need the key itself).
func ParseKMSKeyARN(arn string) (KMSKeyARNParts, error) {
	m := kmsKeyARNRe.FindStringSubmatch(arn)
	if m == nil {
		return KMSKeyARNParts{}, fmt.Errorf("%q is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID; aliases are not accepted)", arn)
	}
	return KMSKeyARNParts{Partition: m[1], Region: m[2], Account: m[3], KeyID: m[4]}, nil
}

// CheckBucketName applies S3's rules for general purpose bucket names.
func CheckBucketName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("bucket name %q is not valid: %s", name, why)
	}
	switch {
	case len(name) < 3 || len(name) > 63:
		return bad("it must be 3 to 63 characters long")
	case !bucketCharsRe.MatchString(name):
		return bad("use only lowercase letters, digits, dots and hyphens")
	case !isAlnum(name[0]) || !isAlnum(name[len(name)-1]):
		return bad("it must begin and end with a letter or digit")
	case strings.Contains(name, ".."):
		return bad("it must not contain two adjacent dots")
	case net.ParseIP(name) != nil:
		return bad("it must not be formatted as an IP address")
	case strings.HasPrefix(name, "xn--"), strings.HasPrefix(name, "sthree-"), strings.HasPrefix(name, "amzn-s3-demo-"):
		return bad("the prefixes xn--, sthree- and amzn-s3-demo- are reserved")
	case strings.HasSuffix(name, "-s3alias"), strings.HasSuffix(name, "--ol-s3"), strings.HasSuffix(name, ".mrap"), strings.HasSuffix(name, "--x-s3"):
		return bad("the suffixes -s3alias, --ol-s3, .mrap and --x-s3 are reserved")
	}
	return nil
}

// CheckClusterIdentifier applies Redshift's rules for cluster identifiers.
func CheckClusterIdentifier(id string) error {
	bad := func(why string) error {
		return fmt.Errorf("cluster identifier %q is not valid: %s", id, why)
	}
	switch {
	case id == "" || len(id) > 63:
		return bad("it must be 1 to 63 characters long")
	case strings.ToLower(id) != id:
		return bad("Redshift identifiers are lowercase")
	case !clusterIDRe.MatchString(id):
		return bad("it must start with a letter and contain only lowercase letters, digits and hyphens")
	case strings.HasSuffix(id, "-") || strings.Contains(id, "--"):
		return bad("it must not end with a hyphen or contain two consecutive hyphens")
	}
	return nil
}

// CheckDatabaseName applies Redshift's rules for (unquoted) database names.
func CheckDatabaseName(name string) error {
	switch {
	case name == "" || len(name) > 64:
		return fmt.Errorf("database name %q is not valid: it must be 1 to 64 characters long", name)
	case !dbIdentRe.MatchString(name):
		return fmt.Errorf("database name %q is not valid: use lowercase letters, digits, _ and $, starting with a letter or _", name)
	}
	return nil
}

// CheckDBUser applies Redshift's rules for database user names.
func CheckDBUser(name string) error {
	switch {
	case name == "" || len(name) > 128:
		return fmt.Errorf("database user %q is not valid: it must be 1 to 128 characters long", name)
	case !dbUserRe.MatchString(name):
		return fmt.Errorf("database user %q is not valid: use lowercase letters, digits and _ $ . @ + -, starting with a letter or _", name)
	}
	return nil
}

// DBUserARN is the ARN Redshift passes as sts:ExternalId when a database user assumes a role.
func DBUserARN(region, account, cluster, user string) string {
	return "arn:" + Partition(region) + ":redshift:" + region + ":" + account + ":dbuser:" + cluster + "/" + user
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
}
