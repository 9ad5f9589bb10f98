package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite docs/config.schema.json from the Go model")

const examplePath = "../../examples/config.yaml"

// want is one expected problem: position, key path, and a prefix of the message.
type want struct {
	pos, path, msg string
}

// badFixtures lists, for every testdata/*.bad.yml, exactly the problems Load must report,
// in order. Each file covers one family of rules.
var badFixtures = map[string][]want{
	"policy-size.bad.yml": {
		{"36:5", "pairs[25]", "the pairs on bucket \"b\" up to this one need 2"},
	},
	"edgecases.bad.yml": {
		{"5:10", "defaults.tags.", "tag keys must not be empty"},
		{"7:27", "accounts.a.external_id_file", "an external id is only used when assuming role_arn: set role"},
		{"13:5", "pairs[0]", "is empty: a pair needs name, cluster, bucket, prefix, access"},
		{"16:25", "jobs[0].schedule", "\"@every 10s\" is too frequent: @every needs at least 1m"},
		{"17:45", "jobs[1].copy.from", "is required: the source relative to the pair's prefix, such "},
		{"18:16", "jobs[2].pair", "there is no pair named \"nothere\""},
	},
	"access.bad.yml": {
		{"11:53", "pairs[2].access", "is required: list unload, copy or both"},
		{"13:52", "jobs[0].unload", "pair \"readonly\" does not grant unload access (access: [copy]"},
		{"14:53", "jobs[1].copy", "pair \"writeonly\" does not grant copy access (access: [unload"},
		{"15:5", "jobs[2]", "needs an unload or a copy section"},
	},
	"duplicates.bad.yml": {
		{"4:16", "accounts.warehouse2.id", "account id 111111111111 is also account \"warehouse\": give ea"},
		{"8:27", "clusters.b.identifier", "cluster \"a\" in the same account and region is also prod"},
		{"11:24", "buckets.two.name", "bucket \"one\" is also same-bucket: bucket names are global, g"},
		{"17:22", "pairs[0].access[1]", "\"unload\" is listed twice"},
		{"18:40", "pairs[0].role.db_users[1]", "\"u\" is listed twice"},
		{"19:5", "pairs[1].name", "pair \"p\" is already defined at pairs[0]: pair names must be "},
		{"24:12", "pairs[1].role.name", "role \"shared\" is also used by pair \"p\" in account \"warehouse"},
		{"31:5", "pairs[3].name", "pairs \"a-b\" and \"a_b\" on bucket \"two\" would share the bucket"},
		{"41:5", "jobs[0].schedule", "\"schedule\" is given twice (first at line 40); keep one"},
		{"43:5", "jobs[1].name", "job \"j\" is already defined at jobs[0]: job names must be uni"},
	},
	"empty.bad.yml": {
		{"1:1", "", "the file is empty: it needs at least version: 1 and accounts"},
	},
	"formats.bad.yml": {
		{"17:7", "jobs[0].unload.format", "\"avro\" is not allowed here: use one of csv, json, parquet"},
		{"18:17", "jobs[0].unload.options.cleanpath", "cleanpath and allowoverwrite cannot be used together: cleanp"},
		{"18:56", "jobs[0].unload.options.compression", "\"lzo\" is not allowed here: use one of none, gzip, bzip2, zst"},
		{"26:17", "jobs[1].unload.options.header", "header cannot be used with format: parquet"},
		{"26:31", "jobs[1].unload.options.delimiter", "delimiter cannot be used with format: parquet"},
		{"26:47", "jobs[1].unload.options.compression", "compression cannot be used with format: parquet"},
		{"26:66", "jobs[1].unload.options.null_as", "null_as cannot be used with format: parquet"},
		{"34:17", "jobs[2].unload.options.header", "header cannot be used with format: json"},
		{"34:31", "jobs[2].unload.options.rowgroupsize", "rowgroupsize cannot be used with format: json"},
		{"34:51", "jobs[2].unload.options.maxfilesize", "1MB is out of range: Redshift accepts 5MB to 6.2GB"},
		{"34:69", "jobs[2].unload.options.manifest_verbose", "needs manifest: true"},
		{"34:93", "jobs[2].unload.options.partition_include", "needs partition_by"},
		{"34:118", "jobs[2].unload.options.delimiter", "delimiter cannot be used with format: json"},
		{"34:118", "jobs[2].unload.options.delimiter", "\"ab\" is not a delimiter: give one character other than a quo"},
		{"39:7", "jobs[3].unload.query", "remove the trailing semicolon: the query is quoted inside UN"},
		{"41:17", "jobs[3].unload.options.maxfilesize", "\"10 TB\" is not a size: write a number with MB or GB, such as"},
		{"41:37", "jobs[3].unload.options.kms_key_id", "\"key-123\" is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:k"},
		{"41:60", "jobs[3].unload.options.extension", "\".csv\" is not a file extension: up to 16 letters, digits, . "},
		{"41:94", "jobs[3].unload.options.partition_by[0]", "\"bad col\" is not a column name"},
		{"46:7", "jobs[4].copy.table", "\"bad table\" is not a table name: use table or schema.table w"},
		{"47:20", "jobs[4].copy.columns[1]", "column \"A\" is listed twice"},
		{"47:23", "jobs[4].copy.columns[2]", "\"b-c\" is not a column name"},
		{"50:17", "jobs[4].copy.options.ignoreheader", "ignoreheader cannot be used with format: parquet"},
		{"50:34", "jobs[4].copy.options.compression", "compression cannot be used with format: parquet"},
		{"50:53", "jobs[4].copy.options.emptyasnull", "emptyasnull cannot be used with format: parquet"},
		{"50:72", "jobs[4].copy.options.dateformat", "dateformat cannot be used with format: parquet"},
		{"56:7", "jobs[5].copy.from", "with manifest: true, from names the manifest file, not a pre"},
		{"58:17", "jobs[5].copy.options.ignoreheader", "ignoreheader cannot be used with format: json"},
		{"58:34", "jobs[5].copy.options.delimiter", "delimiter cannot be used with format: json"},
		{"58:50", "jobs[5].copy.options.maxerror", "must be between 0 and 100000, not -1"},
	},
	"identifiers.bad.yml": {
		{"2:12", "defaults.region", "\"us-east1\" is not an AWS region name (such as us-east-1 or e"},
		{"4:15", "accounts.warehouse.id", "\"12345\" is not an AWS account id: it must be exactly 12 digi"},
		{"4:28", "accounts.warehouse.role_arn", "\"arn:aws:iam::111111111111:user/bob\" is not an IAM role ARN "},
		{"5:30", "accounts.lake.role_arn", "the role is in account 333333333333 but this account's id is"},
		{"6:3", "accounts.bad name!", "account name \"bad name!\" is not valid: use letters, digits, "},
		{"8:28", "clusters.c1.identifier", "cluster identifier \"Prod_Cluster\" is not valid: Redshift ide"},
		{"8:54", "clusters.c1.region", "\"useast-1\" is not an AWS region name (such as us-east-1 or e"},
		{"8:72", "clusters.c1.database", "database name \"My-DB\" is not valid: use lowercase letters, d"},
		{"8:89", "clusters.c1.user", "database user \"9user\" is not valid: use lowercase letters, d"},
		{"9:28", "clusters.c2.identifier", "cluster identifier \"prod--x-\" is not valid: it must not end "},
		{"11:23", "buckets.b1.name", "bucket name \"My_Bucket\" is not valid: use only lowercase let"},
		{"11:59", "buckets.b1.kms_key_arn", "the key is in us-east-1 but the bucket is in eu-west-1: S3 n"},
		{"12:23", "buckets.b2.name", "bucket name \"192.168.1.1\" is not valid: it must not be forma"},
		{"13:40", "buckets.b3.kms_key_arn", "\"arn:aws:kms:us-east-1:222222222222:alias/s3\" is not a KMS k"},
		{"20:12", "pairs[0].role.name", "role name \"this-role-name-is-far-too-long-for-iam-which-allo"},
		{"20:90", "pairs[0].role.path", "role path \"no-slashes\" is not valid: it must begin and end w"},
		{"20:121", "pairs[0].role.db_users[0]", "database user \"Bad User\" is not valid: use lowercase letters"},
	},
	"quota.bad.yml": {
		{"5:3", "clusters.big", "51 pairs would associate 51 roles with this cluster; Redshif"},
		{"6:3", "clusters.small", "11 pairs would associate 11 roles with this cluster; Redshif"},
	},
	"references.bad.yml": {
		{"6:15", "clusters.analytics.account", "there is no account named \"warehose\"; did you mean \"warehous"},
		{"8:13", "buckets.exports.account", "there is no account named \"datalake\"; defined accounts: lake"},
		{"11:5", "pairs[0].cluster", "there is no cluster named \"analytic\"; did you mean \"analytic"},
		{"12:5", "pairs[0].bucket", "there is no bucket named \"export\"; did you mean \"exports\"?"},
		{"22:5", "pairs[2].cluster", "is required: name one of the clusters defined under clusters"},
		{"22:5", "pairs[2].bucket", "is required: name one of the buckets defined under buckets"},
		{"28:5", "jobs[0].pair", "there is no pair named \"p-1\"; did you mean \"p1\"?"},
		{"31:5", "jobs[1].pair", "is required: the pair whose access path the job uses"},
	},
	"rolechain.bad.yml": {
		{"6:57", "clusters.c.auth", "password_env and password_file are only used with auth: pass"},
		{"6:86", "clusters.c.endpoint", "\"nohost\" is not host:port (such as cluster.example.com:5439 "},
		{"6:106", "clusters.c.sslmode", "\"prefer\" is not allowed here: use one of disable, require, v"},
		{"6:123", "clusters.c.max_concurrent_jobs", "must be between 1 and 64, not 0"},
		{"10:5", "pairs[0].target_role", "is required with method: role-chaining: the role in the buck"},
		{"11:115", "pairs[1].target_role", "is only used with method: role-chaining; remove it or set me"},
		{"12:74", "pairs[2].method", "\"role-chain\" is not allowed here: use one of bucket-policy, "},
		{"13:44", "pairs[3].prefix", "\"d/*/\" must not contain * or ?: policies would treat them as"},
		{"14:9", "state.backend", "backend: postgres needs exactly one of dsn_env and dsn_file"},
		{"14:47", "state.retention", "must be at least 1h, not 1m0s"},
		{"14:62", "state.max_runs_per_job", "must be at least 1, not 0"},
		{"15:8", "http.listen", "\"localhost\" is not host:port (such as cluster.example.com:54"},
		{"16:12", "defaults.reconcile_interval", "10s is too short: the daemon reconciles at most every 30s"},
		{"16:44", "defaults.tags.managed-by", "the tag managed-by is reserved: xacctd sets it on what it ow"},
		{"16:60", "defaults.tags.aws:x", "tag keys starting with aws: are reserved by AWS"},
	},
	"schedule.bad.yml": {
		{"11:25", "jobs[0].schedule", "\"0 25 * * *\" is not a valid schedule (end of range (25) abov"},
		{"12:25", "jobs[1].schedule", "\"@fortnightly\" is not a valid schedule (unrecognized descrip"},
		{"13:25", "jobs[2].schedule", "write the time zone in the job's timezone key, not as TZ= in"},
		{"14:48", "jobs[3].timezone", "\"Europe/Berln\" is not a known IANA time zone (such as UTC, E"},
		{"15:48", "jobs[4].timezone", "\"Local\" depends on the host: name an IANA zone such as UTC o"},
		{"16:5", "jobs[5].schedule", "is required: a 5-field cron expression such as \"0 2 * * *\" o"},
		{"17:25", "jobs[6].schedule", "\"0 2 * *\" is not a valid schedule (expected exactly 5 fields"},
		{"17:46", "jobs[6].timeout", "must be between 1s and 48h, not 0s"},
		{"17:59", "jobs[6].retries", "must be between 0 and 10, not 11"},
		{"17:72", "jobs[6].catch_up", "must not be negative"},
	},
	"secrets.bad.yml": {
		{"6:5", "accounts.a.external_id", "secrets must not be written in the config file: use external"},
		{"7:5", "accounts.a.aws_secret_access_key", "unknown key \"aws_secret_access_key\": secrets must not be wri"},
		{"15:5", "clusters.c.password", "secrets must not be written in the config file: use password"},
		{"19:3", "state.dsn", "secrets must not be written in the config file: use dsn_env "},
	},
	"syntax.bad.yml": {
		{"2:1", "", "YAML syntax: did not find expected key"},
	},
	"templates.bad.yml": {
		{"11:54", "jobs[0].unload.query", "template does not parse: unclosed action"},
		{"12:54", "jobs[1].unload.query", "template does not render: executing \"jobs[1].unload.query\" a"},
		{"13:71", "jobs[2].unload.to", "renders to \"../other/t3/\", which contains ..: a job can neve"},
		{"14:71", "jobs[3].unload.to", "renders to an empty path: give the job its own destination u"},
		{"15:71", "jobs[4].unload.to", "renders to \"/abs/\", which must not start with /: S3 keys are"},
		{"16:71", "jobs[5].unload.to", "renders to \"a/../\", which contains ..: a job can never leave"},
		{"17:62", "jobs[6].copy.from", "renders to \"in/*/\", which must not contain * or ?: policies "},
		{"18:45", "jobs[7].unload.to", "is required: the destination relative to the pair's prefix, "},
	},
	"trust-size.bad.yml": {
		{"16:7", "pairs[0].role.db_users", "the trust policy for these 30 users would be 2672 characters"},
	},
	"types.bad.yml": {
		{"1:1", "version", "must be a whole number, not the value \"one\""},
		{"3:3", "defaults.region", "must be a single value, not a list"},
		{"4:3", "defaults.reconcile_interval", "300 has no unit: write a duration such as 300s, 300m or 300h"},
		{"5:3", "defaults.tags", "must be a mapping of names to values, not a list"},
		{"6:1", "accounts", "must be a mapping of names to values, not a list"},
		{"10:5", "clusters.c.account", "there is no account named \"main\""},
		{"14:5", "clusters.c.max_concurrent_jobs", "must be a whole number, not the value \"two\""},
		{"17:5", "buckets.b.account", "there is no account named \"main\""},
		{"19:5", "buckets.b.create", "must be true or false, not the value \"yes\""},
		{"20:1", "pairs", "must be a list, not a mapping"},
		{"23:5", "jobs[0].pair", "there is no pair named \"p\""},
		{"25:5", "jobs[0].timeout", "\"1 hour\" is not a duration: use a number with a unit (ms, s,"},
		{"26:5", "jobs[0].catch_up", "\"3d\" is not a duration: use a number with a unit (ms, s, m, "},
		{"27:5", "jobs[0].retries", "must be a whole number, not the value \"1.5\""},
		{"28:51", "jobs[0].unload.options.header", "must be true or false, not the value \"1\""},
	},
	"unknown-keys.bad.yml": {
		{"2:1", "defautls", "unknown key \"defautls\"; did you mean \"defaults\"?"},
		{"6:5", "accounts.main.rol_arn", "unknown key \"rol_arn\"; did you mean \"role_arn\"?"},
		{"13:5", "clusters.c.sslmod", "unknown key \"sslmod\"; did you mean \"sslmode\"?"},
		{"14:5", "clusters.c.colour", "unknown key \"colour\"; allowed keys here: account, identifier"},
		{"21:21", "pairs[0].role.db_user", "unknown key \"db_user\"; did you mean \"db_users\"?"},
		{"31:17", "jobs[0].unload.options.cleanpth", "unknown key \"cleanpth\"; did you mean \"cleanpath\"?"},
		{"31:33", "jobs[0].unload.options.paralel", "unknown key \"paralel\"; did you mean \"parallel\"?"},
	},
	"version.bad.yml": {
		{"1:1", "version", "version is required: add version: 1 at the top of the file"},
		{"1:1", "accounts", "at least one account is required: accounts maps a name to {i"},
	},
	"version2.bad.yml": {
		{"1:1", "version", "version 2 is not supported: this xacctd reads version 1"},
		{"4:1", "", "the file holds more than one YAML document (---): put the wh"},
	},
}

func TestGoodFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good fixtures: %v", err)
	}
	files = append(files, examplePath)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatalf("Load(%s):\n%v", f, err)
			}
		})
	}
}

func TestBadFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := badFixtures[filepath.Base(f)]; !ok {
			t.Errorf("%s has no entry in badFixtures", f)
		}
	}
	for name, wants := range badFixtures {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			cfg, err := Load(path)
			if cfg != nil {
				t.Errorf("Load returned a Config for an invalid file")
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Load(%s) = %v, want *config.Error", path, err)
			}
			var got []want
			for _, p := range cerr.Problems {
				if p.File != path {
					t.Errorf("problem names file %q, want %q", p.File, path)
				}
				got = append(got, want{fmt.Sprintf("%d:%d", p.Line, p.Column), p.Path, p.Msg})
			}
			if len(got) != len(wants) {
				t.Errorf("got %d problems, want %d:\n%v", len(got), len(wants), cerr)
			}
			for i := 0; i < len(got) && i < len(wants); i++ {
				g, w := got[i], wants[i]
				if g.pos != w.pos || g.path != w.path || !strings.HasPrefix(g.msg, w.msg) {
					t.Errorf("problem %d:\n got  %s %s: %s\n want %s %s: %s...", i, g.pos, g.path, g.msg, w.pos, w.path, w.msg)
				}
			}
			// Every line has the contract's shape: FILE:LINE:COL: path: message.
			for _, line := range strings.Split(cerr.Error(), "\n") {
				if !strings.HasPrefix(line, path+":") || strings.Count(line, ": ") < 2 {
					t.Errorf("line not in FILE:LINE:COL: path: message form: %q", line)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/xacctd-test:/other")
	cfg, err := Load("testdata/anchors.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"defaults.region", cfg.Defaults.Region, "us-east-1"},
		{"defaults.reconcile_interval", cfg.Defaults.ReconcileInterval, 5 * time.Minute},
		{"cluster region inherits", cfg.Clusters["analytics"].Region, "us-east-1"},
		{"cluster auth", cfg.Clusters["analytics"].Auth, "iam"},
		{"cluster sslmode", cfg.Clusters["analytics"].SSLMode, "verify-full"},
		{"cluster max_concurrent_jobs", cfg.Clusters["analytics"].MaxConcurrentJobs, 2},
		{"bucket block_public_access", *cfg.Buckets["exports"].BlockPublicAccess, true},
		{"bucket deny_insecure_transport", *cfg.Buckets["exports"].DenyInsecureTransport, true},
		{"bucket region inherits", cfg.Buckets["exports"].Region, "us-east-1"},
		{"pair method", cfg.Pairs[0].Method, "bucket-policy"},
		{"role path", cfg.Pairs[0].Role.Path, "/xacctd/"},
		{"job timezone from anchor", cfg.Jobs[0].Timezone, "Europe/Berlin"},
		{"job timeout from anchor", cfg.Jobs[0].Timeout, 10 * time.Minute},
		{"retries from anchor", cfg.Jobs[0].Retries, 0},
		{"retries overrides anchor", cfg.Jobs[1].Retries, 3},
		{"overlap", cfg.Jobs[0].Overlap, "skip"},
		{"enabled", cfg.Jobs[0].IsEnabled(), true},
		{"unload format", cfg.Jobs[0].Unload.Format, "csv"},
		{"unload compression", cfg.Jobs[0].Unload.Options.Compression, "none"},
		{"unload parallel", *cfg.Jobs[0].Unload.Options.Parallel, true},
		{"state backend", cfg.State.Backend, "file"},
		{"state dir from $STATE_DIRECTORY", cfg.State.Dir, "/var/lib/xacctd-test"},
		{"state retention", cfg.State.Retention, 2160 * time.Hour},
		{"http listen", cfg.HTTP.Listen, "127.0.0.1:9464"},
		{"account name", cfg.Accounts["lake"].Name, "lake"},
		{"cluster name", cfg.Clusters["analytics"].Name, "analytics"},
		{"bucket key", cfg.Buckets["exports"].Key, "exports"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestRoundTrip: the effective configuration, rendered back to YAML, loads to the same
// Config; rendering that again gives the same bytes.
func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yml")
	for _, f := range append(files, examplePath) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cfg.YAML()
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse("roundtrip.yml", out)
			if err != nil {
				t.Fatalf("rendered config does not load:\n%v\n---\n%s", err, out)
			}
			opts := cmp.Options{cmpopts.IgnoreUnexported(Config{}), cmpopts.IgnoreFields(Config{}, "File")}
			if diff := cmp.Diff(cfg, again, opts); diff != "" {
				t.Errorf("round trip changed the config (-first +second):\n%s", diff)
			}
			out2, err := again.YAML()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, out2) {
				t.Errorf("rendering is not stable:\n%s\n---\n%s", out, out2)
			}
		})
	}
}

