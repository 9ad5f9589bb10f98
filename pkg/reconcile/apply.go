package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/policy"
)

// ApplyOptions tune apply. Zero values take the defaults.
type ApplyOptions struct {
	Concurrency int           // accounts worked on at once (default 4)
	RetryFor    time.Duration // how long eventually consistent errors are retried (default 2m)
	RetryBase   time.Duration // first backoff (default 1s, doubling, at most 15s)
	WaitInSync  time.Duration // how long to wait for new associations to be in-sync (default 5m; 0 with NoWait)
	NoWait      bool
	Logger      *zap.Logger
}

func (o *ApplyOptions) defaults() {
	if o.Concurrency < 1 {
		o.Concurrency = 4
	}
	if o.RetryFor == 0 {
		o.RetryFor = 2 * time.Minute
	}
	if o.RetryBase == 0 {
		o.RetryBase = time.Second
	}
	if o.WaitInSync == 0 {
		o.WaitInSync = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
}

// Outcome of one change.
type Outcome string

// Outcomes.
const (
	Applied Outcome = "applied"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped" // not tried: something it depends on failed
)

// ChangeResult is what happened to one change.
type ChangeResult struct {
	Change
	Outcome Outcome `json:"outcome"`
	Error   string  `json:"error,omitempty"`
}

// Result says exactly what apply did and did not do.
type Result struct {
	Results []ChangeResult `json:"results"`
	// NotInSync lists associations still not in-sync when the wait ended.
	NotInSync []string `json:"not_in_sync,omitempty"`
}

// Failed reports whether any change failed or was skipped.
func (r *Result) Failed() bool {
	for _, c := range r.Results {
		if c.Outcome != Applied {
			return true
		}
	}
	return len(r.NotInSync) > 0
}

type applier struct {
	d       *Desired
	o       *Observed
	clients Clients
	opts    ApplyOptions
	log     *zap.Logger

	rolesByARN map[string]*ObservedRole

	mu          sync.Mutex
	results     []ChangeResult
	failedPairs map[string]string // pair -> why
}

// Apply carries out a plan in dependency order: buckets and their settings, roles and their
// policies, bucket policies (one merged write per bucket), cluster associations (one call per
// cluster); then deletions in reverse order. Within a phase, accounts are worked on in
// parallel. A pair whose change fails is not worked on further; every other pair is.
func Apply(ctx context.Context, d *Desired, o *Observed, p *Plan, clients Clients, opts ApplyOptions) *Result {
	opts.defaults()
	a := &applier{d: d, o: o, clients: clients, opts: opts, log: opts.Logger, failedPairs: map[string]string{}, rolesByARN: map[string]*ObservedRole{}}
	for _, or := range o.Roles {
		a.rolesByARN[or.ARN] = or
	}
	byType := func(del bool, types ...string) []Change {
		var out []Change
		for _, c := range p.Changes {
			if c.Action != NoOp && (c.Action == Delete) == del && slices.Contains(types, c.Type) {
				out = append(out, c)
			}
		}
		return out
	}
	a.perAccount(ctx, byType(false, TypeBucket, TypePublicAccessBlock, TypeOwnership, TypeEncryption), a.bucketChange)
	a.perAccount(ctx, byType(false, TypeRole, TypeTrust, TypeRolePolicy, TypeRoleAttachment, TypeRoleTags), a.roleChange)
	a.perAccount(ctx, byType(true, TypeRolePolicy, TypeRoleAttachment), a.roleChange)
	a.bucketPolicies(ctx, byType(false, TypeStatement), byType(true, TypeStatement))
	added := a.associations(ctx, byType(false, TypeAssociation), byType(true, TypeAssociation))
	a.perAccount(ctx, byType(true, TypeRole), a.roleChange)
	res := &Result{Results: a.results}
	if len(added) > 0 && !opts.NoWait {
		res.NotInSync = a.waitInSync(ctx, added)
	}
	return res
}

func (a *applier) record(c Change, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := ChangeResult{Change: c, Outcome: Applied}
	if err != nil {
		r.Outcome, r.Error = Failed, err.Error()
		if c.Pair != "" {
			a.failedPairs[c.Pair] = fmt.Sprintf("%s %s failed", c.Type, c.ID)
		}
		a.log.Error("change failed", zap.String("event", "change.failed"), zap.String("type", c.Type), zap.String("resource", c.ID),
			zap.String("action", string(c.Action)), zap.String("account", c.Account), zap.String("pair", c.Pair), zap.Error(err))
	} else {
		a.log.Info("change applied", zap.String("event", "change.applied"), zap.String("type", c.Type), zap.String("resource", c.ID),
			zap.String("action", string(c.Action)), zap.String("account", c.Account), zap.String("pair", c.Pair), zap.String("reason", c.Reason))
	}
	a.results = append(a.results, r)
}

func (a *applier) skip(c Change, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.results = append(a.results, ChangeResult{Change: c, Outcome: Skipped, Error: why})
	a.log.Warn("change skipped", zap.String("event", "change.failed"), zap.String("type", c.Type), zap.String("resource", c.ID),
		zap.String("account", c.Account), zap.String("pair", c.Pair), zap.String("error", why))
}

func (a *applier) blocked(pair string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	why, ok := a.failedPairs[pair]
	return why, ok
}

// perAccount runs changes account by account (in order within an account), accounts in
// parallel.
func (a *applier) perAccount(ctx context.Context, changes []Change, do func(context.Context, Change) error) {
	groups := map[string][]Change{}
	for _, c := range changes {
		groups[c.Account] = append(groups[c.Account], c)
	}
	var tasks []func(context.Context)
	for _, acct := range slices.Sorted(maps.Keys(groups)) {
		list := groups[acct]
		tasks = append(tasks, func(ctx context.Context) {
			for _, c := range list {
				if why, bad := a.blocked(c.Pair); bad && c.Pair != "" {
					a.skip(c, "not tried: "+why+" for the same pair")
					continue
				}
				a.record(c, do(ctx, c))
			}
		})
	}
	run(ctx, a.opts.Concurrency, tasks)
}

func (a *applier) bucket(name string) *DesiredBucket {
	for _, b := range a.d.Buckets {
		if b.Name == name {
			return b
		}
	}
	return nil
}

func (a *applier) bucketChange(ctx context.Context, c Change) error {
	b := a.bucket(c.ID)
	if b == nil {
		return fmt.Errorf("bucket %s is not configured", c.ID)
	}
	s, err := a.clients.S3(ctx, b.Account, b.Region)
	if err != nil {
		return err
	}
	name := aws.String(b.Name)
	switch c.Type {
	case TypeBucket:
		in := &s3.CreateBucketInput{Bucket: name, ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}
		if b.Region != "us-east-1" {
			in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(b.Region)}
		}
		if _, err := s.CreateBucket(ctx, in); err != nil {
			return explain(fmt.Errorf("create bucket %s in account %s: %w", b.Name, b.AccountID, err))
		}
		var tags []s3types.Tag
		for _, k := range slices.Sorted(maps.Keys(b.Tags)) {
			tags = append(tags, s3types.Tag{Key: aws.String(k), Value: aws.String(b.Tags[k])})
		}
		_, err = s.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: name, Tagging: &s3types.Tagging{TagSet: tags}})
		return explain(wrapf(err, "tag bucket %s", b.Name))
	case TypePublicAccessBlock:
		_, err := s.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: name, PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
			BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(true), RestrictPublicBuckets: aws.Bool(true),
		}})
		return explain(wrapf(err, "block public access on bucket %s", b.Name))
	case TypeOwnership:
		_, err := s.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: name, OwnershipControls: &s3types.OwnershipControls{
			Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}},
		}})
		return explain(wrapf(err, "set BucketOwnerEnforced on bucket %s", b.Name))
	case TypeEncryption:
		def := &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAes256}
		if b.KMSKeyARN != "" {
			def = &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(b.KMSKeyARN)}
		}
		_, err := s.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: name, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
			Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: def, BucketKeyEnabled: aws.Bool(b.KMSKeyARN != "")}},
		}})
		return explain(wrapf(err, "set default encryption on bucket %s", b.Name))
	}
	return fmt.Errorf("unknown bucket change %s", c.Type)
}

