package reconcile

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/policy"
)

// Action is what a change does.
type Action string

// Actions, as they appear in plans (design.md §2).
const (
	Create Action = "create"
	Update Action = "update"
	Delete Action = "delete"
	NoOp   Action = "no-op"
)

// Resource types, as they appear in plans.
const (
	TypeBucket            = "s3:bucket"
	TypePublicAccessBlock = "s3:public-access-block"
	TypeOwnership         = "s3:ownership-controls"
	TypeEncryption        = "s3:default-encryption"
	TypeStatement         = "s3:bucket-policy-statement"
	TypeRole              = "iam:role"
	TypeTrust             = "iam:role-trust-policy"
	TypeRolePolicy        = "iam:role-inline-policy"
	TypeRoleAttachment    = "iam:role-attached-policy"
	TypeRoleTags          = "iam:role-tags"
	TypeAssociation       = "redshift:cluster-iam-role"
)

// Reasons.
const (
	ReasonMissing = "missing"
	ReasonDrift   = "drift"
	ReasonRemoved = "no longer configured"
)

const (
	managedByKey   = config.ManagedByTag
	managedByValue = "xacctd"
)

// Change is one difference between desired and observed state, and what apply does about
// it. Before and After are plain data (policy documents, settings) for review.
type Change struct {
	Action    Action `json:"action"`
	Type      string `json:"type"`
	Account   string `json:"account"`    // account name
	AccountID string `json:"account_id"` // 12 digits
	Region    string `json:"region,omitempty"`
	ID        string `json:"id"` // bucket, bucket/Sid, role name, cluster/role ARN
	Pair      string `json:"pair,omitempty"`
	Before    any    `json:"before"`
	After     any    `json:"after"`
	Reason    string `json:"reason"`
}

// Conflict is something xacctd will not touch that blocks a pair: a same-named role it does
// not own, a bucket that does not exist and may not be created, a cluster that is not there.
type Conflict struct {
	Type      string   `json:"type"`
	Account   string   `json:"account"`
	AccountID string   `json:"account_id"`
	ID        string   `json:"id"`
	Pairs     []string `json:"pairs,omitempty"`
	Reason    string   `json:"reason"`
}

// Plan is the result of comparing desired with observed state.
type Plan struct {
	Changes   []Change   `json:"changes"`
	Conflicts []Conflict `json:"conflicts"`
}

// Summary counts changes by action.
func (p *Plan) Summary() map[string]int {
	s := map[string]int{string(Create): 0, string(Update): 0, string(Delete): 0}
	for _, c := range p.Changes {
		if c.Action != NoOp {
			s[string(c.Action)]++
		}
	}
	return s
}

// Empty reports whether applying the plan would change nothing.
func (p *Plan) Empty() bool {
	for _, c := range p.Changes {
		if c.Action != NoOp {
			return false
		}
	}
	return true
}

var uniqueIDRe = regexp.MustCompile(`^(AROA|AIDA|AGPA|ANPA)[A-Z0-9]{8,}$`)

type planner struct {
	d    *Desired
	o    *Observed
	plan *Plan
	// roles that exist and are not xacctd's, or could not be read: their pairs are blocked.
	conflictRoles map[string]bool
	// reads that failed, by what they cover
	failedRoles    map[string]error // account name
	failedBuckets  map[string]error // bucket name
	failedClusters map[string]error // account name + "/" + region
}

// MakePlan compares desired with observed state. It is a pure function: the same inputs
// give the same plan, in apply order (see applyRank).
func MakePlan(d *Desired, o *Observed) *Plan {
	p := &planner{d: d, o: o, plan: &Plan{Changes: []Change{}, Conflicts: []Conflict{}}, conflictRoles: map[string]bool{},
		failedRoles: map[string]error{}, failedBuckets: map[string]error{}, failedClusters: map[string]error{}}
	for _, e := range o.Errors {
		switch e.Type {
		case TypeRole:
			p.failedRoles[e.Account] = e.Err
		case TypeBucket:
			p.failedBuckets[e.ID] = e.Err
		case TypeAssociation:
			p.failedClusters[e.Account+"/"+e.ID] = e.Err
		}
		p.plan.Conflicts = append(p.plan.Conflicts, Conflict{Type: e.Type, Account: e.Account, ID: e.ID,
			Reason: fmt.Sprintf("could not be read, so it is left alone this time: %v", e.Err)})
	}
	p.roles() // first, to know conflicts; changes are sorted at the end
	p.buckets()
	p.associations()
	sort.SliceStable(p.plan.Changes, func(i, j int) bool {
		return applyRank(p.plan.Changes[i]) < applyRank(p.plan.Changes[j])
	})
	return p.plan
}

