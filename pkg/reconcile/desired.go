package reconcile

import (
	"maps"
	"slices"
	"sort"

	"github.com/xacctd/xacctd/pkg/awsid"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/policy"
)

// RolePolicyName is the name of the one inline policy xacctd writes on each role it owns.
const RolePolicyName = "xacctd"

// Desired is every AWS setting the configuration asks for. It is derived from the config
// alone (no AWS calls) and is the left side of every plan.
type Desired struct {
	Buckets      []*DesiredBucket
	Roles        []*DesiredRole
	Associations []*DesiredAssociation
	// Pairs maps a pair name to what it needs, for readiness and for jobs (IAM_ROLE).
	Pairs map[string]*PairState
}

// DesiredBucket is one bucket's settings and the statements xacctd owns in its policy.
type DesiredBucket struct {
	Account, AccountID, Region, Name string
	Create                           bool
	BlockPublicAccess                bool
	KMSKeyARN                        string // empty: SSE-S3
	Statements                       []policy.Statement
	Tags                             map[string]string // applied when xacctd creates the bucket
	// StatementPair maps an owned statement's Sid to its pair ("" for bucket-wide ones).
	StatementPair map[string]string `json:"-"`
}

// DesiredRole is one role xacctd owns.
type DesiredRole struct {
	Account, AccountID, Name, Path, ARN string
	Pair                                string
	Trust                               policy.Document
	Policy                              policy.Document // inline policy RolePolicyName
	Tags                                map[string]string
}

// DesiredAssociation is a role that must be associated with a cluster.
type DesiredAssociation struct {
	Account, AccountID, Region, Cluster string // Cluster is the identifier
	RoleARN, Pair                       string
}

// PairState is what one pair needs, by reference into Desired.
type PairState struct {
	Name     string
	Method   string
	RoleARNs []string // IAM_ROLE: one role, or the chain in order
	Bucket   string   // bucket name
	Prefix   string
	Roles    []string // ARNs of the roles the pair owns
	Cluster  string   // cluster identifier
}

// Desire derives the desired state from a validated configuration.
func Desire(cfg *config.Config) *Desired {
	d := &Desired{Pairs: map[string]*PairState{}}
	buckets := map[string]*DesiredBucket{}
	for _, key := range slices.Sorted(maps.Keys(cfg.Buckets)) {
		b := cfg.Buckets[key]
		acct := cfg.Accounts[b.Account]
		db := &DesiredBucket{
			Account: b.Account, AccountID: acct.ID, Region: b.Region, Name: b.Name,
			Create: b.Create, BlockPublicAccess: *b.BlockPublicAccess, KMSKeyARN: b.KMSKeyARN,
			Tags: tags(cfg, ""), StatementPair: map[string]string{},
		}
		if *b.DenyInsecureTransport {
			db.Statements = append(db.Statements, policy.DenyInsecureTransport(awsid.Partition(b.Region), b.Name))
		}
		buckets[key] = db
		d.Buckets = append(d.Buckets, db)
	}

	cleanpath := map[string]bool{}
	kmsKeys := map[string][]string{}
	for _, j := range cfg.Jobs {
		if j.Unload != nil {
			if j.Unload.Options.CleanPath {
				cleanpath[j.Pair] = true
			}
			if k := j.Unload.Options.KMSKeyID; k != "" {
				kmsKeys[j.Pair] = append(kmsKeys[j.Pair], k)
			}
		}
	}

	for _, p := range cfg.Pairs {
		cl := cfg.Clusters[p.Cluster]
		clAcct := cfg.Accounts[cl.Account]
		b := cfg.Buckets[p.Bucket]
		bAcct := cfg.Accounts[b.Account]
		partition := awsid.Partition(cl.Region)

		access := policy.Access{
			Partition: awsid.Partition(b.Region), Bucket: b.Name, Prefix: p.Prefix,
			Unload: p.Has("unload"), Copy: p.Has("copy"), Delete: cleanpath[p.Name],
			KMSKeys: uniqueSorted(append(append([]string(nil), kmsKeys[p.Name]...), nonEmpty(b.KMSKeyARN)...)),
		}
		dbUsers := make([]string, len(p.Role.DBUsers))
		for i, u := range p.Role.DBUsers {
			dbUsers[i] = awsid.DBUserARN(cl.Region, clAcct.ID, cl.Identifier, u)
		}
		roleA := &DesiredRole{
			Account: cl.Account, AccountID: clAcct.ID, Name: p.Role.Name, Path: p.Role.Path,
			ARN:  awsid.RoleARN(partition, clAcct.ID, p.Role.Path, p.Role.Name),
			Pair: p.Name, Trust: policy.RedshiftTrust(dbUsers), Tags: tags(cfg, p.Name),
		}
		ps := &PairState{Name: p.Name, Method: p.Method, Bucket: b.Name, Prefix: p.Prefix, Cluster: cl.Identifier}
		switch p.Method {
		case "role-chaining":
			roleB := &DesiredRole{
				Account: b.Account, AccountID: bAcct.ID, Name: p.TargetRole.Name, Path: p.TargetRole.Path,
				ARN:  awsid.RoleARN(awsid.Partition(b.Region), bAcct.ID, p.TargetRole.Path, p.TargetRole.Name),
				Pair: p.Name, Trust: policy.ChainTrust(roleA.ARN), Policy: policy.IdentityPolicy(access),
				Tags: tags(cfg, p.Name),
			}
			roleA.Policy = policy.ChainPolicy(roleB.ARN)
			d.Roles = append(d.Roles, roleA, roleB)
			ps.RoleARNs = []string{roleA.ARN, roleB.ARN}
			ps.Roles = []string{roleA.ARN, roleB.ARN}
		default: // bucket-policy
			roleA.Policy = policy.IdentityPolicy(access)
			d.Roles = append(d.Roles, roleA)
			db := buckets[p.Bucket]
			for _, st := range policy.S3Statements(access, roleA.ARN, policy.PairSid(p.Name, "")) {
				db.Statements = append(db.Statements, st)
				db.StatementPair[st.Sid] = p.Name
			}
			ps.RoleARNs = []string{roleA.ARN}
			ps.Roles = []string{roleA.ARN}
		}
		d.Associations = append(d.Associations, &DesiredAssociation{
			Account: cl.Account, AccountID: clAcct.ID, Region: cl.Region, Cluster: cl.Identifier,
			RoleARN: roleA.ARN, Pair: p.Name,
		})
		d.Pairs[p.Name] = ps
	}
	for _, b := range d.Buckets {
		sort.Slice(b.Statements, func(i, j int) bool { return b.Statements[i].Sid < b.Statements[j].Sid })
	}
	sort.Slice(d.Roles, func(i, j int) bool {
		if d.Roles[i].AccountID != d.Roles[j].AccountID {
			return d.Roles[i].AccountID < d.Roles[j].AccountID
		}
		return d.Roles[i].Name < d.Roles[j].Name
	})
	return d
}

// tags are the tags of what xacctd creates: the configured ones, managed-by=xacctd, and the
// pair a role belongs to.
func tags(cfg *config.Config, pair string) map[string]string {
	t := map[string]string{}
	for k, v := range cfg.Defaults.Tags {
		t[k] = v
	}
	t[config.ManagedByTag] = "xacctd"
	if pair != "" {
		t[config.PairTag] = pair
	}
	return t
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func uniqueSorted(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || in[i-1] != s {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