// TestSecretsNeverPrinted: a secret written inline is neither kept nor echoed, and a secret
// resolved from *_env or *_file prints as [redacted] in every form.
func TestSecretsNeverPrinted(t *testing.T) {
	_, err := Load("testdata/secrets.bad.yml")
	if err == nil {
		t.Fatal("secrets.bad.yml loaded")
	}
	for _, s := range []string{"SECRET", "hunter2", "wJalr"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error output contains secret material %q:\n%v", s, err)
		}
	}

	const pw = "s3cr3t-Pa55word!"
	const ext = "ext-id-XYZ-987"
	dir := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	t.Setenv("XACCTD_TEST_PW", pw)
	if err := os.WriteFile(filepath.Join(dir, "ext"), []byte(ext+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `version: 1
accounts:
  a: {id: "111111111111", role_arn: "arn:aws:iam::111111111111:role/x", external_id_file: "$CREDENTIALS_DIRECTORY/ext"}
clusters:
  c: {account: a, identifier: c, database: db, user: u, auth: password, password_env: XACCTD_TEST_PW}
`
	cfg, err := Parse("inline.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	pwSecret, err := cfg.Clusters["c"].PasswordSecret()
	if err != nil {
		t.Fatal(err)
	}
	extSecret, err := cfg.Accounts["a"].ExternalIDSecret()
	if err != nil {
		t.Fatal(err)
	}
	if pwSecret.Reveal() != pw || extSecret.Reveal() != ext {
		t.Fatalf("secrets did not resolve: got %d and %d bytes", len(pwSecret.Reveal()), len(extSecret.Reveal()))
	}
	holder := struct {
		Config   *Config
		Password Secret
		External Secret
		List     []Secret
		Map      map[string]Secret
	}{cfg, pwSecret, extSecret, []Secret{pwSecret}, map[string]Secret{"k": extSecret}}
	var printed []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%T %v"} {
		printed = append(printed, fmt.Sprintf(verb, holder), fmt.Sprintf(verb, pwSecret))
	}
	j, _ := json.Marshal(holder)
	y, _ := yaml.Marshal(holder)
	cy, _ := cfg.YAML()
	printed = append(printed, string(j), string(y), string(cy), pwSecret.String(), fmt.Sprint(pwSecret))
	for _, p := range printed {
		if strings.Contains(p, pw) || strings.Contains(p, ext) || strings.Contains(p, fmt.Sprintf("%x", pw)) {
			t.Errorf("secret printed: %s", p)
		}
	}
	// Errors about references name the reference, never a value.
	t.Setenv("XACCTD_TEST_PW", "")
	_, err = cfg.Clusters["c"].PasswordSecret()
	if err == nil || !strings.Contains(err.Error(), "XACCTD_TEST_PW") {
		t.Errorf("missing env secret error = %v, want it to name XACCTD_TEST_PW", err)
	}
}

// TestSchemaMatchesModel keeps docs/config.schema.json identical to what the Go model
// generates. Run go test ./pkg/config -run Schema -update after changing the model.
func TestSchemaMatchesModel(t *testing.T) {
	got, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	const path = "../../docs/config.schema.json"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./pkg/config -run Schema -update)", err)
	}
	if !bytes.Equal(committed, got) {
		t.Errorf("%s differs from the Go model; run: go test ./pkg/config -run Schema -update\n%s", path, cmp.Diff(string(committed), string(got)))
	}
	var schema map[string]any
	if err := json.Unmarshal(got, &schema); err != nil {
		t.Fatal(err)
	}
	// Every key path of the model is in the schema.
	for _, p := range modelPaths(reflect.TypeOf(Config{}), "") {
		if !schemaHas(schema, p) {
			t.Errorf("schema lacks %s", p)
		}
	}
}

