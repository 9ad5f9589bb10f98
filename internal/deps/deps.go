package deps
import (
 _ "gopkg.in/yaml.v3"
 _ "github.com/aws/aws-sdk-go-v2/aws"
 _ "github.com/aws/aws-sdk-go-v2/config"
 _ "github.com/aws/aws-sdk-go-v2/credentials"
 _ "github.com/aws/aws-sdk-go-v2/credentials/stscreds"
 _ "github.com/aws/aws-sdk-go-v2/service/sts"
 _ "github.com/aws/aws-sdk-go-v2/service/iam"
 _ "github.com/aws/aws-sdk-go-v2/service/s3"
 _ "github.com/aws/aws-sdk-go-v2/service/redshift"
 _ "github.com/aws/smithy-go"
 _ "github.com/jackc/pgx/v5"
 _ "github.com/jackc/pgx/v5/pgproto3"
 _ "github.com/robfig/cron/v3"
 _ "go.uber.org/zap"
 _ "github.com/google/go-cmp/cmp"
)
