package jobrun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/xacctd/xacctd/pkg/config"
)

// DefaultPort is Redshift's port.
const DefaultPort = 5439

// Session is an open database session on a cluster.
type Session interface {
	// Exec sends sql as one simple-protocol query with no arguments.
	Exec(ctx context.Context, sql string) (Result, error)
	Close(ctx context.Context) error
}

// Result is what a statement reported.
type Result struct {
	Tag  string
	Rows *int64 // rows loaded (COPY) or unloaded (UNLOAD's INFO line), when known
}

// Connector opens sessions to clusters.
type Connector interface {
	Connect(ctx context.Context, cluster *config.Cluster) (Session, error)
}

// RedshiftAPI is the part of the Redshift API the connector uses.
type RedshiftAPI interface {
	DescribeClusters(ctx context.Context, in *redshift.DescribeClustersInput, opts ...func(*redshift.Options)) (*redshift.DescribeClustersOutput, error)
	GetClusterCredentials(ctx context.Context, in *redshift.GetClusterCredentialsInput, opts ...func(*redshift.Options)) (*redshift.GetClusterCredentialsOutput, error)
}

// PgxConnector connects with pgx: endpoint from DescribeClusters unless configured, TLS per
// sslmode, a password from the configured secret or temporary credentials from
// GetClusterCredentials, and cancellation that reaches the server.
type PgxConnector struct {
	// Redshift returns a client acting in the cluster's account and region.
	Redshift func(ctx context.Context, account, region string) (RedshiftAPI, error)
	// CredentialSeconds is the lifetime asked of GetClusterCredentials (900–3600; default 900).
	CredentialSeconds int32
	// ConnectTimeout bounds connecting (default 30s).
	ConnectTimeout time.Duration
}

// Connect opens a session on cluster.
func (c *PgxConnector) Connect(ctx context.Context, cl *config.Cluster) (Session, error) {
	host, port, err := c.endpoint(ctx, cl)
	if err != nil {
		return nil, err
	}
	user, password, err := c.credentials(ctx, cl)
	if err != nil {
		return nil, err
	}
	// Host, port, database and sslmode go through pgx's parser (it builds the TLS config);
	// the password is set on the parsed config so that it never sits in a string that could
	// be logged.
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s sslmode=%s application_name=xacctd",
		quoteDSN(host), port, quoteDSN(cl.Database), cl.SSLMode)
	if cl.SSLMode == "verify-full" || cl.SSLMode == "verify-ca" {
		// pgx would otherwise look for ~/.postgresql/root.crt: the system roots hold
		// Redshift's CA (Amazon Trust Services).
		dsn += " sslrootcert=system"
	}
	pcfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, &Failure{Class: ClassConfig, Message: fmt.Sprintf("connection settings of cluster %s: %v", cl.Name, err), Err: err}
	}
	pcfg.User = user
	pcfg.Password = password
	pcfg.ConnectTimeout = c.ConnectTimeout
	if pcfg.ConnectTimeout == 0 {
		pcfg.ConnectTimeout = 30 * time.Second
	}
	s := &pgxSession{password: password}
	pcfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { s.notice(n.Message) }
	// A cancelled context sends a CancelRequest, so the query stops on the server too; the
	// socket deadline after it only guards against a server that never answers.
	pcfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, CancelRequestDelay: 0, DeadlineDelay: 15 * time.Second}
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return nil, s.scrub(err)
	}
	s.conn = conn
	return s, nil
}

