package reconcile_test

// Fault injection on the sandbox: xacctd's AWS requests go through faultproxy, which sits in
// front of moto and throttles, fails or drops some of them, or stops listening altogether as
// if moto had been stopped. The checks read moto directly (the world's own clients do not go
// through the proxy).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/xacctd/xacctd/internal/sandbox/faultproxy"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/reconcile"
)

// faultTestTimeout bounds each fault test; a hang fails it instead of the package.
const faultTestTimeout = 60 * time.Second

// faultSetup is setup with xacctd's AWS requests going through a fault proxy in front of
// moto. awsconn loads the SDK configuration at its first request, and the SDK reads
// AWS_ENDPOINT_URL then: the reconciler is rebuilt after the variable is set.
func faultSetup(t *testing.T, text string, opts faultproxy.Options) (*env, *faultproxy.Proxy) {
	t.Helper()
	e := setup(t, text)
	ctx, cancel := context.WithTimeout(context.Background(), faultTestTimeout)
	t.Cleanup(cancel)
	e.ctx = ctx
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	p, err := faultproxy.Start(world.Moto.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	t.Setenv("AWS_ENDPOINT_URL", p.URL)
	e.load(text)
	e.r.Options.WaitInSync = 5 * time.Second
	return e, p
}

// mixedFaults fault about a quarter of all requests: 1-(0.88*0.92*0.95*0.97) = 25%.
var mixedFaults = []faultproxy.Rule{
	{Probability: 0.12, Fault: faultproxy.Throttling}, // 400 Throttling (IAM, STS, Redshift), 503 SlowDown (S3)
	{Probability: 0.08, Fault: faultproxy.SlowDown},   // 503
	{Probability: 0.05, Fault: faultproxy.InternalError},
	{Probability: 0.03, Fault: faultproxy.Drop},
}

// TestThrottlingAnd5xxConverge: with a quarter of all requests throttled, failed with 5xx
// or dropped, a first apply of two pairs (both methods) converges, in one cycle or a few,
// and costs at most twice the requests of the same apply without faults (measured first). awsconn.Counter counts every attempt the SDK sends, retries included: it agrees
// with the attempts the proxy received.
func TestThrottlingAnd5xxConverge(t *testing.T) {
	e, p := faultSetup(t, configText(true), faultproxy.Options{})
	if res := e.r.Apply(e.ctx); !res.InSync() {
		t.Fatalf("fault-free apply not in sync: %+v\nremaining %+v", res.Result, res.After.Plan)
	}
	free, freeByOp := e.counter.Snapshot()
	if s := p.Stats(); s.Attempts != free || free == 0 {
		t.Fatalf("fault-free: awsconn counted %d requests, the SDK sent %d", free, s.Attempts)
	}
	t.Logf("fault-free apply: %d calls %v", free, freeByOp)

	// The faults a request meets are a function of the seed and the request, so a seed
	// replays the same story. Observed over seeds 1-8 (12-36% of requests faulted): one
	// apply converged in six (1.14-1.49x the fault-free calls); in two, something exhausted
	// the SDK's three attempts and a second cycle finished (1.81x; 2.23x at 36% faults).
	tests := []struct {
		name string
		seed uint64
	}{
		{"one cycle", 3},  // 25% faulted
		{"two cycles", 1}, // 21% faulted
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { throttledApply(t, tt.seed, free) })
	}
}

