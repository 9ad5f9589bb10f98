package reconcile_test

// Integration tests on the sandbox: moto with the Redshift extension, PostgreSQL and the
// Redshift stand-in. They fail (never skip) when the sandbox cannot start.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/xacctd/xacctd/internal/awsconn"
	"github.com/xacctd/xacctd/internal/sandbox"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/policy"
	"github.com/xacctd/xacctd/pkg/reconcile"
)

var world *sandbox.World

func TestMain(m *testing.M) {
	os.Exit(sandbox.RunTests(m, sandbox.Options{RoleDelay: 300 * time.Millisecond}, &world))
}

const (
	exportsBucket = "xacctd-it-exports"
	eventsBucket  = "xacctd-it-events"
	foreignA      = `{"Sid":"AuditRead","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::333333333333:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::xacctd-it-exports/audit/*"}`
	foreignB      = `{"Sid":"KeepBucket","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444444444444:root"},"Action":"s3:DeleteBucket","Resource":"arn:aws:s3:::xacctd-it-exports"}`
)

// configText is an examples/config.yaml-like file for the sandbox: a bucket-policy pair with
// unload+copy (cleanpath job) and a role-chaining copy pair into a pre-existing bucket.
func configText(withChain bool) string {
	var b strings.Builder
	b.WriteString("version: 1\ndefaults: {tags: {team: data-platform}}\n")
	b.WriteString(world.ConfigFragment())
	fmt.Fprintf(&b, `buckets:
  exports: {account: lake, name: %s, create: true}
  events: {account: lake, name: %s, create: false}
pairs:
  - name: analytics-to-lake
    cluster: %s
    bucket: exports
    prefix: redshift/analytics/
    access: [unload, copy]
    role: {name: RedshiftLakeAccess, db_users: [%s]}
`, exportsBucket, eventsBucket, world.Cluster, world.DBUser)
	if withChain {
		fmt.Fprintf(&b, `  - name: events-from-lake
    cluster: %s
    bucket: events
    prefix: events/
    access: [copy]
    method: role-chaining
    role: {name: RedshiftEventsReader, db_users: [%s]}
    target_role: {name: LakeEventsReader}
`, world.Cluster, world.DBUser)
	}
	b.WriteString(`jobs:
  - name: orders
    pair: analytics-to-lake
    schedule: "@daily"
    unload: {query: "SELECT 1", to: "orders/", options: {cleanpath: true}}
`)
	return b.String()
}

type env struct {
	t       *testing.T
	ctx     context.Context
	cfg     *config.Config
	counter *awsconn.Counter
	r       *reconcile.Reconciler
	lakeS3  *s3.Client
	whIAM   *iam.Client
	rs      *redshift.Client
}

// setup resets the world, creates the pre-existing bucket with two foreign statements, and
// returns a reconciler for the config.
func setup(t *testing.T, text string) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	if err := world.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx}
	var err error
	if e.lakeS3, err = world.S3Client(ctx, world.LakeAccount); err != nil {
		t.Fatal(err)
	}
	whCfg, err := world.AWSConfig(ctx, world.WarehouseAccount)
	if err != nil {
		t.Fatal(err)
	}
	e.whIAM, e.rs = iam.NewFromConfig(whCfg), redshift.NewFromConfig(whCfg)
	if _, err := e.lakeS3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(eventsBucket)}); err != nil {
		t.Fatal(err)
	}
	e.load(text)
	return e
}

func (e *env) load(text string) {
	e.t.Helper()
	cfg, err := config.Parse("it.yml", []byte(text))
	if err != nil {
		e.t.Fatal(err)
	}
	e.cfg = cfg
	e.counter = awsconn.NewCounter()
	e.r = &reconcile.Reconciler{
		Config:  cfg,
		Clients: awsconn.Clients{Accounts: awsconn.New(cfg, e.counter)},
		Options: reconcile.ApplyOptions{Logger: zaptest.NewLogger(e.t), RetryBase: 200 * time.Millisecond, WaitInSync: time.Minute},
	}
}

