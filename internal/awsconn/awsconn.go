// Package awsconn gives xacctd an AWS SDK configuration per configured account: the SDK's
// own default chain (profiles, environment, AWS_ENDPOINT_URL), then sts:AssumeRole into the
// account's role_arn, cached and refreshed by the SDK. The account actually reached is
// checked against the configuration before the first use, so a wrong role can never act in
// another account. Every request sent (retries included) is counted.
package awsconn

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithylogging "github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"

	"github.com/xacctd/xacctd/pkg/config"
)

// SessionName is the STS session name xacctd uses; it appears in CloudTrail.
const SessionName = "xacctd"

// Counter counts AWS requests by operation ("iam:GetRole"). It is safe for concurrent use.
type Counter struct {
	mu   sync.Mutex
	byOp map[string]int
}

// NewCounter returns an empty counter.
func NewCounter() *Counter { return &Counter{byOp: map[string]int{}} }

// Snapshot returns the total and a copy of the counts by operation.
func (c *Counter) Snapshot() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	out := make(map[string]int, len(c.byOp))
	for k, v := range c.byOp {
		out[k] = v
		total += v
	}
	return total, out
}

// Operations lists the counted operations in order, for stable output.
func (c *Counter) Operations() []string {
	_, m := c.Snapshot()
	ops := make([]string, 0, len(m))
	for k := range m {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	return ops
}

func (c *Counter) add(op string) {
	c.mu.Lock()
	c.byOp[op]++
	c.mu.Unlock()
}

// addMiddleware counts in the Deserialize step, which runs once per attempt: a request
// that is retried counts once per time it is sent.
func (c *Counter) addMiddleware(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("xacctdCount",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			c.add(strings.ToLower(awsmiddleware.GetServiceID(ctx)) + ":" + awsmiddleware.GetOperationName(ctx))
			return next.HandleDeserialize(ctx, in)
		}), middleware.After)
}

// Accounts hands out verified SDK configurations per account and region.
type Accounts struct {
	cfg     *config.Config
	counter *Counter

	mu       sync.Mutex
	base     map[string]aws.Config // by profile
	accounts map[string]*account   // by account name
}

type account struct {
	mu  sync.Mutex
	cfg *aws.Config // credentials act in the account; region is the default region. nil until opened
}

// New prepares credentials for the accounts of cfg; nothing is sent until first use.
func New(cfg *config.Config, counter *Counter) *Accounts {
	if counter == nil {
		counter = NewCounter()
	}
	return &Accounts{cfg: cfg, counter: counter, base: map[string]aws.Config{}, accounts: map[string]*account{}}
}

// Counter returns the request counter shared by every client.
func (a *Accounts) Counter() *Counter { return a.counter }

// Config returns an SDK configuration acting in the named account, in region. Credentials
// are fetched when first used and refreshed before they expire; every fetch checks that they
// act in the configured account.
func (a *Accounts) Config(ctx context.Context, name, region string) (aws.Config, error) {
	a.mu.Lock()
	acc, ok := a.accounts[name]
	if !ok {
		acc = &account{}
		a.accounts[name] = acc
	}
	a.mu.Unlock()
	// A failure is not kept: the next use tries again (a throttled or unreachable STS must not
	// disable the account for the life of the process).
	acc.mu.Lock()
	defer acc.mu.Unlock()
	if acc.cfg == nil {
		cfg, err := a.open(ctx, name)
		if err != nil {
			return aws.Config{}, err
		}
		acc.cfg = &cfg
	}
	c := acc.cfg.Copy()
	if region != "" {
		c.Region = region
	}
	return c, nil
}

func (a *Accounts) baseConfig(ctx context.Context, profile string) (aws.Config, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.base[profile]; ok {
		return c, nil
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(a.cfg.Defaults.Region),
		awsconfig.WithAPIOptions([]func(*middleware.Stack) error{a.counter.addMiddleware}),
		// The SDK's own logger writes plain-text lines to stderr, which would break the
		// one-JSON-object-per-line contract of xacctd's logs; what matters reaches xacctd
		// as errors and is logged as events.
		awsconfig.WithLogger(smithylogging.Nop{}),
	}
	if profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(profile))
	}
	c, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration (profile %q): %w", profile, err)
	}
	a.base[profile] = c
	return c, nil
}

func (a *Accounts) open(ctx context.Context, name string) (aws.Config, error) {
	acct, ok := a.cfg.Accounts[name]
	if !ok {
		return aws.Config{}, fmt.Errorf("account %q is not configured", name)
	}
	base, err := a.baseConfig(ctx, acct.Profile)
	if err != nil {
		return aws.Config{}, fmt.Errorf("account %s: %w", name, err)
	}
	c := base.Copy()
	if acct.RoleARN != "" {
		ext, err := acct.ExternalIDSecret()
		if err != nil {
			return aws.Config{}, err
		}
		// The account is checked on every AssumeRole from its response (the assumed role's
		// ARN names the account), at no extra request.
		c.Credentials = aws.NewCredentialsCache(&assumeProvider{
			client: sts.NewFromConfig(base), account: acct, externalID: ext,
		})
		return c, nil
	}
	// Base credentials as they are: ask STS once which account they act in.
	id, err := sts.NewFromConfig(c).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return aws.Config{}, fmt.Errorf("account %s: check the base credentials: %w", name, err)
	}
	if got := aws.ToString(id.Account); got != acct.ID {
		return aws.Config{}, wrongAccount(name, got, acct.ID)
	}
	return c, nil
}

func wrongAccount(name, got, want string) error {
	return fmt.Errorf("account %s: the credentials act in account %s, but the configuration says %s: refusing to act in the wrong account", name, got, want)
}

// assumeProvider assumes an account's role and checks that the role is in that account.
type assumeProvider struct {
	client     *sts.Client
	account    *config.Account
	externalID config.Secret
}

func (p *assumeProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	in := &sts.AssumeRoleInput{RoleArn: aws.String(p.account.RoleARN), RoleSessionName: aws.String(SessionName)}
	if !p.externalID.IsZero() {
		in.ExternalId = aws.String(p.externalID.Reveal())
	}
	out, err := p.client.AssumeRole(ctx, in)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("account %s: assume %s: %w (check that the role exists, trusts xacctd's base credentials and, if set, the external id)", p.account.Name, p.account.RoleARN, err)
	}
	if out.Credentials == nil || out.AssumedRoleUser == nil {
		return aws.Credentials{}, fmt.Errorf("account %s: assume %s: STS returned no credentials", p.account.Name, p.account.RoleARN)
	}
	// arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION
	parts := strings.Split(aws.ToString(out.AssumedRoleUser.Arn), ":")
	if len(parts) < 5 || parts[4] != p.account.ID {
		got := "unknown"
		if len(parts) >= 5 {
			got = parts[4]
		}
		return aws.Credentials{}, wrongAccount(p.account.Name, got, p.account.ID)
	}
	c := out.Credentials
	return aws.Credentials{
		AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken: aws.ToString(c.SessionToken), Source: "xacctd-assume-role",
		CanExpire: c.Expiration != nil, Expires: aws.ToTime(c.Expiration),
	}, nil
}

// S3Options are the S3 client options xacctd uses: path-style addressing when an endpoint
// override is configured (S3-compatible endpoints and the sandbox need it), the SDK's default
// otherwise.
func S3Options(o *s3.Options) {
	if os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != "" {
		o.UsePathStyle = true
	}
}
