package reconcile

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func loadExample(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("../../examples/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDesiredGolden pins every generated policy document for the example configuration.
func TestDesiredGolden(t *testing.T) {
	d := Desire(loadExample(t))
	got, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const path = "testdata/desired-example.golden.json"
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
		t.Errorf("desired state changed (-want +got); rerun with -update if intended:\n%s", cmp.Diff(string(want), string(got)))
	}
}

// TestDesiredLeastPrivilege checks the rules of design.md §4 on every generated document.
func TestDesiredLeastPrivilege(t *testing.T) {
	d := Desire(loadExample(t))
	var docs []policy.Statement
	for _, r := range d.Roles {
		docs = append(docs, r.Policy.Statement...)
		docs = append(docs, r.Trust.Statement...)
	}
	for _, b := range d.Buckets {
		docs = append(docs, b.Statements...)
	}
	for _, st := range docs {
		if st.Effect != "Allow" {
			continue
		}
		for _, a := range st.Action {
			if strings.Contains(a, "*") {
				t.Errorf("statement %q allows wildcard action %q", st.Sid, a)
			}
		}
		for _, r := range st.Resource {
			if r == "*" {
				t.Errorf("statement %q allows Resource *", st.Sid)
			}
		}
		for _, ps := range st.Principal {
			for _, p := range ps {
				if p == "*" {
					t.Errorf("statement %q allows principal *", st.Sid)
				}
			}
		}
	}
	byPair := func(pair string) []*DesiredRole {
		var out []*DesiredRole
		for _, r := range d.Roles {
			if r.Pair == pair {
				out = append(out, r)
			}
		}
		return out
	}
	has := func(doc policy.Document, action string) bool {
		for _, st := range doc.Statement {
			for _, a := range st.Action {
				if a == action {
					return true
				}
			}
		}
		return false
	}
	// analytics-to-lake: unload+copy, a job uses cleanpath, bucket has a KMS key.
	a := byPair("analytics-to-lake")
	if len(a) != 1 || !has(a[0].Policy, "s3:DeleteObject") || !has(a[0].Policy, "kms:GenerateDataKey") || !has(a[0].Policy, "s3:GetObject") {
		t.Errorf("analytics-to-lake role policy: %+v", a)
	}
	if len(a[0].Trust.Statement[0].Condition["StringEquals"]["sts:ExternalId"]) != 1 {
		t.Errorf("trust not restricted to db_users: %+v", a[0].Trust)
	}
	// events-from-lake: role-chaining, copy only, no KMS, no cleanpath.
	e := byPair("events-from-lake")
	if len(e) != 2 {
		t.Fatalf("events-from-lake roles: %d, want 2 (chain)", len(e))
	}
	for _, r := range e {
		if has(r.Policy, "s3:PutObject") || has(r.Policy, "s3:DeleteObject") || has(r.Policy, "kms:Decrypt") {
			t.Errorf("copy-only chained role %s has write or KMS rights: %+v", r.Name, r.Policy)
		}
	}
	if got := d.Pairs["events-from-lake"].RoleARNs; len(got) != 2 || !strings.HasSuffix(got[0], "/RedshiftEventsReader") || !strings.HasSuffix(got[1], "/LakeEventsReader") {
		t.Errorf("chain = %v", got)
	}
	// Role chaining writes no cross-account bucket statement.
	for _, b := range d.Buckets {
		for _, st := range b.Statements {
			if strings.Contains(st.Sid, "EventsFromLake") {
				t.Errorf("role-chaining pair has bucket statement %s", st.Sid)
			}
		}
	}
	if len(d.Associations) != 2 {
		t.Errorf("associations = %d, want 2", len(d.Associations))
	}
}