func (e *env) apply() *reconcile.ApplyResult {
	e.t.Helper()
	res := e.r.Apply(e.ctx)
	for _, r := range res.Result.Results {
		if r.Outcome != reconcile.Applied {
			e.t.Errorf("change %s %s %s: %s %s", r.Action, r.Type, r.ID, r.Outcome, r.Error)
		}
	}
	return res
}

// writes counts non-read requests.
func writes(byOp map[string]int) map[string]int {
	out := map[string]int{}
	for op, n := range byOp {
		name := op[strings.Index(op, ":")+1:]
		if strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List") || strings.HasPrefix(name, "Describe") || name == "AssumeRole" {
			continue
		}
		out[op] = n
	}
	return out
}

func (e *env) bucketPolicy(bucket string) string {
	e.t.Helper()
	out, err := e.lakeS3.GetBucketPolicy(e.ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(bucket)})
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(out.Policy)
}

func (e *env) putForeign() {
	e.t.Helper()
	doc := `{"Version":"2012-10-17","Statement":[` + foreignA + `,` + foreignB + `]}`
	if _, err := e.lakeS3.PutBucketPolicy(e.ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(exportsBucket), Policy: aws.String(doc)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) assertForeignKept() {
	e.t.Helper()
	parts, err := policy.Split(json.RawMessage(e.bucketPolicy(exportsBucket)))
	if err != nil {
		e.t.Fatal(err)
	}
	if len(parts.Foreign) != 2 || string(parts.Foreign[0]) != foreignA || string(parts.Foreign[1]) != foreignB {
		e.t.Errorf("foreign statements changed:\n%s", e.bucketPolicy(exportsBucket))
	}
}

func (e *env) plan() *reconcile.Plan {
	e.t.Helper()
	return e.r.Plan(e.ctx).Plan
}

// TestFreshApplyThenNoOpPlan: a fresh apply creates everything, both methods; the next plan
// has no changes and sends no write; the access path really works (UNLOAD through the
// stand-in into the other account's bucket, and COPY through the role chain).
func TestFreshApplyThenNoOpPlan(t *testing.T) {
	e := setup(t, configText(true))
	res := e.apply()
	if !res.InSync() {
		t.Fatalf("not in sync after apply: %+v\nremaining: %+v", res.Result, res.After.Plan)
	}
	e.counter = awsconn.NewCounter()
	e.r.Clients = awsconn.Clients{Accounts: awsconn.New(e.cfg, e.counter)}
	p := e.plan()
	if !p.Empty() || len(p.Conflicts) != 0 {
		t.Fatalf("second plan not empty: %+v", p)
	}
	total, byOp := e.counter.Snapshot()
	if w := writes(byOp); len(w) != 0 {
		t.Errorf("no-op plan sent writes: %v", w)
	}
	// 2 accounts: AssumeRole + IAM listing each; 2 buckets: 4 reads each; 1 account-region
	// with clusters: 1 DescribeClusters.
	if want := 2*2 + 2*4 + 1; total != want {
		t.Errorf("no-op plan: %d AWS calls %v, want %d", total, byOp, want)
	}
	t.Logf("no-op plan: %d calls %v", total, byOp)
	for _, r := range reconcile.Readiness(e.r.Plan(e.ctx)) {
		if !r.Ready {
			t.Errorf("pair %s not ready after apply: %s", r.Pair, r.Reason())
		}
	}

	// The access path works: UNLOAD into the lake account's bucket through the stand-in.
	conn := connect(t, e.ctx)
	roleARN := "arn:aws:iam::" + world.WarehouseAccount + ":role/xacctd/RedshiftLakeAccess"
	if _, err := conn.Exec(e.ctx, fmt.Sprintf(`UNLOAD ('SELECT 1 AS one') TO 's3://%s/redshift/analytics/orders/' IAM_ROLE '%s' FORMAT CSV CLEANPATH`, exportsBucket, roleARN)); err != nil {
		t.Fatalf("UNLOAD after apply: %v", err)
	}
	// ... and COPY through the role chain from the pre-existing bucket.
	if _, err := e.lakeS3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(eventsBucket), Key: aws.String("events/e1.csv"), Body: strings.NewReader("7\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(e.ctx, `CREATE TABLE IF NOT EXISTS public.it_events (n int)`); err != nil {
		t.Fatal(err)
	}
	chain := roleARN[:strings.LastIndex(roleARN, "/")] + "/RedshiftEventsReader,arn:aws:iam::" + world.LakeAccount + ":role/xacctd/LakeEventsReader"
	if _, err := conn.Exec(e.ctx, fmt.Sprintf(`COPY public.it_events FROM 's3://%s/events/' IAM_ROLE '%s' FORMAT CSV`, eventsBucket, chain)); err != nil {
		t.Fatalf("COPY through the chain after apply: %v", err)
	}
}

func connect(t *testing.T, ctx context.Context) *pgx.Conn {
	t.Helper()
	dsn := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", world.DBUser, url.QueryEscape(world.DBPassword), world.RedshiftEndpoint, world.Database)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestDriftRepairKeepsForeignStatements: each kind of drift is found with reason drift and
// repaired; foreign statements survive apply, every repair, and the removal of a pair.
func TestDriftRepairKeepsForeignStatements(t *testing.T) {
	e := setup(t, configText(true))
	e.apply()
	e.putForeign() // someone replaces the whole policy: our statements are gone
	roleName := "RedshiftLakeAccess"
	roleARN := "arn:aws:iam::" + world.WarehouseAccount + ":role/xacctd/" + roleName
	ownedSid := "XacctdAnalyticsToLakeObjects"

	editOwned := func(edit func(m map[string]any)) {
		parts, err := policy.Split(json.RawMessage(e.bucketPolicy(exportsBucket)))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(parts.Owned[ownedSid], &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		parts.Owned[ownedSid], _ = json.Marshal(m)
		doc, err := policy.MergeRaw(parts, parts.Owned)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.lakeS3.PutBucketPolicy(e.ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(exportsBucket), Policy: aws.String(string(doc))}); err != nil {
			t.Fatal(err)
		}
	}
	drifts := []struct {
		name   string
		mutate func()
		want   string // change type expected in the plan
	}{
		{"statement deleted", func() {}, reconcile.TypeStatement}, // putForeign above removed them
		{"statement widened", func() { editOwned(func(m map[string]any) { m["Action"] = "s3:*" }) }, reconcile.TypeStatement},
		{"unique-id principal", func() {
			editOwned(func(m map[string]any) { m["Principal"] = map[string]any{"AWS": "AROAXACCTDEXAMPLE0001"} })
		}, reconcile.TypeStatement},
		{"trust changed", func() {
			doc := policy.Compact(policy.Document{Version: policy.Version, Statement: []policy.Statement{{Effect: "Allow", Principal: map[string]policy.List{"AWS": {"arn:aws:iam::999999999999:root"}}, Action: policy.List{"sts:AssumeRole"}}}})
			if _, err := e.whIAM.UpdateAssumeRolePolicy(e.ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: aws.String(roleName), PolicyDocument: aws.String(doc)}); err != nil {
				t.Fatal(err)
			}
		}, reconcile.TypeTrust},
		{"external id list changed", func() {
			doc := policy.Compact(policy.RedshiftTrust([]string{"arn:aws:redshift:us-east-1:" + world.WarehouseAccount + ":dbuser:" + world.Cluster + "/intruder"}))
			if _, err := e.whIAM.UpdateAssumeRolePolicy(e.ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: aws.String(roleName), PolicyDocument: aws.String(doc)}); err != nil {
				t.Fatal(err)
			}
		}, reconcile.TypeTrust},
		{"inline policy edited", func() {
			if _, err := e.whIAM.PutRolePolicy(e.ctx, &iam.PutRolePolicyInput{RoleName: aws.String(roleName), PolicyName: aws.String(reconcile.RolePolicyName),
				PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)}); err != nil {
				t.Fatal(err)
			}
		}, reconcile.TypeRolePolicy},
		{"role disassociated", func() {
			if _, err := e.rs.ModifyClusterIamRoles(e.ctx, &redshift.ModifyClusterIamRolesInput{ClusterIdentifier: aws.String(world.Cluster), RemoveIamRoles: []string{roleARN}}); err != nil {
				t.Fatal(err)
			}
			waitRoleGone(t, e, roleARN)
		}, reconcile.TypeAssociation},
		{"public access block off", func() {
			if _, err := e.lakeS3.PutPublicAccessBlock(e.ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String(exportsBucket), PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
				BlockPublicAcls: aws.Bool(false), IgnorePublicAcls: aws.Bool(false), BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: aws.Bool(false)}}); err != nil {
				t.Fatal(err)
			}
		}, reconcile.TypePublicAccessBlock},
	}
	for _, d := range drifts {
		d.mutate()
		p := e.plan()
		found := false
		for _, c := range p.Changes {
			if c.Type == d.want && c.Action != reconcile.NoOp {
				found = true
				if c.Action == reconcile.Update && !strings.HasPrefix(c.Reason, reconcile.ReasonDrift) {
					t.Errorf("%s: reason %q, want drift", d.name, c.Reason)
				}
			}
		}
		if !found {
			t.Errorf("%s: no %s change in plan %+v", d.name, d.want, p.Changes)
			continue
		}
		if res := e.apply(); !res.InSync() {
			t.Errorf("%s: not repaired: %+v", d.name, res.After.Plan)
		}
		e.assertForeignKept()
	}

	// Removing the chain pair cleans up exactly its own objects; the other pair and the
	// foreign statements are untouched.
	before := e.bucketPolicy(exportsBucket)
	e.load(configText(false))
	if res := e.apply(); !res.InSync() {
		t.Fatalf("removal not in sync: %+v", res.After.Plan)
	}
	e.assertForeignKept()
	if after := e.bucketPolicy(exportsBucket); !policy.Equal(json.RawMessage(before), json.RawMessage(after)) {
		t.Errorf("removing a chain pair changed another bucket's policy:\n%s\n%s", before, after)
	}
	for _, name := range []string{"RedshiftEventsReader"} {
		if _, err := e.whIAM.GetRole(e.ctx, &iam.GetRoleInput{RoleName: aws.String(name)}); err == nil {
			t.Errorf("role %s of the removed pair still exists", name)
		}
	}
	if _, err := e.whIAM.GetRole(e.ctx, &iam.GetRoleInput{RoleName: aws.String(roleName)}); err != nil {
		t.Errorf("the remaining pair's role is gone: %v", err)
	}
	clusterRoles := describeRoles(t, e)
	if _, ok := clusterRoles[roleARN]; !ok {
		t.Errorf("remaining association gone: %v", clusterRoles)
	}
	for arn := range clusterRoles {
		if strings.Contains(arn, "RedshiftEventsReader") && clusterRoles[arn] != "removing" {
			t.Errorf("removed pair still associated: %v", clusterRoles)
		}
	}
}

