package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/xacctd/xacctd/pkg/config"
)

var world *World

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	w, err := Start(ctx, Options{RoleDelay: 200 * time.Millisecond})
	cancel()
	if err != nil {
		// A missing moto or PostgreSQL must fail loudly, never skip.
		fmt.Fprintln(os.Stderr, "sandbox unavailable:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "sandbox world started in %v\n", w.StartDuration.Round(time.Millisecond))
	world = w
	code := m.Run()
	if err := world.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func TestStartTime(t *testing.T) {
	t.Logf("world started in %v", world.StartDuration.Round(time.Millisecond))
	// Generous: the target is 5s, but CI machines are shared.
	if world.StartDuration > 20*time.Second {
		t.Errorf("start took %v", world.StartDuration)
	}
}

func TestEnvHasEveryKey(t *testing.T) {
	env := world.Env()
	for _, k := range []string{
		"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
		"XACCTD_SANDBOX_WAREHOUSE_ACCOUNT", "XACCTD_SANDBOX_WAREHOUSE_ROLE_ARN",
		"XACCTD_SANDBOX_LAKE_ACCOUNT", "XACCTD_SANDBOX_LAKE_ROLE_ARN",
		"XACCTD_SANDBOX_CLUSTER", "XACCTD_SANDBOX_DB_USER", "XACCTD_SANDBOX_DB_PASSWORD",
		"XACCTD_SANDBOX_DATABASE", "XACCTD_SANDBOX_REDSHIFT_ENDPOINT",
		"XACCTD_SANDBOX_POSTGRES_DSN", "XACCTD_SANDBOX_SAMPLE_TABLE", "XACCTD_SANDBOX_MOTO_URL",
	} {
		if env[k] == "" {
			t.Errorf("Env()[%s] is empty", k)
		}
	}
	if got, want := env["XACCTD_SANDBOX_SAMPLE_TABLE"], "sales.orders"; got != want {
		t.Errorf("sample table = %q, want %q", got, want)
	}
	if env["XACCTD_SANDBOX_WAREHOUSE_ACCOUNT"] == env["XACCTD_SANDBOX_LAKE_ACCOUNT"] {
		t.Error("the two accounts have the same id")
	}
}

func TestFormatEnv(t *testing.T) {
	got := FormatEnv(map[string]string{
		"B": "postgres://u:p@127.0.0.1:5/db?sslmode=disable",
		"A": "it's & more",
		"C": "",
	})
	want := "A='it'\\''s & more'\nB=postgres://u:p@127.0.0.1:5/db?sslmode=disable\nC=\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestConfigFragment(t *testing.T) {
	frag := world.ConfigFragment()
	var doc struct {
		Accounts map[string]map[string]string `yaml:"accounts"`
		Clusters map[string]map[string]string `yaml:"clusters"`
	}
	if err := yaml.Unmarshal([]byte(frag), &doc); err != nil {
		t.Fatalf("fragment is not YAML: %v\n%s", err, frag)
	}
	wantAccounts := map[string]map[string]string{
		"warehouse": {"id": world.WarehouseAccount, "role_arn": world.WarehouseRoleARN},
		"lake":      {"id": world.LakeAccount, "role_arn": world.LakeRoleARN},
	}
	if diff := cmp.Diff(wantAccounts, doc.Accounts); diff != "" {
		t.Errorf("accounts (-want +got):\n%s", diff)
	}
	wantClusters := map[string]map[string]string{world.Cluster: {
		"account": "warehouse", "identifier": world.Cluster, "region": world.Region,
		"database": world.Database, "user": world.DBUser, "auth": "password",
		"password_env": "XACCTD_SANDBOX_DB_PASSWORD", "endpoint": world.RedshiftEndpoint, "sslmode": "disable",
	}}
	if diff := cmp.Diff(wantClusters, doc.Clusters); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
	// And xacctd's own loader accepts it.
	t.Setenv("XACCTD_SANDBOX_DB_PASSWORD", world.DBPassword)
	if _, err := config.Parse("sandbox.yml", []byte("version: 1\n"+frag)); err != nil {
		t.Errorf("config.Parse rejects the fragment: %v\n%s", err, frag)
	}
}

func callerAccount(t *testing.T, cfg aws.Config) string {
	t.Helper()
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("get caller identity: %v", err)
	}
	return aws.ToString(out.Account)
}

func TestAWSConfigActsInEachAccount(t *testing.T) {
	ctx := context.Background()
	for _, account := range []string{world.WarehouseAccount, world.LakeAccount} {
		cfg, err := world.AWSConfig(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		if got := callerAccount(t, cfg); got != account {
			t.Errorf("AWSConfig(%s) acts in %s", account, got)
		}
		if _, err := iam.NewFromConfig(cfg).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(AdminRoleName)}); err != nil {
			t.Errorf("admin role in %s: %v", account, err)
		}
	}
	if _, err := world.AWSConfig(ctx, "333333333333"); err == nil {
		t.Error("AWSConfig accepted an account outside the world")
	}

	wh, _ := world.AWSConfig(ctx, world.WarehouseAccount)
	out, err := redshift.NewFromConfig(wh).DescribeClusters(ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(world.Cluster)})
	if err != nil {
		t.Fatalf("describe the sandbox cluster in the warehouse account: %v", err)
	}
	if got := aws.ToString(out.Clusters[0].DBName); got != world.Database {
		t.Errorf("cluster database = %q, want %q", got, world.Database)
	}
}

