package moto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	rstypes "github.com/aws/aws-sdk-go-v2/service/redshift/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"
)

const (
	warehouse = "111111111111"
	lake      = "222222222222"
	region    = "us-east-1"
	delay     = 200 * time.Millisecond
)

var srv *Server

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	s, err := Start(ctx, Options{RoleDelay: delay})
	cancel()
	if err != nil {
		// A missing moto must fail loudly, never skip.
		fmt.Fprintln(os.Stderr, "moto sandbox unavailable:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// reset gives each test an empty moto with the package's role delay.
func reset(t *testing.T) {
	t.Helper()
	if err := srv.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func baseConfig() aws.Config {
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAIOSFODNN7EXAMPLE", "sandbox", ""),
	}
}

// assume returns a config acting as roleARN (moto's STS does not check the
// role exists, and the credentials act in the role's account).
func assume(t *testing.T, roleARN string) aws.Config {
	t.Helper()
	out, err := sts.NewFromConfig(baseConfig()).AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("moto-test"),
	})
	if err != nil {
		t.Fatalf("assume %s: %v", roleARN, err)
	}
	cfg := baseConfig()
	c := out.Credentials
	cfg.Credentials = credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
	return cfg
}

func admin(t *testing.T, account string) aws.Config {
	return assume(t, "arn:aws:iam::"+account+":role/admin")
}

const redshiftTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

func createRole(t *testing.T, cfg aws.Config, name, trust string) string {
	t.Helper()
	out, err := iam.NewFromConfig(cfg).CreateRole(context.Background(), &iam.CreateRoleInput{
		RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust),
	})
	if err != nil {
		t.Fatalf("create role %s: %v", name, err)
	}
	return *out.Role.Arn
}

func createCluster(t *testing.T, cfg aws.Config, id string) *redshift.Client {
	t.Helper()
	rs := redshift.NewFromConfig(cfg)
	_, err := rs.CreateCluster(context.Background(), &redshift.CreateClusterInput{
		ClusterIdentifier: aws.String(id), NodeType: aws.String("ra3.xlplus"),
		MasterUsername: aws.String("admin"), MasterUserPassword: aws.String("Passw0rd!"),
	})
	if err != nil {
		t.Fatalf("create cluster: %v", err)
	}
	return rs
}

func clusterRoles(t *testing.T, rs *redshift.Client, id string) map[string]string {
	t.Helper()
	out, err := rs.DescribeClusters(context.Background(), &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(id)})
	if err != nil {
		t.Fatalf("describe clusters: %v", err)
	}
	return rolesOf(out.Clusters[0].IamRoles)
}

func rolesOf(roles []rstypes.ClusterIamRole) map[string]string {
	got := map[string]string{}
	for _, r := range roles {
		got[aws.ToString(r.IamRoleArn)] = aws.ToString(r.ApplyStatus)
	}
	return got
}

func wantAPIError(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code || !strings.Contains(ae.ErrorMessage(), msgPart) {
		t.Fatalf("got %s: %q, want %s containing %q", ae.ErrorCode(), ae.ErrorMessage(), code, msgPart)
	}
}

// slow gives a test a role delay long enough that a loaded machine cannot
// skip past the adding/removing state between two calls.
func slow(t *testing.T) time.Duration {
	t.Helper()
	const d = time.Second
	if err := srv.SetRoleDelay(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.SetRoleDelay(context.Background(), delay) })
	return d
}

