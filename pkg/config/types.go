package config

import "time"

// The struct tags drive decoding and the JSON Schema:
//   yaml:     the key name
//   doc:      one-line description (schema "description")
//   default:  the default, as written in YAML
//   enum:     the allowed values, separated by |
//   required: "true" when the key must always be present
//   secret:   "true" for keys whose value would be a secret: inline values are refused

// Config is a loaded, defaulted and validated xacctd configuration.
type Config struct {
	Version  int                 `yaml:"version" doc:"Configuration format version; must be 1." required:"true"`
	Defaults Defaults            `yaml:"defaults" doc:"Values that apply everywhere unless set more specifically."`
	Accounts map[string]*Account `yaml:"accounts" doc:"AWS accounts by name, and how xacctd acts in each." required:"true"`
	Clusters map[string]*Cluster `yaml:"clusters" doc:"Redshift clusters by name."`
	Buckets  map[string]*Bucket  `yaml:"buckets" doc:"S3 buckets by name."`
	Pairs    []*Pair             `yaml:"pairs" doc:"Each pair links a cluster to a bucket prefix for UNLOAD and/or COPY."`
	Jobs     []*Job              `yaml:"jobs" doc:"Scheduled UNLOAD and COPY statements."`
	State    State               `yaml:"state" doc:"Where job run history is kept."`
	HTTP     HTTP                `yaml:"http" doc:"The daemon's HTTP endpoint (health, readiness, status, metrics)."`

	// File is the path the configuration was loaded from.
	File string `yaml:"-"`
	pos  positions
}

// Defaults holds settings that apply to every resource unless overridden.
type Defaults struct {
	Region            string            `yaml:"region" doc:"AWS region of clusters and buckets that do not name one." default:"us-east-1"`
	ReconcileInterval time.Duration     `yaml:"reconcile_interval" doc:"How often the daemon compares AWS with the config and repairs drift (jittered by up to 10%)." default:"5m"`
	Tags              map[string]string `yaml:"tags" doc:"Tags added to every bucket and role xacctd creates (managed-by=xacctd is always added)."`
	ShutdownGrace     time.Duration     `yaml:"shutdown_grace" doc:"On SIGTERM, how long running jobs may finish before their queries are cancelled on the server and the runs recorded as interrupted; keep it below the unit's TimeoutStopSec." default:"60s"`
}

// Account says how xacctd reaches one AWS account.
type Account struct {
	ID             string `yaml:"id" doc:"The 12-digit account id; xacctd checks that its credentials really act in it." required:"true"`
	RoleARN        string `yaml:"role_arn" doc:"Role in this account that xacctd assumes through STS; empty uses the base credentials as they are."`
	ExternalIDEnv  string `yaml:"external_id_env" doc:"Environment variable holding the sts:ExternalId for role_arn."`
	ExternalIDFile string `yaml:"external_id_file" doc:"File holding the sts:ExternalId for role_arn (e.g. under $CREDENTIALS_DIRECTORY)."`
	ExternalID     string `yaml:"external_id" doc:"Refused: write external_id_env or external_id_file instead." secret:"true"`
	Profile        string `yaml:"profile" doc:"Shared config profile for the base credentials; empty uses the SDK's default chain."`

	Name string `yaml:"-"`
}

// Cluster is a provisioned Redshift cluster.
type Cluster struct {
	Account           string `yaml:"account" doc:"Name of the account (under accounts) that owns the cluster." required:"true"`
	Identifier        string `yaml:"identifier" doc:"The Redshift cluster identifier." required:"true"`
	Region            string `yaml:"region" doc:"Region of the cluster; defaults.region when empty."`
	Database          string `yaml:"database" doc:"Database the jobs connect to." required:"true"`
	User              string `yaml:"user" doc:"Database user the jobs connect as." required:"true"`
	Auth              string `yaml:"auth" doc:"How jobs authenticate: iam (temporary credentials from redshift:GetClusterCredentials) or password." default:"iam" enum:"iam|password"`
	PasswordEnv       string `yaml:"password_env" doc:"With auth: password, the environment variable holding the password."`
	PasswordFile      string `yaml:"password_file" doc:"With auth: password, the file holding the password (e.g. $CREDENTIALS_DIRECTORY/analytics)."`
	Password          string `yaml:"password" doc:"Refused: write password_env or password_file instead." secret:"true"`
	Endpoint          string `yaml:"endpoint" doc:"host:port to connect to; empty takes the endpoint from DescribeClusters."`
	SSLMode           string `yaml:"sslmode" doc:"TLS mode of job connections." default:"verify-full" enum:"disable|require|verify-ca|verify-full"`
	MaxConcurrentJobs int    `yaml:"max_concurrent_jobs" doc:"At most this many jobs run on the cluster at once; others wait." default:"2"`

	Name string `yaml:"-"`
}

