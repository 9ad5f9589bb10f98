package reconcile

import (
	"encoding/json"
	"strings"
)

// Observed is what AWS has, as far as the desired state is concerned. Observe fills it; Plan
// compares it with Desired. Everything here is plain data so plans can be golden-tested.
type Observed struct {
	Buckets  map[string]*ObservedBucket  // by bucket name
	Roles    map[string]*ObservedRole    // by RoleKey(account id, name)
	Clusters map[string]*ObservedCluster // by ClusterKey(account id, region, identifier)
	// Errors are reads that failed: what they cover is left alone and reported.
	Errors []ObserveError
}

// RoleKey identifies a role: IAM role names are unique per account, case-insensitively.
func RoleKey(accountID, name string) string { return accountID + "/" + strings.ToLower(name) }

// ClusterKey identifies a cluster.
func ClusterKey(accountID, region, identifier string) string {
	return accountID + "/" + region + "/" + identifier
}

// ObservedBucket is a bucket's settings as read.
type ObservedBucket struct {
	Exists            bool
	PublicAccessBlock *PublicAccessBlock // nil: none configured
	Ownership         string             // ObjectOwnership rule; "" when none
	Encryption        *Encryption        // nil: no default encryption
	Policy            json.RawMessage    // nil: no bucket policy
}

// PublicAccessBlock holds the four Block Public Access settings.
type PublicAccessBlock struct {
	BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets bool
}

// AllOn reports whether every setting is on.
func (p *PublicAccessBlock) AllOn() bool {
	return p != nil && p.BlockPublicAcls && p.IgnorePublicAcls && p.BlockPublicPolicy && p.RestrictPublicBuckets
}

// Encryption is a bucket's default encryption.
type Encryption struct {
	Algorithm string `json:"algorithm"`         // AES256 or aws:kms
	KMSKeyID  string `json:"kms_key,omitempty"` // for aws:kms
}

// ObservedRole is an IAM role as read.
type ObservedRole struct {
	Name, Path, ARN, RoleID string
	Trust                   json.RawMessage            // decoded (not URL-encoded)
	Inline                  map[string]json.RawMessage // inline policies by name, decoded
	Attached                []string                   // ARNs of attached managed policies
	Tags                    map[string]string
}

// Managed reports whether xacctd owns the role.
func (r *ObservedRole) Managed() bool { return r.Tags[managedByKey] == managedByValue }

// ObservedCluster is a cluster's role associations as read.
type ObservedCluster struct {
	Status string            // ClusterStatus
	Roles  map[string]string // role ARN -> ApplyStatus (adding, in-sync, removing)
}