// applyRank orders changes as apply runs them: creates and updates in dependency order,
// then deletions in reverse dependency order (disassociate, then drop statements, then
// delete roles), so nothing is ever referenced after it is gone.
func applyRank(c Change) int {
	if c.Action == Delete {
		return 100 - typeOrder[c.Type]
	}
	return typeOrder[c.Type]
}

// typeOrder is the dependency order of apply (design.md §4).
var typeOrder = map[string]int{
	TypeBucket: 0, TypePublicAccessBlock: 1, TypeOwnership: 1, TypeEncryption: 1,
	TypeRole: 2, TypeTrust: 3, TypeRolePolicy: 3, TypeRoleAttachment: 3, TypeRoleTags: 3,
	TypeStatement: 4, TypeAssociation: 5,
}

func (p *planner) add(c Change) { p.plan.Changes = append(p.plan.Changes, c) }

func (p *planner) buckets() {
	for _, b := range p.d.Buckets {
		if p.failedBuckets[b.Name] != nil {
			continue
		}
		ob := p.o.Buckets[b.Name]
		base := Change{Account: b.Account, AccountID: b.AccountID, Region: b.Region}
		if ob == nil || !ob.Exists {
			if !b.Create {
				p.plan.Conflicts = append(p.plan.Conflicts, Conflict{
					Type: TypeBucket, Account: b.Account, AccountID: b.AccountID, ID: b.Name,
					Reason: "the bucket does not exist and create is false: create it, or set create: true",
				})
				continue
			}
			c := base
			c.Action, c.Type, c.ID, c.Reason = Create, TypeBucket, b.Name, ReasonMissing
			c.After = map[string]any{"region": b.Region, "tags": b.Tags}
			p.add(c)
			ob = &ObservedBucket{}
		}
		if b.BlockPublicAccess && !ob.PublicAccessBlock.AllOn() {
			c := base
			c.Action, c.Type, c.ID = actionFor(ob.PublicAccessBlock != nil), TypePublicAccessBlock, b.Name
			c.Reason = reasonFor(ob.PublicAccessBlock != nil)
			c.Before = pabOrNil(ob.PublicAccessBlock)
			c.After = &PublicAccessBlock{true, true, true, true}
			p.add(c)
		}
		if ob.Ownership != "BucketOwnerEnforced" {
			c := base
			c.Action, c.Type, c.ID = actionFor(ob.Ownership != ""), TypeOwnership, b.Name
			c.Reason = reasonFor(ob.Ownership != "")
			c.Before, c.After = strOrNil(ob.Ownership), "BucketOwnerEnforced"
			p.add(c)
		}
		if want := wantEncryption(b); !encryptionOK(ob.Encryption, want) {
			c := base
			c.Action, c.Type, c.ID = actionFor(ob.Encryption != nil), TypeEncryption, b.Name
			c.Reason = reasonFor(ob.Encryption != nil)
			c.Before, c.After = encOrNil(ob.Encryption), want
			p.add(c)
		}
		p.statements(b, ob, base)
	}
}

func wantEncryption(b *DesiredBucket) *Encryption {
	if b.KMSKeyARN != "" {
		return &Encryption{Algorithm: "aws:kms", KMSKeyID: b.KMSKeyARN}
	}
	return &Encryption{Algorithm: "AES256"}
}

// encryptionOK: with a configured key, exactly that key; without one, any default encryption
// (a bucket encrypted with a key of the owner's choosing is left as it is).
func encryptionOK(got, want *Encryption) bool {
	if got == nil || got.Algorithm == "" {
		return false
	}
	if want.KMSKeyID == "" {
		return true
	}
	return (got.Algorithm == "aws:kms" || got.Algorithm == "aws:kms:dsse") && got.KMSKeyID == want.KMSKeyID
}

func (p *planner) statements(b *DesiredBucket, ob *ObservedBucket, base Change) {
	parts, err := policy.Split(ob.Policy)
	if err != nil {
		p.plan.Conflicts = append(p.plan.Conflicts, Conflict{
			Type: TypeStatement, Account: b.Account, AccountID: b.AccountID, ID: b.Name,
			Reason: fmt.Sprintf("the bucket policy cannot be read (%v): fix or remove it by hand", err),
		})
		return
	}
	wanted := map[string]bool{}
	for _, st := range b.Statements {
		if p.blockedStatement(st) {
			continue
		}
		wanted[st.Sid] = true
		want := mustJSON(st)
		c := base
		c.Type, c.ID, c.Pair, c.After = TypeStatement, b.Name+"/"+st.Sid, b.StatementPair[st.Sid], json.RawMessage(want)
		got, ok := parts.Owned[st.Sid]
		switch {
		case !ok:
			c.Action, c.Reason = Create, ReasonMissing
		case hasUniqueIDPrincipal(got):
			c.Action, c.Before = Update, got
			c.Reason = ReasonDrift + ": the principal is a bare unique id (the role was deleted and re-created); rewriting it with the ARN"
		case !policy.Equal(got, want):
			c.Action, c.Before, c.Reason = Update, got, ReasonDrift
		default:
			continue
		}
		p.add(c)
	}
	for _, sid := range slices.Sorted(maps.Keys(parts.Owned)) {
		if wanted[sid] || p.keptBlocked(b.Name, sid) {
			continue
		}
		c := base
		c.Action, c.Type, c.ID, c.Before, c.Reason = Delete, TypeStatement, b.Name+"/"+sid, parts.Owned[sid], ReasonRemoved
		p.add(c)
	}
}

