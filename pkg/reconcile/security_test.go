package reconcile_test

// Least privilege of every document Desire generates, over whole configurations: the example,
// the valid fixtures of pkg/config and an edge-case file. What is right is derived here from
// the configuration, independently of how pkg/policy builds it:
//
//   - a pair role trusts only redshift.amazonaws.com, restricted to the pair's db_users when
//     given; a chained role trusts only the first role of its chain (not its account root);
//   - S3 object actions only on bucket/prefix*, ListBucket on the bucket only with an
//     s3:prefix condition on the prefix, GetBucketLocation alone on the bucket; DeleteObject
//     only for a pair with a cleanpath job; KMS only on the pair's keys;
//   - a bucket statement names exactly the pair's role;
//   - the deny-insecure-transport statement is the only Deny, the only principal "*", the only
//     s3:* and the only bucket/* resource, and exists exactly when the bucket asks for it.

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/pkg/awsid"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/policy"
	"github.com/xacctd/xacctd/pkg/reconcile"
)

// secEdgeConfig has what the other files lack: several pairs on one bucket, a pair without
// db_users, a bucket without the TLS deny, role chaining with unload, cleanpath and KMS, and a
// pair in the China partition.
const secEdgeConfig = `version: 1
defaults: {region: eu-west-1}
accounts:
  warehouse: {id: "111111111111"}
  lake: {id: "222222222222"}
  cnwh: {id: "333333333333"}
  cnlake: {id: "444444444444"}
clusters:
  a: {account: warehouse, identifier: a, database: dev, user: loader}
  cn: {account: cnwh, identifier: cn, region: cn-north-1, database: dev, user: loader}
buckets:
  shared: {account: lake, name: shared-bucket, kms_key_arn: "arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
  open: {account: lake, name: no-deny-bucket, deny_insecure_transport: false}
  cnb: {account: cnlake, name: cn-bucket, region: cn-north-1}
pairs:
  - {name: writer, cluster: a, bucket: shared, prefix: out/w/, access: [unload], role: {name: Writer}}
  - {name: reader, cluster: a, bucket: shared, prefix: in/, access: [copy], role: {name: Reader, path: /data/, db_users: [loader, other]}}
  - {name: open-pair, cluster: a, bucket: open, prefix: x/, access: [unload, copy], role: {name: Open, db_users: [loader]}}
  - name: chain
    cluster: a
    bucket: shared
    prefix: chain/
    access: [unload, copy]
    method: role-chaining
    role: {name: ChainFirst, db_users: [loader]}
    target_role: {name: ChainSecond}
  - {name: china, cluster: cn, bucket: cnb, prefix: cn/, access: [copy], role: {name: China}}
jobs:
  - {name: clean, pair: chain, schedule: "@daily", unload: {query: SELECT 1, to: c/, options: {cleanpath: true, kms_key_id: "arn:aws:kms:eu-west-1:222222222222:key/0000abcd-12ab-34cd-56ef-1234567890ab"}}}
  - {name: w, pair: writer, schedule: "@daily", unload: {query: SELECT 1, to: w/, options: {allowoverwrite: true}}}
`

