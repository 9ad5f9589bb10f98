package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/jackc/pgx/v5"
)

// adminTrust lets the base credentials (moto's default account) assume the
// admin roles, as an operator's own account would in real AWS.
const adminTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + baseAccount + `:root"},"Action":"sts:AssumeRole"}]}`

const adminPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`

// seedAWS creates the admin role of each account and the warehouse cluster.
// Calls go one after another: moto serialises them anyway.
func (w *World) seedAWS(ctx context.Context) error {
	base := w.BaseConfig()
	stsc := sts.NewFromConfig(base)
	for _, account := range []string{w.WarehouseAccount, w.LakeAccount} {
		role := adminRoleARN(account)
		// moto's STS lets anyone assume a role that does not exist yet, and
		// the session acts in the role's account: that is how an account is
		// entered at all.
		out, err := stsc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String("xacctd-sandbox-seed")})
		if err != nil {
			return fmt.Errorf("seed account %s: assume %s: %w", account, role, err)
		}
		cfg := base.Copy()
		c := out.Credentials
		cfg.Credentials = credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken)
		iamc := iam.NewFromConfig(cfg)
		if _, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{
			RoleName:                 aws.String(AdminRoleName),
			AssumeRolePolicyDocument: aws.String(adminTrust),
			Description:              aws.String("xacctd sandbox: the role xacctd assumes in this account"),
		}); err != nil {
			return fmt.Errorf("seed account %s: create role %s: %w", account, AdminRoleName, err)
		}
		if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{
			RoleName: aws.String(AdminRoleName), PolicyName: aws.String("admin"), PolicyDocument: aws.String(adminPolicy),
		}); err != nil {
			return fmt.Errorf("seed account %s: put admin policy: %w", account, err)
		}
		if account != w.WarehouseAccount {
			continue
		}
		if _, err := redshift.NewFromConfig(cfg).CreateCluster(ctx, &redshift.CreateClusterInput{
			ClusterIdentifier:  aws.String(w.Cluster),
			NodeType:           aws.String("ra3.xlplus"),
			NumberOfNodes:      aws.Int32(2),
			ClusterType:        aws.String("multi-node"),
			MasterUsername:     aws.String("awsuser"),
			MasterUserPassword: aws.String("Sandbox1" + randomPassword()[:8]),
			DBName:             aws.String(w.Database),
			Port:               aws.Int32(5439),
		}); err != nil {
			return fmt.Errorf("seed account %s: create cluster %s: %w", account, w.Cluster, err)
		}
	}
	return nil
}

// createDBUser creates the login role jobs connect as. Roles are global to
// the PostgreSQL server, so this happens once per world, not on Reset.
func (w *World) createDBUser(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, w.Postgres.DSN)
	if err != nil {
		return fmt.Errorf("create database user: %w", err)
	}
	defer conn.Close(ctx)
	sql := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", pgx.Identifier{w.DBUser}.Sanitize(), quoteLiteral(w.DBPassword))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("create database user %s: %w", w.DBUser, err)
	}
	return nil
}

// seedDatabase (re)creates the database behind the cluster, owned by the
// database user, with the sample table.
func (w *World) seedDatabase(ctx context.Context) error {
	if err := w.Postgres.DropDatabase(ctx, w.Database); err != nil {
		return fmt.Errorf("seed database: %w", err)
	}
	dsn, err := w.Postgres.CreateDatabase(ctx, w.Database)
	if err != nil {
		return fmt.Errorf("seed database: %w", err)
	}
	w.PostgresDSN = dsn
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("seed database: %w", err)
	}
	defer conn.Close(ctx)
	schema, table, _ := strings.Cut(w.SampleTable, ".")
	user := pgx.Identifier{w.DBUser}.Sanitize()
	qualified := pgx.Identifier{schema, table}.Sanitize()
	ddl := []string{
		fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", pgx.Identifier{w.Database}.Sanitize(), user),
		fmt.Sprintf("CREATE SCHEMA %s AUTHORIZATION %s", pgx.Identifier{schema}.Sanitize(), user),
		fmt.Sprintf(`CREATE TABLE %s (
			order_id   integer PRIMARY KEY,
			customer   text NOT NULL,
			order_date date NOT NULL,
			amount     numeric(12,2),
			status     text NOT NULL,
			note       text
		)`, qualified),
		fmt.Sprintf("ALTER TABLE %s OWNER TO %s", qualified, user),
	}
	for _, sql := range ddl {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("seed database: %s: %w", firstLine(sql), err)
		}
	}
	// Dates and amounts travel as text and are cast by the server, so the
	// rows stay readable here.
	insert := fmt.Sprintf("INSERT INTO %s (order_id, customer, order_date, amount, status, note) VALUES ($1, $2, $3::text::date, $4::text::numeric, $5, $6)", qualified)
	batch := &pgx.Batch{}
	for _, r := range sampleRows {
		batch.Queue(insert, r.ID, r.Customer, r.Date, r.Amount, r.Status, r.Note)
	}
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("seed database: insert sample rows: %w", err)
	}
	return nil
}

// SampleRow is one row of the sample table.
type SampleRow struct {
	ID       int32
	Customer string
	Date     string  // YYYY-MM-DD
	Amount   *string // numeric as text; nil is NULL
	Status   string
	Note     *string // nil is NULL
}

func str(s string) *string { return &s }

// sampleRows are chosen to break naive UNLOAD/COPY handling: quotes,
// backslashes, delimiters, newlines, NULLs and non-ASCII text.
var sampleRows = []SampleRow{
	{1, "Acme Corp", "2026-03-01", str("120.50"), "shipped", nil},
	{2, "O'Brien & Sons", "2026-03-01", str("75.00"), "shipped", str("customer's \"rush\" order")},
	{3, `Back\slash Ltd`, "2026-03-02", str("9.99"), "pending", str(`path C:\exports\new`)},
	{4, "Zoë Müller", "2026-03-02", str("1000.00"), "shipped", str("Grüße aus Köln")},
	{5, "東京商事", "2026-03-03", str("4321.10"), "cancelled", str("日本語のメモ")},
	{6, "Comma, Inc.", "2026-03-03", str("15.25"), "shipped", str("a,b,c")},
	{7, "Pipe|Works", "2026-03-04", nil, "pending", str("amount unknown")},
	{8, "Multi Line LLC", "2026-03-04", str("60.00"), "shipped", str("line one\nline two")},
	{9, "Tab\tSeparated", "2026-03-05", str("0.00"), "refunded", nil},
	{10, "Rocket 🚀 Labs", "2026-03-05", str("999999.99"), "shipped", str("emoji 🚀✨")},
	{11, "''Doubled'' Quotes", "2026-03-06", str("12.00"), "shipped", str("''")},
	{12, "Trailing Space ", "2026-03-06", str("33.33"), "pending", str(" leading space")},
	{13, "NULL", "2026-03-07", str("1.00"), "shipped", str("NULL")},
	{14, "Empty Note Co", "2026-03-07", str("2.00"), "shipped", str("")},
	{15, "Négociant Élan", "2026-03-08", str("-5.00"), "refunded", str("negative amount")},
	{16, "Semi;Colon", "2026-03-08", str("44.40"), "shipped", str("DROP TABLE x; --")},
	{17, `Quote"Double`, "2026-03-09", str("7.77"), "pending", str(`she said "hi"`)},
	{18, "Ελληνικά Α.Ε.", "2026-03-09", str("88.80"), "shipped", nil},
	{19, "Percent % Under_score", "2026-03-10", str("100.00"), "shipped", str("50% off_today")},
	{20, `Both '\ Mixed`, "2026-03-10", str("3.14"), "shipped", str(`it's a \'test\'`)},
}

// SampleRows returns the rows seeded into the sample table.
func SampleRows() []SampleRow { return append([]SampleRow(nil), sampleRows...) }

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
