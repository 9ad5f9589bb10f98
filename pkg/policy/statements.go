package policy

import "sort"

// Access is what a pair grants on its bucket prefix, as the statement builders need it.
type Access struct {
	Partition string
	Bucket    string
	Prefix    string // ends with /
	Unload    bool   // s3:PutObject
	Copy      bool   // s3:GetObject
	Delete    bool   // s3:DeleteObject, only when a job of the pair uses cleanpath
	KMSKeys   []string
}

func (a Access) bucketARN() string { return "arn:" + a.Partition + ":s3:::" + a.Bucket }

func (a Access) objectActions() List {
	var acts List
	if a.Copy {
		acts = append(acts, "s3:GetObject")
	}
	if a.Unload {
		acts = append(acts, "s3:PutObject")
	}
	if a.Delete {
		acts = append(acts, "s3:DeleteObject")
	}
	return acts
}

// S3Statements are the least-privilege S3 statements of a pair: object actions on the
// prefix only, ListBucket limited to the prefix by s3:prefix, GetBucketLocation. With a
// principal they are bucket policy statements (Sids from sidBase); without, identity policy
// statements. Never s3:*, never Resource *.
func S3Statements(a Access, principalARN, sidBase string) []Statement {
	var principal map[string]List
	if principalARN != "" {
		principal = map[string]List{"AWS": {principalARN}}
	}
	return []Statement{
		{
			Sid: sidBase + "Objects", Effect: "Allow", Principal: principal,
			Action: a.objectActions(), Resource: List{a.bucketARN() + "/" + a.Prefix + "*"},
		},
		{
			Sid: sidBase + "List", Effect: "Allow", Principal: principal,
			Action: List{"s3:ListBucket"}, Resource: List{a.bucketARN()},
			Condition: map[string]map[string]List{"StringLike": {"s3:prefix": {a.Prefix + "*"}}},
		},
		{
			Sid: sidBase + "Location", Effect: "Allow", Principal: principal,
			Action: List{"s3:GetBucketLocation"}, Resource: List{a.bucketARN()},
		},
	}
}

// IdentityPolicy is the inline policy of the role that holds a pair's S3 permissions:
// the S3 statements, and KMS use of the pair's keys when there are any.
func IdentityPolicy(a Access) Document {
	st := S3Statements(a, "", "S3")
	if len(a.KMSKeys) > 0 {
		acts := List{"kms:Decrypt"}
		if a.Unload {
			acts = List{"kms:Decrypt", "kms:GenerateDataKey"}
		}
		keys := append(List(nil), a.KMSKeys...)
		sort.Strings(keys)
		st = append(st, Statement{Sid: "KMS", Effect: "Allow", Action: acts, Resource: keys})
	}
	return Document{Version: Version, Statement: st}
}

// DenyInsecureTransportSid is the Sid of the statement denying non-TLS requests.
const DenyInsecureTransportSid = OwnedSidPrefix + "DenyInsecureTransport"

// DenyInsecureTransport denies every request to the bucket that does not use TLS.
func DenyInsecureTransport(partition, bucket string) Statement {
	arn := "arn:" + partition + ":s3:::" + bucket
	return Statement{
		Sid: DenyInsecureTransportSid, Effect: "Deny", Principal: map[string]List{"AWS": {"*"}},
		Action: List{"s3:*"}, Resource: List{arn, arn + "/*"},
		Condition: map[string]map[string]List{"Bool": {"aws:SecureTransport": {"false"}}},
	}
}

// ChainTrust is the trust policy of the second role of a role chain: only the first role
// may assume it.
func ChainTrust(firstRoleARN string) Document {
	return Document{Version: Version, Statement: []Statement{{
		Effect: "Allow", Principal: map[string]List{"AWS": {firstRoleARN}}, Action: List{"sts:AssumeRole"},
	}}}
}

// ChainPolicy is the inline policy of the first role of a chain: it may assume only the
// second role.
func ChainPolicy(secondRoleARN string) Document {
	return Document{Version: Version, Statement: []Statement{{
		Sid: "AssumeChainedRole", Effect: "Allow", Action: List{"sts:AssumeRole"}, Resource: List{secondRoleARN},
	}}}
}
