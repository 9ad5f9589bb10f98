package redshiftsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// awsWorld is the stand-in's view of AWS (moto): the cluster's account, which
// it reads with the cluster admin role, and STS/S3 for the statements' roles.
type awsWorld struct {
	endpoint  string
	region    string
	account   string
	cluster   string
	base      aws.Config // dummy static credentials: moto needs requests signed
	adminRole string     // assumed for DescribeClusters and IAM reads in the cluster account
	http      *http.Client
	verifyURL string
}

func newAWSWorld(cfg Config) *awsWorld {
	base := aws.Config{
		Region:       cfg.Region,
		Credentials:  credentials.NewStaticCredentialsProvider("redshiftsim", "redshiftsim", ""),
		BaseEndpoint: aws.String(cfg.AWSEndpoint),
		// moto answers in milliseconds; do not let retries stretch a refusal.
		RetryMaxAttempts: 2,
	}
	return &awsWorld{
		endpoint:  cfg.AWSEndpoint,
		region:    cfg.Region,
		account:   cfg.ClusterAccount,
		cluster:   cfg.ClusterIdentifier,
		base:      base,
		adminRole: cfg.ClusterAdminRoleARN,
		http:      &http.Client{Timeout: 10 * time.Second},
		verifyURL: strings.TrimRight(cfg.AWSEndpoint, "/") + "/xacctd-sandbox/verify-cluster-credentials",
	}
}

// dbUserARN is the ARN Redshift passes as sts:ExternalId when it assumes a role.
func (w *awsWorld) dbUserARN(user string) string {
	return fmt.Sprintf("arn:aws:redshift:%s:%s:dbuser:%s/%s", w.region, w.account, w.cluster, user)
}

func (w *awsWorld) clusterARN() string {
	return fmt.Sprintf("arn:aws:redshift:%s:%s:cluster:%s", w.region, w.account, w.cluster)
}