// waitRoles polls DescribeClusters until the cluster's roles are want.
func waitRoles(t *testing.T, rs *redshift.Client, id string, want map[string]string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := clusterRoles(t, rs, id)
		diff := cmp.Diff(want, got)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("roles after %v (-want +got):\n%s", within, diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestModifyClusterIamRolesAddThenRemove(t *testing.T) {
	reset(t)
	ctx := context.Background()
	d := slow(t)
	wh := admin(t, warehouse)
	role := createRole(t, wh, "RedshiftLakeAccess", redshiftTrust)
	rs := createCluster(t, wh, "analytics")

	out, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("analytics"), AddIamRoles: []string{role}, DefaultIamRoleArn: aws.String(role),
	})
	if err != nil {
		t.Fatalf("add role: %v", err)
	}
	if diff := cmp.Diff(map[string]string{role: "adding"}, rolesOf(out.Cluster.IamRoles)); diff != "" {
		t.Errorf("response roles (-want +got):\n%s", diff)
	}
	if got := aws.ToString(out.Cluster.DefaultIamRoleArn); got != role {
		t.Errorf("DefaultIamRoleArn = %q, want %q", got, role)
	}
	if diff := cmp.Diff(map[string]string{role: "adding"}, clusterRoles(t, rs, "analytics")); diff != "" {
		t.Errorf("right after add (-want +got):\n%s", diff)
	}
	start := time.Now()
	waitRoles(t, rs, "analytics", map[string]string{role: "in-sync"}, d+5*time.Second)
	if waited := time.Since(start); waited < d/2 {
		t.Errorf("in-sync after %v, want about %v", waited, d)
	}

	if _, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("analytics"), RemoveIamRoles: []string{role},
	}); err != nil {
		t.Fatalf("remove role: %v", err)
	}
	if diff := cmp.Diff(map[string]string{role: "removing"}, clusterRoles(t, rs, "analytics")); diff != "" {
		t.Errorf("right after remove (-want +got):\n%s", diff)
	}
	waitRoles(t, rs, "analytics", map[string]string{}, d+5*time.Second)
}

func TestModifyClusterIamRolesBusyCluster(t *testing.T) {
	reset(t)
	ctx := context.Background()
	d := slow(t)
	wh := admin(t, warehouse)
	r1 := createRole(t, wh, "R1", redshiftTrust)
	r2 := createRole(t, wh, "R2", redshiftTrust)
	rs := createCluster(t, wh, "busy")
	if _, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("busy"), AddIamRoles: []string{r1},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("busy"), AddIamRoles: []string{r2},
	})
	var busy *rstypes.InvalidClusterStateFault
	if !errors.As(err, &busy) {
		t.Fatalf("second modification while adding: got %v, want InvalidClusterStateFault", err)
	}
	time.Sleep(d + 50*time.Millisecond)
	if _, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("busy"), AddIamRoles: []string{r2},
	}); err != nil {
		t.Fatalf("modification after the first applied: %v", err)
	}
}

func TestModifyClusterIamRolesRefusals(t *testing.T) {
	reset(t)
	ctx := context.Background()
	wh, lk := admin(t, warehouse), admin(t, lake)
	rs := createCluster(t, wh, "strict")
	lakeRole := createRole(t, lk, "LakeRole", redshiftTrust)
	ec2Trust := strings.ReplaceAll(redshiftTrust, "redshift.amazonaws.com", "ec2.amazonaws.com")
	badTrust := createRole(t, wh, "NoRedshiftTrust", ec2Trust)

	tests := []struct {
		name string
		give []string
		code string
		msg  string
	}{
		{"role of the other account", []string{lakeRole}, "InvalidParameterValue", "must delegate access to an Amazon Redshift account"},
		{"trust without redshift", []string{badTrust}, "InvalidParameterValue", "must delegate access to an Amazon Redshift account"},
		{"role does not exist", []string{"arn:aws:iam::" + warehouse + ":role/Missing"}, "InvalidParameterValue", "must delegate access to an Amazon Redshift account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
				ClusterIdentifier: aws.String("strict"), AddIamRoles: tt.give,
			})
			wantAPIError(t, err, tt.code, tt.msg)
		})
	}
	if got := clusterRoles(t, rs, "strict"); len(got) != 0 {
		t.Errorf("refused roles were associated: %v", got)
	}

	_, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("nope"), AddIamRoles: []string{badTrust},
	})
	var nf *rstypes.ClusterNotFoundFault
	if !errors.As(err, &nf) {
		t.Errorf("unknown cluster: got %v, want ClusterNotFoundFault", err)
	}
}

func TestModifyClusterIamRolesQuota(t *testing.T) {
	reset(t)
	ctx := context.Background()
	wh := admin(t, warehouse)
	rs := createCluster(t, wh, "many")
	var roles []string
	for i := range 51 {
		roles = append(roles, createRole(t, wh, fmt.Sprintf("R%02d", i), redshiftTrust))
	}
	_, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("many"), AddIamRoles: roles,
	})
	wantAPIError(t, err, "InvalidParameterValue", "at most 50 IAM roles")

	if _, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("many"), AddIamRoles: roles[:50],
	}); err != nil {
		t.Fatalf("50 roles: %v", err)
	}
	time.Sleep(delay + 50*time.Millisecond)
	_, err = rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("many"), AddIamRoles: roles[50:],
	})
	wantAPIError(t, err, "InvalidParameterValue", "at most 50 IAM roles")
	if got := len(clusterRoles(t, rs, "many")); got != 50 {
		t.Errorf("cluster has %d roles, want 50", got)
	}
}

