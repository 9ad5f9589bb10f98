package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/policy"
)

// IAMAPI is the part of the IAM client reconcile uses.
type IAMAPI interface {
	GetAccountAuthorizationDetails(context.Context, *iam.GetAccountAuthorizationDetailsInput, ...func(*iam.Options)) (*iam.GetAccountAuthorizationDetailsOutput, error)
	CreateRole(context.Context, *iam.CreateRoleInput, ...func(*iam.Options)) (*iam.CreateRoleOutput, error)
	DeleteRole(context.Context, *iam.DeleteRoleInput, ...func(*iam.Options)) (*iam.DeleteRoleOutput, error)
	UpdateAssumeRolePolicy(context.Context, *iam.UpdateAssumeRolePolicyInput, ...func(*iam.Options)) (*iam.UpdateAssumeRolePolicyOutput, error)
	PutRolePolicy(context.Context, *iam.PutRolePolicyInput, ...func(*iam.Options)) (*iam.PutRolePolicyOutput, error)
	DeleteRolePolicy(context.Context, *iam.DeleteRolePolicyInput, ...func(*iam.Options)) (*iam.DeleteRolePolicyOutput, error)
	DetachRolePolicy(context.Context, *iam.DetachRolePolicyInput, ...func(*iam.Options)) (*iam.DetachRolePolicyOutput, error)
	TagRole(context.Context, *iam.TagRoleInput, ...func(*iam.Options)) (*iam.TagRoleOutput, error)
}

