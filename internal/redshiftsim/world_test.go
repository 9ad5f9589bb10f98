package redshiftsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xacctd/xacctd/internal/redshiftsim"
	"github.com/xacctd/xacctd/internal/sandbox/moto"
	"github.com/xacctd/xacctd/internal/sandbox/postgres"
)

// The test world: one moto (with the sandbox extension), one PostgreSQL and
// one stand-in for the whole package, seeded once.
const (
	region         = "us-east-1"
	warehouse      = "111111111111"
	lake           = "222222222222"
	clusterID      = "warehouse"
	loader         = "etl_loader"
	loaderPassword = "loader-Secret-1"
	exportBucket   = "lake-exports"   // policy grants the warehouse roles
	closedBucket   = "lake-no-policy" // no bucket policy
)

func roleARN(account, name string) string {
	return fmt.Sprintf("arn:aws:iam::%s:role/%s", account, name)
}

func dbUserARN(user string) string {
	return fmt.Sprintf("arn:aws:redshift:%s:%s:dbuser:%s/%s", region, warehouse, clusterID, user)
}

var (
	roleUnload       = roleARN(warehouse, "rs-unload")        // associated, trusts Redshift
	roleRestricted   = roleARN(warehouse, "rs-restricted")    // associated, ExternalId list without etl_loader
	roleRestrictedOK = roleARN(warehouse, "rs-restricted-ok") // associated, ExternalId list with etl_loader
	roleDrifted      = roleARN(warehouse, "rs-drifted")       // associated, trust later changed to EC2 only
	roleUnassociated = roleARN(warehouse, "rs-unassociated")  // trusts Redshift, not associated
	roleAdding       = roleARN(warehouse, "rs-adding")        // association still "adding"
	roleChainA       = roleARN(warehouse, "rs-chain-a")       // associated, may assume lake roles
	roleLakeWriter   = roleARN(lake, "lake-writer")           // trusts rs-chain-a
	roleLakeStranger = roleARN(lake, "lake-stranger")         // trusts another account only
)

type testWorld struct {
	moto      *moto.Server
	pg        *postgres.Server
	rs        *redshiftsim.Server
	addr      string
	superDSN  string // superuser DSN of the database behind the cluster
	warehouse aws.Config
	lake      aws.Config
	logs      *observer.ObservedLogs
	cfg       redshiftsim.Config
}

var world *testWorld

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &testWorld{}
	var err error
	// A missing moto or PostgreSQL fails the package with what to install.
	if w.moto, err = moto.Start(ctx, moto.Options{RoleDelay: -1}); err != nil {
		fmt.Fprintln(os.Stderr, "redshiftsim tests need moto 5 with server extras (pip install 'moto[server]'):", err)
		return 1
	}
	defer w.moto.Stop()
	if w.pg, err = postgres.Start(ctx, postgres.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "redshiftsim tests need the PostgreSQL server binaries (e.g. apt-get install postgresql):", err)
		return 1
	}
	defer w.pg.Stop()
	if err := w.seed(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "seed the test world:", err)
		return 1
	}
	core, logs := observer.New(zap.DebugLevel)
	w.logs = logs
	w.cfg = redshiftsim.Config{
		PostgresDSN:         w.superDSN,
		AWSEndpoint:         w.moto.URL,
		Region:              region,
		ClusterIdentifier:   clusterID,
		ClusterAccount:      warehouse,
		ClusterAdminRoleARN: roleARN(warehouse, "admin"),
		Logger:              zap.New(core),
	}
	w.rs, err = redshiftsim.New(w.cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- w.rs.Serve(ln) }()
	w.addr = ln.Addr().String()
	world = w
	code := m.Run()
	if err := w.rs.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close stand-in:", err)
		code = 1
	}
	if err := <-served; err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		code = 1
	}
	return code
}

// accountConfig returns credentials acting in account (moto: any role ARN
// in the account works, it need not exist).
func (w *testWorld) accountConfig(account string) aws.Config {
	base := aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(w.moto.URL),
	}
	cfg := base.Copy()
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base), roleARN(account, "admin")))
	return cfg
}

