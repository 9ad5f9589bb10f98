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
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
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
	once sync.Once
	cfg  aws.Config // credentials act in the account; region is the default region
	err  error
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

// Config returns an SDK configuration acting in the named account, in region. The first
// call for an account assumes its role and checks the account id (sts:GetCallerIdentity).
func (a *Accounts) Config(ctx context.Context, name, region string) (aws.Config, error) {
	a.mu.Lock()
	acc, ok := a.accounts[name]
	if !ok {
		acc = &account{}
		a.accounts[name] = acc
	}
	a.mu.Unlock()
	acc.once.Do(func() { acc.cfg, acc.err = a.open(ctx, name) })
	if acc.err != nil {
		return aws.Config{}, acc.err
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
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(base), acct.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = SessionName
			if !ext.IsZero() {
				v := ext.Reveal()
				o.ExternalID = &v
			}
		})
		c.Credentials = aws.NewCredentialsCache(provider)
	}
	id, err := sts.NewFromConfig(c).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		how := "the base credentials"
		if acct.RoleARN != "" {
			how = "assuming " + acct.RoleARN
		}
		return aws.Config{}, fmt.Errorf("account %s: reach it by %s: %w (check the credentials and that the role trusts them)", name, how, err)
	}
	if got := aws.ToString(id.Account); got != acct.ID {
		return aws.Config{}, fmt.Errorf("account %s: the credentials act in account %s, but the configuration says %s: refusing to act in the wrong account", name, got, acct.ID)
	}
	return c, nil
}

// S3Options are the S3 client options xacctd uses: path-style addressing when an endpoint
// override is configured (S3-compatible endpoints and the sandbox need it), the SDK's default
// otherwise.
func S3Options(o *s3.Options) {
	if os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != "" {
		o.UsePathStyle = true
	}
}
