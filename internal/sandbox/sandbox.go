// Package sandbox starts the local two-account world that xacctd's tests and
// demo run against: moto (with the xacctd extension) for IAM, STS, S3 and
// Redshift's control plane, a throwaway PostgreSQL, and the Redshift stand-in
// in front of it. Nothing reaches AWS.
//
// The world has two accounts, each with an admin role that xacctd assumes
// (its normal role_arn path), a Redshift cluster in the warehouse account, a
// database user with a password, and a sample table.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"

	"github.com/xacctd/xacctd/internal/redshiftsim"
	"github.com/xacctd/xacctd/internal/sandbox/moto"
	"github.com/xacctd/xacctd/internal/sandbox/postgres"
)

// The world's fixed names. Ports and secrets differ per world.
const (
	Region           = "us-east-1"
	WarehouseAccount = "111111111111"
	LakeAccount      = "222222222222"
	AdminRoleName    = "xacctd-admin"
	ClusterID        = "analytics"
	DatabaseName     = "analytics"
	DBUserName       = "etl_loader"
	SampleTableName  = "sales.orders"

	// Base credentials: moto needs signed requests but checks no secret.
	// They act in moto's default account 123456789012, which the sandbox does
	// not use; everything happens through the admin roles.
	BaseAccessKeyID     = "AKIAXACCTDSANDBOX000"
	BaseSecretAccessKey = "xacctd-sandbox-not-a-secret"
	baseAccount         = "123456789012"
)

// Options configures Start.
type Options struct {
	// RoleDelay is how long cluster role associations stay adding/removing
	// (moto.Options.RoleDelay: zero means 2s, negative means at once).
	RoleDelay time.Duration
	// Logf receives the components' logs; nil discards them.
	Logf func(string, ...any)
}

// World is a running sandbox. Close it when done.
type World struct {
	Moto     *moto.Server
	Postgres *postgres.Server
	Redshift *redshiftsim.Server

	Region                        string
	WarehouseAccount, LakeAccount string
	WarehouseRoleARN, LakeRoleARN string // admin roles xacctd assumes (role_arn)
	Cluster, Database             string
	DBUser, DBPassword            string
	RedshiftEndpoint              string // host:port of the stand-in
	PostgresDSN                   string // superuser DSN of the database behind the stand-in
	SampleTable                   string // schema.table with sample rows

	// StartDuration is how long Start took.
	StartDuration time.Duration

	opts     Options
	listener net.Listener // the stand-in's; closed by Close as well, in case Serve had not taken it yet
	serveErr chan error   // the stand-in's Serve result

	mu     sync.Mutex
	caches []*aws.CredentialsCache // handed out by AWSConfig; invalidated by Reset
}

// Start brings up moto, PostgreSQL and the Redshift stand-in on loopback,
// seeds both accounts, the cluster, the database user and the sample table.
func Start(ctx context.Context, opts Options) (*World, error) {
	began := time.Now()
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	w := &World{
		Region:           Region,
		WarehouseAccount: WarehouseAccount,
		LakeAccount:      LakeAccount,
		WarehouseRoleARN: adminRoleARN(WarehouseAccount),
		LakeRoleARN:      adminRoleARN(LakeAccount),
		Cluster:          ClusterID,
		Database:         DatabaseName,
		DBUser:           DBUserName,
		DBPassword:       randomPassword(),
		SampleTable:      SampleTableName,
		opts:             opts,
	}

	// moto (+ AWS seeding) and PostgreSQL (+ database seeding) are
	// independent: start them side by side. Each branch owns what it starts
	// and the World keeps it so Close can stop it even on failure.
	var wg sync.WaitGroup
	var motoErr, pgErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		m, err := moto.Start(ctx, moto.Options{RoleDelay: opts.RoleDelay, Logf: opts.Logf})
		if err != nil {
			motoErr = err
			return
		}
		w.Moto = m
		if err := w.seedAWS(ctx); err != nil {
			motoErr = err
		}
	}()
	go func() {
		defer wg.Done()
		p, err := postgres.Start(ctx, postgres.Options{Logf: opts.Logf})
		if err != nil {
			pgErr = err
			return
		}
		w.Postgres = p
		if err := w.createDBUser(ctx); err != nil {
			pgErr = err
			return
		}
		if err := w.seedDatabase(ctx); err != nil {
			pgErr = err
		}
	}()
	wg.Wait()
	if err := errors.Join(motoErr, pgErr); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	if err := w.startRedshift(); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	w.StartDuration = time.Since(began)
	return w, nil
}

