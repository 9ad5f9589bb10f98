package reconcile

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/policy"
)

// converged builds the observed state of an AWS that matches d exactly.
func converged(d *Desired) *Observed {
	o := &Observed{Buckets: map[string]*ObservedBucket{}, Roles: map[string]*ObservedRole{}, Clusters: map[string]*ObservedCluster{}}
	for _, b := range d.Buckets {
		enc := &Encryption{Algorithm: "AES256"}
		if b.KMSKeyARN != "" {
			enc = &Encryption{Algorithm: "aws:kms", KMSKeyID: b.KMSKeyARN}
		}
		var pol json.RawMessage
		if len(b.Statements) > 0 {
			pol, _ = policy.Merge(&policy.Parts{}, b.Statements)
		}
		o.Buckets[b.Name] = &ObservedBucket{Exists: true, PublicAccessBlock: &PublicAccessBlock{true, true, true, true}, Ownership: "BucketOwnerEnforced", Encryption: enc, Policy: pol}
	}
	for _, r := range d.Roles {
		o.Roles[RoleKey(r.AccountID, r.Name)] = &ObservedRole{
			Name: r.Name, Path: r.Path, ARN: r.ARN, RoleID: "AROA" + strings.ToUpper(r.Name),
			Trust: mustJSON(r.Trust), Inline: map[string]json.RawMessage{RolePolicyName: mustJSON(r.Policy)}, Tags: r.Tags,
		}
	}
	for _, a := range d.Associations {
		key := ClusterKey(a.AccountID, a.Region, a.Cluster)
		if o.Clusters[key] == nil {
			o.Clusters[key] = &ObservedCluster{Status: "available", Roles: map[string]string{}}
		}
		o.Clusters[key].Roles[a.RoleARN] = "in-sync"
	}
	return o
}

const foreignStatements = `{"Sid":"AuditRead","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::acme-redshift-exports/audit/*"},{"Effect":"Deny","Principal":"*","Action":"s3:DeleteBucket","Resource":"arn:aws:s3:::acme-redshift-exports"}`

func withForeign(t *testing.T, o *Observed, bucket string) {
	t.Helper()
	parts, err := policy.Split(o.Buckets[bucket].Policy)
	if err != nil {
		t.Fatal(err)
	}
	var foreign []json.RawMessage
	if err := json.Unmarshal([]byte("["+foreignStatements+"]"), &foreign); err != nil {
		t.Fatal(err)
	}
	parts.Foreign = foreign
	var owned []policy.Statement
	for _, raw := range parts.Owned {
		var st policy.Statement
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		owned = append(owned, st)
	}
	doc, err := policy.Merge(parts, owned)
	if err != nil {
		t.Fatal(err)
	}
	o.Buckets[bucket].Policy = doc
}

func editStatement(t *testing.T, o *Observed, bucket, sid string, edit func(st map[string]any)) {
	t.Helper()
	parts, _ := policy.Split(o.Buckets[bucket].Policy)
	var all []json.RawMessage
	all = append(all, parts.Foreign...)
	for s, raw := range parts.Owned {
		if s == sid {
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			if edit == nil {
				continue
			}
			edit(m)
			raw, _ = json.Marshal(m)
		}
		all = append(all, raw)
	}
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": all})
	o.Buckets[bucket].Policy = b
}

const exportsBucket = "acme-redshift-exports"
const lakeRoleKey = "111111111111/redshiftlakeaccess"