func describeRoles(t *testing.T, e *env) map[string]string {
	t.Helper()
	out, err := e.rs.DescribeClusters(e.ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(world.Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, r := range out.Clusters[0].IamRoles {
		m[aws.ToString(r.IamRoleArn)] = aws.ToString(r.ApplyStatus)
	}
	return m
}

func waitRoleGone(t *testing.T, e *env, arn string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if _, ok := describeRoles(t, e)[arn]; !ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("role %s still associated", arn)
}

// TestConflictUnmanagedRole: a role with the configured name that xacctd does not own is
// reported and left untouched; the other pair is applied.
func TestConflictUnmanagedRole(t *testing.T) {
	e := setup(t, configText(true))
	foreignTrust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	if _, err := e.whIAM.CreateRole(e.ctx, &iam.CreateRoleInput{RoleName: aws.String("RedshiftLakeAccess"), Path: aws.String("/xacctd/"),
		AssumeRolePolicyDocument: aws.String(foreignTrust), Tags: []iamtypes.Tag{{Key: aws.String("owner"), Value: aws.String("dba-team")}}}); err != nil {
		t.Fatal(err)
	}
	res := e.r.Apply(e.ctx)
	if res.InSync() {
		t.Fatal("apply reports in sync despite a conflict")
	}
	conflicts := res.After.Plan.Conflicts
	if len(conflicts) != 1 || conflicts[0].ID != "RedshiftLakeAccess" || !strings.Contains(conflicts[0].Reason, "not managed by xacctd") {
		t.Fatalf("conflicts = %+v", conflicts)
	}
	got, err := e.whIAM.GetRole(e.ctx, &iam.GetRoleInput{RoleName: aws.String("RedshiftLakeAccess")})
	if err != nil {
		t.Fatal(err)
	}
	trust, _ := policy.Decode(aws.ToString(got.Role.AssumeRolePolicyDocument))
	if !policy.Equal(trust, json.RawMessage(foreignTrust)) || len(got.Role.Tags) != 1 {
		t.Errorf("unmanaged role was modified: %s %v", trust, got.Role.Tags)
	}
	if _, ok := describeRoles(t, e)[aws.ToString(got.Role.Arn)]; ok {
		t.Errorf("unmanaged role was associated")
	}
	for _, r := range reconcile.Readiness(res.After) {
		switch {
		case r.Pair == "analytics-to-lake" && (r.Ready || !strings.Contains(r.Reason(), "not managed by xacctd")):
			t.Errorf("conflicted pair readiness = %v, %q", r.Ready, r.Reason())
		case r.Pair == "events-from-lake" && !r.Ready:
			t.Errorf("other pair not ready: %s", r.Reason())
		}
	}
	// The other pair was applied.
	if _, err := e.whIAM.GetRole(e.ctx, &iam.GetRoleInput{RoleName: aws.String("RedshiftEventsReader")}); err != nil {
		t.Errorf("the other pair's role was not created: %v", err)
	}
	for _, c := range res.After.Plan.Changes {
		if c.Pair == "events-from-lake" {
			t.Errorf("the other pair is not converged: %v", c)
		}
	}
}

// TestWrongAccountRefused: credentials that act in another account than configured are
// refused before anything is read or written there.
func TestWrongAccountRefused(t *testing.T) {
	// Without role_arn the sandbox's base credentials act in moto's default account, not in
	// the configured one.
	text := strings.Replace(configText(false), "role_arn: arn:aws:iam::"+world.WarehouseAccount+":role/xacctd-admin", "role_arn: \"\"", 1)
	if text == configText(false) {
		t.Fatal("fixture: warehouse role_arn not found in the config fragment")
	}
	e := setup(t, text)
	res := e.r.Apply(e.ctx)
	if res.InSync() {
		t.Fatal("apply in sync with the wrong account's credentials")
	}
	found := false
	for _, c := range res.After.Plan.Conflicts {
		if c.Account == "warehouse" && strings.Contains(c.Reason, "refusing to act in the wrong account") {
			found = true
		}
	}
	if !found {
		t.Errorf("no wrong-account conflict: %+v", res.After.Plan.Conflicts)
	}
	for _, r := range res.Result.Results {
		if r.Account == "warehouse" && r.Outcome == reconcile.Applied {
			t.Errorf("a change was applied in the wrong account: %+v", r)
		}
	}
}

// TestNotReadyWhileAdding: a pair whose association Redshift is still applying is not ready,
// with the reason in words; once in-sync it is.
func TestNotReadyWhileAdding(t *testing.T) {
	e := setup(t, configText(false))
	ctx := e.ctx
	if err := world.Moto.SetRoleDelay(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	defer world.Moto.SetRoleDelay(context.Background(), 300*time.Millisecond)
	e.r.Options.NoWait = true
	e.r.Apply(ctx)
	var r reconcile.PairReadiness
	for _, pr := range reconcile.Readiness(e.r.Plan(ctx)) {
		if pr.Pair == "analytics-to-lake" {
			r = pr
		}
	}
	if r.Ready || !strings.Contains(r.Reason(), "adding") {
		t.Fatalf("readiness while adding = %v, %q", r.Ready, r.Reason())
	}
	time.Sleep(3500 * time.Millisecond)
	for _, pr := range reconcile.Readiness(e.r.Plan(ctx)) {
		if !pr.Ready {
			t.Errorf("pair %s not ready once in-sync: %s", pr.Pair, pr.Reason())
		}
	}
}

// TestBusyClusterRetried: while Redshift is still applying an earlier association the
// cluster refuses another (InvalidClusterState); apply backs off and succeeds within its
// bound.
func TestBusyClusterRetried(t *testing.T) {
	e := setup(t, configText(false))
	if err := world.Moto.SetRoleDelay(e.ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	defer world.Moto.SetRoleDelay(context.Background(), 300*time.Millisecond)
	e.r.Options.NoWait = true
	if res := e.r.Apply(e.ctx); res.Result.Failed() {
		t.Fatalf("first apply: %+v", res.Result)
	}
	// The first association is still "adding": the cluster is busy.
	e.load(configText(true))
	e.r.Options.NoWait = false
	res := e.apply()
	if !res.InSync() {
		t.Fatalf("not in sync after a busy cluster: %+v", res.After.Plan)
	}
	_, byOp := e.counter.Snapshot()
	if byOp["redshift:ModifyClusterIamRoles"] < 2 {
		t.Errorf("ModifyClusterIamRoles sent %d times; want a refusal and a retry", byOp["redshift:ModifyClusterIamRoles"])
	}
}

// TestRefusedChangeNamesResourceOthersGoOn: AWS refuses a change (the bucket name is taken
// by another account); the result names the resource and the likely cause, and the other
// pair is applied.
func TestRefusedChangeNamesResourceOthersGoOn(t *testing.T) {
	e := setup(t, configText(true))
	whCfg, err := world.AWSConfig(e.ctx, world.WarehouseAccount)
	if err != nil {
		t.Fatal(err)
	}
	// Somebody else (another account) owns the bucket name the config wants to create.
	if _, err := s3.NewFromConfig(whCfg, awsconn.S3Options).CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(exportsBucket)}); err != nil {
		t.Fatal(err)
	}
	res := e.r.Apply(e.ctx)
	if res.InSync() {
		t.Fatal("in sync although the bucket belongs to another account")
	}
	var named bool
	for _, r := range res.Result.Results {
		if r.Outcome == reconcile.Failed && strings.Contains(r.Error, exportsBucket) && strings.Contains(r.Error, "likely cause") {
			named = true
		}
	}
	for _, c := range res.After.Plan.Conflicts {
		if c.ID == exportsBucket && strings.Contains(c.Reason, "likely cause: the bucket belongs to another account") {
			named = true
		}
	}
	for _, r := range res.Result.Results {
		if r.Outcome != reconcile.Applied {
			t.Logf("%s %s %s: %s", r.Outcome, r.Type, r.ID, r.Error)
		}
	}
	for _, c := range res.After.Plan.Conflicts {
		t.Logf("conflict %s %s: %s", c.Type, c.ID, c.Reason)
	}
	if !named {
		t.Errorf("no failure or conflict names %s with a cause:\nresults %+v\nconflicts %+v", exportsBucket, res.Result.Results, res.After.Plan.Conflicts)
	}
	for _, r := range reconcile.Readiness(res.After) {
		if r.Pair == "events-from-lake" && !r.Ready {
			t.Errorf("the other pair did not go on: %s", r.Reason())
		}
	}
}