// throttledApply applies configText(true) with mixedFaults drawn from seed until in sync,
// and checks what it cost against free, the calls of the fault-free apply.
func throttledApply(t *testing.T, seed uint64, free int) {
	e, p := faultSetup(t, configText(true), faultproxy.Options{Seed: seed, Rules: mixedFaults})
	began := time.Now()
	const maxCycles = 3
	var res *reconcile.ApplyResult
	var perCycle []int
	for len(perCycle) < maxCycles {
		before, _ := e.counter.Snapshot()
		res = e.r.Apply(e.ctx)
		calls, _ := e.counter.Snapshot()
		perCycle = append(perCycle, calls-before)
		t.Logf("cycle %d: in sync %t, %d calls", len(perCycle), res.InSync(), calls-before)
		for _, r := range res.Result.Results {
			if r.Outcome != reconcile.Applied {
				t.Logf("  %s %s %s: %.200s", r.Outcome, r.Type, r.ID, r.Error)
			}
		}
		for _, c := range res.Before.Plan.Conflicts {
			t.Logf("  conflict before: %s %s: %.200s", c.Type, c.ID, c.Reason)
		}
		for _, c := range res.After.Plan.Conflicts {
			t.Logf("  conflict after: %s %s: %.200s", c.Type, c.ID, c.Reason)
		}
		for _, id := range res.Result.NotInSync {
			t.Logf("  association not in-sync when the wait ended: %s", id)
		}
		for _, c := range res.After.Plan.Changes {
			if c.Action != reconcile.NoOp {
				t.Logf("  still to do: %s %s %s (%s)", c.Action, c.Type, c.ID, c.Reason)
			}
		}
		if calls-before > 2*free {
			t.Errorf("cycle %d: %d calls, more than twice the %d of the fault-free apply", len(perCycle), calls-before, free)
		}
		if res.InSync() {
			break
		}
	}
	if !res.InSync() {
		t.Fatalf("not in sync after %d cycles: remaining %+v", len(perCycle), res.After.Plan)
	}
	total, byOp := e.counter.Snapshot()
	if total > 2*free {
		t.Errorf("%d calls in %d cycle(s) %v, more than twice the %d of the fault-free apply", total, len(perCycle), perCycle, free)
	}
	s := p.Stats()
	t.Logf("with faults: %d calls (%.2fx the fault-free %d) in %d cycle(s) %v; %d API calls; %d faults injected (%.0f%% of %d requests; %d resent by net/http); %v; %v",
		total, float64(total)/float64(free), free, len(perCycle), perCycle, s.Calls, s.Faulted, 100*float64(s.Faulted)/float64(s.Seen), s.Seen,
		s.Seen-s.Attempts, time.Since(began).Round(time.Millisecond), byOp)
	if total != s.Attempts {
		t.Errorf("awsconn counted %d requests, the SDK sent %d attempts: the counter misses attempts", total, s.Attempts)
	}
	for _, r := range p.Requests() {
		if r.Attempt < 1 || r.Attempt > retry.DefaultMaxAttempts {
			t.Errorf("%s: attempt %d, want 1..%d", r.Op, r.Attempt, retry.DefaultMaxAttempts)
		}
	}
	if share := float64(s.Faulted) / float64(s.Seen); share < 0.15 || share > 0.35 {
		t.Errorf("%d of %d requests faulted (%.2f): the test is not injecting the ~25%% it claims", s.Faulted, s.Seen, share)
	}
	assertCleanlyConverged(t, e, p)
}

// xacctdAttempts is the most attempts apply's own retry makes within opts' window: the
// first, then one after each backoff (RetryBase, doubling, at most 15s) that fits in
// RetryFor. The time the attempts take only makes it fewer.
func xacctdAttempts(o reconcile.ApplyOptions) int {
	n, spent, delay := 1, time.Duration(0), o.RetryBase
	for spent+delay <= o.RetryFor {
		n++
		spent += delay
		delay = min(2*delay, 15*time.Second)
	}
	return n
}

