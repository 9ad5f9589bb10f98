package awsconn

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/xacctd/xacctd/pkg/reconcile"
)

// Clients implements reconcile.Clients with the SDK's clients.
type Clients struct{ Accounts *Accounts }

var _ reconcile.Clients = Clients{}

// IAM returns an IAM client acting in the account (IAM is global: the default region).
func (c Clients) IAM(ctx context.Context, account string) (reconcile.IAMAPI, error) {
	cfg, err := c.Accounts.Config(ctx, account, "")
	if err != nil {
		return nil, err
	}
	return iam.NewFromConfig(cfg), nil
}

// S3 returns an S3 client acting in the account, in region.
func (c Clients) S3(ctx context.Context, account, region string) (reconcile.S3API, error) {
	cfg, err := c.Accounts.Config(ctx, account, region)
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, S3Options), nil
}

// Redshift returns a Redshift client acting in the account, in region.
func (c Clients) Redshift(ctx context.Context, account, region string) (reconcile.RedshiftAPI, error) {
	cfg, err := c.Accounts.Config(ctx, account, region)
	if err != nil {
		return nil, err
	}
	return redshift.NewFromConfig(cfg), nil
}

// RedshiftClient returns the SDK's Redshift client acting in the account, in region (the
// job runner's DescribeClusters and GetClusterCredentials).
func (c Clients) RedshiftClient(ctx context.Context, account, region string) (*redshift.Client, error) {
	cfg, err := c.Accounts.Config(ctx, account, region)
	if err != nil {
		return nil, err
	}
	return redshift.NewFromConfig(cfg), nil
}