func schemaHas(s map[string]any, path string) bool {
	cur := s
	for _, part := range strings.Split(path, ".") {
		for strings.HasSuffix(part, "[]") || part == "*" {
			if strings.HasSuffix(part, "[]") {
				part = strings.TrimSuffix(part, "[]")
				next, ok := cur["properties"].(map[string]any)[part].(map[string]any)
				if !ok {
					return false
				}
				cur, _ = next["items"].(map[string]any)
				part = ""
				break
			}
			cur, _ = cur["additionalProperties"].(map[string]any)
			part = ""
		}
		if part == "" {
			continue
		}
		props, _ := cur["properties"].(map[string]any)
		next, ok := props[part].(map[string]any)
		if !ok {
			return false
		}
		cur = next
	}
	return cur != nil
}

// modelPaths lists every key path of the model: maps as name.*, lists of mappings as key[].
func modelPaths(t reflect.Type, prefix string) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" || f.Tag.Get("secret") == "true" {
			continue
		}
		p := joinPath(prefix, name)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == durationType:
			out = append(out, p)
		case ft.Kind() == reflect.Struct:
			out = append(out, p)
			out = append(out, modelPaths(ft, p)...)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Pointer:
			out = append(out, p)
			out = append(out, modelPaths(ft.Elem(), p+".*")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Pointer:
			out = append(out, modelPaths(ft.Elem(), p+"[]")...)
		default:
			out = append(out, p)
		}
	}
	return out
}