// TestPersistent503IsBounded: while every PutBucketPolicy on one bucket answers 503, apply
// makes a bounded number of attempts (the SDK's retries times apply's own within RetryFor),
// reports the failure naming the bucket, skips what depends on it, and carries on with the
// other pair; once S3 recovers, the next cycle converges.
func TestPersistent503IsBounded(t *testing.T) {
	e, p := faultSetup(t, configText(true), faultproxy.Options{Rules: []faultproxy.Rule{
		{Op: "s3:PutBucketPolicy", Path: "/" + exportsBucket, Fault: faultproxy.SlowDown},
	}})
	e.r.Options.RetryFor, e.r.Options.RetryBase = 2*time.Second, 100*time.Millisecond
	began := time.Now()
	res := e.r.Apply(e.ctx)
	elapsed := time.Since(began)

	// Each SDK invocation is one attempt of apply's; the SDK retries within it.
	perCall := map[string]int{}
	attempts := 0
	for _, r := range p.Requests() {
		if r.Op == "s3:PutBucketPolicy" && r.Path == "/"+exportsBucket {
			perCall[r.Invocation]++
			attempts++
		}
	}
	bound := retry.DefaultMaxAttempts * xacctdAttempts(e.r.Options)
	t.Logf("PutBucketPolicy on %s: %d attempts in %d call(s) (bound %d = %d SDK attempts x %d calls within RetryFor %v); apply took %v",
		exportsBucket, attempts, len(perCall), bound, retry.DefaultMaxAttempts, xacctdAttempts(e.r.Options), e.r.Options.RetryFor, elapsed.Round(time.Millisecond))
	if attempts < retry.DefaultMaxAttempts || attempts > bound || len(perCall) > xacctdAttempts(e.r.Options) {
		t.Errorf("%d attempts of PutBucketPolicy in %d calls; want the SDK's retries (%d) and at most %d in at most %d calls",
			attempts, len(perCall), retry.DefaultMaxAttempts, bound, xacctdAttempts(e.r.Options))
	}
	for id, n := range perCall {
		if n > retry.DefaultMaxAttempts {
			t.Errorf("SDK call %s made %d attempts, more than %d", id, n, retry.DefaultMaxAttempts)
		}
	}
	if res.InSync() {
		t.Fatal("in sync although the bucket policy could not be written")
	}

	var failed, skippedAssoc int
	for _, r := range res.Result.Results {
		switch {
		case r.Pair == "events-from-lake" || strings.HasPrefix(r.ID, eventsBucket):
			if r.Outcome != reconcile.Applied {
				t.Errorf("the other pair did not carry on: %s %s %s: %s", r.Outcome, r.Type, r.ID, r.Error)
			}
		case r.Type == reconcile.TypeStatement:
			if r.Outcome != reconcile.Failed || !strings.Contains(r.Error, exportsBucket) || !strings.Contains(r.Error, "SlowDown") {
				t.Errorf("statement %s: %s %q; want failed, naming %s and SlowDown", r.ID, r.Outcome, r.Error, exportsBucket)
			}
			failed++
		case r.Type == reconcile.TypeAssociation:
			if r.Outcome != reconcile.Skipped || !strings.Contains(r.Error, reconcile.TypeStatement) {
				t.Errorf("association %s: %s %q; want skipped because of the statement", r.ID, r.Outcome, r.Error)
			}
			skippedAssoc++
		case r.Outcome != reconcile.Applied:
			t.Errorf("%s %s: %s %s; want applied (it does not depend on the bucket policy)", r.Type, r.ID, r.Outcome, r.Error)
		}
	}
	wantFailed := 0
	for _, b := range reconcile.Desire(e.cfg).Buckets {
		if b.Name == exportsBucket {
			wantFailed = len(b.Statements)
		}
	}
	if failed != wantFailed || skippedAssoc != 1 {
		t.Errorf("%d failed statements, %d skipped associations; want %d (every statement of %s) and 1 (analytics-to-lake's)", failed, skippedAssoc, wantFailed, exportsBucket)
	}
	for _, r := range reconcile.Readiness(res.After) {
		if r.Pair == "events-from-lake" && !r.Ready {
			t.Errorf("the other pair is not ready: %s", r.Reason())
		}
		if r.Pair == "analytics-to-lake" && r.Ready {
			t.Error("analytics-to-lake is ready without its bucket policy statements")
		}
	}

	// S3 recovers: the next cycle converges.
	p.SetRules()
	if res := e.r.Apply(e.ctx); !res.InSync() {
		t.Fatalf("not in sync once S3 recovered: %+v\nremaining %+v", res.Result, res.After.Plan)
	}
	assertCleanlyConverged(t, e, p)
}

// TestMotoDownMidApply: moto goes away in the middle of an apply (the proxy stops listening
// at a chosen request, before passing it on: connections are refused, as when moto's process
// is stopped) and comes back afterwards. The apply accounts for every change, claims nothing
// that did not happen, and blames the failures on the outage; the next cycle converges with
// no duplicate statement and no orphan role.
func TestMotoDownMidApply(t *testing.T) {
	tests := []struct {
		name string
		down faultproxy.Rule // selects the request at which moto goes down
	}{
		{"at the bucket policies", faultproxy.Rule{Op: "s3:PutBucketPolicy"}},
		{"after the association, while waiting for in-sync", faultproxy.Rule{Op: "redshift:DescribeClusters", Skip: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { motoDownMidApply(t, tt.down) })
	}
}

// TestMotoDownAfterCarryingOut: moto carries a request out and goes away before answering
// it. xacctd reports the change failed (it cannot know better) and the next cycle adopts
// what was done: no EntityAlreadyExists loop, no duplicate statement, no orphan role.
func TestMotoDownAfterCarryingOut(t *testing.T) {
	tests := []struct {
		name string
		down faultproxy.Rule
	}{
		{"after creating a role", faultproxy.Rule{Op: "iam:CreateRole", Skip: 1}},
		{"after writing a bucket policy", faultproxy.Rule{Op: "s3:PutBucketPolicy", Path: "/" + exportsBucket}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.down.AfterForward = true
			motoDownMidApply(t, tt.down)
		})
	}
}

