package config

import (
	"fmt"
	"maps"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/robfig/cron/v3"

	"github.com/xacctd/xacctd/pkg/awsid"
	"github.com/xacctd/xacctd/pkg/jobtemplate"
	"github.com/xacctd/xacctd/pkg/policy"
)

// Limits enforced at load time. They are AWS's or Redshift's, or xacctd's own where noted.
const (
	// MaxTrustPolicyChars is IAM's default quota for a role trust policy (4,096 on request).
	MaxTrustPolicyChars = 2048
	// MinReconcileInterval keeps the daemon from spending API quota without finding drift sooner.
	MinReconcileInterval = 30 * time.Second
	maxS3KeyBytes        = 1024
	maxTagsPerResource   = 50
	// ManagedByTag (value xacctd) marks what xacctd owns; users cannot set it.
	ManagedByTag = "managed-by"
	// PairTag names the pair a role belongs to; users cannot set it.
	PairTag = "xacctd-pair"
)

var (
	entryNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	envNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	identRe     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
	tableRe     = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*$`)
	sizeRe      = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*(MB|GB)$`)
	extensionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$`)
	tagCharsRe  = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
)

// CronParser is the schedule syntax: five fields or a descriptor, as robfig/cron's standard
// parser, without seconds.
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

type validator struct {
	c          *Config
	ps         *problems
	locations  map[string]*time.Location
	pairByName map[string]*Pair
}

func validate(c *Config, ps *problems) {
	v := &validator{c: c, ps: ps, locations: map[string]*time.Location{}, pairByName: map[string]*Pair{}}
	for _, p := range c.Pairs {
		if p != nil {
			if _, dup := v.pairByName[p.Name]; !dup {
				v.pairByName[p.Name] = p
			}
		}
	}
	v.top()
	v.enums(reflect.ValueOf(c).Elem(), "")
	v.defaults()
	accountIDs := v.accounts()
	v.clusters()
	v.buckets()
	v.pairs(accountIDs)
	v.jobs()
	v.state()
	v.http()
}

func (v *validator) top() {
	if _, ok := v.c.pos["version"]; !ok {
		v.ps.addf("version", "version is required: add version: 1 at the top of the file")
	} else if v.c.Version != 1 && !v.ps.has("version") {
		v.ps.addf("version", "version %d is not supported: this xacctd reads version 1", v.c.Version)
	}
	if len(v.c.Accounts) == 0 && !v.ps.has("accounts") {
		v.ps.addf("accounts", "at least one account is required: accounts maps a name to {id: \"123456789012\", role_arn: ...}")
	}
}

// enums checks every string field that has an enum tag, wherever it is.
func (v *validator) enums(val reflect.Value, path string) {
	switch val.Kind() {
	case reflect.Pointer:
		if !val.IsNil() {
			v.enums(val.Elem(), path)
		}
	case reflect.Struct:
		for _, f := range infoOf(val.Type()).fields {
			fp := joinPath(path, f.name)
			fv := val.Field(f.index)
			if f.hasEnum {
				switch fv.Kind() {
				case reflect.String:
					v.oneOf(fp, fv.String(), f.enum)
				case reflect.Slice:
					for j := 0; j < fv.Len(); j++ {
						v.oneOf(fmt.Sprintf("%s[%d]", fp, j), fv.Index(j).String(), f.enum)
					}
				}
				continue
			}
			if k := fv.Kind(); k == reflect.Struct || k == reflect.Pointer || k == reflect.Slice || k == reflect.Map {
				v.enums(fv, fp)
			}
		}
	case reflect.Slice:
		for i := 0; i < val.Len(); i++ {
			v.enums(val.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		for _, k := range val.MapKeys() {
			v.enums(val.MapIndex(k), joinPath(path, k.String()))
		}
	}
}

func (v *validator) oneOf(path, got string, allowed []string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	msg := fmt.Sprintf("%q is not allowed here: use one of %s", got, strings.Join(allowed, ", "))
	if s := suggest(got, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	v.ps.addf(path, "%s", msg)
}

func (v *validator) region(path, r string) {
	if err := awsid.CheckRegion(r); err != nil {
		msg := err.Error()
		if s := suggest(r, awsid.KnownRegions); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		v.ps.addf(path, "%s", msg)
	}
}

// explicitRegion checks a region only where the file sets it; an inherited default was
// checked at defaults.region.
func (v *validator) explicitRegion(path, r string) {
	if _, set := v.c.pos[path]; set {
		v.region(path, r)
	}
}

func (v *validator) defaults() {
	d := v.c.Defaults
	v.region("defaults.region", d.Region)
	if d.ReconcileInterval < MinReconcileInterval {
		v.ps.addf("defaults.reconcile_interval", "%s is too short: the daemon reconciles at most every %s", d.ReconcileInterval, MinReconcileInterval)
	}
	if d.ShutdownGrace < 0 || d.ShutdownGrace > time.Hour {
		v.ps.addf("defaults.shutdown_grace", "must be between 0s and 1h, not %s (systemd's TimeoutStopSec must be longer)", d.ShutdownGrace)
	}
	if len(d.Tags) > maxTagsPerResource-1 {
		v.ps.addf("defaults.tags", "%d tags is too many: AWS allows %d per resource and xacctd adds %s", len(d.Tags), maxTagsPerResource, ManagedByTag)
	}
	for _, k := range slices.Sorted(maps.Keys(d.Tags)) {
		p := "defaults.tags." + k
		val := d.Tags[k]
		switch {
		case k == "":
			v.ps.addf(p, "tag keys must not be empty")
		case k == ManagedByTag || k == PairTag:
			v.ps.addf(p, "the tag %s is reserved: xacctd sets it on what it owns", k)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			v.ps.addf(p, "tag keys starting with aws: are reserved by AWS")
		case utf8.RuneCountInString(k) > 128 || utf8.RuneCountInString(val) > 256:
			v.ps.addf(p, "tag keys may be at most 128 characters and values at most 256")
		case !tagCharsRe.MatchString(k) || !tagCharsRe.MatchString(val):
			v.ps.addf(p, "tags may contain only letters, digits, spaces and _ . : / = + - @")
		}
	}
}

func (v *validator) entryName(path, kind, name string) {
	if !entryNameRe.MatchString(name) {
		v.ps.addf(path, "%s name %q is not valid: use letters, digits, _ . - (at most 64, starting with a letter or digit)", kind, name)
	}
}

func (v *validator) envName(path, name string) {
	if name != "" && !envNameRe.MatchString(name) {
		// The value is not repeated: a secret pasted here by mistake must not reach a terminal,
		// CI log or the journal (config.reload_failed).
		v.ps.addf(path, "is not an environment variable name: give the name of the variable that holds the secret (letters, digits and _), not the secret itself; the value is not repeated here")
	}
}

func (v *validator) secretFile(path, name string) {
	if name == "" {
		return
	}
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "$CREDENTIALS_DIRECTORY/") && !strings.HasPrefix(name, "${CREDENTIALS_DIRECTORY}/") {
		v.ps.addf(path, "must be an absolute path, or start with $CREDENTIALS_DIRECTORY/ (systemd LoadCredential=): give the path of the file that holds the secret, not the secret itself; the value is not repeated here")
	}
}

// ref checks a reference to a named entry and suggests the closest name.
func ref[V any](v *validator, path, kind, name string, m map[string]V) bool {
	if name == "" {
		v.ps.addf(path, "is required: name one of the %ss defined under %ss", kind, kind)
		return false
	}
	if _, ok := m[name]; ok {
		return true
	}
	names := slices.Sorted(maps.Keys(m))
	msg := fmt.Sprintf("there is no %s named %q", kind, name)
	if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else if len(names) > 0 {
		msg += fmt.Sprintf("; defined %ss: %s", kind, strings.Join(names, ", "))
	}
	v.ps.addf(path, "%s", msg)
	return false
}

func (v *validator) accounts() map[string]string {
	byID := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(v.c.Accounts)) {
		a := v.c.Accounts[name]
		p := "accounts." + name
		v.entryName(p, "account", name)
		if a == nil {
			v.ps.addf(p, "is empty: an account needs at least id")
			continue
		}
		if a.ID == "" {
			v.ps.addf(p+".id", "is required: the 12-digit account id, quoted")
		} else if err := awsid.CheckAccountID(a.ID); err != nil {
			v.ps.addf(p+".id", "%v", err)
		} else if other, dup := byID[a.ID]; dup {
			v.ps.addf(p+".id", "account id %s is also account %q: give each AWS account one entry", a.ID, other)
		} else {
			byID[a.ID] = name
		}
		if a.RoleARN != "" {
			parts, err := awsid.ParseRoleARN(a.RoleARN)
			switch {
			case err != nil:
				v.ps.addf(p+".role_arn", "%v", err)
			case a.ID != "" && parts.Account != a.ID:
				v.ps.addf(p+".role_arn", "the role is in account %s but this account's id is %s: xacctd would act in the wrong account", parts.Account, a.ID)
			}
		}
		if a.ExternalIDEnv != "" && a.ExternalIDFile != "" {
			v.ps.addf(p+".external_id_file", "give external_id_env or external_id_file, not both")
		}
		if (a.ExternalIDEnv != "" || a.ExternalIDFile != "") && a.RoleARN == "" {
			key := ".external_id_env"
			if a.ExternalIDEnv == "" {
				key = ".external_id_file"
			}
			v.ps.addf(p+key, "an external id is only used when assuming role_arn: set role_arn or remove it")
		}
		v.envName(p+".external_id_env", a.ExternalIDEnv)
		v.secretFile(p+".external_id_file", a.ExternalIDFile)
		if strings.TrimSpace(a.Profile) != a.Profile {
			v.ps.addf(p+".profile", "profile name has leading or trailing spaces")
		}
	}
	return byID
}

func (v *validator) clusters() {
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(v.c.Clusters)) {
		cl := v.c.Clusters[name]
		p := "clusters." + name
		v.entryName(p, "cluster", name)
		if cl == nil {
			v.ps.addf(p, "is empty: a cluster needs account, identifier, database and user")
			continue
		}
		ref(v, p+".account", "account", cl.Account, v.c.Accounts)
		if cl.Identifier == "" {
			v.ps.addf(p+".identifier", "is required: the Redshift cluster identifier")
		} else if err := awsid.CheckClusterIdentifier(cl.Identifier); err != nil {
			v.ps.addf(p+".identifier", "%v", err)
		} else {
			key := cl.Account + "/" + cl.Region + "/" + cl.Identifier
			if other, dup := seen[key]; dup {
				v.ps.addf(p+".identifier", "cluster %q in the same account and region is also %s", other, cl.Identifier)
			}
			seen[key] = name
		}
		v.explicitRegion(p+".region", cl.Region)
		if cl.Database == "" {
			v.ps.addf(p+".database", "is required: the database jobs connect to")
		} else if err := awsid.CheckDatabaseName(cl.Database); err != nil {
			v.ps.addf(p+".database", "%v", err)
		}
		if cl.User == "" {
			v.ps.addf(p+".user", "is required: the database user jobs connect as")
		} else if err := awsid.CheckDBUser(cl.User); err != nil {
			v.ps.addf(p+".user", "%v", err)
		}
		switch cl.Auth {
		case "password":
			if (cl.PasswordEnv == "") == (cl.PasswordFile == "") {
				v.ps.addf(p+".auth", "auth: password needs exactly one of password_env and password_file")
			}
		case "iam":
			if cl.PasswordEnv != "" || cl.PasswordFile != "" {
				v.ps.addf(p+".auth", "password_env and password_file are only used with auth: password; auth: iam gets temporary credentials from GetClusterCredentials")
			}
		}
		v.envName(p+".password_env", cl.PasswordEnv)
		v.secretFile(p+".password_file", cl.PasswordFile)
		if cl.Endpoint != "" {
			v.hostPort(p+".endpoint", cl.Endpoint)
		}
		if cl.MaxConcurrentJobs < 1 || cl.MaxConcurrentJobs > 64 {
			v.ps.addf(p+".max_concurrent_jobs", "must be between 1 and 64, not %d", cl.MaxConcurrentJobs)
		}
	}
}

func (v *validator) hostPort(path, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		v.ps.addf(path, "%q is not host:port (such as cluster.example.com:5439 or 127.0.0.1:9464)", s)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.ps.addf(path, "port %q is not a number from 1 to 65535", port)
	}
}

func (v *validator) buckets() {
	seen := map[string]string{}
	for _, key := range slices.Sorted(maps.Keys(v.c.Buckets)) {
		b := v.c.Buckets[key]
		p := "buckets." + key
		v.entryName(p, "bucket", key)
		if b == nil {
			v.ps.addf(p, "is empty: a bucket needs account and name")
			continue
		}
		ref(v, p+".account", "account", b.Account, v.c.Accounts)
		if b.Name == "" {
			v.ps.addf(p+".name", "is required: the S3 bucket name")
		} else if err := awsid.CheckBucketName(b.Name); err != nil {
			v.ps.addf(p+".name", "%v", err)
		} else if other, dup := seen[b.Name]; dup {
			v.ps.addf(p+".name", "bucket %q is also %s: bucket names are global, give each bucket one entry", other, b.Name)
		} else {
			seen[b.Name] = key
		}
		v.explicitRegion(p+".region", b.Region)
		if b.KMSKeyARN != "" {
			k, err := awsid.ParseKMSKeyARN(b.KMSKeyARN)
			if err != nil {
				v.ps.addf(p+".kms_key_arn", "%v", err)
			} else if k.Region != b.Region {
				v.ps.addf(p+".kms_key_arn", "the key is in %s but the bucket is in %s: S3 needs a key in the bucket's region", k.Region, b.Region)
			}
		}
	}
}

type roleUse struct {
	path, pair string
}

func (v *validator) pairs(accountIDs map[string]string) {
	names := map[string]int{}
	roles := map[string]roleUse{} // account name + lowercased role name -> first use
	sids := map[string]string{}   // bucket + statement Sid -> pair
	perCluster := map[string][]string{}
	policyBytes := map[string]int{} // bucket entry -> size of the statements xacctd will own
	cleanpath := map[string]bool{}
	for _, j := range v.c.Jobs {
		if j != nil && j.Unload != nil && j.Unload.Options.CleanPath {
			cleanpath[j.Pair] = true
		}
	}
	for i, pr := range v.c.Pairs {
		p := fmt.Sprintf("pairs[%d]", i)
		if pr == nil {
			v.ps.addf(p, "is empty: a pair needs name, cluster, bucket, prefix, access and role")
			continue
		}
		if pr.Name == "" {
			v.ps.addf(p+".name", "is required")
		} else {
			v.entryName(p+".name", "pair", pr.Name)
			if first, dup := names[pr.Name]; dup {
				v.ps.addf(p+".name", "pair %q is already defined at pairs[%d]: pair names must be unique", pr.Name, first)
			} else {
				names[pr.Name] = i
			}
		}
		clusterOK := ref(v, p+".cluster", "cluster", pr.Cluster, v.c.Clusters)
		bucketOK := ref(v, p+".bucket", "bucket", pr.Bucket, v.c.Buckets)
		v.prefix(p+".prefix", pr.Prefix)
		if len(pr.Access) == 0 {
			v.ps.addf(p+".access", "is required: list unload, copy or both")
		}
		seenAccess := map[string]bool{}
		for j, a := range pr.Access {
			if seenAccess[a] {
				v.ps.addf(fmt.Sprintf("%s.access[%d]", p, j), "%q is listed twice", a)
			}
			seenAccess[a] = true
		}

		v.roleName(p+".role", pr.Role.Name, pr.Role.Path)
		seenUsers := map[string]bool{}
		for j, u := range pr.Role.DBUsers {
			up := fmt.Sprintf("%s.role.db_users[%d]", p, j)
			if err := awsid.CheckDBUser(u); err != nil {
				v.ps.addf(up, "%v", err)
			} else if seenUsers[u] {
				v.ps.addf(up, "%q is listed twice", u)
			}
			seenUsers[u] = true
		}
		switch pr.Method {
		case "role-chaining":
			if pr.TargetRole == nil {
				v.ps.addf(p+".target_role", "is required with method: role-chaining: the role in the bucket's account, e.g. target_role: {name: LakeWriter}")
			} else {
				v.roleName(p+".target_role", pr.TargetRole.Name, pr.TargetRole.Path)
			}
		case "bucket-policy":
			if pr.TargetRole != nil {
				v.ps.addf(p+".target_role", "is only used with method: role-chaining; remove it or set method: role-chaining")
			}
		}

		var cl *Cluster
		if clusterOK {
			cl = v.c.Clusters[pr.Cluster]
		}
		if cl != nil && cl.Account != "" {
			v.uniqueRole(roles, cl.Account, pr.Role.Name, p+".role.name", pr.Name)
			if bucketOK && pr.Method == "bucket-policy" && v.c.Accounts[cl.Account] != nil {
				b := v.c.Buckets[pr.Bucket]
				arn := awsid.RoleARN(awsid.Partition(cl.Region), v.c.Accounts[cl.Account].ID, pr.Role.Path, pr.Role.Name)
				access := policy.Access{Partition: awsid.Partition(b.Region), Bucket: b.Name, Prefix: pr.Prefix, Unload: pr.Has("unload"), Copy: pr.Has("copy"), Delete: cleanpath[pr.Name]}
				for _, st := range policy.S3Statements(access, arn, policy.PairSid(pr.Name, "")) {
					policyBytes[pr.Bucket] += len(policy.Compact(policy.Document{Statement: []policy.Statement{st}}))
				}
				if policyBytes[pr.Bucket] > policy.MaxBucketPolicyBytes {
					v.ps.addf(p, "the pairs on bucket %q up to this one need %d bytes of bucket policy; S3 allows %d: use role-chaining for some pairs (no bucket statements) or another bucket", pr.Bucket, policyBytes[pr.Bucket], policy.MaxBucketPolicyBytes)
					policyBytes[pr.Bucket] = -1 << 30 // report once per bucket
				}
			}
			perCluster[pr.Cluster] = append(perCluster[pr.Cluster], strings.ToLower(pr.Role.Name))
			v.trustSize(p, pr, cl)
		}
		if bucketOK && pr.Name != "" {
			key := pr.Bucket + "/" + policy.PairSid(pr.Name, "")
			if other, dup := sids[key]; dup && other != pr.Name {
				v.ps.addf(p+".name", "pairs %q and %q on bucket %q would share the bucket policy Sid %s (Sids keep only letters and digits): rename one", other, pr.Name, pr.Bucket, policy.PairSid(pr.Name, ""))
			}
			sids[key] = pr.Name
		}
		if bucketOK && pr.TargetRole != nil && pr.Method == "role-chaining" {
			b := v.c.Buckets[pr.Bucket]
			if b != nil && b.Account != "" {
				v.uniqueRole(roles, b.Account, pr.TargetRole.Name, p+".target_role.name", pr.Name)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(perCluster)) {
		cl := v.c.Clusters[name]
		distinct := map[string]bool{}
		for _, r := range perCluster[name] {
			distinct[r] = true
		}
		if limit := awsid.MaxClusterRoles(cl.Region); len(distinct) > limit {
			v.ps.addf("clusters."+name, "%d pairs would associate %d roles with this cluster; Redshift allows at most %d per cluster in %s: share a pair between jobs or use another cluster", len(perCluster[name]), len(distinct), limit, cl.Region)
		}
	}
}

func (v *validator) roleName(path, name, rolePath string) {
	if name == "" {
		v.ps.addf(path+".name", "is required: the IAM role name")
	} else if err := awsid.CheckRoleName(name); err != nil {
		v.ps.addf(path+".name", "%v", err)
	}
	if err := awsid.CheckRolePath(rolePath); err != nil {
		v.ps.addf(path+".path", "%v", err)
	}
}

// uniqueRole reports a role name used twice in one account; IAM compares names
// case-insensitively.
func (v *validator) uniqueRole(roles map[string]roleUse, account, name, path, pair string) {
	if name == "" {
		return
	}
	key := account + "/" + strings.ToLower(name)
	if first, dup := roles[key]; dup {
		v.ps.addf(path, "role %q is also used by pair %q in account %q (%s): IAM role names are unique per account, case-insensitively, and each pair owns its role", name, first.pair, account, first.path)
		return
	}
	roles[key] = roleUse{path: path, pair: pair}
}

func (v *validator) trustSize(p string, pr *Pair, cl *Cluster) {
	acct := v.c.Accounts[cl.Account]
	if acct == nil || len(pr.Role.DBUsers) == 0 {
		return
	}
	arns := make([]string, len(pr.Role.DBUsers))
	for i, u := range pr.Role.DBUsers {
		arns[i] = awsid.DBUserARN(cl.Region, acct.ID, cl.Identifier, u)
	}
	if n := len(policy.Compact(policy.RedshiftTrust(arns))); n > MaxTrustPolicyChars {
		v.ps.addf(p+".role.db_users", "the trust policy for these %d users would be %d characters; IAM allows %d by default: list fewer users, or split them over several pairs", len(arns), n, MaxTrustPolicyChars)
	}
}

// prefix checks a pair prefix: every policy statement is scoped by it, so it must be a
// plain key prefix with no wildcards.
func (v *validator) prefix(path, prefix string) {
	switch {
	case prefix == "":
		v.ps.addf(path, "is required: the key prefix access is limited to, ending with / (such as redshift/analytics/)")
	case !strings.HasSuffix(prefix, "/"):
		v.ps.addf(path, "%q must end with /: without it access would also cover every key that merely starts with it", prefix)
	default:
		if msg := keyProblem(prefix); msg != "" {
			v.ps.addf(path, "%q %s", prefix, msg)
		}
	}
}

// keyProblem says what is wrong with an S3 key or key prefix, or "".
func keyProblem(key string) string {
	if strings.HasPrefix(key, "/") {
		return "must not start with /: S3 keys are relative to the bucket"
	}
	if strings.Contains(key, "//") {
		return "must not contain an empty segment (//)"
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "." || seg == ".." {
			return "must not contain . or .. segments"
		}
	}
	if strings.ContainsAny(key, "*?") {
		return "must not contain * or ?: policies would treat them as wildcards"
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	if len(key) > maxS3KeyBytes {
		return fmt.Sprintf("is %d bytes; S3 keys are at most %d", len(key), maxS3KeyBytes)
	}
	return ""
}

func (v *validator) jobs() {
	names := map[string]int{}
	for i, j := range v.c.Jobs {
		p := fmt.Sprintf("jobs[%d]", i)
		if j == nil {
			v.ps.addf(p, "is empty: a job needs name, pair, schedule and unload or copy")
			continue
		}
		if j.Name == "" {
			v.ps.addf(p+".name", "is required")
		} else if !entryNameRe.MatchString(j.Name) {
			v.ps.addf(p+".name", "job name %q is not valid: use letters, digits, _ . - (at most 64, starting with a letter or digit)", j.Name)
		} else if first, dup := names[j.Name]; dup {
			v.ps.addf(p+".name", "job %q is already defined at jobs[%d]: job names must be unique", j.Name, first)
		} else {
			names[j.Name] = i
		}
		var pair *Pair
		if j.Pair == "" {
			v.ps.addf(p+".pair", "is required: the pair whose access path the job uses")
		} else if pair = v.pairByName[j.Pair]; pair == nil {
			pairNames := make([]string, 0, len(v.c.Pairs))
			for _, pr := range v.c.Pairs {
				if pr != nil {
					pairNames = append(pairNames, pr.Name)
				}
			}
			msg := fmt.Sprintf("there is no pair named %q", j.Pair)
			if s := suggest(j.Pair, pairNames); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			v.ps.addf(p+".pair", "%s", msg)
		}
		v.schedule(p+".schedule", j.Schedule)
		loc := v.timezone(p+".timezone", j.Timezone)
		if j.Unload == nil && j.Copy == nil {
			v.ps.addf(p, "needs an unload or a copy section")
		}
		if j.Unload != nil && j.Copy != nil {
			v.ps.addf(p+".copy", "a job runs one statement: give unload or copy, not both (make two jobs)")
		}
		if j.Unload != nil {
			if pair != nil && !pair.Has("unload") {
				v.ps.addf(p+".unload", "pair %q does not grant unload access (access: %v): add unload to the pair's access", pair.Name, pair.Access)
			}
			v.unload(p+".unload", j, pair, loc)
		}
		if j.Copy != nil {
			if pair != nil && !pair.Has("copy") {
				v.ps.addf(p+".copy", "pair %q does not grant copy access (access: %v): add copy to the pair's access", pair.Name, pair.Access)
			}
			v.copy(p+".copy", j, pair, loc)
		}
		if j.Timeout < time.Second || j.Timeout > 48*time.Hour {
			v.ps.addf(p+".timeout", "must be between 1s and 48h, not %s", j.Timeout)
		}
		if j.Retries < 0 || j.Retries > 10 {
			v.ps.addf(p+".retries", "must be between 0 and 10, not %d", j.Retries)
		}
		if j.CatchUp < 0 {
			v.ps.addf(p+".catch_up", "must not be negative")
		}
	}
}

func (v *validator) schedule(path, spec string) {
	if spec == "" {
		v.ps.addf(path, "is required: a 5-field cron expression such as \"0 2 * * *\" or @hourly")
		return
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		v.ps.addf(path, "write the time zone in the job's timezone key, not as TZ= in the schedule")
		return
	}
	sched, err := CronParser.Parse(spec)
	if err != nil {
		v.ps.addf(path, "%q is not a valid schedule (%v): use 5 fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly, @every 1h", spec, err)
		return
	}
	if every, ok := sched.(cron.ConstantDelaySchedule); ok && every.Delay < time.Minute {
		v.ps.addf(path, "%q is too frequent: @every needs at least 1m", spec)
	}
}

func (v *validator) timezone(path, tz string) *time.Location {
	if tz == "Local" || tz == "" {
		v.ps.addf(path, "%q depends on the host: name an IANA zone such as UTC or America/New_York", tz)
		return nil
	}
	if loc, ok := v.locations[tz]; ok {
		return loc
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		v.ps.addf(path, "%q is not a known IANA time zone (such as UTC, Europe/Berlin, America/New_York)", tz)
		return nil
	}
	v.locations[tz] = loc
	return loc
}

// template parses and renders a job template with sample data; it returns the rendering.
func (v *validator) template(path, text string, j *Job, loc *time.Location) (string, bool) {
	t, err := jobtemplate.Parse(path, text)
	if err != nil {
		v.ps.addf(path, "template does not parse: %v", err)
		return "", false
	}
	if loc == nil {
		loc = time.UTC // the zone is reported on its own; still check the template
	}
	out, err := jobtemplate.Render(t, jobtemplate.Sample(j.Name, loc))
	if err != nil {
		v.ps.addf(path, "template does not render: %v (templates see .ScheduledTime, .RunID and .Job)", err)
		return "", false
	}
	return out, true
}

// destination checks a rendered to/from path relative to the pair's prefix.
func (v *validator) destination(path, rendered string, pair *Pair, emptyOK bool) {
	if rendered == "" {
		if !emptyOK {
			v.ps.addf(path, "renders to an empty path: give the job its own destination under the pair's prefix")
		}
		return
	}
	if strings.Contains(rendered, "..") {
		v.ps.addf(path, "renders to %q, which contains ..: a job can never leave its pair's prefix", rendered)
		return
	}
	if msg := keyProblem(rendered); msg != "" {
		v.ps.addf(path, "renders to %q, which %s", rendered, msg)
		return
	}
	if pair != nil {
		if full := pair.Prefix + rendered; len(full) > maxS3KeyBytes-64 {
			v.ps.addf(path, "the full key prefix would be %d bytes; S3 keys are at most %d including file names", len(full), maxS3KeyBytes)
		}
	}
}

func (v *validator) unload(p string, j *Job, pair *Pair, loc *time.Location) {
	u := j.Unload
	if strings.TrimSpace(u.Query) == "" {
		v.ps.addf(p+".query", "is required: the SELECT to unload")
	} else if q, ok := v.template(p+".query", u.Query, j, loc); ok {
		if strings.HasSuffix(strings.TrimSpace(q), ";") {
			v.ps.addf(p+".query", "remove the trailing semicolon: the query is quoted inside UNLOAD ('...')")
		}
	}
	if u.To == "" {
		v.ps.addf(p+".to", "is required: the destination relative to the pair's prefix, such as orders/{{ .ScheduledTime.Format \"2006/01/02\" }}/")
	} else if out, ok := v.template(p+".to", u.To, j, loc); ok {
		v.destination(p+".to", out, pair, false)
	}
	o := u.Options
	op := p + ".options"
	if o.CleanPath && o.AllowOverwrite {
		v.ps.addf(op+".cleanpath", "cleanpath and allowoverwrite cannot be used together: cleanpath deletes existing files first, allowoverwrite writes over them")
	}
	notWith := func(format, key string, set bool) {
		if set {
			v.ps.addf(op+"."+key, "%s cannot be used with format: %s", key, format)
		}
	}
	switch u.Format {
	case "parquet":
		notWith("parquet", "header", o.Header)
		notWith("parquet", "delimiter", o.Delimiter != "")
		notWith("parquet", "compression", o.Compression != "none")
		notWith("parquet", "null_as", o.NullAs != nil)
	case "json":
		notWith("json", "header", o.Header)
		notWith("json", "delimiter", o.Delimiter != "")
		notWith("json", "null_as", o.NullAs != nil)
		notWith("json", "rowgroupsize", o.RowGroupSize != "")
	case "csv":
		notWith("csv", "rowgroupsize", o.RowGroupSize != "")
	}
	v.delimiter(op+".delimiter", o.Delimiter)
	if o.ManifestVerbose && !o.Manifest {
		v.ps.addf(op+".manifest_verbose", "needs manifest: true")
	}
	if o.PartitionInclude && len(o.PartitionBy) == 0 {
		v.ps.addf(op+".partition_include", "needs partition_by")
	}
	for i, c := range o.PartitionBy {
		if !identRe.MatchString(c) {
			v.ps.addf(fmt.Sprintf("%s.partition_by[%d]", op, i), "%q is not a column name", c)
		}
	}
	if o.MaxFileSize != "" {
		v.size(op+".maxfilesize", o.MaxFileSize, 5, 6.2*1024)
	}
	if o.RowGroupSize != "" {
		v.size(op+".rowgroupsize", o.RowGroupSize, 32, 128)
	}
	if o.KMSKeyID != "" {
		if _, err := awsid.ParseKMSKeyARN(o.KMSKeyID); err != nil {
			v.ps.addf(op+".kms_key_id", "%v", err)
		}
	}
	if o.Extension != "" && !extensionRe.MatchString(o.Extension) {
		v.ps.addf(op+".extension", "%q is not a file extension: up to 16 letters, digits, . _ -", o.Extension)
	}
}

func (v *validator) copy(p string, j *Job, pair *Pair, loc *time.Location) {
	c := j.Copy
	if c.Table == "" {
		v.ps.addf(p+".table", "is required: the table to load, table or schema.table")
	} else if !tableRe.MatchString(c.Table) {
		v.ps.addf(p+".table", "%q is not a table name: use table or schema.table with letters, digits, _ and $", c.Table)
	}
	seen := map[string]bool{}
	for i, col := range c.Columns {
		cp := fmt.Sprintf("%s.columns[%d]", p, i)
		if !identRe.MatchString(col) {
			v.ps.addf(cp, "%q is not a column name", col)
		} else if seen[strings.ToLower(col)] {
			v.ps.addf(cp, "column %q is listed twice", col)
		}
		seen[strings.ToLower(col)] = true
	}
	if c.From == "" {
		v.ps.addf(p+".from", "is required: the source relative to the pair's prefix, such as events/{{ .ScheduledTime.Format \"2006/01/02\" }}/")
	} else if out, ok := v.template(p+".from", c.From, j, loc); ok {
		v.destination(p+".from", out, pair, false)
		if c.Options.Manifest && strings.HasSuffix(out, "/") {
			v.ps.addf(p+".from", "with manifest: true, from names the manifest file, not a prefix ending with /")
		}
	}
	o := c.Options
	op := p + ".options"
	notWith := func(format, key string, set bool) {
		if set {
			v.ps.addf(op+"."+key, "%s cannot be used with format: %s", key, format)
		}
	}
	switch c.Format {
	case "parquet":
		notWith("parquet", "ignoreheader", o.IgnoreHeader != 0)
		notWith("parquet", "delimiter", o.Delimiter != "")
		notWith("parquet", "compression", o.Compression != "none")
		notWith("parquet", "null_as", o.NullAs != nil)
		notWith("parquet", "emptyasnull", o.EmptyAsNull)
		notWith("parquet", "blanksasnull", o.BlanksAsNull)
		notWith("parquet", "dateformat", o.DateFormat != "")
		notWith("parquet", "timeformat", o.TimeFormat != "")
		notWith("parquet", "truncatecolumns", o.TruncateColumns)
	case "json":
		notWith("json", "ignoreheader", o.IgnoreHeader != 0)
		notWith("json", "delimiter", o.Delimiter != "")
		notWith("json", "null_as", o.NullAs != nil)
	}
	v.delimiter(op+".delimiter", o.Delimiter)
	if o.IgnoreHeader < 0 || o.IgnoreHeader > 1000 {
		v.ps.addf(op+".ignoreheader", "must be between 0 and 1000, not %d", o.IgnoreHeader)
	}
	if o.MaxError < 0 || o.MaxError > 100000 {
		v.ps.addf(op+".maxerror", "must be between 0 and 100000, not %d", o.MaxError)
	}
}

func (v *validator) delimiter(path, d string) {
	if d == "" {
		return
	}
	if len([]rune(d)) != 1 || d == "\n" || d == "\r" || d == "\"" {
		v.ps.addf(path, "%q is not a delimiter: give one character other than a quote or a line break", d)
	}
}

// size checks a size such as 256MB or 1GB against bounds in MB.
func (v *validator) size(path, s string, minMB, maxMB float64) {
	m := sizeRe.FindStringSubmatch(s)
	if m == nil {
		v.ps.addf(path, "%q is not a size: write a number with MB or GB, such as 256MB or 1GB", s)
		return
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	if m[2] == "GB" {
		n *= 1024
	}
	if n < minMB || n > maxMB {
		v.ps.addf(path, "%s is out of range: Redshift accepts %s to %s", s, formatMB(minMB), formatMB(maxMB))
	}
}

func formatMB(mb float64) string {
	if mb >= 1024 {
		return strconv.FormatFloat(mb/1024, 'f', -1, 64) + "GB"
	}
	return strconv.FormatFloat(mb, 'f', -1, 64) + "MB"
}

func (v *validator) state() {
	s := v.c.State
	switch s.Backend {
	case "file":
		if s.DSNEnv != "" || s.DSNFile != "" {
			v.ps.addf("state.backend", "dsn_env and dsn_file are only used with backend: postgres")
		}
		if s.Dir != "" && !strings.HasPrefix(s.Dir, "/") {
			v.ps.addf("state.dir", "%q must be an absolute path", s.Dir)
		}
	case "postgres":
		if (s.DSNEnv == "") == (s.DSNFile == "") {
			v.ps.addf("state.backend", "backend: postgres needs exactly one of dsn_env and dsn_file")
		}
	}
	v.envName("state.dsn_env", s.DSNEnv)
	v.secretFile("state.dsn_file", s.DSNFile)
	if s.Retention < time.Hour {
		v.ps.addf("state.retention", "must be at least 1h, not %s", s.Retention)
	}
	if s.MaxRunsPerJob < 1 {
		v.ps.addf("state.max_runs_per_job", "must be at least 1, not %d", s.MaxRunsPerJob)
	}
}

func (v *validator) http() {
	v.hostPort("http.listen", v.c.HTTP.Listen)
}