// verifyTemporaryCredentials asks the moto extension whether user/password
// are credentials GetClusterCredentials issued for this cluster.
func (w *awsWorld) verifyTemporaryCredentials(ctx context.Context, user, password string) (dbUser string, err error) {
	body, err := json.Marshal(map[string]string{"cluster": w.cluster, "user": user, "password": password})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.verifyURL, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("verify temporary credentials: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("verify temporary credentials: moto answered %s (is the xacctd sandbox moto extension running?)", resp.Status)
	}
	var out struct {
		Valid  bool   `json:"valid"`
		DBUser string `json:"db_user"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("verify temporary credentials: decode answer: %w", err)
	}
	if !out.Valid {
		return "", nil
	}
	return out.DBUser, nil
}

func notAuthorizedToGetCredentials(role string) *Error {
	return redshiftError(codeRedshiftCredsError, "Not authorized to get credentials of role "+role, "", "xen_aws_credentials_mgr.cpp:402")
}

func userNotAuthorizedToAssume(dbUserARN, role string) *Error {
	return redshiftError(codeRedshiftErrorCode, "User "+dbUserARN+" is not authorized to assume IAM Role "+role,
		"IAM Role="+role, "xen_aws_credentials_mgr.cpp:359")
}

// assumeChain authorizes roles for dbUser the way Redshift does and returns
// credentials of the last role:
//   - the first role must be associated with the cluster and in-sync;
//   - its trust must let redshift.amazonaws.com assume it, with the
//     connected user's dbuser ARN as sts:ExternalId when the trust restricts it;
//   - every further role's trust must name the previous role (or its account).
//
// moto's STS checks none of this, so the stand-in reads the trust policies
// itself and only then assumes the roles through moto.
func (w *awsWorld) assumeChain(ctx context.Context, roles []string, dbUser string) (aws.CredentialsProvider, *Error) {
	userARN := w.dbUserARN(dbUser)
	// Assumed afresh every time (one cheap call): credentials from before a
	// moto reset would silently act in moto's default account.
	adminCreds, err := w.assume(ctx, w.base, w.adminRole, "")
	if err != nil {
		return nil, internalError("assume the cluster admin role %s: %v", w.adminRole, err)
	}
	admin := w.withCredentials(adminCreds)
	clusters, err := redshift.NewFromConfig(admin).DescribeClusters(ctx, &redshift.DescribeClustersInput{
		ClusterIdentifier: aws.String(w.cluster),
	})
	if err != nil {
		return nil, internalError("describe cluster %s with the cluster admin role: %v", w.cluster, err)
	}
	if len(clusters.Clusters) != 1 {
		return nil, internalError("describe cluster %s: %d clusters found", w.cluster, len(clusters.Clusters))
	}
	cl := clusters.Clusters[0]
	if roles[0] == "default" {
		def := aws.ToString(cl.DefaultIamRoleArn)
		if def == "" {
			return nil, &Error{Code: codeInvalidParamValue, Message: "IAM_ROLE default was given but the cluster has no default IAM role"}
		}
		roles = []string{def}
	}
	first := roles[0]
	associated := false
	for _, r := range cl.IamRoles {
		if aws.ToString(r.IamRoleArn) == first && aws.ToString(r.ApplyStatus) == "in-sync" {
			associated = true
		}
	}
	if !associated {
		return nil, notAuthorizedToGetCredentials(first)
	}

	trust, err := getTrust(ctx, iam.NewFromConfig(admin), first)
	if err != nil {
		if isNoSuchEntity(err) {
			return nil, notAuthorizedToGetCredentials(first)
		}
		return nil, internalError("read trust policy of %s: %v", first, err)
	}
	reqCtx := map[string]string{
		"sts:externalid":    userARN,
		"aws:sourceaccount": w.account,
		"aws:sourcearn":     w.clusterARN(),
	}
	switch evaluateTrust(trust, principal{service: "redshift.amazonaws.com"}, reqCtx) {
	case trustNoPrincipal:
		return nil, notAuthorizedToGetCredentials(first)
	case trustConditionFailed:
		return nil, userNotAuthorizedToAssume(userARN, first)
	}
	creds, err := w.assume(ctx, w.base, first, userARN)
	if err != nil {
		return nil, internalError("assume role %s: %v", first, err)
	}
	prev := first
	for _, role := range roles[1:] {
		next, err := w.assume(ctx, w.withCredentials(creds), role, userARN)
		if err != nil {
			return nil, userNotAuthorizedToAssume(userARN, role)
		}
		// Credentials acting in the role's own account read its trust, which
		// stands in for AWS evaluating it.
		trust, err := getTrust(ctx, iam.NewFromConfig(w.withCredentials(next)), role)
		if err != nil {
			if isNoSuchEntity(err) {
				return nil, userNotAuthorizedToAssume(userARN, role)
			}
			return nil, internalError("read trust policy of %s: %v", role, err)
		}
		chainCtx := map[string]string{"sts:externalid": userARN}
		if evaluateTrust(trust, principal{roleARN: prev}, chainCtx) != trustAllowed {
			return nil, userNotAuthorizedToAssume(userARN, role)
		}
		creds, prev = next, role
	}
	return creds, nil
}

func (w *awsWorld) withCredentials(p aws.CredentialsProvider) aws.Config {
	c := w.base.Copy()
	c.Credentials = p
	return c
}

func (w *awsWorld) assume(ctx context.Context, as aws.Config, role, externalID string) (aws.CredentialsProvider, error) {
	in := &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("RedshiftIamRoleSession")}
	if externalID != "" {
		in.ExternalId = aws.String(externalID)
	}
	out, err := sts.NewFromConfig(as).AssumeRole(ctx, in)
	if err != nil {
		return nil, err
	}
	c := out.Credentials
	return credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)), nil
}

func (w *awsWorld) s3Client(creds aws.CredentialsProvider, region string) *s3.Client {
	return s3.NewFromConfig(w.withCredentials(creds), func(o *s3.Options) {
		o.UsePathStyle = true
		if region != "" {
			o.Region = region
		}
	})
}

func getTrust(ctx context.Context, c *iam.Client, roleARN string) (string, error) {
	name := roleARN[strings.LastIndex(roleARN, "/")+1:]
	out, err := c.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)})
	if err != nil {
		return "", err
	}
	if got := aws.ToString(out.Role.Arn); got != roleARN {
		// Same name, other path: not the role the statement names.
		return "", &smithy.GenericAPIError{Code: "NoSuchEntity", Message: "role " + roleARN + " not found"}
	}
	doc, err := url.QueryUnescape(aws.ToString(out.Role.AssumeRolePolicyDocument))
	if err != nil {
		return "", fmt.Errorf("decode trust policy of %s: %w", roleARN, err)
	}
	return doc, nil
}

func isNoSuchEntity(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchEntity"
}

func internalError(format string, args ...any) *Error {
	return &Error{Code: codeInternalError, Message: "sandbox stand-in: " + fmt.Sprintf(format, args...)}
}

// s3Error renders an S3 failure the way Redshift reports it, e.g.
// "S3ServiceException:Access Denied,Status 403,Error AccessDenied,Rid ...".
func s3Error(err error, where string) *Error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) {
			return &Error{Code: codeQueryCanceled, Message: "canceling statement due to user request"}
		}
		return redshiftError(codeRedshiftErrorCode, "S3 error: "+err.Error(), where, "s3_utility.cpp:593")
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	rid, ext := "", ""
	var reqID interface{ ServiceRequestID() string }
	if errors.As(err, &reqID) {
		rid = reqID.ServiceRequestID()
	}
	var hostID interface{ ServiceHostID() string }
	if errors.As(err, &hostID) {
		ext = hostID.ServiceHostID()
	}
	msg := ae.ErrorMessage()
	if msg == "" {
		msg = ae.ErrorCode()
	}
	text := fmt.Sprintf("S3ServiceException:%s,Status %d,Error %s,Rid %s,ExtRid %s,CanRetry 1", msg, status, ae.ErrorCode(), rid, ext)
	return redshiftError(codeRedshiftErrorCode, text, where, "s3_utility.cpp:593")
}