func motoDownMidApply(t *testing.T, down faultproxy.Rule) {
	down.Fault, down.Times = faultproxy.Down, 1
	e, p := faultSetup(t, configText(true), faultproxy.Options{Rules: []faultproxy.Rule{down}})
	e.r.Options.WaitInSync = 3 * time.Second
	began := time.Now()
	res := e.r.Apply(e.ctx)
	t.Logf("apply while down took %v", time.Since(began).Round(time.Millisecond))
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	if p.Stats().Faulted != 1 {
		t.Fatalf("moto never went down: %d faults", p.Stats().Faulted)
	}
	if res.InSync() || !res.Result.Failed() {
		t.Error("apply reports success although moto went down during it")
	}

	// Every planned change has exactly one result; what is claimed applied is in AWS.
	want := map[string]int{}
	for _, c := range res.Before.Plan.Changes {
		if c.Action != reconcile.NoOp {
			want[c.Type+" "+c.ID]++
		}
	}
	got := map[string]int{}
	var applied, notApplied int
	for _, r := range res.Result.Results {
		got[r.Type+" "+r.ID]++
		err := changeInAWS(e, r.Change)
		switch r.Outcome {
		case reconcile.Applied:
			applied++
			if err != nil {
				t.Errorf("claimed applied, not in AWS: %s %s: %v", r.Type, r.ID, err)
			}
		case reconcile.Failed:
			notApplied++
			if !isOutageError(r.Error) {
				t.Errorf("%s %s failed for another reason than the outage: %s", r.Type, r.ID, r.Error)
			}
		case reconcile.Skipped:
			notApplied++
			if !strings.Contains(r.Error, "failed") {
				t.Errorf("%s %s skipped without naming what failed: %s", r.Type, r.ID, r.Error)
			}
		}
		t.Logf("%-8s %s %s (in AWS: %t) %.120s", r.Outcome, r.Type, r.ID, err == nil, r.Error)
	}
	for _, id := range res.Result.NotInSync {
		t.Logf("not in sync: %s", id)
	}
	if !maps.Equal(want, got) {
		t.Errorf("results do not account for the plan exactly once each:\nplanned %v\nresults %v", want, got)
	}
	if applied == 0 || notApplied == 0 && len(res.Result.NotInSync) == 0 {
		t.Errorf("%d applied, %d not applied, %d not in sync: moto did not go down in the middle of the apply", applied, notApplied, len(res.Result.NotInSync))
	}

	// moto is back: the next cycle converges.
	next := e.r.Apply(e.ctx)
	if !next.InSync() {
		t.Fatalf("next cycle not in sync: %+v\nremaining %+v", next.Result, next.After.Plan)
	}
	assertCleanlyConverged(t, e, p)
}