func (a *applier) role(account, name string) *DesiredRole {
	for _, r := range a.d.Roles {
		if r.Account == account && strings.EqualFold(r.Name, name) {
			return r
		}
	}
	return nil
}

func (a *applier) roleChange(ctx context.Context, c Change) error {
	svc, err := a.clients.IAM(ctx, c.Account)
	if err != nil {
		return err
	}
	roleName, rest, _ := strings.Cut(c.ID, "/")
	r := a.role(c.Account, roleName)
	switch {
	case c.Type == TypeRole && c.Action == Delete:
		return a.deleteRole(ctx, svc, c.AccountID, roleName)
	case c.Type == TypeRole && c.Action == Update: // path changed: re-create
		if err := a.deleteRole(ctx, svc, c.AccountID, roleName); err != nil {
			return err
		}
		return a.createRole(ctx, svc, r)
	case c.Type == TypeRole:
		return a.createRole(ctx, svc, r)
	case c.Type == TypeTrust:
		_, err := svc.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: aws.String(roleName), PolicyDocument: aws.String(policy.Compact(r.Trust))})
		return explain(wrapf(err, "update trust policy of role %s", roleName))
	case c.Type == TypeRolePolicy && c.Action == Delete:
		_, err := svc.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String(rest)})
		return explain(wrapf(err, "delete inline policy %s of role %s", rest, roleName))
	case c.Type == TypeRolePolicy:
		_, err := svc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String(RolePolicyName), PolicyDocument: aws.String(policy.Compact(r.Policy))})
		return explain(wrapf(err, "put inline policy of role %s", roleName))
	case c.Type == TypeRoleAttachment:
		_, err := svc.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(roleName), PolicyArn: aws.String(rest)})
		return explain(wrapf(err, "detach %s from role %s", rest, roleName))
	case c.Type == TypeRoleTags:
		_, err := svc.TagRole(ctx, &iam.TagRoleInput{RoleName: aws.String(roleName), Tags: iamTags(r.Tags)})
		return explain(wrapf(err, "tag role %s", roleName))
	}
	return fmt.Errorf("unknown role change %s", c.Type)
}