// Bucket is an S3 bucket that pairs unload into or copy from.
type Bucket struct {
	Account               string `yaml:"account" doc:"Name of the account (under accounts) that owns the bucket." required:"true"`
	Name                  string `yaml:"name" doc:"The S3 bucket name." required:"true"`
	Region                string `yaml:"region" doc:"Region of the bucket; defaults.region when empty."`
	Create                bool   `yaml:"create" doc:"Create the bucket when it is missing. xacctd never deletes a bucket." default:"false"`
	KMSKeyARN             string `yaml:"kms_key_arn" doc:"Customer-managed KMS key for SSE-KMS default encryption; empty means SSE-S3."`
	BlockPublicAccess     *bool  `yaml:"block_public_access" doc:"Keep all four Block Public Access settings on." default:"true"`
	DenyInsecureTransport *bool  `yaml:"deny_insecure_transport" doc:"Add a statement denying requests that do not use TLS." default:"true"`

	Key string `yaml:"-"` // the name under buckets
}

// Pair links a cluster to a bucket prefix.
type Pair struct {
	Name       string      `yaml:"name" doc:"Unique name of the pair." required:"true"`
	Cluster    string      `yaml:"cluster" doc:"Name of the cluster (under clusters)." required:"true"`
	Bucket     string      `yaml:"bucket" doc:"Name of the bucket (under buckets)." required:"true"`
	Prefix     string      `yaml:"prefix" doc:"Key prefix the access is limited to; ends with /." required:"true"`
	Access     []string    `yaml:"access" doc:"What the cluster may do: unload (write) and/or copy (read)." required:"true" enum:"unload|copy"`
	Method     string      `yaml:"method" doc:"How access is granted: bucket-policy (the bucket policy names the cluster's role) or role-chaining (a second role in the bucket's account)." default:"bucket-policy" enum:"bucket-policy|role-chaining"`
	Role       Role        `yaml:"role" doc:"The role created in the cluster's account and associated with the cluster." required:"true"`
	TargetRole *TargetRole `yaml:"target_role" doc:"role-chaining only: the role created in the bucket's account that holds the S3 permissions."`
}

// Role is the IAM role in the cluster's account.
type Role struct {
	Name    string   `yaml:"name" doc:"Role name (unique per account, case-insensitively)." required:"true"`
	Path    string   `yaml:"path" doc:"IAM path of the role." default:"/xacctd/"`
	DBUsers []string `yaml:"db_users" doc:"Database users allowed to use the role (sts:ExternalId); empty lets every user of the cluster use it."`
}

// TargetRole is the second role of a role chain, in the bucket's account.
type TargetRole struct {
	Name string `yaml:"name" doc:"Role name in the bucket's account." required:"true"`
	Path string `yaml:"path" doc:"IAM path of the role." default:"/xacctd/"`
}

// Job is a scheduled UNLOAD or COPY.
type Job struct {
	Name     string        `yaml:"name" doc:"Unique name of the job." required:"true"`
	Pair     string        `yaml:"pair" doc:"Name of the pair whose access path the job uses." required:"true"`
	Schedule string        `yaml:"schedule" doc:"5-field cron expression or @hourly, @daily, @weekly, @monthly, @yearly, @every DURATION." required:"true"`
	Timezone string        `yaml:"timezone" doc:"IANA time zone the schedule and templates use." default:"UTC"`
	Enabled  *bool         `yaml:"enabled" doc:"false keeps the job configured but never scheduled." default:"true"`
	Unload   *Unload       `yaml:"unload" doc:"The UNLOAD to run (exactly one of unload and copy)."`
	Copy     *Copy         `yaml:"copy" doc:"The COPY to run (exactly one of unload and copy)."`
	Timeout  time.Duration `yaml:"timeout" doc:"Longest a run may take; the query is cancelled on the server after it." default:"1h"`
	Retries  int           `yaml:"retries" doc:"Extra attempts after a transient failure (lost connection, cluster unavailable); never for SQL or permission errors." default:"2"`
	Overlap  string        `yaml:"overlap" doc:"What happens when a run is due while the previous one still runs." default:"skip" enum:"skip|queue"`
	CatchUp  time.Duration `yaml:"catch_up" doc:"After downtime, run the latest missed occurrence if it is at most this old; 0 disables." default:"0s"`
}

// Unload is the UNLOAD statement of a job.
type Unload struct {
	Query   string        `yaml:"query" doc:"SELECT to unload (a template); quoting for UNLOAD is done by xacctd." required:"true"`
	To      string        `yaml:"to" doc:"Destination relative to the pair's prefix (a template); must stay inside the prefix." required:"true"`
	Format  string        `yaml:"format" doc:"Output format." default:"csv" enum:"csv|json|parquet"`
	Options UnloadOptions `yaml:"options" doc:"UNLOAD options (a closed list)."`
}