func TestSetRoleDelay(t *testing.T) {
	reset(t)
	ctx := context.Background()
	t.Cleanup(func() { _ = srv.SetRoleDelay(ctx, delay) })
	if err := srv.SetRoleDelay(ctx, -1); err != nil {
		t.Fatal(err)
	}
	wh := admin(t, warehouse)
	role := createRole(t, wh, "Fast", redshiftTrust)
	rs := createCluster(t, wh, "fast")
	out, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String("fast"), AddIamRoles: []string{role},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{role: "in-sync"}, rolesOf(out.Cluster.IamRoles)); diff != "" {
		t.Errorf("with no delay (-want +got):\n%s", diff)
	}
}

// insecure marks requests as plain HTTP for the extension's
// aws:SecureTransport evaluation.
func insecure(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Xacctd-Sandbox-Insecure", "true"))
}

func pathStyle(o *s3.Options) { o.UsePathStyle = true }

func TestBucketPolicySecureTransportAndCrossAccount(t *testing.T) {
	reset(t)
	ctx := context.Background()
	wh, lk := admin(t, warehouse), admin(t, lake)
	writer := createRole(t, wh, "Writer", redshiftTrust)
	_, err := iam.NewFromConfig(wh).PutRolePolicy(ctx, &iam.PutRolePolicyInput{
		RoleName: aws.String("Writer"), PolicyName: aws.String("lake"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[
			{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::lake-exports/out/*"},
			{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::lake-exports"}]}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	owner := s3.NewFromConfig(lk, pathStyle)
	if _, err := owner.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("lake-exports")}); err != nil {
		t.Fatal(err)
	}
	policy := map[string]any{"Version": "2012-10-17", "Statement": []any{
		map[string]any{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
			"Resource":  []string{"arn:aws:s3:::lake-exports", "arn:aws:s3:::lake-exports/*"},
			"Condition": map[string]any{"Bool": map[string]string{"aws:SecureTransport": "false"}}},
		map[string]any{"Sid": "XacctdWrite", "Effect": "Allow", "Principal": map[string]string{"AWS": writer},
			"Action": []string{"s3:PutObject", "s3:GetObject"}, "Resource": "arn:aws:s3:::lake-exports/out/*"},
		map[string]any{"Sid": "XacctdList", "Effect": "Allow", "Principal": map[string]string{"AWS": writer},
			"Action": "s3:ListBucket", "Resource": "arn:aws:s3:::lake-exports",
			"Condition": map[string]any{"StringLike": map[string]string{"s3:prefix": "out/*"}}},
	}}
	doc, _ := json.Marshal(policy)
	if _, err := owner.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("lake-exports"), Policy: aws.String(string(doc))}); err != nil {
		t.Fatal(err)
	}

	// The owner over "HTTPS": not blocked by the deny-insecure statement.
	if _, err := owner.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("own.txt"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("owner put over https: %v", err)
	}
	if _, err := owner.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("own.txt")}); err != nil {
		t.Fatalf("owner get over https: %v", err)
	}
	_, err = owner.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("own.txt")}, insecure)
	wantStatus(t, err, http.StatusForbidden, "owner get over plain http")

	// The granted role of the other account, within and outside its prefix.
	w := s3.NewFromConfig(assume(t, writer), pathStyle)
	if _, err := w.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("out/part_00"), Body: strings.NewReader("1,2")}); err != nil {
		t.Fatalf("cross-account put in prefix: %v", err)
	}
	list, err := w.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake-exports"), Prefix: aws.String("out/")})
	if err != nil {
		t.Fatalf("cross-account list in prefix: %v", err)
	}
	if len(list.Contents) != 1 || aws.ToString(list.Contents[0].Key) != "out/part_00" {
		t.Errorf("list = %v, want out/part_00", list.Contents)
	}
	denied := []struct {
		name string
		call func() error
	}{
		{"put outside prefix", func() error {
			_, err := w.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("elsewhere/x"), Body: strings.NewReader("x")})
			return err
		}},
		{"list outside prefix", func() error {
			_, err := w.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("lake-exports"), Prefix: aws.String("elsewhere/")})
			return err
		}},
		{"delete not granted", func() error {
			_, err := w.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("out/part_00")})
			return err
		}},
		{"put over plain http", func() error {
			_, err := w.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("out/y"), Body: strings.NewReader("x")}, insecure)
			return err
		}},
		{"other principal of the account", func() error {
			_, err := s3.NewFromConfig(wh, pathStyle).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("out/z"), Body: strings.NewReader("x")})
			return err
		}},
	}
	for _, tt := range denied {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, tt.call(), http.StatusForbidden, tt.name)
		})
	}

	// Without the identity policy the bucket policy alone is not enough.
	if _, err := iam.NewFromConfig(wh).DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String("Writer"), PolicyName: aws.String("lake")}); err != nil {
		t.Fatal(err)
	}
	_, err = w.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake-exports"), Key: aws.String("out/part_01"), Body: strings.NewReader("1")})
	wantStatus(t, err, http.StatusForbidden, "cross-account put without identity policy")
}

func wantStatus(t *testing.T, err error, status int, what string) {
	t.Helper()
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Errorf("%s: got %v, want HTTP %d", what, err, status)
	}
}

func TestVerifyClusterCredentials(t *testing.T) {
	reset(t)
	ctx := context.Background()
	rs := createCluster(t, admin(t, warehouse), "creds")
	out, err := rs.GetClusterCredentials(ctx, &redshift.GetClusterCredentialsInput{
		ClusterIdentifier: aws.String("creds"), DbUser: aws.String("etl_loader"), DbName: aws.String("dev"),
	})
	if err != nil {
		t.Fatal(err)
	}
	user, pw := aws.ToString(out.DbUser), aws.ToString(out.DbPassword)
	if user != "IAM:etl_loader" {
		t.Fatalf("DbUser = %q, want IAM:etl_loader", user)
	}
	tests := []struct {
		name                    string
		cluster, user, password string
		want                    CredentialCheck
	}{
		{"issued", "creds", user, pw, CredentialCheck{Valid: true, DBUser: "etl_loader"}},
		{"wrong password", "creds", user, pw + "x", CredentialCheck{}},
		{"wrong user", "creds", "IAM:other", pw, CredentialCheck{}},
		{"wrong cluster", "other", user, pw, CredentialCheck{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := srv.VerifyClusterCredentials(ctx, tt.cluster, tt.user, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// A reset forgets issued passwords, like the cluster they belonged to.
	reset(t)
	if got, _ := srv.VerifyClusterCredentials(ctx, "creds", user, pw); got.Valid {
		t.Error("password still valid after reset")
	}
}

func TestStopLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid, dir := s.cmd.Process.Pid, s.dir
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still exists (%v)", dir, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !os.IsNotExist(err) {
		t.Errorf("process %d still exists", pid)
	}
}

func TestMissingPython(t *testing.T) {
	old := Python
	Python = "python3-definitely-missing"
	defer func() { Python = old }()
	_, err := Start(context.Background(), Options{})
	if err == nil || !strings.Contains(err.Error(), "moto[server]") {
		t.Fatalf("got %v, want an error naming what to install", err)
	}
}

func TestMissingMoto(t *testing.T) {
	// A Python without site-packages stands in for one without moto.
	script := filepath.Join(t.TempDir(), "python-without-moto")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec python3 -S \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := Python
	Python = script
	defer func() { Python = old }()
	_, err := Start(context.Background(), Options{})
	if err == nil || !strings.Contains(err.Error(), "moto[server]") || !strings.Contains(err.Error(), "No module named") {
		t.Fatalf("got %v, want an error naming what to install and showing Python's complaint", err)
	}
}

func TestResetKeepsSessions(t *testing.T) {
	reset(t)
	ctx := context.Background()
	wh := admin(t, warehouse)
	createCluster(t, wh, "before-reset")
	reset(t)
	out, err := sts.NewFromConfig(wh).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.Account); got != warehouse {
		t.Errorf("after reset the session acts in %s, want %s", got, warehouse)
	}
	_, err = redshift.NewFromConfig(wh).DescribeClusters(ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String("before-reset")})
	var nf *rstypes.ClusterNotFoundFault
	if !errors.As(err, &nf) {
		t.Errorf("cluster after reset: got %v, want ClusterNotFoundFault", err)
	}
}