func iamTags(m map[string]string) []iamtypes.Tag {
	var tags []iamtypes.Tag
	for _, k := range slices.Sorted(maps.Keys(m)) {
		tags = append(tags, iamtypes.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return tags
}

func (a *applier) createRole(ctx context.Context, svc IAMAPI, r *DesiredRole) error {
	if r == nil {
		return errors.New("role is not configured")
	}
	_, err := svc.CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: aws.String(r.Name), Path: aws.String(r.Path), AssumeRolePolicyDocument: aws.String(policy.Compact(r.Trust)),
		Description: aws.String("Managed by xacctd for pair " + r.Pair + "; changes are reverted."), Tags: iamTags(r.Tags),
	})
	if err != nil {
		return explain(fmt.Errorf("create role %s in account %s: %w", r.Name, r.AccountID, err))
	}
	return nil
}

// deleteRole removes a role xacctd owns: inline policies and attachments first (IAM refuses
// to delete a role that has any).
func (a *applier) deleteRole(ctx context.Context, svc IAMAPI, accountID, name string) error {
	or := a.o.Roles[RoleKey(accountID, name)]
	if or == nil {
		return nil
	}
	if !or.Managed() {
		return fmt.Errorf("role %s is not managed by xacctd: refusing to delete it", or.ARN)
	}
	for _, p := range slices.Sorted(maps.Keys(or.Inline)) {
		if _, err := svc.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(or.Name), PolicyName: aws.String(p)}); err != nil && errorCode(err) != "NoSuchEntity" {
			return explain(fmt.Errorf("delete inline policy %s of role %s: %w", p, or.Name, err))
		}
	}
	for _, arn := range or.Attached {
		if _, err := svc.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(or.Name), PolicyArn: aws.String(arn)}); err != nil && errorCode(err) != "NoSuchEntity" {
			return explain(fmt.Errorf("detach %s from role %s: %w", arn, or.Name, err))
		}
	}
	if _, err := svc.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String(or.Name)}); err != nil && errorCode(err) != "NoSuchEntity" {
		return explain(fmt.Errorf("delete role %s: %w", or.Name, err))
	}
	return nil
}