func (w *World) startRedshift() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the redshift stand-in: %w", err)
	}
	rs, err := redshiftsim.New(redshiftsim.Config{
		PostgresDSN:         w.PostgresDSN,
		AWSEndpoint:         w.Moto.URL,
		Region:              w.Region,
		ClusterIdentifier:   w.Cluster,
		ClusterAccount:      w.WarehouseAccount,
		ClusterAdminRoleARN: w.WarehouseRoleARN,
		Logger:              w.logger(),
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("create the redshift stand-in: %w", err)
	}
	w.Redshift, w.listener = rs, ln
	w.serveErr = make(chan error, 1)
	go func() { w.serveErr <- rs.Serve(ln) }()
	w.RedshiftEndpoint = ln.Addr().String()
	return nil
}

// logger adapts Options.Logf for the stand-in.
func (w *World) logger() *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = ""
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(logfWriter(w.opts.Logf)), zap.InfoLevel)
	return zap.New(core).Named("redshiftsim")
}

type logfWriter func(string, ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Env returns the environment the sandbox gives xacctd and other tools: AWS
// endpoint and dummy base credentials, and the world's names and secrets.
func (w *World) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL":      w.Moto.URL,
		"AWS_ACCESS_KEY_ID":     BaseAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": BaseSecretAccessKey,
		"AWS_REGION":            w.Region,
		"AWS_DEFAULT_REGION":    w.Region,
		// No instance metadata on loopback: skip the SDK's IMDS probes.
		"AWS_EC2_METADATA_DISABLED": "true",

		"XACCTD_SANDBOX_MOTO_URL":           w.Moto.URL,
		"XACCTD_SANDBOX_WAREHOUSE_ACCOUNT":  w.WarehouseAccount,
		"XACCTD_SANDBOX_WAREHOUSE_ROLE_ARN": w.WarehouseRoleARN,
		"XACCTD_SANDBOX_LAKE_ACCOUNT":       w.LakeAccount,
		"XACCTD_SANDBOX_LAKE_ROLE_ARN":      w.LakeRoleARN,
		"XACCTD_SANDBOX_CLUSTER":            w.Cluster,
		"XACCTD_SANDBOX_DB_USER":            w.DBUser,
		"XACCTD_SANDBOX_DB_PASSWORD":        w.DBPassword,
		"XACCTD_SANDBOX_DATABASE":           w.Database,
		"XACCTD_SANDBOX_REDSHIFT_ENDPOINT":  w.RedshiftEndpoint,
		"XACCTD_SANDBOX_POSTGRES_DSN":       w.PostgresDSN,
		"XACCTD_SANDBOX_SAMPLE_TABLE":       w.SampleTable,
		// S3 through moto must be path style (http://host:port/bucket/key).
		"XACCTD_SANDBOX_S3_PATH_STYLE": "true",
	}
}

// AWSConfig returns an SDK config acting in account (WarehouseAccount or
// LakeAccount) through its admin role, against moto. S3 clients made from it
// must use path-style addressing: use S3Client, or set
// s3.Options.UsePathStyle yourself. Reset invalidates the credentials, so a
// config stays usable across resets.
func (w *World) AWSConfig(ctx context.Context, account string) (aws.Config, error) {
	var role string
	switch account {
	case w.WarehouseAccount:
		role = w.WarehouseRoleARN
	case w.LakeAccount:
		role = w.LakeRoleARN
	default:
		return aws.Config{}, fmt.Errorf("aws config: account %q is not in the sandbox (use %s or %s)", account, w.WarehouseAccount, w.LakeAccount)
	}
	cfg := w.BaseConfig()
	cache := aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), role,
		func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "xacctd-sandbox" }))
	// Fail now, not at the first call, if the role cannot be assumed.
	if _, err := cache.Retrieve(ctx); err != nil {
		return aws.Config{}, fmt.Errorf("aws config: assume %s: %w", role, err)
	}
	w.mu.Lock()
	w.caches = append(w.caches, cache)
	w.mu.Unlock()
	cfg.Credentials = cache
	return cfg, nil
}

