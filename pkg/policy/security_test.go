package policy_test

// Security properties of the documents xacctd generates, builder by builder: every Allow is
// scoped to the pair's prefix, role or key; the deny-insecure-transport statement is the only
// one with a wildcard. pkg/reconcile's security test checks the same over whole
// configurations.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/pkg/policy"
)

const (
	roleA = "arn:aws:iam::111111111111:role/xacctd/RedshiftLakeAccess"
	roleB = "arn:aws:iam::222222222222:role/xacctd/LakeAccess"
	keyA  = "arn:aws:kms:us-east-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	keyB  = "arn:aws:kms:us-east-1:222222222222:key/0000abcd-12ab-34cd-56ef-1234567890ab"
)

// TestS3StatementsScopedToPrefix: object actions only on bucket/prefix*, ListBucket only under
// the prefix (s3:prefix), GetBucketLocation alone on the bucket, the principal exactly the
// given role (bucket policy) or none (identity policy), and only the actions the access needs.
func TestS3StatementsScopedToPrefix(t *testing.T) {
	tests := []struct {
		name        string
		give        policy.Access
		wantObjActs policy.List
		wantBucket  string
	}{
		{"unload", policy.Access{Partition: "aws", Bucket: "exports", Prefix: "redshift/analytics/", Unload: true},
			policy.List{"s3:PutObject"}, "arn:aws:s3:::exports"},
		{"copy", policy.Access{Partition: "aws", Bucket: "exports", Prefix: "in/", Copy: true},
			policy.List{"s3:GetObject"}, "arn:aws:s3:::exports"},
		{"unload and copy", policy.Access{Partition: "aws", Bucket: "exports", Prefix: "a/b/c/", Unload: true, Copy: true},
			policy.List{"s3:GetObject", "s3:PutObject"}, "arn:aws:s3:::exports"},
		{"cleanpath adds delete, nothing more", policy.Access{Partition: "aws", Bucket: "exports", Prefix: "p/", Unload: true, Delete: true},
			policy.List{"s3:PutObject", "s3:DeleteObject"}, "arn:aws:s3:::exports"},
		{"China partition", policy.Access{Partition: "aws-cn", Bucket: "lake-cn", Prefix: "x/", Copy: true},
			policy.List{"s3:GetObject"}, "arn:aws-cn:s3:::lake-cn"},
		{"GovCloud partition", policy.Access{Partition: "aws-us-gov", Bucket: "lake-gov", Prefix: "x-y_z.1/", Unload: true},
			policy.List{"s3:PutObject"}, "arn:aws-us-gov:s3:::lake-gov"},
	}
	for _, tt := range tests {
		for _, principal := range []string{"", roleA} {
			t.Run(tt.name+"/principal="+principal, func(t *testing.T) {
				var wantPrincipal map[string]policy.List
				if principal != "" {
					wantPrincipal = map[string]policy.List{"AWS": {principal}}
				}
				want := []policy.Statement{
					{Sid: "BaseObjects", Effect: "Allow", Principal: wantPrincipal, Action: tt.wantObjActs,
						Resource: policy.List{tt.wantBucket + "/" + tt.give.Prefix + "*"}},
					{Sid: "BaseList", Effect: "Allow", Principal: wantPrincipal, Action: policy.List{"s3:ListBucket"},
						Resource: policy.List{tt.wantBucket}, Condition: map[string]map[string]policy.List{"StringLike": {"s3:prefix": {tt.give.Prefix + "*"}}}},
					{Sid: "BaseLocation", Effect: "Allow", Principal: wantPrincipal, Action: policy.List{"s3:GetBucketLocation"},
						Resource: policy.List{tt.wantBucket}},
				}
				got := policy.S3Statements(tt.give, principal, "Base")
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("statements (-want +got):\n%s", diff)
				}
				for _, st := range got {
					assertNoWildcard(t, st)
					for _, r := range st.Resource {
						if r == tt.wantBucket+"/*" {
							t.Errorf("%s: bucket-wide object resource %s for prefix %s", st.Sid, r, tt.give.Prefix)
						}
					}
				}
			})
		}
	}
}