// isOutageError: the error is what the SDK reports when the endpoint is unreachable.
func isOutageError(msg string) bool {
	for _, s := range []string{"connection refused", "connection reset", "EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// changeInAWS checks with the world's own clients (straight to moto) that what a change does is
// there.
func changeInAWS(e *env, c reconcile.Change) error {
	ctx := e.ctx
	switch c.Type {
	case reconcile.TypeBucket:
		out, err := e.lakeS3.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: aws.String(c.ID)})
		if err != nil {
			return err
		}
		for _, tag := range out.TagSet {
			if aws.ToString(tag.Key) == config.ManagedByTag && aws.ToString(tag.Value) == "xacctd" {
				return nil
			}
		}
		return fmt.Errorf("bucket %s is not tagged %s=xacctd: %v", c.ID, config.ManagedByTag, out.TagSet)
	case reconcile.TypePublicAccessBlock:
		out, err := e.lakeS3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: aws.String(c.ID)})
		if err != nil {
			return err
		}
		if p := out.PublicAccessBlockConfiguration; !aws.ToBool(p.BlockPublicAcls) || !aws.ToBool(p.IgnorePublicAcls) || !aws.ToBool(p.BlockPublicPolicy) || !aws.ToBool(p.RestrictPublicBuckets) {
			return fmt.Errorf("public access block of %s is %+v", c.ID, *p)
		}
		return nil
	case reconcile.TypeOwnership:
		out, err := e.lakeS3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: aws.String(c.ID)})
		if err != nil {
			return err
		}
		if r := out.OwnershipControls.Rules; len(r) != 1 || r[0].ObjectOwnership != s3types.ObjectOwnershipBucketOwnerEnforced {
			return fmt.Errorf("ownership of %s is %+v", c.ID, r)
		}
		return nil
	case reconcile.TypeEncryption:
		out, err := e.lakeS3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(c.ID)})
		if err != nil {
			return err
		}
		if r := out.ServerSideEncryptionConfiguration.Rules; len(r) != 1 || r[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm != s3types.ServerSideEncryptionAes256 {
			return fmt.Errorf("encryption of %s is %+v", c.ID, r)
		}
		return nil
	case reconcile.TypeRole:
		out, err := iamClientFor(e, c.AccountID).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(c.ID)})
		if err != nil {
			return err
		}
		tags := map[string]string{}
		for _, tag := range out.Role.Tags {
			tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		if tags[config.ManagedByTag] != "xacctd" || tags[config.PairTag] != c.Pair {
			return fmt.Errorf("role %s has tags %v", c.ID, tags)
		}
		return nil
	case reconcile.TypeRolePolicy:
		role, name, _ := strings.Cut(c.ID, "/")
		_, err := iamClientFor(e, c.AccountID).GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name)})
		return err
	case reconcile.TypeStatement:
		bucket, sid, _ := strings.Cut(c.ID, "/")
		sids, err := policySids(e, bucket)
		if err != nil {
			return err
		}
		if !slices.Contains(sids, sid) {
			return fmt.Errorf("bucket %s has statements %v", bucket, sids)
		}
		return nil
	case reconcile.TypeAssociation:
		cluster, arn, _ := strings.Cut(c.ID, "/")
		out, err := e.rs.DescribeClusters(ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(cluster)})
		if err != nil {
			return err
		}
		for _, r := range out.Clusters[0].IamRoles {
			if aws.ToString(r.IamRoleArn) == arn {
				return nil
			}
		}
		return fmt.Errorf("%s is not associated with %s", arn, cluster)
	}
	return fmt.Errorf("no check for %s", c.Type)
}

func iamClientFor(e *env, accountID string) *iam.Client {
	if accountID == world.WarehouseAccount {
		return e.whIAM
	}
	cfg, err := world.AWSConfig(e.ctx, world.LakeAccount)
	if err != nil {
		e.t.Fatal(err)
	}
	return iam.NewFromConfig(cfg)
}

// policySids lists the Sids of a bucket's policy in order, duplicates included.
func policySids(e *env, bucket string) ([]string, error) {
	out, err := e.lakeS3.GetBucketPolicy(e.ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(bucket)})
	if err != nil {
		return nil, err
	}
	var doc struct{ Statement json.RawMessage }
	if err := json.Unmarshal([]byte(aws.ToString(out.Policy)), &doc); err != nil {
		return nil, err
	}
	var list []struct{ Sid string }
	if err := json.Unmarshal(doc.Statement, &list); err != nil {
		var one struct{ Sid string }
		if err2 := json.Unmarshal(doc.Statement, &one); err2 != nil {
			return nil, errors.Join(err, err2)
		}
		list = append(list, one)
	}
	var sids []string
	for _, s := range list {
		sids = append(sids, s.Sid)
	}
	return sids, nil
}