// The SDK picks path-style addressing by itself for an IP endpoint; the
// helper sets it anyway. Both must reach moto.
func TestS3ClientPathStyle(t *testing.T) {
	ctx := context.Background()
	c, err := world.S3Client(ctx, world.LakeAccount)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("path-style-check")}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := world.AWSConfig(ctx, world.LakeAccount)
	if _, err := s3.NewFromConfig(cfg).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("path-style-check")}); err != nil {
		t.Errorf("plain S3 client from AWSConfig: %v", err)
	}
}

func TestDatabaseAndStandIn(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, world.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "select count(*) from "+world.SampleTable).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(SampleRows()) {
		t.Errorf("sample table has %d rows, want %d", n, len(SampleRows()))
	}
	var customer string
	if err := conn.QueryRow(ctx, "select customer from "+world.SampleTable+" where order_id = 2").Scan(&customer); err != nil {
		t.Fatal(err)
	}
	if customer != "O'Brien & Sons" {
		t.Errorf("row 2 customer = %q", customer)
	}

	// Through the Redshift stand-in, as the database user with its password.
	host, port, _ := net.SplitHostPort(world.RedshiftEndpoint)
	dsn := fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s sslmode=disable", host, port, world.Database, world.DBUser, world.DBPassword)
	rs, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the stand-in at %s: %v", world.RedshiftEndpoint, err)
	}
	defer rs.Close(ctx)
	var who string
	if _, err := rs.Exec(ctx, "select 1"); err != nil {
		t.Fatalf("query through the stand-in: %v", err)
	}
	if err := rs.QueryRow(ctx, "select current_user").Scan(&who); err != nil {
		t.Fatal(err)
	}
	if who != world.DBUser {
		t.Errorf("stand-in session runs as %q, want %q", who, world.DBUser)
	}
	bad := strings.Replace(dsn, "password="+world.DBPassword, "password=wrong", 1)
	if c, err := pgx.Connect(ctx, bad); err == nil {
		c.Close(ctx)
		t.Error("stand-in accepted a wrong password")
	}
}

func TestReset(t *testing.T) {
	ctx := context.Background()
	lake, err := world.AWSConfig(ctx, world.LakeAccount)
	if err != nil {
		t.Fatal(err)
	}
	lakeS3 := s3.NewFromConfig(lake, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := lakeS3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("before-reset")}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, world.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "delete from "+world.SampleTable); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	if err := world.Reset(ctx); err != nil {
		t.Fatal(err)
	}

	// A config from before the reset still acts in its account.
	if got := callerAccount(t, lake); got != world.LakeAccount {
		t.Errorf("after reset the old lake config acts in %s", got)
	}
	_, err = lakeS3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("before-reset")})
	if err == nil {
		t.Error("bucket survived the reset")
	}
	wh, _ := world.AWSConfig(ctx, world.WarehouseAccount)
	if _, err := redshift.NewFromConfig(wh).DescribeClusters(ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(world.Cluster)}); err != nil {
		t.Errorf("cluster not re-seeded: %v", err)
	}
	conn, err = pgx.Connect(ctx, world.PostgresDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "select count(*) from "+world.SampleTable).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(SampleRows()) {
		t.Errorf("after reset the sample table has %d rows, want %d", n, len(SampleRows()))
	}
}

func TestSecondWorldInParallel(t *testing.T) {
	ctx := context.Background()
	w2, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second world started in %v while the first runs", w2.StartDuration.Round(time.Millisecond))
	if w2.Moto.Port == world.Moto.Port || w2.Postgres.Port == world.Postgres.Port || w2.RedshiftEndpoint == world.RedshiftEndpoint {
		t.Errorf("worlds share a port: moto %d/%d postgres %d/%d stand-in %s/%s",
			world.Moto.Port, w2.Moto.Port, world.Postgres.Port, w2.Postgres.Port, world.RedshiftEndpoint, w2.RedshiftEndpoint)
	}
	pids := []int{w2.Moto.PID(), w2.Postgres.PID()}
	dirs := []string{w2.Moto.Dir(), w2.Postgres.Dir()}
	endpoint := w2.RedshiftEndpoint

	if err := w2.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := w2.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("process %d still exists after Close", pid)
		}
	}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("directory %s still exists after Close", dir)
		}
	}
	if c, err := net.DialTimeout("tcp", endpoint, time.Second); err == nil {
		c.Close()
		t.Errorf("stand-in %s still accepts connections after Close", endpoint)
	}
	// The first world is untouched.
	if c, err := pgx.Connect(ctx, world.PostgresDSN); err != nil {
		t.Errorf("first world's database after closing the second: %v", err)
	} else {
		c.Close(ctx)
	}
}