// S3API is the part of the S3 client reconcile uses.
type S3API interface {
	GetBucketPolicy(context.Context, *s3.GetBucketPolicyInput, ...func(*s3.Options)) (*s3.GetBucketPolicyOutput, error)
	GetPublicAccessBlock(context.Context, *s3.GetPublicAccessBlockInput, ...func(*s3.Options)) (*s3.GetPublicAccessBlockOutput, error)
	GetBucketOwnershipControls(context.Context, *s3.GetBucketOwnershipControlsInput, ...func(*s3.Options)) (*s3.GetBucketOwnershipControlsOutput, error)
	GetBucketEncryption(context.Context, *s3.GetBucketEncryptionInput, ...func(*s3.Options)) (*s3.GetBucketEncryptionOutput, error)
	CreateBucket(context.Context, *s3.CreateBucketInput, ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	PutBucketTagging(context.Context, *s3.PutBucketTaggingInput, ...func(*s3.Options)) (*s3.PutBucketTaggingOutput, error)
	PutPublicAccessBlock(context.Context, *s3.PutPublicAccessBlockInput, ...func(*s3.Options)) (*s3.PutPublicAccessBlockOutput, error)
	PutBucketOwnershipControls(context.Context, *s3.PutBucketOwnershipControlsInput, ...func(*s3.Options)) (*s3.PutBucketOwnershipControlsOutput, error)
	PutBucketEncryption(context.Context, *s3.PutBucketEncryptionInput, ...func(*s3.Options)) (*s3.PutBucketEncryptionOutput, error)
	PutBucketPolicy(context.Context, *s3.PutBucketPolicyInput, ...func(*s3.Options)) (*s3.PutBucketPolicyOutput, error)
	DeleteBucketPolicy(context.Context, *s3.DeleteBucketPolicyInput, ...func(*s3.Options)) (*s3.DeleteBucketPolicyOutput, error)
}

// RedshiftAPI is the part of the Redshift client reconcile uses.
type RedshiftAPI interface {
	DescribeClusters(context.Context, *redshift.DescribeClustersInput, ...func(*redshift.Options)) (*redshift.DescribeClustersOutput, error)
	ModifyClusterIamRoles(context.Context, *redshift.ModifyClusterIamRolesInput, ...func(*redshift.Options)) (*redshift.ModifyClusterIamRolesOutput, error)
}

// Clients hands out AWS clients acting in a configured account (by account name).
type Clients interface {
	IAM(ctx context.Context, account string) (IAMAPI, error)
	S3(ctx context.Context, account, region string) (S3API, error)
	Redshift(ctx context.Context, account, region string) (RedshiftAPI, error)
}

// ObserveError is a read that failed; the resources it covers are reported as conflicts and
// left alone, and every other pair goes on.
type ObserveError struct {
	Type, Account, ID string
	Err               error
}

// Observe reads what the desired state is about, with as few calls as the APIs allow:
// per account one IAM listing (roles with trust, inline policies, attachments and tags),
// per bucket four reads (policy, public access block, ownership, encryption), per account
// and region with clusters one DescribeClusters. Accounts are read in parallel, at most
// concurrency at a time.
func Observe(ctx context.Context, cfg *config.Config, d *Desired, clients Clients, concurrency int) *Observed {
	o := &Observed{Buckets: map[string]*ObservedBucket{}, Roles: map[string]*ObservedRole{}, Clusters: map[string]*ObservedCluster{}}
	var (
		mu   sync.Mutex
		errs []ObserveError
	)
	fail := func(e ObserveError) {
		mu.Lock()
		errs = append(errs, e)
		mu.Unlock()
	}
	var tasks []func(context.Context)
	for _, name := range slices.Sorted(maps.Keys(cfg.Accounts)) {
		acct := cfg.Accounts[name]
		tasks = append(tasks, func(ctx context.Context) {
			roles, err := observeRoles(ctx, clients, name)
			if err != nil {
				err = explain(err)
				fail(ObserveError{Type: TypeRole, Account: name, ID: "*", Err: err})
				return
			}
			mu.Lock()
			for _, r := range roles {
				o.Roles[RoleKey(acct.ID, r.Name)] = r
			}
			mu.Unlock()
		})
	}
	for _, b := range d.Buckets {
		tasks = append(tasks, func(ctx context.Context) {
			ob, err := observeBucket(ctx, clients, b)
			if code := errorCode(err); code == "AccessDenied" || code == "Forbidden" {
				err = fmt.Errorf("%w (likely cause: the bucket belongs to another account, as bucket names are global, or xacctd's role in account %s lacks the s3:GetBucket* read permissions)", err, b.AccountID)
			} else {
				err = explain(err)
			}
			if err != nil {
				fail(ObserveError{Type: TypeBucket, Account: b.Account, ID: b.Name, Err: err})
				return
			}
			mu.Lock()
			o.Buckets[b.Name] = ob
			mu.Unlock()
		})
	}
	regions := map[[2]string]bool{} // account name, region
	for _, cl := range cfg.Clusters {
		regions[[2]string{cl.Account, cl.Region}] = true
	}
	for key := range regions {
		acct := cfg.Accounts[key[0]]
		tasks = append(tasks, func(ctx context.Context) {
			clusters, err := observeClusters(ctx, clients, key[0], key[1])
			if err != nil {
				err = explain(err)
				fail(ObserveError{Type: TypeAssociation, Account: key[0], ID: key[1], Err: err})
				return
			}
			mu.Lock()
			for id, c := range clusters {
				o.Clusters[ClusterKey(acct.ID, key[1], id)] = c
			}
			mu.Unlock()
		})
	}
	run(ctx, concurrency, tasks)
	sort.Slice(errs, func(i, j int) bool { return errs[i].Account+errs[i].ID < errs[j].Account+errs[j].ID })
	o.Errors = errs
	return o
}

// run executes tasks with at most n at a time and waits for all of them.
func run(ctx context.Context, n int, tasks []func(context.Context)) {
	if n < 1 {
		n = 1
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, t := range tasks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t(ctx)
		}()
	}
	wg.Wait()
}

func observeRoles(ctx context.Context, clients Clients, account string) ([]*ObservedRole, error) {
	c, err := clients.IAM(ctx, account)
	if err != nil {
		return nil, err
	}
	var out []*ObservedRole
	in := &iam.GetAccountAuthorizationDetailsInput{Filter: []iamtypes.EntityType{iamtypes.EntityTypeRole}}
	for {
		page, err := c.GetAccountAuthorizationDetails(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list roles of account %s: %w", account, err)
		}
		for _, rd := range page.RoleDetailList {
			r, err := observedRole(rd)
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", account, err)
			}
			out = append(out, r)
		}
		if !page.IsTruncated || page.Marker == nil {
			return out, nil
		}
		in.Marker = page.Marker
	}
}