// bucketPolicies writes each bucket's policy once: the current document is read again (a
// foreign statement may have been added since observing), owned statements are replaced by
// the desired ones, foreign ones are kept as written.
func (a *applier) bucketPolicies(ctx context.Context, upserts, deletes []Change) {
	perBucket := map[string][]Change{}
	for _, c := range append(upserts, deletes...) {
		bucket, _, _ := strings.Cut(c.ID, "/")
		perBucket[bucket] = append(perBucket[bucket], c)
	}
	var tasks []func(context.Context)
	for _, name := range slices.Sorted(maps.Keys(perBucket)) {
		changes := perBucket[name]
		tasks = append(tasks, func(ctx context.Context) {
			// Which pairs are blocked is decided before the write, as the write decides it:
			// a statement that went into a failed write failed with it, it was not skipped.
			skip := map[int]string{}
			for i, c := range changes {
				if why, bad := a.blocked(c.Pair); bad && c.Pair != "" && c.Action != Delete {
					skip[i] = why
				}
			}
			err := a.writeBucketPolicy(ctx, name)
			for i, c := range changes {
				if why, ok := skip[i]; ok {
					a.skip(c, "not written: "+why+" for the same pair")
					continue
				}
				a.record(c, err)
			}
		})
	}
	run(ctx, a.opts.Concurrency, tasks)
}

func (a *applier) writeBucketPolicy(ctx context.Context, name string) error {
	b := a.bucket(name)
	if b == nil {
		return fmt.Errorf("bucket %s is not configured", name)
	}
	s, err := a.clients.S3(ctx, b.Account, b.Region)
	if err != nil {
		return err
	}
	// Read, merge and write again on every attempt: a foreign statement written while a
	// retry waits must not be overwritten by a document merged before it.
	write := func() error {
		var current json.RawMessage
		out, err := s.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(name)})
		switch {
		case err == nil:
			current = json.RawMessage(aws.ToString(out.Policy))
		case errorCode(err) == "NoSuchBucketPolicy":
		default:
			return explain(fmt.Errorf("read policy of bucket %s: %w", name, err))
		}
		parts, err := policy.Split(current)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
		owned := map[string]json.RawMessage{}
		for _, st := range b.Statements {
			pair := b.StatementPair[st.Sid]
			if _, bad := a.blocked(pair); bad && pair != "" || a.principalBlocked(st) {
				if old, ok := parts.Owned[st.Sid]; ok {
					owned[st.Sid] = old // leave a blocked pair's statement as it was
				}
				continue
			}
			owned[st.Sid] = mustJSON(st)
		}
		doc, err := policy.MergeRaw(parts, owned)
		if err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
		if doc == nil {
			_, err := s.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: aws.String(name)})
			return explain(wrapf(err, "delete policy of bucket %s", name))
		}
		_, err = s.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(name), Policy: aws.String(string(doc))})
		return explain(wrapf(err, "write policy of bucket %s", name))
	}
	// A role created moments ago is "an invalid principal" until IAM has propagated it.
	return a.retry(ctx, write, func(err error) bool {
		return errorCode(err) == "MalformedPolicy" && strings.Contains(err.Error(), "Invalid principal")
	})
}

// principalBlocked: the statement names a role that is in conflict (somebody else's).
func (a *applier) principalBlocked(st policy.Statement) bool {
	for _, arns := range st.Principal {
		for _, arn := range arns {
			if or := a.rolesByARN[arn]; or != nil && !or.Managed() {
				return true
			}
		}
	}
	return false
}

// associations adds and removes cluster roles with one ModifyClusterIamRoles per cluster.
// It returns the associations it added, to wait for.
func (a *applier) associations(ctx context.Context, adds, removes []Change) []Change {
	type clusterWork struct {
		account, accountID, region, cluster string
		add, remove                         []Change
	}
	work := map[string]*clusterWork{}
	get := func(c Change) *clusterWork {
		cluster, _, _ := strings.Cut(c.ID, "/")
		key := c.AccountID + "/" + c.Region + "/" + cluster
		if work[key] == nil {
			work[key] = &clusterWork{account: c.Account, accountID: c.AccountID, region: c.Region, cluster: cluster}
		}
		return work[key]
	}
	for _, c := range adds {
		if why, bad := a.blocked(c.Pair); bad {
			a.skip(c, "not associated: "+why+" for the same pair")
			continue
		}
		w := get(c)
		w.add = append(w.add, c)
	}
	for _, c := range removes {
		w := get(c)
		w.remove = append(w.remove, c)
	}
	var (
		mu    sync.Mutex
		added []Change
	)
	var tasks []func(context.Context)
	for _, key := range slices.Sorted(maps.Keys(work)) {
		w := work[key]
		tasks = append(tasks, func(ctx context.Context) {
			in := &redshift.ModifyClusterIamRolesInput{ClusterIdentifier: aws.String(w.cluster)}
			for _, c := range w.add {
				in.AddIamRoles = append(in.AddIamRoles, strings.TrimPrefix(c.ID, w.cluster+"/"))
			}
			for _, c := range w.remove {
				in.RemoveIamRoles = append(in.RemoveIamRoles, strings.TrimPrefix(c.ID, w.cluster+"/"))
			}
			err := func() error {
				rs, err := a.clients.Redshift(ctx, w.account, w.region)
				if err != nil {
					return err
				}
				return a.retry(ctx, func() error {
					_, err := rs.ModifyClusterIamRoles(ctx, in)
					return explain(wrapf(err, "modify IAM roles of cluster %s", w.cluster))
				}, func(err error) bool {
					// A cluster busy with an earlier change; a role IAM has not propagated yet.
					code := errorCode(err)
					return code == "InvalidClusterState" || (code == "InvalidParameterValue" && len(in.AddIamRoles) > 0 && strings.Contains(err.Error(), "is not valid"))
				})
			}()
			for _, c := range append(w.add, w.remove...) {
				a.record(c, err)
			}
			if err == nil {
				mu.Lock()
				added = append(added, w.add...)
				mu.Unlock()
			}
		})
	}
	run(ctx, a.opts.Concurrency, tasks)
	return added
}