func (c *PgxConnector) endpoint(ctx context.Context, cl *config.Cluster) (string, int, error) {
	if cl.Endpoint != "" {
		host, portStr, err := net.SplitHostPort(cl.Endpoint)
		if err != nil {
			return cl.Endpoint, DefaultPort, nil // validated as host or host:port
		}
		port, _ := strconv.Atoi(portStr)
		return host, port, nil
	}
	api, err := c.Redshift(ctx, cl.Account, cl.Region)
	if err != nil {
		return "", 0, &Failure{Class: ClassAuth, Message: fmt.Sprintf("credentials for account %s: %v", cl.Account, err), Err: err}
	}
	out, err := api.DescribeClusters(ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(cl.Identifier)})
	if err != nil {
		return "", 0, Classify(fmt.Errorf("describe cluster %s: %w", cl.Identifier, err))
	}
	if len(out.Clusters) == 0 {
		return "", 0, &Failure{Class: ClassConfig, Message: "cluster " + cl.Identifier + " not found"}
	}
	rc := out.Clusters[0]
	if status := aws.ToString(rc.ClusterStatus); status != "available" {
		return "", 0, unavailable(cl.Name, status)
	}
	if rc.Endpoint == nil || aws.ToString(rc.Endpoint.Address) == "" {
		return "", 0, unavailable(cl.Name, "without an endpoint")
	}
	port := int(aws.ToInt32(rc.Endpoint.Port))
	if port == 0 {
		port = DefaultPort
	}
	return aws.ToString(rc.Endpoint.Address), port, nil
}

func (c *PgxConnector) credentials(ctx context.Context, cl *config.Cluster) (user, password string, err error) {
	if cl.Auth == "password" {
		secret, err := cl.PasswordSecret()
		if err != nil {
			return "", "", &Failure{Class: ClassAuth, Message: fmt.Sprintf("password of cluster %s: %v", cl.Name, err), Err: err,
				Hint: "set the environment variable or file named by password_env/password_file (EnvironmentFile= or LoadCredential= in the unit)"}
		}
		return cl.User, secret.Reveal(), nil
	}
	api, err := c.Redshift(ctx, cl.Account, cl.Region)
	if err != nil {
		return "", "", &Failure{Class: ClassAuth, Message: fmt.Sprintf("credentials for account %s: %v", cl.Account, err), Err: err}
	}
	secs := c.CredentialSeconds
	if secs == 0 {
		secs = 900
	}
	out, err := api.GetClusterCredentials(ctx, &redshift.GetClusterCredentialsInput{
		ClusterIdentifier: aws.String(cl.Identifier),
		DbUser:            aws.String(cl.User),
		DbName:            aws.String(cl.Database),
		DurationSeconds:   aws.Int32(secs),
		AutoCreate:        aws.Bool(false),
	})
	if err != nil {
		f := Classify(fmt.Errorf("get cluster credentials for %s on %s: %w", cl.User, cl.Identifier, err))
		if f.Class == ClassConfig {
			f.Class = ClassAuth
		}
		return "", "", f
	}
	return aws.ToString(out.DbUser), aws.ToString(out.DbPassword), nil
}

// quoteDSN quotes a value for a key=value connection string.
func quoteDSN(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

type pgxSession struct {
	conn     *pgx.Conn
	password string

	mu      sync.Mutex
	notices []string
}

var unloadedRe = regexp.MustCompile(`UNLOAD completed, (\d+) record`)

func (s *pgxSession) notice(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.notices) < 100 {
		s.notices = append(s.notices, msg)
	}
}

func (s *pgxSession) Exec(ctx context.Context, sql string) (Result, error) {
	s.mu.Lock()
	s.notices = nil
	s.mu.Unlock()
	tag, err := s.conn.Exec(ctx, sql) // no arguments: the simple protocol, as Redshift needs
	if err != nil {
		return Result{}, s.scrub(err)
	}
	res := Result{Tag: tag.String()}
	if tag.Insert() || tag.Update() || tag.Delete() || tag.Select() || strings.HasPrefix(tag.String(), "COPY") {
		n := tag.RowsAffected()
		res.Rows = &n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.notices {
		if sm := unloadedRe.FindStringSubmatch(m); sm != nil {
			if n, err := strconv.ParseInt(sm[1], 10, 64); err == nil {
				res.Rows = &n
			}
		}
	}
	return res, nil
}

func (s *pgxSession) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.conn.Close(ctx)
}

// scrub makes sure no error text carries the password (defence in depth: pgx does not put
// it in its messages).
func (s *pgxSession) scrub(err error) error {
	if s.password == "" || err == nil || !strings.Contains(err.Error(), s.password) {
		return err
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), s.password, "[redacted]"), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }

// Unwrap keeps classification (PgError, net errors) working; the wrapped error's own text
// is never printed by xacctd, only Failure.Message taken from typed fields or this text.
func (e *scrubbed) Unwrap() error { return e.err }

var _ = errors.New