func TestPlan(t *testing.T) {
	cfg := loadExample(t)
	d := Desire(cfg)
	tests := []struct {
		name      string
		mutate    func(t *testing.T, o *Observed)
		cfg       func(c *config.Config)
		empty     bool
		conflicts int
	}{
		{name: "converged", mutate: func(t *testing.T, o *Observed) { withForeign(t, o, exportsBucket) }, empty: true},
		{name: "fresh", mutate: func(t *testing.T, o *Observed) {
			o.Buckets, o.Roles = map[string]*ObservedBucket{}, map[string]*ObservedRole{}
			for _, c := range o.Clusters {
				c.Roles = map[string]string{"arn:aws:iam::111111111111:role/SomebodyElses": "in-sync"}
			}
		}, conflicts: 1}, // acme-raw-events has create: false
		{name: "statement-deleted", mutate: func(t *testing.T, o *Observed) {
			withForeign(t, o, exportsBucket)
			editStatement(t, o, exportsBucket, "XacctdAnalyticsToLakeObjects", nil)
		}},
		{name: "statement-widened", mutate: func(t *testing.T, o *Observed) {
			editStatement(t, o, exportsBucket, "XacctdAnalyticsToLakeObjects", func(st map[string]any) { st["Action"] = "s3:*" })
		}},
		{name: "unique-id-principal", mutate: func(t *testing.T, o *Observed) {
			editStatement(t, o, exportsBucket, "XacctdAnalyticsToLakeList", func(st map[string]any) {
				st["Principal"] = map[string]any{"AWS": "AROAEXAMPLEUNIQUEID1"}
			})
		}},
		{name: "trust-and-externalid-changed", mutate: func(t *testing.T, o *Observed) {
			o.Roles[lakeRoleKey].Trust = mustJSON(policy.RedshiftTrust([]string{"arn:aws:redshift:us-east-1:111111111111:dbuser:analytics-prod/intruder"}))
		}},
		{name: "inline-policy-edited-and-extras", mutate: func(t *testing.T, o *Observed) {
			r := o.Roles[lakeRoleKey]
			r.Inline[RolePolicyName] = json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)
			r.Inline["added-by-hand"] = json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}`)
			r.Attached = []string{"arn:aws:iam::aws:policy/AmazonS3FullAccess"}
		}},
		{name: "disassociated-and-public-access-off", mutate: func(t *testing.T, o *Observed) {
			for _, c := range o.Clusters {
				delete(c.Roles, "arn:aws:iam::111111111111:role/xacctd/RedshiftLakeAccess")
			}
			o.Buckets[exportsBucket].PublicAccessBlock = &PublicAccessBlock{BlockPublicAcls: true}
			o.Buckets[exportsBucket].Ownership = "ObjectWriter"
			o.Buckets[exportsBucket].Encryption = &Encryption{Algorithm: "AES256"}
		}},
		{name: "unmanaged-role-conflict", mutate: func(t *testing.T, o *Observed) {
			r := o.Roles[lakeRoleKey]
			r.Tags = map[string]string{"owner": "someone-else"}
			for _, c := range o.Clusters {
				delete(c.Roles, r.ARN)
			}
			editStatement(t, o, exportsBucket, "XacctdAnalyticsToLakeObjects", nil)
		}, empty: true, conflicts: 1},
		{name: "pair-removed", cfg: func(c *config.Config) {
			c.Pairs = c.Pairs[1:] // drop analytics-to-lake
			var jobs []*config.Job
			for _, j := range c.Jobs {
				if j.Pair != "analytics-to-lake" {
					jobs = append(jobs, j)
				}
			}
			c.Jobs = jobs
		}, mutate: func(t *testing.T, o *Observed) { withForeign(t, o, exportsBucket) }},
		{name: "bucket-missing-no-create", mutate: func(t *testing.T, o *Observed) { delete(o.Buckets, "acme-raw-events") }, empty: true, conflicts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := converged(d)
			if tt.mutate != nil {
				tt.mutate(t, o)
			}
			want := d
			if tt.cfg != nil {
				c := loadExample(t)
				tt.cfg(c)
				want = Desire(c)
			}
			p := MakePlan(want, o)
			if p.Empty() != tt.empty || len(p.Conflicts) != tt.conflicts {
				t.Errorf("Empty() = %v with %d conflicts, want %v with %d", p.Empty(), len(p.Conflicts), tt.empty, tt.conflicts)
			}
			var text, js bytes.Buffer
			if err := WriteText(&text, p); err != nil {
				t.Fatal(err)
			}
			if err := WriteJSON(&js, p, Stats{}); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "plan-"+tt.name+".txt"), text.Bytes())
			golden(t, filepath.Join("testdata", "plan-"+tt.name+".json"), js.Bytes())
			// Foreign statements are never touched: no change names them.
			for _, c := range p.Changes {
				if strings.Contains(c.ID, "AuditRead") || (c.Type == TypeStatement && !strings.Contains(c.ID, "/Xacctd")) {
					t.Errorf("change touches a foreign statement: %v", c)
				}
			}
		})
	}
}

// TestPlanIsStable: the same inputs give the same plan.
func TestPlanIsStable(t *testing.T) {
	d := Desire(loadExample(t))
	o := converged(d)
	o.Buckets, o.Roles = map[string]*ObservedBucket{}, map[string]*ObservedRole{}
	a, b := MakePlan(d, o), MakePlan(d, o)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("plans differ:\n%s", diff)
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/reconcile -update)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (-want +got); rerun with -update if intended:\n%s", path, cmp.Diff(string(want), string(got)))
	}
}