// waitInSync polls DescribeClusters until every added association is in-sync, or the wait
// ends; it returns those that are not.
func (a *applier) waitInSync(ctx context.Context, added []Change) []string {
	deadline := time.Now().Add(a.opts.WaitInSync)
	pending := map[string]Change{}
	for _, c := range added {
		pending[c.ID] = c
	}
	delay := a.opts.RetryBase
	for len(pending) > 0 {
		byCluster := map[string][]Change{}
		for _, c := range pending {
			cluster, _, _ := strings.Cut(c.ID, "/")
			byCluster[c.Account+"/"+c.Region+"/"+cluster] = append(byCluster[c.Account+"/"+c.Region+"/"+cluster], c)
		}
		for _, key := range slices.Sorted(maps.Keys(byCluster)) {
			cs := byCluster[key]
			rs, err := a.clients.Redshift(ctx, cs[0].Account, cs[0].Region)
			if err != nil {
				continue
			}
			cluster, _, _ := strings.Cut(cs[0].ID, "/")
			out, err := rs.DescribeClusters(ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(cluster)})
			if err != nil || len(out.Clusters) == 0 {
				continue
			}
			for _, r := range out.Clusters[0].IamRoles {
				id := cluster + "/" + aws.ToString(r.IamRoleArn)
				if _, ok := pending[id]; ok && aws.ToString(r.ApplyStatus) == "in-sync" {
					delete(pending, id)
				}
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return slices.Sorted(maps.Keys(pending))
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
	return slices.Sorted(maps.Keys(pending))
}

// retry runs fn until it succeeds, fails with an error retryable does not accept, or the
// retry window ends. Backoff doubles from RetryBase up to 15s.
func (a *applier) retry(ctx context.Context, fn func() error, retryable func(error) bool) error {
	deadline := time.Now().Add(a.opts.RetryFor)
	delay := a.opts.RetryBase
	for {
		err := fn()
		if err == nil || !retryable(err) || time.Now().Add(delay).After(deadline) {
			return err
		}
		a.log.Debug("retrying", zap.String("event", "change.retry"), zap.Duration("backoff", delay), zap.Error(err))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(delay*2, 15*time.Second)
	}
}

func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// explain adds the likely cause to AWS errors an operator sees.
func explain(err error) error {
	if err == nil {
		return nil
	}
	hint := ""
	switch errorCode(err) {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		hint = "xacctd's role in that account lacks the permission; see docs/operations.md for the policy it needs"
	case "EntityAlreadyExists":
		hint = "a role of that name exists already; if it is not xacctd's, rename the pair's role"
	case "MalformedPolicy", "MalformedPolicyDocument":
		hint = "AWS refused the document; a principal that does not exist yet is retried, anything else is a bug worth reporting"
	case "BucketAlreadyExists":
		hint = "bucket names are global and another account owns this one: choose another name"
	case "InvalidClusterState":
		hint = "the cluster is busy with another change; the next reconcile retries"
	case "ClusterNotFound":
		hint = "check clusters.*.identifier and region"
	case "LimitExceeded", "LimitExceededException":
		hint = "an AWS quota is reached (roles per account, roles per cluster, policy size)"
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (likely cause: %s)", err, hint)
}