// BaseConfig returns an SDK config with the dummy base credentials (moto's
// default account, not part of the world) and moto as endpoint.
func (w *World) BaseConfig() aws.Config {
	return aws.Config{
		Region:       w.Region,
		BaseEndpoint: aws.String(w.Moto.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(BaseAccessKeyID, BaseSecretAccessKey, ""),
	}
}

// S3Client returns a path-style S3 client acting in account.
func (w *World) S3Client(ctx context.Context, account string) (*s3.Client, error) {
	cfg, err := w.AWSConfig(ctx, account)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }), nil
}

// Reset returns the world to its state right after Start: moto wiped and
// reseeded (accounts, admin roles, cluster; role delay re-applied), a fresh
// database with the sample table. STS sessions survive a moto reset (the
// extension keeps them), so clients built earlier keep acting in their
// accounts; the credentials from AWSConfig are re-assumed anyway, so they
// also work against a plain moto, where old sessions would silently act in
// moto's default account.
func (w *World) Reset(ctx context.Context) error {
	var wg sync.WaitGroup
	var awsErr, dbErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		if awsErr = w.Moto.Reset(ctx); awsErr != nil {
			return
		}
		w.mu.Lock()
		for _, c := range w.caches {
			c.Invalidate()
		}
		w.mu.Unlock()
		awsErr = w.seedAWS(ctx)
	}()
	go func() {
		defer wg.Done()
		dbErr = w.seedDatabase(ctx)
	}()
	wg.Wait()
	if err := errors.Join(awsErr, dbErr); err != nil {
		return fmt.Errorf("reset sandbox: %w", err)
	}
	return nil
}

// Close stops the stand-in, moto and PostgreSQL and removes their files. It
// is safe to call more than once and on a partly started world.
func (w *World) Close() error {
	var errs []error
	if w.Redshift != nil {
		if err := w.Redshift.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop redshift stand-in: %w", err))
		}
		_ = w.listener.Close()
		if w.serveErr != nil {
			select {
			case <-w.serveErr:
			case <-time.After(10 * time.Second):
				errs = append(errs, errors.New("stop redshift stand-in: Serve did not return within 10s"))
			}
			w.serveErr = nil
		}
		w.Redshift = nil
	}
	if w.Moto != nil {
		if err := w.Moto.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if w.Postgres != nil {
		if err := w.Postgres.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ConfigFragment returns the accounts and clusters sections of an xacctd
// config for this world (design.md §3). The password comes from
// XACCTD_SANDBOX_DB_PASSWORD, which Env provides.
func (w *World) ConfigFragment() string {
	type account struct {
		ID      string `yaml:"id"`
		RoleARN string `yaml:"role_arn"`
	}
	type cluster struct {
		Account     string `yaml:"account"`
		Identifier  string `yaml:"identifier"`
		Region      string `yaml:"region"`
		Database    string `yaml:"database"`
		User        string `yaml:"user"`
		Auth        string `yaml:"auth"`
		PasswordEnv string `yaml:"password_env"`
		Endpoint    string `yaml:"endpoint"`
		SSLMode     string `yaml:"sslmode"`
	}
	// Structs keep the keys in the documented order; yaml.v3 quotes the
	// account ids so they stay strings.
	doc := struct {
		Accounts struct {
			Warehouse account `yaml:"warehouse"`
			Lake      account `yaml:"lake"`
		} `yaml:"accounts"`
		Clusters map[string]cluster `yaml:"clusters"`
	}{}
	doc.Accounts.Warehouse = account{ID: w.WarehouseAccount, RoleARN: w.WarehouseRoleARN}
	doc.Accounts.Lake = account{ID: w.LakeAccount, RoleARN: w.LakeRoleARN}
	doc.Clusters = map[string]cluster{w.Cluster: {
		Account: "warehouse", Identifier: w.Cluster, Region: w.Region,
		Database: w.Database, User: w.DBUser, Auth: "password",
		PasswordEnv: "XACCTD_SANDBOX_DB_PASSWORD", Endpoint: w.RedshiftEndpoint, SSLMode: "disable",
	}}
	var b strings.Builder
	b.WriteString("# xacctd sandbox: accounts and clusters of the local world (moto at " + w.Moto.URL + ").\n" +
		"# The cluster's endpoint is the Redshift stand-in; its password is in XACCTD_SANDBOX_DB_PASSWORD.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		panic(fmt.Sprintf("marshal sandbox config fragment: %v", err)) // plain structs of strings
	}
	_ = enc.Close()
	return b.String()
}

func adminRoleARN(account string) string {
	return "arn:aws:iam::" + account + ":role/" + AdminRoleName
}