// examplePaths lists the key paths present in a YAML file, in modelPaths' notation.
func examplePaths(n *yaml.Node, prefix string, out map[string]bool) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.DocumentNode:
		examplePaths(n.Content[0], prefix, out)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p := joinPath(prefix, k)
			if m := mapSections[prefix]; m {
				p = joinPath(prefix, "*")
			}
			out[p] = true
			examplePaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			if item.Kind == yaml.MappingNode {
				examplePaths(item, prefix+"[]", out)
			}
		}
	}
}

var mapSections = map[string]bool{"accounts": true, "clusters": true, "buckets": true}

// TestExampleAndDocsCoverEveryKey: examples/config.yaml sets every key of the model (each
// next to its comment), and docs/config.md documents every key path.
func TestExampleAndDocsCoverEveryKey(t *testing.T) {
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	examplePaths(&doc, "", present)
	docs, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	var missingExample, missingDocs []string
	for _, p := range modelPaths(reflect.TypeOf(Config{}), "") {
		if !present[p] {
			missingExample = append(missingExample, p)
		}
		if !bytes.Contains(docs, []byte("`"+p+"`")) {
			missingDocs = append(missingDocs, p)
		}
	}
	sort.Strings(missingExample)
	if len(missingExample) > 0 {
		t.Errorf("examples/config.yaml lacks keys:\n  %s", strings.Join(missingExample, "\n  "))
	}
	if len(missingDocs) > 0 {
		t.Errorf("docs/config.md does not document (as `path`):\n  %s", strings.Join(missingDocs, "\n  "))
	}
}
