// Package policy models IAM and S3 policy documents and builds the ones xacctd generates.
package policy

import (
	"encoding/json"
	"sort"
	"strings"
)

// Version is the only policy language version xacctd writes.
const Version = "2012-10-17"

// Document is an IAM or S3 bucket policy.
type Document struct {
	Version   string      `json:"Version"`
	ID        string      `json:"Id,omitempty"`
	Statement []Statement `json:"Statement"`
}

// Statement is one policy statement. Values that AWS accepts as a string or a list are
// held as lists.
type Statement struct {
	Sid       string                     `json:"Sid,omitempty"`
	Effect    string                     `json:"Effect"`
	Principal map[string]List            `json:"Principal,omitempty"`
	Action    List                       `json:"Action,omitempty"`
	Resource  List                       `json:"Resource,omitempty"`
	Condition map[string]map[string]List `json:"Condition,omitempty"`
}

// List is a policy value that may be written as one string or a list of strings.
type List []string

// MarshalJSON writes a one-element list as a plain string, as AWS does.
func (l List) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]string(l))
}

// UnmarshalJSON accepts a string or a list of strings.
func (l *List) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = List{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*l = ss
	return nil
}

// RedshiftTrust is the trust policy of a role that Amazon Redshift assumes. With dbUserARNs
// it is restricted to those database users: Redshift passes the connected user's dbuser ARN
// as sts:ExternalId.
func RedshiftTrust(dbUserARNs []string) Document {
	st := Statement{
		Effect:    "Allow",
		Principal: map[string]List{"Service": {"redshift.amazonaws.com"}},
		Action:    List{"sts:AssumeRole"},
	}
	if len(dbUserARNs) > 0 {
		ids := append([]string(nil), dbUserARNs...)
		sort.Strings(ids)
		st.Condition = map[string]map[string]List{"StringEquals": {"sts:ExternalId": ids}}
	}
	return Document{Version: Version, Statement: []Statement{st}}
}

// Compact renders d as IAM counts it against its size quotas: JSON without white space.
func Compact(d Document) string {
	b, err := json.Marshal(d)
	if err != nil {
		// Document holds only strings, lists and maps of them: marshalling cannot fail.
		panic(err)
	}
	return string(b)
}

// PairSid is the Sid of an owned bucket policy statement of a pair: Xacctd, the pair name in
// CamelCase with only letters and digits (S3 accepts nothing else in a Sid), and a suffix.
// "analytics-to-lake", "Objects" -> "XacctdAnalyticsToLakeObjects".
func PairSid(pair, suffix string) string {
	var b strings.Builder
	b.WriteString(OwnedSidPrefix)
	upper := true
	for _, r := range pair {
		switch {
		case r >= 'a' && r <= 'z':
			if upper {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			upper = false
		case (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
			upper = false
		default:
			upper = true
		}
	}
	b.WriteString(suffix)
	return b.String()
}