// UnloadOptions are the UNLOAD options xacctd renders.
type UnloadOptions struct {
	Header           bool     `yaml:"header" doc:"Write a header line (csv only)." default:"false"`
	Delimiter        string   `yaml:"delimiter" doc:"One-character field delimiter (csv only)."`
	Compression      string   `yaml:"compression" doc:"Compress output files (not with parquet)." enum:"none|gzip|bzip2|zstd" default:"none"`
	PartitionBy      []string `yaml:"partition_by" doc:"Columns to partition output by (PARTITION BY)."`
	PartitionInclude bool     `yaml:"partition_include" doc:"Keep partition columns in the files (INCLUDE); needs partition_by." default:"false"`
	Manifest         bool     `yaml:"manifest" doc:"Write a manifest listing the files." default:"false"`
	ManifestVerbose  bool     `yaml:"manifest_verbose" doc:"Write a verbose manifest; needs manifest." default:"false"`
	AllowOverwrite   bool     `yaml:"allowoverwrite" doc:"Overwrite existing files (not with cleanpath)." default:"false"`
	CleanPath        bool     `yaml:"cleanpath" doc:"Delete existing files under the destination first (grants s3:DeleteObject; not with allowoverwrite)." default:"false"`
	Parallel         *bool    `yaml:"parallel" doc:"Write one file per slice (true) or a single series of files (false)." default:"true"`
	MaxFileSize      string   `yaml:"maxfilesize" doc:"Largest file, 5MB to 6.2GB, e.g. 256MB or 1GB."`
	RowGroupSize     string   `yaml:"rowgroupsize" doc:"Parquet row group size, 32MB to 128MB (parquet only)."`
	Encrypted        bool     `yaml:"encrypted" doc:"Encrypt the files with SSE-KMS (ENCRYPTED); implied by kms_key_id." default:"false"`
	KMSKeyID         string   `yaml:"kms_key_id" doc:"KMS key ARN for ENCRYPTED output; UNLOAD ignores the bucket's default key without it."`
	NullAs           *string  `yaml:"null_as" doc:"Text written for NULL (csv only)."`
	Extension        string   `yaml:"extension" doc:"File name extension to add, e.g. csv."`
}

// Copy is the COPY statement of a job.
type Copy struct {
	Table   string      `yaml:"table" doc:"Target table, table or schema.table." required:"true"`
	Columns []string    `yaml:"columns" doc:"Column list, in the files' order; empty loads all columns in table order."`
	From    string      `yaml:"from" doc:"Source key prefix relative to the pair's prefix (a template); everything under it loads." required:"true"`
	Format  string      `yaml:"format" doc:"Input format (json means JSON 'auto')." default:"csv" enum:"csv|json|parquet"`
	Options CopyOptions `yaml:"options" doc:"COPY options (a closed list)."`
}

// CopyOptions are the COPY options xacctd renders.
type CopyOptions struct {
	IgnoreHeader    int     `yaml:"ignoreheader" doc:"Lines to skip at the top of each file (csv only)." default:"0"`
	Delimiter       string  `yaml:"delimiter" doc:"One-character field delimiter (csv only)."`
	Compression     string  `yaml:"compression" doc:"Input compression (not with parquet)." enum:"none|gzip|bzip2|zstd" default:"none"`
	Manifest        bool    `yaml:"manifest" doc:"from names a manifest file instead of a prefix." default:"false"`
	DateFormat      string  `yaml:"dateformat" doc:"DATEFORMAT, e.g. YYYY-MM-DD or auto."`
	TimeFormat      string  `yaml:"timeformat" doc:"TIMEFORMAT, e.g. auto or epochsecs."`
	MaxError        int     `yaml:"maxerror" doc:"Rows that may fail before the COPY fails." default:"0"`
	EmptyAsNull     bool    `yaml:"emptyasnull" doc:"Load empty CHAR/VARCHAR fields as NULL (not with parquet)." default:"false"`
	BlanksAsNull    bool    `yaml:"blanksasnull" doc:"Load blank CHAR/VARCHAR fields as NULL (not with parquet)." default:"false"`
	NullAs          *string `yaml:"null_as" doc:"Text that means NULL (csv only)."`
	TruncateColumns bool    `yaml:"truncatecolumns" doc:"Truncate strings longer than the column (not with parquet)." default:"false"`
}

// State configures the run-history store.
type State struct {
	Backend       string        `yaml:"backend" doc:"file (one host) or postgres (shared by several hosts)." default:"file" enum:"file|postgres"`
	Dir           string        `yaml:"dir" doc:"file backend: directory; default $STATE_DIRECTORY, else /var/lib/xacctd."`
	DSNEnv        string        `yaml:"dsn_env" doc:"postgres backend: environment variable holding the DSN."`
	DSNFile       string        `yaml:"dsn_file" doc:"postgres backend: file holding the DSN."`
	DSN           string        `yaml:"dsn" doc:"Refused: a DSN carries a password; write dsn_env or dsn_file instead." secret:"true"`
	Retention     time.Duration `yaml:"retention" doc:"Runs older than this are dropped from history." default:"2160h"`
	MaxRunsPerJob int           `yaml:"max_runs_per_job" doc:"At most this many runs are kept per job." default:"1000"`
}

// HTTP configures the daemon's HTTP endpoint.
type HTTP struct {
	Listen string `yaml:"listen" doc:"host:port for /healthz /readyz /status /metrics; keep it on loopback unless a proxy guards it." default:"127.0.0.1:9464"`
}