// assertCleanlyConverged checks AWS directly: every bucket policy has each Sid once and each
// owned statement of the configuration; every role tagged managed-by=xacctd belongs to a
// configured pair, and each configured role exists; the cluster has each configured
// association once; every pair is ready (read through p with its faults turned off).
func assertCleanlyConverged(t *testing.T, e *env, p *faultproxy.Proxy) {
	t.Helper()
	p.SetRules()
	d := reconcile.Desire(e.cfg)
	for _, b := range d.Buckets {
		sids, err := policySids(e, b.Name)
		if err != nil {
			t.Errorf("bucket %s: %v", b.Name, err)
			continue
		}
		seen := map[string]int{}
		for _, s := range sids {
			seen[s]++
			if seen[s] == 2 {
				t.Errorf("bucket %s: Sid %q appears more than once: %v", b.Name, s, sids)
			}
		}
		for _, st := range b.Statements {
			if seen[st.Sid] != 1 {
				t.Errorf("bucket %s: owned statement %s appears %d times: %v", b.Name, st.Sid, seen[st.Sid], sids)
			}
		}
	}
	desired := map[string]string{} // account/role -> pair
	for _, r := range d.Roles {
		desired[r.AccountID+"/"+r.Name] = r.Pair
	}
	found := map[string]bool{}
	for _, acct := range []string{world.WarehouseAccount, world.LakeAccount} {
		c := iamClientFor(e, acct)
		out, err := c.ListRoles(e.ctx, &iam.ListRolesInput{})
		if err != nil {
			t.Fatal(err)
		}
		if out.IsTruncated {
			t.Fatalf("account %s: more roles than one page", acct)
		}
		for _, r := range out.Roles {
			tags, err := c.ListRoleTags(e.ctx, &iam.ListRoleTagsInput{RoleName: r.RoleName})
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for _, tag := range tags.Tags {
				m[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
			if m[config.ManagedByTag] != "xacctd" {
				continue
			}
			key := acct + "/" + aws.ToString(r.RoleName)
			pair, ok := desired[key]
			if !ok || m[config.PairTag] != pair {
				t.Errorf("orphan role %s (pair tag %q): not a configured pair's role", key, m[config.PairTag])
			}
			found[key] = true
		}
	}
	for key := range desired {
		if !found[key] {
			t.Errorf("configured role %s does not exist (or is not tagged)", key)
		}
	}
	out, err := e.rs.DescribeClusters(e.ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(world.Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	assoc := map[string]int{}
	for _, r := range out.Clusters[0].IamRoles {
		assoc[aws.ToString(r.IamRoleArn)]++
	}
	for _, a := range d.Associations {
		if assoc[a.RoleARN] != 1 {
			t.Errorf("association of %s appears %d times: %v", a.RoleARN, assoc[a.RoleARN], assoc)
		}
	}
	for _, r := range reconcile.Readiness(e.r.Plan(e.ctx)) {
		if !r.Ready {
			t.Errorf("pair %s not ready: %s", r.Pair, r.Reason())
		}
	}
}

// TestAccountCheckRetriedAfterTransientFailure: an account without role_arn is checked with
// sts:GetCallerIdentity when first used. When that check fails for a passing reason (here
// throttled past the SDK's retries), the account is a conflict for that cycle only: the next
// cycle checks again and goes on, as a long-running daemon must.
func TestAccountCheckRetriedAfterTransientFailure(t *testing.T) {
	// The sandbox's base credentials act in moto's default account.
	const baseAccount = "123456789012"
	text := strings.Replace(configText(false), "accounts:\n", "accounts:\n  base: {id: \""+baseAccount+"\"}\n", 1)
	if text == configText(false) {
		t.Fatal("fixture: no accounts section in the config fragment")
	}
	e, p := faultSetup(t, text, faultproxy.Options{Rules: []faultproxy.Rule{
		{Op: "sts:GetCallerIdentity", Times: retry.DefaultMaxAttempts, Fault: faultproxy.Throttling},
	}})
	baseConflict := func(s *reconcile.Snapshot) string {
		for _, c := range s.Plan.Conflicts {
			if c.Account == "base" {
				return c.Reason
			}
		}
		return ""
	}
	if why := baseConflict(e.r.Plan(e.ctx)); !strings.Contains(why, "Throttling") {
		t.Fatalf("first plan: conflict for account base %q, want the throttled check", why)
	}
	if why := baseConflict(e.r.Plan(e.ctx)); why != "" {
		t.Errorf("second plan, STS recovered: account base is still a conflict: %s", why)
	}
	if n := p.Stats().SeenByOp["sts:GetCallerIdentity"]; n != retry.DefaultMaxAttempts+1 {
		t.Errorf("GetCallerIdentity sent %d times, want %d (throttled) + 1", n, retry.DefaultMaxAttempts)
	}
}