func (w *testWorld) s3(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

func policy(statements ...map[string]any) string {
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": statements})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func redshiftTrust(externalIDs ...string) string {
	st := map[string]any{"Effect": "Allow", "Principal": map[string]any{"Service": "redshift.amazonaws.com"}, "Action": "sts:AssumeRole"}
	if len(externalIDs) > 0 {
		st["Condition"] = map[string]any{"StringEquals": map[string]any{"sts:ExternalId": externalIDs}}
	}
	return policy(st)
}

func awsTrust(principal string) string {
	return policy(map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": principal}, "Action": "sts:AssumeRole"})
}

var s3Access = policy(
	map[string]any{"Effect": "Allow", "Action": "s3:*", "Resource": []string{
		"arn:aws:s3:::" + exportBucket, "arn:aws:s3:::" + exportBucket + "/*",
		"arn:aws:s3:::" + closedBucket, "arn:aws:s3:::" + closedBucket + "/*",
	}},
	map[string]any{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"},
)

func (w *testWorld) seed(ctx context.Context) error {
	w.warehouse = w.accountConfig(warehouse)
	w.lake = w.accountConfig(lake)

	wIAM := iam.NewFromConfig(w.warehouse)
	lIAM := iam.NewFromConfig(w.lake)
	type role struct {
		client *iam.Client
		name   string
		trust  string
	}
	for _, r := range []role{
		{wIAM, "rs-unload", redshiftTrust()},
		{wIAM, "rs-restricted", redshiftTrust(dbUserARN("someone_else"))},
		{wIAM, "rs-restricted-ok", redshiftTrust(dbUserARN("someone_else"), dbUserARN(loader))},
		{wIAM, "rs-drifted", redshiftTrust()},
		{wIAM, "rs-unassociated", redshiftTrust()},
		{wIAM, "rs-adding", redshiftTrust()},
		{wIAM, "rs-chain-a", redshiftTrust()},
		{lIAM, "lake-writer", awsTrust(roleChainA)},
		{lIAM, "lake-stranger", awsTrust("arn:aws:iam::333333333333:root")},
	} {
		if _, err := r.client.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(r.name), AssumeRolePolicyDocument: aws.String(r.trust)}); err != nil {
			return fmt.Errorf("create role %s: %w", r.name, err)
		}
		if _, err := r.client.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
			RoleName: aws.String(r.name), PolicyName: aws.String("access"), PolicyDocument: aws.String(s3Access),
		}); err != nil {
			return fmt.Errorf("put role policy %s: %w", r.name, err)
		}
	}

	rs := redshift.NewFromConfig(w.warehouse)
	if _, err := rs.CreateCluster(ctx, &redshift.CreateClusterInput{
		ClusterIdentifier: aws.String(clusterID), NodeType: aws.String("dc2.large"),
		MasterUsername: aws.String("admin"), MasterUserPassword: aws.String("Admin-Pass-1"), DBName: aws.String("dev"),
		IamRoles: []string{roleUnload, roleRestricted, roleRestrictedOK, roleDrifted, roleChainA},
	}); err != nil {
		return fmt.Errorf("create cluster: %w", err)
	}
	// The association of rs-adding stays "adding" for the whole run.
	if err := w.moto.SetRoleDelay(ctx, time.Hour); err != nil {
		return err
	}
	if _, err := rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{
		ClusterIdentifier: aws.String(clusterID), AddIamRoles: []string{roleAdding},
	}); err != nil {
		return fmt.Errorf("modify cluster iam roles: %w", err)
	}
	// Drift after association: the trust no longer names Redshift.
	if _, err := wIAM.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{
		RoleName:       aws.String("rs-drifted"),
		PolicyDocument: aws.String(policy(map[string]any{"Effect": "Allow", "Principal": map[string]any{"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})),
	}); err != nil {
		return fmt.Errorf("update trust of rs-drifted: %w", err)
	}

	ls3 := w.s3(w.lake)
	for _, b := range []string{exportBucket, closedBucket} {
		if _, err := ls3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	grantees := []string{roleUnload, roleRestricted, roleRestrictedOK, roleUnassociated, roleAdding, roleDrifted}
	if _, err := ls3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(exportBucket), Policy: aws.String(policy(
		map[string]any{"Sid": "RedshiftList", "Effect": "Allow", "Principal": map[string]any{"AWS": grantees},
			"Action": "s3:ListBucket", "Resource": "arn:aws:s3:::" + exportBucket},
		map[string]any{"Sid": "RedshiftObjects", "Effect": "Allow", "Principal": map[string]any{"AWS": grantees},
			"Action": []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, "Resource": "arn:aws:s3:::" + exportBucket + "/*"},
		map[string]any{"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
			"Resource":  []string{"arn:aws:s3:::" + exportBucket, "arn:aws:s3:::" + exportBucket + "/*"},
			"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}},
	))}); err != nil {
		return fmt.Errorf("put bucket policy: %w", err)
	}

	dsn, err := w.pg.CreateDatabase(ctx, "dev")
	if err != nil {
		return err
	}
	w.superDSN = dsn
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		CREATE USER etl_loader PASSWORD '`+loaderPassword+`';
		GRANT ALL ON SCHEMA public TO etl_loader;
		CREATE TABLE public.sales (id int PRIMARY KEY, customer text, note text, amount numeric(10,2), paid boolean);
		INSERT INTO public.sales VALUES
			(1, 'O''Brien', 'it''s "quoted", with a comma', 10.50, true),
			(2, 'Ng', NULL, 3.00, false),
			(3, 'Back\slash', '', 0.25, NULL);
		GRANT SELECT ON public.sales TO etl_loader;`)
	return err
}