// blockedStatement: a statement granting a role that is in conflict is not written (the
// principal is somebody else's role).
func (p *planner) blockedStatement(st policy.Statement) bool {
	for _, arns := range st.Principal {
		for _, arn := range arns {
			if p.conflictRoles[arn] {
				return true
			}
		}
	}
	return false
}

// keptBlocked: an owned statement of a blocked pair is left as it is rather than deleted.
func (p *planner) keptBlocked(bucket, sid string) bool {
	for _, b := range p.d.Buckets {
		if b.Name != bucket {
			continue
		}
		for _, st := range b.Statements {
			if st.Sid == sid {
				return true
			}
		}
	}
	return false
}

func hasUniqueIDPrincipal(raw json.RawMessage) bool {
	var st struct {
		Principal map[string]policy.List `json:"Principal"`
	}
	if json.Unmarshal(raw, &st) != nil {
		return false
	}
	for _, ids := range st.Principal {
		for _, id := range ids {
			if uniqueIDRe.MatchString(id) {
				return true
			}
		}
	}
	return false
}

func (p *planner) roles() {
	desiredKeys := map[string]bool{}
	for _, r := range p.d.Roles {
		key := RoleKey(r.AccountID, r.Name)
		desiredKeys[key] = true
		if p.failedRoles[r.Account] != nil {
			p.conflictRoles[r.ARN] = true
			continue
		}
		or := p.o.Roles[key]
		base := Change{Account: r.Account, AccountID: r.AccountID, ID: r.Name, Pair: r.Pair}
		trust := mustJSON(r.Trust)
		pol := mustJSON(r.Policy)
		if or == nil {
			c := base
			c.Action, c.Type, c.Reason = Create, TypeRole, ReasonMissing
			c.After = map[string]any{"arn": r.ARN, "path": r.Path, "trust_policy": json.RawMessage(trust), "tags": r.Tags}
			p.add(c)
			c = base
			c.Action, c.Type, c.Reason, c.After = Create, TypeRolePolicy, ReasonMissing, json.RawMessage(pol)
			c.ID = r.Name + "/" + RolePolicyName
			p.add(c)
			continue
		}
		if !or.Managed() {
			p.conflictRoles[r.ARN] = true
			p.plan.Conflicts = append(p.plan.Conflicts, Conflict{
				Type: TypeRole, Account: r.Account, AccountID: r.AccountID, ID: r.Name, Pairs: []string{r.Pair},
				Reason: fmt.Sprintf("role %s exists and is not managed by xacctd (no tag %s=%s): it is left alone; rename the pair's role, or delete or tag that role if it is meant for xacctd", or.ARN, managedByKey, managedByValue),
			})
			continue
		}
		if or.Path != r.Path {
			c := base
			c.Action, c.Type, c.Before, c.After = Update, TypeRole, or.Path, r.Path
			c.Reason = ReasonDrift + ": the role's path differs; IAM cannot change a path, so the role is deleted and re-created"
			p.add(c)
		}
		if !policy.Equal(or.Trust, trust) {
			c := base
			c.Action, c.Type, c.Before, c.After, c.Reason = Update, TypeTrust, or.Trust, json.RawMessage(trust), ReasonDrift
			p.add(c)
		}
		got, ok := or.Inline[RolePolicyName]
		if !ok || !policy.Equal(got, pol) {
			c := base
			c.Action, c.Type, c.ID, c.After = Update, TypeRolePolicy, r.Name+"/"+RolePolicyName, json.RawMessage(pol)
			c.Reason = ReasonDrift
			if ok {
				c.Before = got
			} else {
				c.Action, c.Reason = Create, ReasonMissing
			}
			p.add(c)
		}
		for _, name := range slices.Sorted(maps.Keys(or.Inline)) {
			if name == RolePolicyName {
				continue
			}
			c := base
			c.Action, c.Type, c.ID, c.Before = Delete, TypeRolePolicy, r.Name+"/"+name, or.Inline[name]
			c.Reason = ReasonDrift + ": an extra inline policy on a role xacctd owns widens its access"
			p.add(c)
		}
		for _, arn := range or.Attached {
			c := base
			c.Action, c.Type, c.ID, c.Before = Delete, TypeRoleAttachment, r.Name+"/"+arn, arn
			c.Reason = ReasonDrift + ": a managed policy attached to a role xacctd owns widens its access"
			p.add(c)
		}
		if !tagsInclude(or.Tags, r.Tags) {
			c := base
			c.Action, c.Type, c.Before, c.After, c.Reason = Update, TypeRoleTags, or.Tags, r.Tags, ReasonDrift
			p.add(c)
		}
	}
	// Roles xacctd owns that no pair wants any more: delete (inline and attached policies
	// first, which apply does as part of the deletion).
	for _, key := range slices.Sorted(maps.Keys(p.o.Roles)) {
		or := p.o.Roles[key]
		if desiredKeys[key] || !or.Managed() {
			continue
		}
		acct, _, _ := strings.Cut(key, "/")
		p.add(Change{
			Action: Delete, Type: TypeRole, Account: p.accountName(acct), AccountID: acct, ID: or.Name,
			Pair: or.Tags[config.PairTag], Before: map[string]any{"arn": or.ARN, "path": or.Path}, Reason: ReasonRemoved,
		})
	}
}