// TestIdentityPolicyKMS: KMS use only of the pair's keys, and GenerateDataKey only for unload.
func TestIdentityPolicyKMS(t *testing.T) {
	base := policy.Access{Partition: "aws", Bucket: "b", Prefix: "p/"}
	tests := []struct {
		name     string
		unload   bool
		keys     []string
		wantActs policy.List // nil: no KMS statement
	}{
		{"no keys: no KMS statement", true, nil, nil},
		{"copy decrypts only", false, []string{keyA}, policy.List{"kms:Decrypt"}},
		{"unload also generates data keys", true, []string{keyB, keyA}, policy.List{"kms:Decrypt", "kms:GenerateDataKey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base
			a.Unload, a.Copy, a.KMSKeys = tt.unload, !tt.unload, tt.keys
			doc := policy.IdentityPolicy(a)
			var kms []policy.Statement
			for _, st := range doc.Statement {
				assertNoWildcard(t, st)
				if st.Principal != nil {
					t.Errorf("%s: identity policy statement has a principal %v", st.Sid, st.Principal)
				}
				if strings.HasPrefix(st.Action[0], "kms:") {
					kms = append(kms, st)
				}
			}
			if tt.wantActs == nil {
				if len(kms) != 0 {
					t.Errorf("KMS statements without keys: %+v", kms)
				}
				return
			}
			want := []policy.Statement{{Sid: "KMS", Effect: "Allow", Action: tt.wantActs, Resource: policy.List{keyB, keyA}}}
			if len(tt.keys) == 1 {
				want[0].Resource = policy.List{keyA}
			}
			if diff := cmp.Diff(want, kms); diff != "" {
				t.Errorf("KMS statement (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTrustPoliciesNameOnlyTheirPrincipal: a pair role trusts only the Redshift service (and,
// with db_users, only those database users); a chained role trusts only the first role of
// its chain, never its account's root or anyone; the first role may assume only the second.
func TestTrustPoliciesNameOnlyTheirPrincipal(t *testing.T) {
	users := []string{"arn:aws:redshift:us-east-1:111111111111:dbuser:analytics/etl_loader", "arn:aws:redshift:us-east-1:111111111111:dbuser:analytics/a_loader"}
	tests := []struct {
		name string
		got  policy.Document
		want policy.Statement
	}{
		{"redshift, every user", policy.RedshiftTrust(nil), policy.Statement{Effect: "Allow",
			Principal: map[string]policy.List{"Service": {"redshift.amazonaws.com"}}, Action: policy.List{"sts:AssumeRole"}}},
		{"redshift, named users", policy.RedshiftTrust(users), policy.Statement{Effect: "Allow",
			Principal: map[string]policy.List{"Service": {"redshift.amazonaws.com"}}, Action: policy.List{"sts:AssumeRole"},
			Condition: map[string]map[string]policy.List{"StringEquals": {"sts:ExternalId": {users[1], users[0]}}}}},
		{"chain trust", policy.ChainTrust(roleA), policy.Statement{Effect: "Allow",
			Principal: map[string]policy.List{"AWS": {roleA}}, Action: policy.List{"sts:AssumeRole"}}},
		{"chain policy", policy.ChainPolicy(roleB), policy.Statement{Sid: "AssumeChainedRole", Effect: "Allow",
			Action: policy.List{"sts:AssumeRole"}, Resource: policy.List{roleB}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(policy.Document{Version: policy.Version, Statement: []policy.Statement{tt.want}}, tt.got); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
			for _, st := range tt.got.Statement {
				assertNoWildcard(t, st)
				for _, ps := range st.Principal {
					for _, p := range ps {
						if strings.HasSuffix(p, ":root") {
							t.Errorf("principal %s is a whole account", p)
						}
					}
				}
			}
		})
	}
}

// TestDenyInsecureTransportIsTheOnlyWildcard: the one statement allowed s3:*, principal * and
// bucket/* is a Deny, and only for requests without TLS.
func TestDenyInsecureTransportIsTheOnlyWildcard(t *testing.T) {
	got := policy.DenyInsecureTransport("aws", "exports")
	want := policy.Statement{
		Sid: "XacctdDenyInsecureTransport", Effect: "Deny", Principal: map[string]policy.List{"AWS": {"*"}},
		Action: policy.List{"s3:*"}, Resource: policy.List{"arn:aws:s3:::exports", "arn:aws:s3:::exports/*"},
		Condition: map[string]map[string]policy.List{"Bool": {"aws:SecureTransport": {"false"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statement (-want +got):\n%s", diff)
	}
	if !policy.IsOwnedSid(got.Sid) {
		t.Errorf("Sid %s is not owned: xacctd could not maintain it", got.Sid)
	}
}

// assertNoWildcard fails for an Allow statement with a * action, resource or principal (the
// object resource bucket/prefix* is not a wildcard over the bucket).
func assertNoWildcard(t *testing.T, st policy.Statement) {
	t.Helper()
	if st.Effect != "Allow" {
		t.Errorf("%s: effect %q where only Allow is generated", st.Sid, st.Effect)
		return
	}
	for _, a := range st.Action {
		if strings.Contains(a, "*") {
			t.Errorf("%s: wildcard action %q", st.Sid, a)
		}
	}
	for _, r := range st.Resource {
		if r == "*" || strings.HasSuffix(r, ":::*") || strings.HasSuffix(r, ":*") {
			t.Errorf("%s: wildcard resource %q", st.Sid, r)
		}
		if strings.Contains(r, "*") && !strings.HasSuffix(r, "/*") {
			t.Errorf("%s: resource %q has a wildcard other than the trailing one of a prefix", st.Sid, r)
		}
	}
	b, _ := json.Marshal(st.Principal)
	if strings.Contains(string(b), `"*"`) {
		t.Errorf("%s: principal * (%s)", st.Sid, b)
	}
}