func observedRole(rd iamtypes.RoleDetail) (*ObservedRole, error) {
	r := &ObservedRole{
		Name: aws.ToString(rd.RoleName), Path: aws.ToString(rd.Path), ARN: aws.ToString(rd.Arn), RoleID: aws.ToString(rd.RoleId),
		Inline: map[string]json.RawMessage{}, Tags: map[string]string{},
	}
	if doc := aws.ToString(rd.AssumeRolePolicyDocument); doc != "" {
		t, err := policy.Decode(doc)
		if err != nil {
			return nil, fmt.Errorf("trust policy of role %s: %w", r.Name, err)
		}
		r.Trust = t
	}
	for _, p := range rd.RolePolicyList {
		doc, err := policy.Decode(aws.ToString(p.PolicyDocument))
		if err != nil {
			return nil, fmt.Errorf("inline policy %s of role %s: %w", aws.ToString(p.PolicyName), r.Name, err)
		}
		r.Inline[aws.ToString(p.PolicyName)] = doc
	}
	for _, a := range rd.AttachedManagedPolicies {
		r.Attached = append(r.Attached, aws.ToString(a.PolicyArn))
	}
	sort.Strings(r.Attached)
	for _, t := range rd.Tags {
		r.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return r, nil
}

// errorCode returns the AWS error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func observeBucket(ctx context.Context, clients Clients, b *DesiredBucket) (*ObservedBucket, error) {
	c, err := clients.S3(ctx, b.Account, b.Region)
	if err != nil {
		return nil, err
	}
	name := aws.String(b.Name)
	ob := &ObservedBucket{Exists: true}
	pol, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: name})
	switch code := errorCode(err); {
	case err == nil:
		ob.Policy = json.RawMessage(aws.ToString(pol.Policy))
	case code == "NoSuchBucket":
		return &ObservedBucket{}, nil
	case code == "NoSuchBucketPolicy":
	default:
		return nil, fmt.Errorf("read policy of bucket %s: %w", b.Name, err)
	}
	pab, err := c.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: name})
	switch code := errorCode(err); {
	case err == nil && pab.PublicAccessBlockConfiguration != nil:
		p := pab.PublicAccessBlockConfiguration
		ob.PublicAccessBlock = &PublicAccessBlock{aws.ToBool(p.BlockPublicAcls), aws.ToBool(p.IgnorePublicAcls), aws.ToBool(p.BlockPublicPolicy), aws.ToBool(p.RestrictPublicBuckets)}
	case err == nil, code == "NoSuchPublicAccessBlockConfiguration":
	default:
		return nil, fmt.Errorf("read public access block of bucket %s: %w", b.Name, err)
	}
	own, err := c.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: name})
	switch code := errorCode(err); {
	case err == nil && own.OwnershipControls != nil && len(own.OwnershipControls.Rules) > 0:
		ob.Ownership = string(own.OwnershipControls.Rules[0].ObjectOwnership)
	case err == nil, code == "OwnershipControlsNotFoundError":
	default:
		return nil, fmt.Errorf("read ownership controls of bucket %s: %w", b.Name, err)
	}
	enc, err := c.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: name})
	switch code := errorCode(err); {
	case err == nil && enc.ServerSideEncryptionConfiguration != nil && len(enc.ServerSideEncryptionConfiguration.Rules) > 0:
		if d := enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault; d != nil {
			ob.Encryption = &Encryption{Algorithm: string(d.SSEAlgorithm), KMSKeyID: aws.ToString(d.KMSMasterKeyID)}
		}
	case err == nil, code == "ServerSideEncryptionConfigurationNotFoundError":
	default:
		return nil, fmt.Errorf("read encryption of bucket %s: %w", b.Name, err)
	}
	return ob, nil
}

func observeClusters(ctx context.Context, clients Clients, account, region string) (map[string]*ObservedCluster, error) {
	c, err := clients.Redshift(ctx, account, region)
	if err != nil {
		return nil, err
	}
	out := map[string]*ObservedCluster{}
	in := &redshift.DescribeClustersInput{}
	for {
		page, err := c.DescribeClusters(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe clusters of account %s in %s: %w", account, region, err)
		}
		for _, cl := range page.Clusters {
			oc := &ObservedCluster{Status: aws.ToString(cl.ClusterStatus), Roles: map[string]string{}}
			for _, r := range cl.IamRoles {
				oc.Roles[aws.ToString(r.IamRoleArn)] = aws.ToString(r.ApplyStatus)
			}
			out[aws.ToString(cl.ClusterIdentifier)] = oc
		}
		if page.Marker == nil || aws.ToString(page.Marker) == "" {
			return out, nil
		}
		in.Marker = page.Marker
	}
}