// accountName maps an account id back to its configured name.
func (p *planner) accountName(id string) string {
	for _, r := range p.d.Roles {
		if r.AccountID == id {
			return r.Account
		}
	}
	for _, b := range p.d.Buckets {
		if b.AccountID == id {
			return b.Account
		}
	}
	for _, a := range p.d.Associations {
		if a.AccountID == id {
			return a.Account
		}
	}
	return id
}

func tagsInclude(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func (p *planner) associations() {
	wanted := map[string]map[string]bool{} // cluster key -> role ARN
	for _, a := range p.d.Associations {
		key := ClusterKey(a.AccountID, a.Region, a.Cluster)
		if wanted[key] == nil {
			wanted[key] = map[string]bool{}
		}
		wanted[key][a.RoleARN] = true
		if p.failedClusters[a.Account+"/"+a.Region] != nil {
			continue
		}
		oc := p.o.Clusters[key]
		if oc == nil {
			p.plan.Conflicts = append(p.plan.Conflicts, Conflict{
				Type: TypeAssociation, Account: a.Account, AccountID: a.AccountID, ID: a.Cluster, Pairs: []string{a.Pair},
				Reason: fmt.Sprintf("cluster %s was not found in account %s, region %s: check clusters.*.identifier and region", a.Cluster, a.AccountID, a.Region),
			})
			continue
		}
		if p.conflictRoles[a.RoleARN] {
			continue
		}
		reason := ReasonMissing
		switch oc.Roles[a.RoleARN] {
		case "adding", "in-sync":
			continue // readiness reports the state
		case "removing":
			// Someone removed a wanted association: add it back (apply retries while the
			// cluster is still busy removing it).
			reason = "being removed by someone else; xacctd adds it back"
		}
		p.add(Change{
			Action: Create, Type: TypeAssociation, Account: a.Account, AccountID: a.AccountID, Region: a.Region,
			ID: a.Cluster + "/" + a.RoleARN, Pair: a.Pair, After: a.RoleARN, Reason: reason,
		})
	}
	// Associations of roles xacctd owns that are no longer wanted on that cluster.
	managedARNs := map[string]*ObservedRole{}
	for _, or := range p.o.Roles {
		if or.Managed() {
			managedARNs[or.ARN] = or
		}
	}
	for _, key := range slices.Sorted(maps.Keys(p.o.Clusters)) {
		oc := p.o.Clusters[key]
		for _, arn := range slices.Sorted(maps.Keys(oc.Roles)) {
			or, ours := managedARNs[arn]
			if !ours || wanted[key][arn] || oc.Roles[arn] == "removing" {
				continue
			}
			parts := strings.SplitN(key, "/", 3) // ClusterKey: account/region/identifier
			acct, region, cluster := parts[0], parts[1], parts[2]
			p.add(Change{
				Action: Delete, Type: TypeAssociation, Account: p.accountName(acct), AccountID: acct, Region: region,
				ID: cluster + "/" + arn, Pair: or.Tags[config.PairTag], Before: arn, Reason: ReasonRemoved,
			})
		}
	}
}

func actionFor(exists bool) Action {
	if exists {
		return Update
	}
	return Create
}

func reasonFor(exists bool) string {
	if exists {
		return ReasonDrift
	}
	return ReasonMissing
}

func pabOrNil(p *PublicAccessBlock) any {
	if p == nil {
		return nil
	}
	return p
}

func encOrNil(e *Encryption) any {
	if e == nil {
		return nil
	}
	return e
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // policy documents are strings, lists and maps
	}
	return b
}