func secConfigs(t *testing.T) map[string]*config.Config {
	t.Helper()
	files, err := filepath.Glob("../config/testdata/*.good.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	files = append(files, "../../examples/config.yaml")
	out := map[string]*config.Config{}
	for _, f := range files {
		cfg, err := config.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = cfg
	}
	cfg, err := config.Parse("edge.yml", []byte(secEdgeConfig))
	if err != nil {
		t.Fatal(err)
	}
	out["edge.yml"] = cfg
	return out
}

func TestGeneratedPoliciesLeastPrivilege(t *testing.T) {
	cfgs := secConfigs(t)
	for _, name := range slices.Sorted(maps.Keys(cfgs)) {
		cfg := cfgs[name]
		t.Run(filepath.Base(name), func(t *testing.T) {
			d := reconcile.Desire(cfg)
			checkRoles(t, cfg, d)
			checkBuckets(t, cfg, d)
			checkNoWildcardAllows(t, d)
		})
	}
}

// TestLeastPrivilegeCoversEveryShape makes sure the configurations above exercise what the
// checks are about, so that a check cannot pass by having nothing to check.
func TestLeastPrivilegeCoversEveryShape(t *testing.T) {
	seen := map[string]bool{}
	for _, cfg := range secConfigs(t) {
		d := reconcile.Desire(cfg)
		for _, p := range cfg.Pairs {
			seen["method "+p.Method] = true
			if len(p.Role.DBUsers) == 0 {
				seen["no db_users"] = true
			}
			if secCleanpath(cfg)[p.Name] {
				seen["cleanpath"] = true
			}
			if len(secKMSKeys(cfg, p)) > 0 {
				seen["kms "+p.Method] = true
			}
			if awsid.Partition(cfg.Buckets[p.Bucket].Region) != "aws" {
				seen["other partition"] = true
			}
		}
		for _, b := range d.Buckets {
			deny := false
			for _, st := range b.Statements {
				deny = deny || st.Effect == "Deny"
			}
			seen["bucket with deny "+map[bool]string{true: "yes", false: "no"}[deny]] = true
		}
	}
	for _, want := range []string{"method bucket-policy", "method role-chaining", "no db_users", "cleanpath", "kms bucket-policy",
		"kms role-chaining", "other partition", "bucket with deny yes", "bucket with deny no"} {
		if !seen[want] {
			t.Errorf("no configuration has %s", want)
		}
	}
}

func checkRoles(t *testing.T, cfg *config.Config, d *reconcile.Desired) {
	t.Helper()
	byARN := map[string]*reconcile.DesiredRole{}
	for _, r := range d.Roles {
		byARN[r.ARN] = r
		if r.Pair == "" || cfg.Pair(r.Pair) == nil {
			t.Errorf("role %s belongs to no configured pair (%q)", r.ARN, r.Pair)
		}
		if !strings.Contains(r.ARN, ":iam::"+r.AccountID+":role/") {
			t.Errorf("role %s is not in its account %s", r.ARN, r.AccountID)
		}
	}
	wantRoles := 0
	for _, p := range cfg.Pairs {
		cl := cfg.Clusters[p.Cluster]
		clAcct := cfg.Accounts[cl.Account]
		b := cfg.Buckets[p.Bucket]
		firstARN := awsid.RoleARN(awsid.Partition(cl.Region), clAcct.ID, p.Role.Path, p.Role.Name)
		first := byARN[firstARN]
		if first == nil {
			t.Errorf("pair %s: no role %s", p.Name, firstARN)
			continue
		}
		wantRoles++

		// The pair role: Redshift only, and only the pair's database users when listed.
		trust := policy.Statement{Effect: "Allow", Principal: map[string]policy.List{"Service": {"redshift.amazonaws.com"}}, Action: policy.List{"sts:AssumeRole"}}
		if len(p.Role.DBUsers) > 0 {
			var ids policy.List
			for _, u := range p.Role.DBUsers {
				ids = append(ids, "arn:"+awsid.Partition(cl.Region)+":redshift:"+cl.Region+":"+clAcct.ID+":dbuser:"+cl.Identifier+"/"+u)
			}
			sort.Strings(ids)
			trust.Condition = map[string]map[string]policy.List{"StringEquals": {"sts:ExternalId": ids}}
		}
		if diff := cmp.Diff([]policy.Statement{trust}, first.Trust.Statement); diff != "" {
			t.Errorf("pair %s: trust of %s (-want +got):\n%s", p.Name, first.Name, diff)
		}

		switch p.Method {
		case "role-chaining":
			bAcct := cfg.Accounts[b.Account]
			secondARN := awsid.RoleARN(awsid.Partition(b.Region), bAcct.ID, p.TargetRole.Path, p.TargetRole.Name)
			second := byARN[secondARN]
			if second == nil {
				t.Errorf("pair %s: no chained role %s", p.Name, secondARN)
				continue
			}
			wantRoles++
			// The first role may only assume the second; the second trusts only the first.
			wantPolicy := []policy.Statement{{Sid: "AssumeChainedRole", Effect: "Allow", Action: policy.List{"sts:AssumeRole"}, Resource: policy.List{secondARN}}}
			if diff := cmp.Diff(wantPolicy, first.Policy.Statement); diff != "" {
				t.Errorf("pair %s: policy of the first role (-want +got):\n%s", p.Name, diff)
			}
			wantTrust := []policy.Statement{{Effect: "Allow", Principal: map[string]policy.List{"AWS": {firstARN}}, Action: policy.List{"sts:AssumeRole"}}}
			if diff := cmp.Diff(wantTrust, second.Trust.Statement); diff != "" {
				t.Errorf("pair %s: trust of the chained role (-want +got):\n%s", p.Name, diff)
			}
			checkS3(t, cfg, p, second.Policy.Statement, "")
			if got := d.Pairs[p.Name].RoleARNs; !slices.Equal(got, []string{firstARN, secondARN}) {
				t.Errorf("pair %s: IAM_ROLE chain %v", p.Name, got)
			}
		default:
			checkS3(t, cfg, p, first.Policy.Statement, "")
			if got := d.Pairs[p.Name].RoleARNs; !slices.Equal(got, []string{firstARN}) {
				t.Errorf("pair %s: IAM_ROLE %v", p.Name, got)
			}
		}
	}
	if len(d.Roles) != wantRoles {
		t.Errorf("%d roles, want %d (one per pair, two per chain)", len(d.Roles), wantRoles)
	}
}

func checkBuckets(t *testing.T, cfg *config.Config, d *reconcile.Desired) {
	t.Helper()
	byName := map[string]*reconcile.DesiredBucket{}
	for _, b := range d.Buckets {
		byName[b.Name] = b
	}
	for key, b := range cfg.Buckets {
		db := byName[b.Name]
		if db == nil {
			t.Errorf("bucket %s not desired", key)
			continue
		}
		arn := "arn:" + awsid.Partition(b.Region) + ":s3:::" + b.Name
		var denies []policy.Statement
		byPair := map[string][]policy.Statement{}
		for _, st := range db.Statements {
			if !policy.IsOwnedSid(st.Sid) {
				t.Errorf("bucket %s: statement %q is not marked as xacctd's", b.Name, st.Sid)
			}
			if st.Effect == "Deny" {
				denies = append(denies, st)
				continue
			}
			pair := db.StatementPair[st.Sid]
			byPair[pair] = append(byPair[pair], st)
		}
		// The TLS deny: the only Deny, and the one place for s3:*, principal * and bucket/*.
		var wantDeny []policy.Statement
		if *b.DenyInsecureTransport {
			wantDeny = []policy.Statement{{
				Sid: policy.DenyInsecureTransportSid, Effect: "Deny", Principal: map[string]policy.List{"AWS": {"*"}},
				Action: policy.List{"s3:*"}, Resource: policy.List{arn, arn + "/*"},
				Condition: map[string]map[string]policy.List{"Bool": {"aws:SecureTransport": {"false"}}},
			}}
		}
		if diff := cmp.Diff(wantDeny, denies); diff != "" {
			t.Errorf("bucket %s: Deny statements (-want +got):\n%s", b.Name, diff)
		}
		// One set of statements per bucket-policy pair, naming exactly its role.
		for _, p := range cfg.Pairs {
			if p.Bucket != key {
				continue
			}
			got := byPair[p.Name]
			delete(byPair, p.Name)
			if p.Method == "role-chaining" {
				if len(got) > 0 {
					t.Errorf("bucket %s: role-chaining pair %s has bucket statements %+v", b.Name, p.Name, got)
				}
				continue
			}
			cl := cfg.Clusters[p.Cluster]
			role := awsid.RoleARN(awsid.Partition(cl.Region), cfg.Accounts[cl.Account].ID, p.Role.Path, p.Role.Name)
			checkS3(t, cfg, p, got, role)
		}
		if len(byPair) > 0 {
			t.Errorf("bucket %s: statements of no pair of this bucket: %v", b.Name, byPair)
		}
	}
}

// checkS3 checks a pair's S3 (and KMS) statements; principal is the role a bucket statement
// must name, "" for an identity policy.
func checkS3(t *testing.T, cfg *config.Config, p *config.Pair, stmts []policy.Statement, principal string) {
	t.Helper()
	b := cfg.Buckets[p.Bucket]
	arn := "arn:" + awsid.Partition(b.Region) + ":s3:::" + b.Name
	if p.Prefix == "" || !strings.HasSuffix(p.Prefix, "/") {
		t.Fatalf("pair %s: prefix %q", p.Name, p.Prefix)
	}
	var wantObj []string
	if p.Has("copy") {
		wantObj = append(wantObj, "s3:GetObject")
	}
	if p.Has("unload") {
		wantObj = append(wantObj, "s3:PutObject")
	}
	if secCleanpath(cfg)[p.Name] {
		wantObj = append(wantObj, "s3:DeleteObject")
	}
	keys := secKMSKeys(cfg, p)
	seen := map[string]bool{}
	for _, st := range stmts {
		where := "pair " + p.Name + " statement " + st.Sid
		if st.Effect != "Allow" {
			t.Errorf("%s: effect %s", where, st.Effect)
		}
		switch {
		case principal == "" && st.Principal != nil:
			t.Errorf("%s: identity policy statement with principal %v", where, st.Principal)
		case principal != "" && !cmp.Equal(st.Principal, map[string]policy.List{"AWS": {principal}}):
			t.Errorf("%s: principal %v, want exactly the pair role %s", where, st.Principal, principal)
		}
		switch {
		case slices.Contains(st.Action, "s3:GetObject") || slices.Contains(st.Action, "s3:PutObject") || slices.Contains(st.Action, "s3:DeleteObject"):
			seen["objects"] = true
			if !cmp.Equal([]string(st.Action), wantObj) {
				t.Errorf("%s: object actions %v, want %v", where, st.Action, wantObj)
			}
			if want := arn + "/" + p.Prefix + "*"; !cmp.Equal([]string(st.Resource), []string{want}) {
				t.Errorf("%s: object resource %v, want only %s (the pair's prefix)", where, st.Resource, want)
			}
			if st.Condition != nil {
				t.Errorf("%s: unexpected condition %v", where, st.Condition)
			}
		case cmp.Equal([]string(st.Action), []string{"s3:ListBucket"}):
			seen["list"] = true
			if !cmp.Equal([]string(st.Resource), []string{arn}) {
				t.Errorf("%s: ListBucket on %v", where, st.Resource)
			}
			want := map[string]map[string]policy.List{"StringLike": {"s3:prefix": {p.Prefix + "*"}}}
			if !cmp.Equal(st.Condition, want) {
				t.Errorf("%s: ListBucket condition %v, want listing limited to %s*", where, st.Condition, p.Prefix)
			}
		case cmp.Equal([]string(st.Action), []string{"s3:GetBucketLocation"}):
			// The one bucket-level grant without a prefix: it reveals the region only, and
			// Redshift asks for it before UNLOAD and COPY.
			seen["location"] = true
			if !cmp.Equal([]string(st.Resource), []string{arn}) || st.Condition != nil {
				t.Errorf("%s: GetBucketLocation on %v (condition %v)", where, st.Resource, st.Condition)
			}
		case slices.Contains(st.Action, "kms:Decrypt"):
			seen["kms"] = true
			if principal != "" {
				t.Errorf("%s: KMS grant in a bucket policy", where)
			}
			wantActs := []string{"kms:Decrypt"}
			if p.Has("unload") {
				wantActs = append(wantActs, "kms:GenerateDataKey")
			}
			if !cmp.Equal([]string(st.Action), wantActs) || !cmp.Equal([]string(st.Resource), keys) {
				t.Errorf("%s: KMS %v on %v, want %v on %v", where, st.Action, st.Resource, wantActs, keys)
			}
		default:
			t.Errorf("%s: unexpected statement %+v", where, st)
		}
	}
	want := []string{"list", "location", "objects"}
	if len(keys) > 0 && principal == "" {
		want = append(want, "kms")
	}
	sort.Strings(want)
	if got := slices.Sorted(maps.Keys(seen)); !slices.Equal(got, want) {
		t.Errorf("pair %s: statements %v, want %v", p.Name, got, want)
	}
}

// checkNoWildcardAllows is the blunt rule on every Allow in every document: no "*" anywhere
// but the trailing one of an object prefix.
func checkNoWildcardAllows(t *testing.T, d *reconcile.Desired) {
	t.Helper()
	var all []policy.Statement
	for _, r := range d.Roles {
		all = append(all, r.Trust.Statement...)
		all = append(all, r.Policy.Statement...)
	}
	for _, b := range d.Buckets {
		all = append(all, b.Statements...)
	}
	for _, st := range all {
		if st.Effect != "Allow" {
			if st.Sid != policy.DenyInsecureTransportSid {
				t.Errorf("statement %s: effect %s", st.Sid, st.Effect)
			}
			continue
		}
		j, _ := json.Marshal(st)
		if strings.Contains(string(j), `"*"`) || strings.Contains(string(j), `:*"`) || strings.Contains(string(j), `*:`) {
			t.Errorf("Allow statement with a wildcard: %s", j)
		}
		for _, r := range st.Resource {
			if strings.Contains(r, "*") && !strings.HasSuffix(r, "/*") {
				t.Errorf("Allow statement %s: resource %s", st.Sid, r)
			}
			if i := strings.Index(r, ":s3:::"); i >= 0 {
				if key := r[i+len(":s3:::"):]; strings.HasSuffix(key, "/*") && strings.Count(key, "/") == 1 {
					t.Errorf("Allow statement %s: bucket-wide object resource %s", st.Sid, r)
				}
			}
		}
		for _, ps := range st.Principal {
			for _, p := range ps {
				if strings.HasSuffix(p, ":root") || (!strings.HasPrefix(p, "arn:") && p != "redshift.amazonaws.com") {
					t.Errorf("Allow statement %s: principal %s", st.Sid, p)
				}
			}
		}
	}
}

func secCleanpath(cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	for _, j := range cfg.Jobs {
		if j.Unload != nil && j.Unload.Options.CleanPath {
			out[j.Pair] = true
		}
	}
	return out
}

// secKMSKeys are the keys a pair may use: its bucket's default key and the kms_key_id of its
// unload jobs.
func secKMSKeys(cfg *config.Config, p *config.Pair) []string {
	var keys []string
	if k := cfg.Buckets[p.Bucket].KMSKeyARN; k != "" {
		keys = append(keys, k)
	}
	for _, j := range cfg.Jobs {
		if j.Pair == p.Name && j.Unload != nil && j.Unload.Options.KMSKeyID != "" && !slices.Contains(keys, j.Unload.Options.KMSKeyID) {
			keys = append(keys, j.Unload.Options.KMSKeyID)
		}
	}
	sort.Strings(keys)
	return keys
}
