package policy

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecode(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	tests := []struct {
		name, give string
		wantErr    bool
	}{
		{"plain", doc, false},
		{"url-encoded as IAM returns it", url.QueryEscape(doc), false},
		{"not json", "{nope", true},
		{"bad escape", "%7B%ZZ", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.give)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Decode error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !Equal(got, json.RawMessage(doc)) {
				t.Errorf("decoded %s, want %s", got, doc)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	base := `{"Version":"2012-10-17","Statement":[
	  {"Sid":"A","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:role/a","arn:aws:iam::1:role/b"]},"Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/p/*"},
	  {"Sid":"B","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`
	tests := []struct {
		name  string
		other string
		equal bool
	}{
		{"identical", base, true},
		{"statement order, list order, string-vs-list, action case, principal star, condition key case", `{"Statement":[
		  {"Sid":"B","Effect":"Deny","Principal":{"AWS":"*"},"Action":["S3:*"],"Resource":["arn:aws:s3:::b/*","arn:aws:s3:::b"],"Condition":{"Bool":{"AWS:SecureTransport":["false"]}}},
		  {"Sid":"A","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:role/b","arn:aws:iam::1:role/a"]},"Action":["s3:getobject","s3:PutObject","s3:PutObject"],"Resource":["arn:aws:s3:::b/p/*"]}],
		  "Version":"2012-10-17"}`, true},
		{"widened action", strings.Replace(base, `["s3:PutObject","s3:GetObject"]`, `"s3:*"`, 1), false},
		{"other resource", strings.Replace(base, `b/p/*`, `b/*`, 1), false},
		{"resource case matters", strings.Replace(base, `b/p/*`, `b/P/*`, 1), false},
		{"condition value", strings.Replace(base, `"false"`, `"true"`, 1), false},
		{"statement missing", `{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:role/a","arn:aws:iam::1:role/b"]},"Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::b/p/*"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Equal(json.RawMessage(base), json.RawMessage(tt.other)); got != tt.equal {
				a, _ := Canonical(json.RawMessage(base))
				b, _ := Canonical(json.RawMessage(tt.other))
				t.Errorf("Equal = %v, want %v\n%s\n%s", got, tt.equal, a, b)
			}
		})
	}
}

const foreignA = `{"Sid":"AllowAuditRead","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":["s3:GetObject"],"Resource":"arn:aws:s3:::b/audit/*"}`
const foreignB = `{"Effect":"Deny","Principal":"*","Action":"s3:DeleteBucket","Resource":"arn:aws:s3:::b","Condition":{"NumericLessThan":{"s3:TlsVersion":1.2}}}`

func TestSplitMergeKeepsForeignStatements(t *testing.T) {
	existing := `{"Version":"2012-10-17","Id":"audit-policy","Statement":[` + foreignA + `,
	  {"Sid":"XacctdOldPair","Effect":"Allow","Principal":{"AWS":"AROAEXAMPLEID"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/old/*"},
	  ` + foreignB + `]}`
	parts, err := Split(json.RawMessage(existing))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.Foreign) != 2 || len(parts.Owned) != 1 {
		t.Fatalf("split: %d foreign, %d owned", len(parts.Foreign), len(parts.Owned))
	}
	owned := []Statement{{
		Sid: "XacctdNewPairObjects", Effect: "Allow",
		Principal: map[string]List{"AWS": {"arn:aws:iam::111111111111:role/xacctd/R"}},
		Action:    List{"s3:PutObject"}, Resource: List{"arn:aws:s3:::b/new/*"},
	}}
	merged, err := Merge(parts, owned)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Split(merged)
	if err != nil {
		t.Fatal(err)
	}
	// Foreign statements come back byte for byte, in order.
	if diff := cmp.Diff([]string{foreignA, foreignB}, rawStrings(again.Foreign)); diff != "" {
		t.Errorf("foreign statements changed (-want +got):\n%s", diff)
	}
	if _, ok := again.Owned["XacctdOldPair"]; ok {
		t.Errorf("stale owned statement kept")
	}
	if _, ok := again.Owned["XacctdNewPairObjects"]; !ok {
		t.Errorf("owned statement missing: %s", merged)
	}
	if string(again.ID) != `"audit-policy"` {
		t.Errorf("Id = %s, want kept", again.ID)
	}

	// Nothing left: Merge says so instead of writing an empty policy.
	empty, err := Merge(&Parts{}, nil)
	if err != nil || empty != nil {
		t.Errorf("Merge of nothing = %s, %v; want nil, nil", empty, err)
	}
	// Unowned Sid refused.
	if _, err := Merge(&Parts{}, []Statement{{Sid: "Other", Effect: "Allow"}}); err == nil {
		t.Errorf("Merge accepted an unowned Sid")
	}
	// Size limit.
	big := make([]json.RawMessage, 0, 200)
	for i := 0; i < 200; i++ {
		big = append(big, json.RawMessage(foreignA))
	}
	if _, err := Merge(&Parts{Foreign: big}, nil); err == nil || !strings.Contains(err.Error(), "20480") {
		t.Errorf("Merge over 20 KB: err = %v", err)
	}
}

func TestSplitSingleStatementObject(t *testing.T) {
	parts, err := Split(json.RawMessage(`{"Version":"2012-10-17","Statement":` + foreignB + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.Foreign) != 1 {
		t.Fatalf("got %d foreign statements", len(parts.Foreign))
	}
}

func TestRedshiftTrust(t *testing.T) {
	got := Compact(RedshiftTrust([]string{"arn:aws:redshift:us-east-1:1:dbuser:c/b", "arn:aws:redshift:us-east-1:1:dbuser:c/a"}))
	want := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":["arn:aws:redshift:us-east-1:1:dbuser:c/a","arn:aws:redshift:us-east-1:1:dbuser:c/b"]}}}]}`
	if got != want {
		t.Errorf("trust:\n got %s\nwant %s", got, want)
	}
}

func rawStrings(rs []json.RawMessage) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// FuzzMergeSplit: for any bucket policy Split accepts, merging owned statements and
// splitting again gives back exactly the foreign statements.
func FuzzMergeSplit(f *testing.F) {
	f.Add(`{"Version":"2012-10-17","Statement":[` + foreignA + `,` + foreignB + `]}`)
	f.Add(`{"Statement":` + foreignB + `}`)
	f.Add(`{"Version":"2008-10-17","Id":{"x":1},"Statement":[{"Sid":"XacctdA","Effect":"Allow"}]}`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, doc string) {
		parts, err := Split(json.RawMessage(doc))
		if err != nil {
			return
		}
		owned := []Statement{{Sid: "XacctdFuzz", Effect: "Allow", Action: List{"s3:GetObject"}, Resource: List{"arn:aws:s3:::b/p/*"}}}
		merged, err := Merge(parts, owned)
		if err != nil {
			if strings.Contains(err.Error(), "bytes; S3 allows") {
				return
			}
			t.Fatalf("Merge: %v", err)
		}
		if !json.Valid(merged) {
			t.Fatalf("merged policy is not JSON: %s", merged)
		}
		again, err := Split(merged)
		if err != nil {
			t.Fatalf("Split(merged): %v\n%s", err, merged)
		}
		if diff := cmp.Diff(rawStrings(parts.Foreign), rawStrings(again.Foreign)); diff != "" {
			t.Fatalf("foreign statements changed (-before +after):\n%s", diff)
		}
		if len(again.Owned) != 1 {
			t.Fatalf("owned = %d statements, want 1", len(again.Owned))
		}
	})
}
