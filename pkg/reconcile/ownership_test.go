package reconcile_test

// TestOwnershipRandomEdits (issue #7): somebody else edits both accounts at random between
// reconciles. Whatever is not xacctd's must stay exactly as they last wrote it; whatever is
// xacctd's must come back to the configuration (docs/operations.md, "What xacctd owns").

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/xacctd/xacctd/internal/awsconn"
	"github.com/xacctd/xacctd/internal/sandbox"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/policy"
	"github.com/xacctd/xacctd/pkg/reconcile"
)

const (
	ownershipSeedEnv   = "XACCTD_OWNERSHIP_SEED"
	ownershipRoundsEnv = "XACCTD_OWNERSHIP_ROUNDS"
	ownershipRounds    = 40
	// ownershipSettle outlasts an association change (RoleDelay in TestMain is 300 ms).
	ownershipSettle = 500 * time.Millisecond

	otherAccountRoot     = "arn:aws:iam::333333333333:root"
	redshiftServiceTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"redshift.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	foreignReadDoc       = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::xacctd-it-exports/shared/*"}]}`
	widenedDoc           = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`
)

// ownershipConfig: four pairs over two buckets in the lake account, both methods, a role
// with its own path, several db_users.
func ownershipConfig() string {
	var b strings.Builder
	b.WriteString("version: 1\ndefaults: {tags: {team: data-platform}}\n")
	b.WriteString(world.ConfigFragment())
	fmt.Fprintf(&b, `buckets:
  exports: {account: lake, name: %[1]s, create: true}
  events: {account: lake, name: %[2]s, create: false}
pairs:
  - name: analytics-to-lake
    cluster: %[3]s
    bucket: exports
    prefix: redshift/analytics/
    access: [unload, copy]
    role: {name: RedshiftLakeAccess, db_users: [%[4]s, analyst]}
  - name: finance-to-lake
    cluster: %[3]s
    bucket: exports
    prefix: redshift/finance/
    access: [unload]
    role: {name: RedshiftFinanceWriter, path: /xacctd/finance/, db_users: [%[4]s]}
  - name: events-from-lake
    cluster: %[3]s
    bucket: events
    prefix: events/
    access: [copy]
    method: role-chaining
    role: {name: RedshiftEventsReader, db_users: [%[4]s]}
    target_role: {name: LakeEventsReader}
  - name: audit-to-events
    cluster: %[3]s
    bucket: events
    prefix: audit/
    access: [unload, copy]
    role: {name: RedshiftAuditWriter, db_users: [%[4]s, analyst]}
jobs:
  - name: finance
    pair: finance-to-lake
    schedule: "@daily"
    unload: {query: "SELECT 1", to: "daily/", options: {cleanpath: true}}
`, exportsBucket, eventsBucket, world.Cluster, world.DBUser)
	return b.String()
}

// foreignRole is a role that is not xacctd's, as the test last wrote it.
type foreignRole struct {
	accountID, name, path string
	trust                 string
	inline                map[string]string
	attached              []string // sorted
	tags                  map[string]string
	protected             bool // the sandbox's admin role, through which everybody acts
}

func (r *foreignRole) arn() string {
	return "arn:aws:iam::" + r.accountID + ":role" + r.path + r.name
}

// bucketModel is what the test last wrote on a bucket, where xacctd does not own it.
type bucketModel struct {
	foreign    []json.RawMessage // foreign statements, in order, as written
	id         json.RawMessage   // the policy's Id as written; nil when none
	tags       map[string]string
	versioning string
	encryption reconcile.Encryption // xacctd leaves any default encryption alone, sets AES256 when there is none
}

type editKind struct {
	name    string
	weight  int
	foreign bool          // touches only what is not xacctd's
	do      func() string // what it did; "" when it does not apply now
}

type ownership struct {
	t             *testing.T
	ctx           context.Context
	seed          uint64
	rng           *rand.Rand
	round, rounds int
	history       []string
	kinds         map[string]int
	seq           int
	extra         int

	r             *reconcile.Reconciler
	desired       *reconcile.Desired
	s3            *s3.Client
	iam           map[string]*iam.Client // by account id
	rs            *redshift.Client
	managedPolicy map[string]string // account id -> a customer managed policy to attach

	buckets map[string]*bucketModel
	roles   map[string]*foreignRole // by reconcile.RoleKey
	assoc   map[string]bool         // foreign role ARN -> associated with the cluster
	gone    map[string]bool         // owned roles the test deleted since the last reconcile
	focus   string                  // when set, bucket edits work on this bucket
}

// TestOwnershipRandomEdits: rounds of random foreign edits and damage to owned objects,
// each followed by a reconcile; after each, every foreign statement, role, association and
// bucket setting is as the test last wrote it, and every owned one is as configured (and
// the next plan is empty). XACCTD_OWNERSHIP_SEED replays a run; XACCTD_OWNERSHIP_ROUNDS
// changes its length.
func TestOwnershipRandomEdits(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(ownershipSeedEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", ownershipSeedEnv, s, err)
		}
		seed = n
	}
	rounds := ownershipRounds
	if s := os.Getenv(ownershipRoundsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", ownershipRoundsEnv, s)
		}
		rounds = n
	}
	t.Logf("seed %d, %d rounds (replay: %s=%d)", seed, rounds, ownershipSeedEnv, seed)
	began := time.Now()
	o := newOwnership(t, seed, rounds)
	for o.round = 1; o.round <= rounds; o.round++ {
		o.play()
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(o.kinds)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, o.kinds[k]))
	}
	t.Logf("seed %d: %d rounds, %d extra reconciles, %s; edits: %s", seed, rounds, o.extra, time.Since(began).Round(time.Millisecond), strings.Join(kinds, ", "))
}

func newOwnership(t *testing.T, seed uint64, rounds int) *ownership {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(rounds)*5*time.Second)
	t.Cleanup(cancel)
	if err := world.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	o := &ownership{
		t: t, ctx: ctx, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), rounds: rounds,
		kinds: map[string]int{}, iam: map[string]*iam.Client{}, managedPolicy: map[string]string{},
		buckets: map[string]*bucketModel{exportsBucket: {}, eventsBucket: {}},
		roles:   map[string]*foreignRole{}, assoc: map[string]bool{}, gone: map[string]bool{},
	}
	var err error
	if o.s3, err = world.S3Client(ctx, world.LakeAccount); err != nil {
		t.Fatal(err)
	}
	for _, acct := range []string{world.WarehouseAccount, world.LakeAccount} {
		cfg, err := world.AWSConfig(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		o.iam[acct] = iam.NewFromConfig(cfg)
		if acct == world.WarehouseAccount {
			o.rs = redshift.NewFromConfig(cfg)
		}
		out, err := o.iam[acct].CreatePolicy(ctx, &iam.CreatePolicyInput{PolicyName: aws.String("ForeignReadOnly"), PolicyDocument: aws.String(foreignReadDoc)})
		if err != nil {
			t.Fatal(err)
		}
		o.managedPolicy[acct] = aws.ToString(out.Policy.Arn)
	}
	cfg, err := config.Parse("ownership.yml", []byte(ownershipConfig()))
	if err != nil {
		t.Fatal(err)
	}
	o.desired = reconcile.Desire(cfg)
	o.r = &reconcile.Reconciler{
		Config:  cfg,
		Clients: awsconn.Clients{Accounts: awsconn.New(cfg, awsconn.NewCounter())},
		Options: reconcile.ApplyOptions{Logger: zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel)), RetryBase: 100 * time.Millisecond, WaitInSync: 10 * time.Second},
	}

	// The pre-existing bucket has a policy of somebody else's before xacctd first sees it.
	if _, err := o.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(eventsBucket)}); err != nil {
		t.Fatal(err)
	}
	o.buckets[eventsBucket].id = json.RawMessage(`"events-bucket-policy"`)
	o.writePolicy(eventsBucket, []json.RawMessage{
		json.RawMessage(`{ "Sid": "AuditRead", "Effect": "Allow", "Principal": {"AWS": "` + otherAccountRoot + `"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::` + eventsBucket + `/audit/*" }`),
		json.RawMessage("{\n    \"Effect\" : \"Deny\",\n    \"Principal\" : {\"AWS\" : [\"arn:aws:iam::444444444444:root\"]},\n    \"Action\" : [\"s3:DeleteObject\"],\n    \"Resource\" : \"arn:aws:s3:::" + eventsBucket + "/events/*\"\n  }"),
	}, nil)
	o.history = append(o.history, "setup: 2 foreign statements on "+eventsBucket+" (Id events-bucket-policy); first reconcile")
	o.r.Options.NoWait = false
	o.reconcileOnce("first reconcile")

	// Everything that exists now and is not xacctd's is somebody else's: the admin roles.
	st := o.observe()
	for key, r := range st.roles {
		if r.tags[config.ManagedByTag] == "xacctd" {
			continue
		}
		acct, _, _ := strings.Cut(key, "/")
		inline := map[string]string{}
		for n, d := range r.inline {
			inline[n] = string(d)
		}
		o.roles[key] = &foreignRole{accountID: acct, name: r.name, path: r.path, trust: string(r.trust), inline: inline,
			attached: r.attached, tags: r.tags, protected: true}
	}
	for name, b := range st.buckets {
		m := o.buckets[name]
		m.tags, m.versioning = b.tags, b.versioning
		if b.encryption != nil {
			m.encryption = *b.encryption
		}
	}
	o.check("after the first reconcile", true)
	return o
}

// play is one round: 1-4 edits of any kind and a reconcile. One round in four also damages
// an owned statement of a bucket, plans, edits that bucket's foreign statements and applies
// the plan made before them (apply must re-read the policy before merging), and only then
// reconciles.
func (o *ownership) play() {
	o.gone = map[string]bool{}
	for range 1 + o.rng.IntN(4) {
		o.edit(nil)
	}
	if o.rng.IntN(4) == 0 {
		// The plan rewrites a bucket's policy; its foreign statements change after planning.
		o.focus = o.pickBucket()
		o.edit(editsNamed("owned statement damage", "stale owned statement"))
		snap := o.r.Plan(o.ctx)
		o.edit(editsNamed("foreign statement add", "foreign statement modify", "foreign statement remove", "foreign statements reorder"))
		o.focus = ""
		for range o.rng.IntN(2) {
			o.edit(func(k editKind) bool { return k.foreign })
		}
		opts := o.r.Options
		opts.NoWait = true
		res := reconcile.Apply(o.ctx, snap.Desired, snap.Observed, snap.Plan, o.r.Clients, opts)
		o.note("applied a plan made before the last edits: %s", resultSummary(res.Results))
		o.check("after applying a plan made before the last foreign edits", false)
	}
	o.r.Options.NoWait = o.rng.IntN(3) != 0
	o.reconcileOnce("reconcile")
	// Eventual consistency: an association xacctd just added (NoWait) is still "adding"; one
	// removed behind its back is "removing", which the plan counts as present until it is
	// gone. Then one more reconcile, once the cluster has settled.
	if why := o.associationsSettling(); why != "" {
		o.extra++
		o.note("%s: one extra reconcile after %s", why, ownershipSettle)
		time.Sleep(ownershipSettle)
		o.reconcileOnce("extra reconcile")
	}
	o.check("after the reconcile", true)
}

func (o *ownership) reconcileOnce(what string) {
	o.t.Helper()
	mode := "waiting for in-sync"
	if o.r.Options.NoWait {
		mode = "NoWait"
	}
	res := o.r.Apply(o.ctx)
	o.note("%s (%s): %s", what, mode, resultSummary(res.Result.Results))
	var bad []string
	for _, c := range res.Result.Results {
		if c.Outcome != reconcile.Applied {
			bad = append(bad, fmt.Sprintf("%s %s %s: %s %s", c.Action, c.Type, c.ID, c.Outcome, c.Error))
		}
	}
	if len(res.Result.NotInSync) > 0 {
		bad = append(bad, "not in-sync: "+strings.Join(res.Result.NotInSync, ", "))
	}
	if len(bad) > 0 {
		o.failf("%s did not succeed:\n  %s", what, strings.Join(bad, "\n  "))
	}
}

func resultSummary(results []reconcile.ChangeResult) string {
	if len(results) == 0 {
		return "no changes"
	}
	var out []string
	for _, c := range results {
		s := fmt.Sprintf("%s %s %s", c.Action, c.Type, c.ID)
		if c.Outcome != reconcile.Applied {
			s += " (" + string(c.Outcome) + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// associationsSettling says which of xacctd's associations are not in-sync.
func (o *ownership) associationsSettling() string {
	cluster := o.clusterRoles()
	var out []string
	for _, a := range o.desired.Associations {
		if s := cluster[a.RoleARN]; s != "in-sync" {
			if s == "" {
				s = "missing"
			}
			out = append(out, a.RoleARN+" "+s)
		}
	}
	return strings.Join(out, ", ")
}

func (o *ownership) note(format string, args ...any) {
	o.t.Helper()
	line := fmt.Sprintf("round %d: ", o.round) + fmt.Sprintf(format, args...)
	o.history = append(o.history, line)
	o.t.Log(line)
}

// failf ends the test with what is needed to replay it: round, seed, and every edit and
// reconcile so far.
func (o *ownership) failf(format string, args ...any) {
	o.t.Helper()
	o.t.Fatalf("round %d of %d, seed %d: %s\n\nreplay: %s=%d %s=%d go test -count=1 -run TestOwnershipRandomEdits -v ./pkg/reconcile\nedits and reconciles so far:\n  %s",
		o.round, o.rounds, o.seed, fmt.Sprintf(format, args...), ownershipSeedEnv, o.seed, ownershipRoundsEnv, o.rounds, strings.Join(o.history, "\n  "))
}

func (o *ownership) must(err error, what string) {
	o.t.Helper()
	if err != nil {
		o.failf("test edit %s: %v", what, err)
	}
}

func editsNamed(names ...string) func(editKind) bool {
	return func(k editKind) bool { return slices.Contains(names, k.name) }
}

// edit makes one random edit of the kinds only allows (nil: any kind).
func (o *ownership) edit(only func(editKind) bool) {
	o.t.Helper()
	var kinds []editKind
	total := 0
	for _, k := range o.editKinds() {
		if only != nil && !only(k) {
			continue
		}
		kinds = append(kinds, k)
		total += k.weight
	}
	for range 20 {
		n := o.rng.IntN(total)
		for _, k := range kinds {
			if n -= k.weight; n >= 0 {
				continue
			}
			if what := k.do(); what != "" {
				o.kinds[k.name]++
				o.note("%s: %s", k.name, what)
				return
			}
			break
		}
	}
}

func (o *ownership) editKinds() []editKind {
	return []editKind{
		{"foreign statement add", 4, true, o.addForeignStatement},
		{"foreign statement modify", 3, true, o.modifyForeignStatement},
		{"foreign statement remove", 2, true, o.removeForeignStatement},
		{"foreign statements reorder", 1, true, o.reorderForeignStatements},
		{"foreign role create", 3, true, o.createForeignRole},
		{"foreign role modify", 3, true, o.modifyForeignRole},
		{"foreign role delete", 1, true, o.deleteForeignRole},
		{"foreign association add", 2, true, o.associateForeignRole},
		{"foreign association remove", 1, true, o.disassociateForeignRole},
		{"bucket tags", 1, true, o.bucketTags},
		{"bucket versioning", 1, true, o.bucketVersioning},
		{"bucket kms encryption", 1, true, o.bucketKMS},
		{"policy replaced by foreign statements only", 1, false, o.replacePolicyForeignOnly},
		{"policy deleted", 1, false, o.deletePolicy},
		{"owned statement damage", 3, false, o.damageOwnedStatement},
		{"stale owned statement", 1, false, o.staleOwnedStatement},
		{"owned role trust", 2, false, o.damageOwnedTrust},
		{"owned role inline policy", 2, false, o.damageOwnedInline},
		{"owned role extra policy", 2, false, o.widenOwnedRole},
		{"owned role untag", 1, false, o.untagOwnedRole},
		{"owned association remove", 1, false, o.disassociateOwnedRole},
		{"owned role delete", 1, false, o.deleteOwnedRole},
		{"orphan owned role", 1, false, o.createOrphanRole},
		{"bucket settings damage", 1, false, o.damageBucketSettings},
	}
}

func oneOf[T any](rng *rand.Rand, list []T) T { return list[rng.IntN(len(list))] }

func (o *ownership) bucketNames() []string { return []string{eventsBucket, exportsBucket} }

// pickBucket picks the bucket an edit works on: the focus when there is one.
func (o *ownership) pickBucket() string {
	if o.focus != "" {
		return o.focus
	}
	return oneOf(o.rng, o.bucketNames())
}

// ---------------------------------------------------------------------------------------
// Bucket policies

type stmtField struct {
	k string
	v any
}

var statementKeyOrder = []string{"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}

func stmtFields(m map[string]any) []stmtField {
	var out []stmtField
	for _, k := range statementKeyOrder {
		if v, ok := m[k]; ok {
			out = append(out, stmtField{k, v})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(statementKeyOrder, k) {
			out = append(out, stmtField{k, m[k]})
		}
	}
	return out
}

// renderStatement writes a statement in one of the styles people and tools use, so that "kept as
// written" is tested byte for byte: compact, spaced, indented, keys in reverse order.
func renderStatement(kvs []stmtField, style int) json.RawMessage {
	if style == 3 {
		kvs = slices.Clone(kvs)
		slices.Reverse(kvs)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range kvs {
		key, _ := json.Marshal(e.k)
		val, _ := json.Marshal(e.v)
		if style == 2 {
			val, _ = json.MarshalIndent(e.v, "    ", "  ")
		}
		switch style {
		case 1:
			if i > 0 {
				b.WriteString(", ")
			}
			b.Write(key)
			b.WriteString(": ")
		case 2:
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("\n    ")
			b.Write(key)
			b.WriteString(" : ")
		default:
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(key)
			b.WriteByte(':')
		}
		b.Write(val)
	}
	if style == 2 {
		b.WriteString("\n  ")
	}
	b.WriteByte('}')
	return b.Bytes()
}

func statementMap(raw []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		panic(fmt.Sprintf("statement %s: %v", raw, err))
	}
	return m
}

// ownedRoleStatements are the configured statements of bucket that grant a role.
func (o *ownership) ownedRoleStatements(bucket string) []map[string]any {
	var out []map[string]any
	for _, b := range o.desired.Buckets {
		if b.Name != bucket {
			continue
		}
		for _, st := range b.Statements {
			if arns := st.Principal["AWS"]; len(arns) == 1 && strings.Contains(arns[0], ":role/") {
				raw, _ := json.Marshal(st)
				out = append(out, statementMap(raw))
			}
		}
	}
	return out
}

func (o *ownership) desiredStatements(bucket string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for _, b := range o.desired.Buckets {
		if b.Name == bucket {
			for _, st := range b.Statements {
				out[st.Sid], _ = json.Marshal(st)
			}
		}
	}
	return out
}

// newForeignStatement is somebody else's statement: sometimes an owned statement's twin
// under another Sid, sometimes with an owned statement's principal and resources, with Sids
// that look like xacctd's but are not (lower case, XACCTD, Xacct, XacctD) or none at all.
func (o *ownership) newForeignStatement(bucket string) (json.RawMessage, string) {
	o.seq++
	sid := oneOf(o.rng, []string{"", "AuditRead", "xacctdLegacyRead", "XACCTDMirror", "XacctD", "Xacct", "ReplicaWrite"})
	if sid != "" {
		sid += strconv.Itoa(o.seq)
	}
	owned := o.ownedRoleStatements(bucket)
	bucketARN := "arn:aws:s3:::" + bucket
	var m map[string]any
	var what string
	switch k := o.rng.IntN(4); {
	case k == 0 && len(owned) > 0:
		m = oneOf(o.rng, owned)
		what = "twin of " + m["Sid"].(string)
	case k == 1 && len(owned) > 0:
		src := oneOf(o.rng, owned)
		m = map[string]any{"Effect": "Allow", "Principal": src["Principal"], "Resource": src["Resource"],
			"Action": oneOf(o.rng, []any{"s3:GetObjectVersion", []any{"s3:GetObjectTagging", "s3:GetObjectVersion"}})}
		what = "principal and resources of " + src["Sid"].(string)
	case k == 2:
		m = map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": otherAccountRoot}, "Action": "s3:GetObject", "Resource": bucketARN + "/shared/*"}
		what = "another account reads shared/"
	default:
		m = map[string]any{"Effect": "Deny", "Principal": map[string]any{"AWS": []any{"arn:aws:iam::444444444444:root"}},
			"Action": []any{"s3:DeleteObject", "s3:PutObject"}, "Resource": bucketARN + "/legal-hold/*"}
		what = "deny for another account"
	}
	delete(m, "Sid")
	if sid != "" {
		m["Sid"] = sid
	}
	return renderStatement(stmtFields(m), o.rng.IntN(4)), what
}

func (o *ownership) currentPolicy(bucket string) *policy.Parts {
	o.t.Helper()
	var raw json.RawMessage
	out, err := o.s3.GetBucketPolicy(o.ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(bucket)})
	switch {
	case err == nil:
		raw = json.RawMessage(aws.ToString(out.Policy))
	case awsErrorCode(err) != "NoSuchBucketPolicy":
		o.failf("read policy of %s: %v", bucket, err)
	}
	parts, err := policy.Split(raw)
	if err != nil {
		o.failf("bucket %s: %v", bucket, err)
	}
	return parts
}

func ownedBySid(owned map[string]json.RawMessage) []json.RawMessage {
	var out []json.RawMessage
	for _, sid := range slices.Sorted(maps.Keys(owned)) {
		out = append(out, owned[sid])
	}
	return out
}

// writePolicy writes the whole policy: the foreign statements in their order with the owned
// ones (as given) mixed in anywhere, sometimes a lone statement as an object rather than a
// list. The foreign statements become the model.
func (o *ownership) writePolicy(bucket string, foreign, owned []json.RawMessage) {
	o.t.Helper()
	m := o.buckets[bucket]
	all := slices.Clone(foreign)
	for _, st := range owned {
		all = slices.Insert(all, o.rng.IntN(len(all)+1), st)
	}
	m.foreign = slices.Clone(foreign)
	if len(all) == 0 {
		m.id = nil // no statements, no policy: its Id goes with it
		_, err := o.s3.DeleteBucketPolicy(o.ctx, &s3.DeleteBucketPolicyInput{Bucket: aws.String(bucket)})
		o.must(err, "delete policy of "+bucket)
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"Version":"2012-10-17"`)
	if m.id != nil {
		b.WriteString(`,"Id":`)
		b.Write(m.id)
	}
	b.WriteString(`,"Statement":`)
	if len(all) == 1 && o.rng.IntN(2) == 0 {
		b.Write(all[0])
	} else {
		sep := oneOf(o.rng, []string{",", ", ", ",\n  "})
		b.WriteByte('[')
		for i, st := range all {
			if i > 0 {
				b.WriteString(sep)
			}
			b.Write(st)
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	_, err := o.s3.PutBucketPolicy(o.ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(b.String())})
	o.must(err, "write policy of "+bucket)
}

// rewrite writes new foreign statements and keeps the owned ones as they are now.
func (o *ownership) rewrite(bucket string, foreign []json.RawMessage) {
	o.writePolicy(bucket, foreign, ownedBySid(o.currentPolicy(bucket).Owned))
}

func (o *ownership) addForeignStatement() string {
	bucket := o.pickBucket()
	st, what := o.newForeignStatement(bucket)
	foreign := slices.Clone(o.buckets[bucket].foreign)
	i := o.rng.IntN(len(foreign) + 1)
	foreign = slices.Insert(foreign, i, st)
	o.rewrite(bucket, foreign)
	return fmt.Sprintf("%s [%d] (%s) %s", bucket, i, what, st)
}

func (o *ownership) bucketWithForeign(min int) string {
	names := o.bucketNames()
	if o.focus != "" {
		names = []string{o.focus}
	}
	names = slices.DeleteFunc(names, func(b string) bool { return len(o.buckets[b].foreign) < min })
	if len(names) == 0 {
		return ""
	}
	return oneOf(o.rng, names)
}

func (o *ownership) modifyForeignStatement() string {
	bucket := o.bucketWithForeign(1)
	if bucket == "" {
		return ""
	}
	foreign := slices.Clone(o.buckets[bucket].foreign)
	i := o.rng.IntN(len(foreign))
	m := statementMap(foreign[i])
	what := "reformatted only"
	switch o.rng.IntN(4) {
	case 1:
		m["Action"] = []any{"s3:GetObject", "s3:GetObjectAcl"}
		what = "actions changed"
	case 2:
		m["Condition"] = map[string]any{"StringEquals": map[string]any{"aws:PrincipalAccount": []any{"333333333333"}}}
		what = "condition set"
	case 3:
		m["Resource"] = []any{"arn:aws:s3:::" + bucket + "/shared/*", "arn:aws:s3:::" + bucket + "/exchange/*"}
		what = "resources changed"
	}
	foreign[i] = renderStatement(stmtFields(m), o.rng.IntN(4))
	o.rewrite(bucket, foreign)
	return fmt.Sprintf("%s [%d] %s: %s", bucket, i, what, foreign[i])
}

func (o *ownership) removeForeignStatement() string {
	bucket := o.bucketWithForeign(1)
	if bucket == "" {
		return ""
	}
	foreign := slices.Clone(o.buckets[bucket].foreign)
	i := o.rng.IntN(len(foreign))
	gone := foreign[i]
	foreign = slices.Delete(foreign, i, i+1)
	o.rewrite(bucket, foreign)
	return fmt.Sprintf("%s [%d] %s", bucket, i, gone)
}

func (o *ownership) reorderForeignStatements() string {
	bucket := o.bucketWithForeign(2)
	if bucket == "" {
		return ""
	}
	foreign := slices.Clone(o.buckets[bucket].foreign)
	o.rng.Shuffle(len(foreign), func(i, j int) { foreign[i], foreign[j] = foreign[j], foreign[i] })
	o.rewrite(bucket, foreign)
	return fmt.Sprintf("%s: %d statements shuffled", bucket, len(foreign))
}

// replacePolicyForeignOnly: somebody writes the policy as they know it, dropping xacctd's
// statements, sometimes with a new Id.
func (o *ownership) replacePolicyForeignOnly() string {
	bucket := o.pickBucket()
	m := o.buckets[bucket]
	if o.rng.IntN(2) == 0 {
		o.seq++
		m.id = json.RawMessage(strconv.Quote("policy-" + strconv.Itoa(o.seq)))
	}
	o.writePolicy(bucket, m.foreign, nil)
	if len(m.foreign) == 0 {
		return bucket + ": no foreign statements either, so the policy is deleted"
	}
	return fmt.Sprintf("%s: %d foreign statements kept, Id %s", bucket, len(m.foreign), m.id)
}

func (o *ownership) deletePolicy() string {
	bucket := o.pickBucket()
	o.buckets[bucket].id = nil
	o.writePolicy(bucket, nil, nil)
	return bucket
}

func (o *ownership) damageOwnedStatement() string {
	bucket := o.pickBucket()
	parts := o.currentPolicy(bucket)
	var sids []string
	for _, sid := range slices.Sorted(maps.Keys(o.desiredStatements(bucket))) {
		if _, ok := parts.Owned[sid]; ok {
			sids = append(sids, sid)
		}
	}
	if len(sids) == 0 {
		return ""
	}
	sid := oneOf(o.rng, sids)
	m := statementMap(parts.Owned[sid])
	var what string
	switch k := o.rng.IntN(4); {
	case k == 0:
		delete(parts.Owned, sid)
		what = "removed"
	case sid == policy.DenyInsecureTransportSid:
		// Never the condition: a deny without it would lock everybody out.
		m["Resource"] = "arn:aws:s3:::" + bucket
		what = "objects no longer covered"
	case k == 1:
		m["Action"] = "s3:*"
		what = "widened to s3:*"
	case k == 2:
		m["Resource"] = "arn:aws:s3:::" + bucket + "/*"
		what = "whole bucket"
	default:
		m["Principal"] = map[string]any{"AWS": "AROAXACCTDEXAMPLE0001"}
		what = "principal a bare unique id"
	}
	if what != "removed" {
		parts.Owned[sid] = renderStatement(stmtFields(m), 0)
	}
	o.writePolicy(bucket, o.buckets[bucket].foreign, ownedBySid(parts.Owned))
	return fmt.Sprintf("%s %s %s", bucket, sid, what)
}

// staleOwnedStatement: an Xacctd statement no pair wants (a pair removed while xacctd was
// not running) must go.
func (o *ownership) staleOwnedStatement() string {
	bucket := o.pickBucket()
	parts := o.currentPolicy(bucket)
	o.seq++
	sid := "XacctdRetiredPair" + strconv.Itoa(o.seq) + "Objects"
	parts.Owned[sid] = json.RawMessage(`{"Sid":"` + sid + `","Effect":"Allow","Principal":{"AWS":"` + otherAccountRoot + `"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::` + bucket + `/retired/*"}`)
	o.writePolicy(bucket, o.buckets[bucket].foreign, ownedBySid(parts.Owned))
	return bucket + " " + sid
}

// ---------------------------------------------------------------------------------------
// Roles and associations

// seenRole is a role as listed.
type seenRole struct {
	name, path, arn, id string
	trust               json.RawMessage
	inline              map[string]json.RawMessage
	attached            []string
	tags                map[string]string
}

func (o *ownership) listRoles(acct string) map[string]*seenRole {
	o.t.Helper()
	out := map[string]*seenRole{}
	in := &iam.GetAccountAuthorizationDetailsInput{Filter: []iamtypes.EntityType{iamtypes.EntityTypeRole}}
	for {
		page, err := o.iam[acct].GetAccountAuthorizationDetails(o.ctx, in)
		if err != nil {
			o.failf("list roles of %s: %v", acct, err)
		}
		for _, rd := range page.RoleDetailList {
			r := &seenRole{name: aws.ToString(rd.RoleName), path: aws.ToString(rd.Path), arn: aws.ToString(rd.Arn), id: aws.ToString(rd.RoleId),
				inline: map[string]json.RawMessage{}, tags: map[string]string{}}
			var err error
			if r.trust, err = policy.Decode(aws.ToString(rd.AssumeRolePolicyDocument)); err != nil {
				o.failf("trust of %s: %v", r.arn, err)
			}
			for _, p := range rd.RolePolicyList {
				if r.inline[aws.ToString(p.PolicyName)], err = policy.Decode(aws.ToString(p.PolicyDocument)); err != nil {
					o.failf("inline policy of %s: %v", r.arn, err)
				}
			}
			for _, a := range rd.AttachedManagedPolicies {
				r.attached = append(r.attached, aws.ToString(a.PolicyArn))
			}
			slices.Sort(r.attached)
			for _, t := range rd.Tags {
				r.tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			out[reconcile.RoleKey(acct, r.name)] = r
		}
		if !page.IsTruncated || page.Marker == nil {
			return out
		}
		in.Marker = page.Marker
	}
}

func (o *ownership) ownedRoleARNs() []string {
	var out []string
	for _, r := range o.desired.Roles {
		out = append(out, r.ARN)
	}
	return out
}

func assumableBy(principal string) string {
	return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + principal + `"},"Action":"sts:AssumeRole"}]}`
}

// foreignTrust: Redshift (such a role can be associated with the cluster), an owned role (a
// chain into somebody else's role), Redshift for one database user, or another account.
func (o *ownership) foreignTrust(acct string) string {
	if acct == world.LakeAccount {
		return oneOf(o.rng, []string{assumableBy(oneOf(o.rng, o.ownedRoleARNs())), assumableBy(otherAccountRoot)})
	}
	switch o.rng.IntN(5) {
	case 0:
		return assumableBy(oneOf(o.rng, o.ownedRoleARNs()))
	case 1:
		return policy.Compact(policy.RedshiftTrust([]string{"arn:aws:redshift:us-east-1:" + world.WarehouseAccount + ":dbuser:" + world.Cluster + "/reporting"}))
	default:
		return redshiftServiceTrust
	}
}

func (o *ownership) foreignInlineDoc() string {
	docs := []string{foreignReadDoc, widenedDoc}
	for _, r := range o.desired.Roles {
		raw, _ := json.Marshal(r.Policy) // an owned role's very policy
		docs = append(docs, string(raw))
	}
	return oneOf(o.rng, docs)
}

var foreignTagChoices = []map[string]string{
	{"owner": "dba-team"}, {config.ManagedByTag: "terraform"}, {config.PairTag: "analytics-to-lake"},
	{config.ManagedByTag: "Xacctd"}, {"team": "data-platform"}, {config.ManagedByTag: "xacctd-legacy"},
}

func (o *ownership) foreignTags() map[string]string {
	tags := map[string]string{}
	for range o.rng.IntN(3) {
		maps.Copy(tags, oneOf(o.rng, foreignTagChoices))
	}
	return tags
}

// Names close to the owned ones (and owned names in the other account); never the same name
// in the same account, which would be a conflict rather than somebody else's role.
var foreignRoleNames = map[string][]string{
	sandbox.WarehouseAccount: {"RedshiftLakeAccessOld", "RedshiftLakeAccess2", "redshift-lake-access", "XacctdRedshiftLakeAccess",
		"RedshiftEventsReaderLegacy", "RedshiftAuditWriterTmp", "RedshiftFinanceWriterV2", "LakeEventsReader"},
	sandbox.LakeAccount: {"RedshiftLakeAccess", "RedshiftEventsReader", "LakeEventsReaderOld", "LakeEventsReader2", "xacctd-LakeEventsReader"},
}

var foreignRolePaths = []string{"/", "/xacctd/", "/xacctd/finance/", "/legacy/xacctd/", "/team/etl/"}

func (o *ownership) createForeignRole() string {
	acct := oneOf(o.rng, []string{world.WarehouseAccount, world.WarehouseAccount, world.LakeAccount})
	var free []string
	for _, n := range foreignRoleNames[acct] {
		if o.roles[reconcile.RoleKey(acct, n)] == nil {
			free = append(free, n)
		}
	}
	if len(free) == 0 {
		return ""
	}
	r := &foreignRole{accountID: acct, name: oneOf(o.rng, free), path: oneOf(o.rng, foreignRolePaths),
		trust: o.foreignTrust(acct), inline: map[string]string{}, tags: o.foreignTags()}
	var tags []iamtypes.Tag
	for _, k := range slices.Sorted(maps.Keys(r.tags)) {
		tags = append(tags, iamtypes.Tag{Key: aws.String(k), Value: aws.String(r.tags[k])})
	}
	c := o.iam[acct]
	_, err := c.CreateRole(o.ctx, &iam.CreateRoleInput{RoleName: aws.String(r.name), Path: aws.String(r.path), AssumeRolePolicyDocument: aws.String(r.trust), Tags: tags})
	o.must(err, "create role "+r.name)
	for range o.rng.IntN(3) {
		name := oneOf(o.rng, []string{reconcile.RolePolicyName, "reader"})
		r.inline[name] = o.foreignInlineDoc()
		_, err := c.PutRolePolicy(o.ctx, &iam.PutRolePolicyInput{RoleName: aws.String(r.name), PolicyName: aws.String(name), PolicyDocument: aws.String(r.inline[name])})
		o.must(err, "put inline policy of "+r.name)
	}
	if o.rng.IntN(3) == 0 {
		_, err := c.AttachRolePolicy(o.ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(r.name), PolicyArn: aws.String(o.managedPolicy[acct])})
		o.must(err, "attach policy to "+r.name)
		r.attached = []string{o.managedPolicy[acct]}
	}
	o.roles[reconcile.RoleKey(acct, r.name)] = r
	return fmt.Sprintf("%s tags %v, inline %v, attached %v, trust %s", r.arn(), r.tags, slices.Sorted(maps.Keys(r.inline)), r.attached, r.trust)
}

func (o *ownership) editableForeignRoles(match func(*foreignRole) bool) []*foreignRole {
	var out []*foreignRole
	for _, key := range slices.Sorted(maps.Keys(o.roles)) {
		if r := o.roles[key]; !r.protected && (match == nil || match(r)) {
			out = append(out, r)
		}
	}
	return out
}

func (o *ownership) modifyForeignRole() string {
	roles := o.editableForeignRoles(nil)
	if len(roles) == 0 {
		return ""
	}
	r := oneOf(o.rng, roles)
	c, name := o.iam[r.accountID], aws.String(r.name)
	for {
		switch o.rng.IntN(6) {
		case 0:
			r.trust = o.foreignTrust(r.accountID)
			_, err := c.UpdateAssumeRolePolicy(o.ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: name, PolicyDocument: aws.String(r.trust)})
			o.must(err, "update trust of "+r.name)
			return r.arn() + " trust " + r.trust
		case 1:
			p := oneOf(o.rng, []string{reconcile.RolePolicyName, "reader", "extra"})
			r.inline[p] = o.foreignInlineDoc()
			_, err := c.PutRolePolicy(o.ctx, &iam.PutRolePolicyInput{RoleName: name, PolicyName: aws.String(p), PolicyDocument: aws.String(r.inline[p])})
			o.must(err, "put inline policy of "+r.name)
			return r.arn() + " inline " + p + " " + r.inline[p]
		case 2:
			if len(r.inline) == 0 {
				continue
			}
			p := oneOf(o.rng, slices.Sorted(maps.Keys(r.inline)))
			delete(r.inline, p)
			_, err := c.DeleteRolePolicy(o.ctx, &iam.DeleteRolePolicyInput{RoleName: name, PolicyName: aws.String(p)})
			o.must(err, "delete inline policy of "+r.name)
			return r.arn() + " inline " + p + " deleted"
		case 3:
			tags := oneOf(o.rng, foreignTagChoices)
			maps.Copy(r.tags, tags)
			k := slices.Collect(maps.Keys(tags))[0]
			_, err := c.TagRole(o.ctx, &iam.TagRoleInput{RoleName: name, Tags: []iamtypes.Tag{{Key: aws.String(k), Value: aws.String(tags[k])}}})
			o.must(err, "tag "+r.name)
			return fmt.Sprintf("%s tagged %s=%s", r.arn(), k, tags[k])
		case 4:
			if len(r.tags) == 0 {
				continue
			}
			k := oneOf(o.rng, slices.Sorted(maps.Keys(r.tags)))
			delete(r.tags, k)
			_, err := c.UntagRole(o.ctx, &iam.UntagRoleInput{RoleName: name, TagKeys: []string{k}})
			o.must(err, "untag "+r.name)
			return r.arn() + " untagged " + k
		default:
			arn := o.managedPolicy[r.accountID]
			if len(r.attached) > 0 {
				r.attached = nil
				_, err := c.DetachRolePolicy(o.ctx, &iam.DetachRolePolicyInput{RoleName: name, PolicyArn: aws.String(arn)})
				o.must(err, "detach from "+r.name)
				return r.arn() + " detached " + arn
			}
			r.attached = []string{arn}
			_, err := c.AttachRolePolicy(o.ctx, &iam.AttachRolePolicyInput{RoleName: name, PolicyArn: aws.String(arn)})
			o.must(err, "attach to "+r.name)
			return r.arn() + " attached " + arn
		}
	}
}

// deleteRoleFully deletes a role the way the console does: inline and attached policies
// first.
func (o *ownership) deleteRoleFully(acct, name string) {
	o.t.Helper()
	c := o.iam[acct]
	pols, err := c.ListRolePolicies(o.ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(name)})
	o.must(err, "list inline policies of "+name)
	for _, p := range pols.PolicyNames {
		_, err := c.DeleteRolePolicy(o.ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(p)})
		o.must(err, "delete inline policy of "+name)
	}
	att, err := c.ListAttachedRolePolicies(o.ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(name)})
	o.must(err, "list attached policies of "+name)
	for _, p := range att.AttachedPolicies {
		_, err := c.DetachRolePolicy(o.ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(name), PolicyArn: p.PolicyArn})
		o.must(err, "detach from "+name)
	}
	_, err = c.DeleteRole(o.ctx, &iam.DeleteRoleInput{RoleName: aws.String(name)})
	o.must(err, "delete role "+name)
}

func (o *ownership) deleteForeignRole() string {
	roles := o.editableForeignRoles(func(r *foreignRole) bool { return !o.assoc[r.arn()] })
	if len(roles) == 0 {
		return ""
	}
	r := oneOf(o.rng, roles)
	o.deleteRoleFully(r.accountID, r.name)
	delete(o.roles, reconcile.RoleKey(r.accountID, r.name))
	delete(o.assoc, r.arn())
	return r.arn()
}

// modifyCluster changes the cluster's roles, waiting while it is busy with an earlier change.
func (o *ownership) modifyCluster(add, remove []string) {
	o.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := o.rs.ModifyClusterIamRoles(o.ctx, &redshift.ModifyClusterIamRolesInput{ClusterIdentifier: aws.String(world.Cluster), AddIamRoles: add, RemoveIamRoles: remove})
		if err == nil {
			return
		}
		if awsErrorCode(err) != "InvalidClusterState" || time.Now().After(deadline) {
			o.failf("modify cluster roles (add %v, remove %v): %v", add, remove, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (o *ownership) clusterRoles() map[string]string {
	o.t.Helper()
	out, err := o.rs.DescribeClusters(o.ctx, &redshift.DescribeClustersInput{ClusterIdentifier: aws.String(world.Cluster)})
	if err != nil || len(out.Clusters) != 1 {
		o.failf("describe cluster: %v", err)
	}
	m := map[string]string{}
	for _, r := range out.Clusters[0].IamRoles {
		m[aws.ToString(r.IamRoleArn)] = aws.ToString(r.ApplyStatus)
	}
	return m
}

func (o *ownership) associateForeignRole() string {
	cluster := o.clusterRoles()
	roles := o.editableForeignRoles(func(r *foreignRole) bool {
		_, on := cluster[r.arn()]
		return r.accountID == world.WarehouseAccount && strings.Contains(r.trust, "redshift.amazonaws.com") && !on
	})
	if len(roles) == 0 {
		return ""
	}
	r := oneOf(o.rng, roles)
	o.modifyCluster([]string{r.arn()}, nil)
	o.assoc[r.arn()] = true
	return r.arn()
}

func (o *ownership) disassociateForeignRole() string {
	var arns []string
	for _, arn := range slices.Sorted(maps.Keys(o.assoc)) {
		if o.assoc[arn] {
			arns = append(arns, arn)
		}
	}
	if len(arns) == 0 {
		return ""
	}
	arn := oneOf(o.rng, arns)
	o.modifyCluster(nil, []string{arn})
	o.assoc[arn] = false
	return arn
}

func (o *ownership) ownedRole() *reconcile.DesiredRole {
	var roles []*reconcile.DesiredRole
	for _, r := range o.desired.Roles {
		if !o.gone[reconcile.RoleKey(r.AccountID, r.Name)] {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil
	}
	return oneOf(o.rng, roles)
}

func (o *ownership) damageOwnedTrust() string {
	r := o.ownedRole()
	if r == nil {
		return ""
	}
	doc := oneOf(o.rng, []string{
		assumableBy(otherAccountRoot),
		redshiftServiceTrust, // any database user of the cluster
		policy.Compact(policy.RedshiftTrust([]string{"arn:aws:redshift:us-east-1:" + world.WarehouseAccount + ":dbuser:" + world.Cluster + "/intruder"})),
	})
	_, err := o.iam[r.AccountID].UpdateAssumeRolePolicy(o.ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: aws.String(r.Name), PolicyDocument: aws.String(doc)})
	o.must(err, "update trust of "+r.Name)
	return r.ARN + " " + doc
}

func (o *ownership) damageOwnedInline() string {
	r := o.ownedRole()
	if r == nil {
		return ""
	}
	c, name := o.iam[r.AccountID], aws.String(r.Name)
	if o.rng.IntN(3) == 0 {
		_, err := c.DeleteRolePolicy(o.ctx, &iam.DeleteRolePolicyInput{RoleName: name, PolicyName: aws.String(reconcile.RolePolicyName)})
		o.must(err, "delete inline policy of "+r.Name)
		return r.ARN + " policy " + reconcile.RolePolicyName + " deleted"
	}
	_, err := c.PutRolePolicy(o.ctx, &iam.PutRolePolicyInput{RoleName: name, PolicyName: aws.String(reconcile.RolePolicyName), PolicyDocument: aws.String(widenedDoc)})
	o.must(err, "put inline policy of "+r.Name)
	return r.ARN + " policy " + reconcile.RolePolicyName + " widened"
}

// widenOwnedRole: an extra inline policy or an attached managed policy on a role xacctd owns
// is drift (a role it owns is owned entirely).
func (o *ownership) widenOwnedRole() string {
	r := o.ownedRole()
	if r == nil {
		return ""
	}
	c, name := o.iam[r.AccountID], aws.String(r.Name)
	if o.rng.IntN(2) == 0 {
		_, err := c.PutRolePolicy(o.ctx, &iam.PutRolePolicyInput{RoleName: name, PolicyName: aws.String("debug"), PolicyDocument: aws.String(widenedDoc)})
		o.must(err, "put inline policy of "+r.Name)
		return r.ARN + " extra inline policy debug"
	}
	_, err := c.AttachRolePolicy(o.ctx, &iam.AttachRolePolicyInput{RoleName: name, PolicyArn: aws.String(o.managedPolicy[r.AccountID])})
	o.must(err, "attach to "+r.Name)
	return r.ARN + " attached " + o.managedPolicy[r.AccountID]
}

func (o *ownership) untagOwnedRole() string {
	r := o.ownedRole()
	if r == nil {
		return ""
	}
	k := oneOf(o.rng, []string{"team", config.PairTag}) // never managed-by: that would give the role away
	_, err := o.iam[r.AccountID].UntagRole(o.ctx, &iam.UntagRoleInput{RoleName: aws.String(r.Name), TagKeys: []string{k}})
	o.must(err, "untag "+r.Name)
	return r.ARN + " untagged " + k
}

func (o *ownership) disassociateOwnedRole() string {
	cluster := o.clusterRoles()
	var arns []string
	for _, a := range o.desired.Associations {
		if s := cluster[a.RoleARN]; s == "in-sync" || s == "adding" {
			arns = append(arns, a.RoleARN)
		}
	}
	if len(arns) == 0 {
		return ""
	}
	arn := oneOf(o.rng, arns)
	o.modifyCluster(nil, []string{arn})
	return arn
}

// deleteOwnedRole deletes a role xacctd owns and, as IAM does, turns its ARN into its unique
// id wherever a policy names it: bucket policies (foreign statements too) and trusts.
func (o *ownership) deleteOwnedRole() string {
	r := o.ownedRole()
	if r == nil {
		return ""
	}
	got, err := o.iam[r.AccountID].GetRole(o.ctx, &iam.GetRoleInput{RoleName: aws.String(r.Name)})
	o.must(err, "get role "+r.Name)
	id := aws.ToString(got.Role.RoleId)
	o.deleteRoleFully(r.AccountID, r.Name)
	o.gone[reconcile.RoleKey(r.AccountID, r.Name)] = true
	from, to := []byte(`"`+r.ARN+`"`), []byte(`"`+id+`"`)
	var rewritten []string
	for _, bucket := range o.bucketNames() {
		parts := o.currentPolicy(bucket)
		changed := false
		foreign := slices.Clone(o.buckets[bucket].foreign)
		for i, st := range foreign {
			if bytes.Contains(st, from) {
				foreign[i], changed = bytes.ReplaceAll(st, from, to), true
			}
		}
		for sid, st := range parts.Owned {
			if bytes.Contains(st, from) {
				parts.Owned[sid], changed = bytes.ReplaceAll(st, from, to), true
			}
		}
		if changed {
			o.writePolicy(bucket, foreign, ownedBySid(parts.Owned))
			rewritten = append(rewritten, bucket)
		}
	}
	for _, acct := range []string{world.WarehouseAccount, world.LakeAccount} {
		seen := o.listRoles(acct)
		for _, key := range slices.Sorted(maps.Keys(seen)) {
			sr := seen[key]
			if !bytes.Contains(sr.trust, from) {
				continue
			}
			trust := string(bytes.ReplaceAll(sr.trust, from, to))
			_, err := o.iam[acct].UpdateAssumeRolePolicy(o.ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: aws.String(sr.name), PolicyDocument: aws.String(trust)})
			o.must(err, "rewrite trust of "+sr.name)
			if fr := o.roles[key]; fr != nil {
				fr.trust = trust
			}
			rewritten = append(rewritten, "trust of "+sr.arn)
		}
	}
	return fmt.Sprintf("%s (unique id %s now in: %v)", r.ARN, id, rewritten)
}

// createOrphanRole: a role tagged managed-by=xacctd that no pair wants (a removed pair) must
// be disassociated and deleted.
func (o *ownership) createOrphanRole() string {
	o.seq++
	acct := oneOf(o.rng, []string{world.WarehouseAccount, world.LakeAccount})
	name := "RedshiftRetired" + strconv.Itoa(o.seq)
	c := o.iam[acct]
	out, err := c.CreateRole(o.ctx, &iam.CreateRoleInput{RoleName: aws.String(name), Path: aws.String("/xacctd/"), AssumeRolePolicyDocument: aws.String(redshiftServiceTrust),
		Tags: []iamtypes.Tag{{Key: aws.String(config.ManagedByTag), Value: aws.String("xacctd")}, {Key: aws.String(config.PairTag), Value: aws.String("retired-" + strconv.Itoa(o.seq))}}})
	o.must(err, "create role "+name)
	_, err = c.PutRolePolicy(o.ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String(reconcile.RolePolicyName), PolicyDocument: aws.String(foreignReadDoc)})
	o.must(err, "put inline policy of "+name)
	what := aws.ToString(out.Role.Arn)
	if o.rng.IntN(2) == 0 {
		_, err := c.AttachRolePolicy(o.ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(name), PolicyArn: aws.String(o.managedPolicy[acct])})
		o.must(err, "attach to "+name)
		what += ", policy attached"
	}
	if acct == world.WarehouseAccount && o.rng.IntN(2) == 0 {
		o.modifyCluster([]string{aws.ToString(out.Role.Arn)}, nil)
		what += ", associated"
	}
	return what
}

// ---------------------------------------------------------------------------------------
// Bucket settings

func (o *ownership) bucketTags() string {
	bucket := o.pickBucket()
	m := o.buckets[bucket]
	if o.rng.IntN(4) == 0 {
		_, err := o.s3.DeleteBucketTagging(o.ctx, &s3.DeleteBucketTaggingInput{Bucket: aws.String(bucket)})
		o.must(err, "delete tags of "+bucket)
		m.tags = map[string]string{}
		return bucket + " tags deleted"
	}
	o.seq++
	tags := map[string]string{"cost-center": "cc-" + strconv.Itoa(o.seq)}
	for range o.rng.IntN(3) {
		maps.Copy(tags, oneOf(o.rng, foreignTagChoices))
	}
	var set []s3types.Tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		set = append(set, s3types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	_, err := o.s3.PutBucketTagging(o.ctx, &s3.PutBucketTaggingInput{Bucket: aws.String(bucket), Tagging: &s3types.Tagging{TagSet: set}})
	o.must(err, "tag "+bucket)
	m.tags = tags
	return fmt.Sprintf("%s %v", bucket, tags)
}

func (o *ownership) bucketVersioning() string {
	bucket := o.pickBucket()
	status := oneOf(o.rng, []s3types.BucketVersioningStatus{s3types.BucketVersioningStatusEnabled, s3types.BucketVersioningStatusSuspended})
	_, err := o.s3.PutBucketVersioning(o.ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket), VersioningConfiguration: &s3types.VersioningConfiguration{Status: status}})
	o.must(err, "set versioning of "+bucket)
	o.buckets[bucket].versioning = string(status)
	return bucket + " " + string(status)
}

// bucketKMS: no kms_key is configured, so xacctd accepts any default encryption.
func (o *ownership) bucketKMS() string {
	bucket := o.pickBucket()
	o.seq++
	key := fmt.Sprintf("arn:aws:kms:us-east-1:%s:key/00000000-0000-4000-8000-%012d", world.LakeAccount, o.seq)
	_, err := o.s3.PutBucketEncryption(o.ctx, &s3.PutBucketEncryptionInput{Bucket: aws.String(bucket), ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
		Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(key)}, BucketKeyEnabled: aws.Bool(true)}},
	}})
	o.must(err, "set encryption of "+bucket)
	o.buckets[bucket].encryption = reconcile.Encryption{Algorithm: "aws:kms", KMSKeyID: key}
	return bucket + " " + key
}

func (o *ownership) damageBucketSettings() string {
	bucket := o.pickBucket()
	name := aws.String(bucket)
	switch o.rng.IntN(3) {
	case 0:
		off := o.rng.IntN(15) + 1 // which of the four settings stay on, never all
		cfg := &s3types.PublicAccessBlockConfiguration{BlockPublicAcls: aws.Bool(off&1 == 0), IgnorePublicAcls: aws.Bool(off&2 == 0),
			BlockPublicPolicy: aws.Bool(off&4 == 0), RestrictPublicBuckets: aws.Bool(off&8 == 0)}
		_, err := o.s3.PutPublicAccessBlock(o.ctx, &s3.PutPublicAccessBlockInput{Bucket: name, PublicAccessBlockConfiguration: cfg})
		o.must(err, "public access block of "+bucket)
		return fmt.Sprintf("%s public access block off (mask %04b)", bucket, off)
	case 1:
		own := oneOf(o.rng, []s3types.ObjectOwnership{s3types.ObjectOwnershipObjectWriter, s3types.ObjectOwnershipBucketOwnerPreferred})
		_, err := o.s3.PutBucketOwnershipControls(o.ctx, &s3.PutBucketOwnershipControlsInput{Bucket: name, OwnershipControls: &s3types.OwnershipControls{
			Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: own}}}})
		o.must(err, "ownership of "+bucket)
		return bucket + " ownership " + string(own)
	default:
		_, err := o.s3.DeleteBucketEncryption(o.ctx, &s3.DeleteBucketEncryptionInput{Bucket: name})
		o.must(err, "delete encryption of "+bucket)
		o.buckets[bucket].encryption = reconcile.Encryption{Algorithm: "AES256"} // what xacctd puts back
		return bucket + " default encryption deleted"
	}
}

// ---------------------------------------------------------------------------------------
// Invariants

type seenBucket struct {
	policy     *policy.Parts
	tags       map[string]string
	versioning string
	encryption *reconcile.Encryption
	pab        *s3types.PublicAccessBlockConfiguration
	ownership  string
}

type ownState struct {
	buckets map[string]*seenBucket
	roles   map[string]*seenRole // by RoleKey, both accounts
	cluster map[string]string    // role ARN -> ApplyStatus
}

func awsErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func (o *ownership) observe() *ownState {
	o.t.Helper()
	st := &ownState{buckets: map[string]*seenBucket{}, roles: map[string]*seenRole{}, cluster: o.clusterRoles()}
	for _, acct := range []string{world.WarehouseAccount, world.LakeAccount} {
		maps.Copy(st.roles, o.listRoles(acct))
	}
	for _, bucket := range o.bucketNames() {
		name := aws.String(bucket)
		b := &seenBucket{policy: o.currentPolicy(bucket), tags: map[string]string{}}
		tags, err := o.s3.GetBucketTagging(o.ctx, &s3.GetBucketTaggingInput{Bucket: name})
		switch {
		case err == nil:
			for _, t := range tags.TagSet {
				b.tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
		case awsErrorCode(err) != "NoSuchTagSet":
			o.failf("read tags of %s: %v", bucket, err)
		}
		ver, err := o.s3.GetBucketVersioning(o.ctx, &s3.GetBucketVersioningInput{Bucket: name})
		if err != nil {
			o.failf("read versioning of %s: %v", bucket, err)
		}
		b.versioning = string(ver.Status)
		enc, err := o.s3.GetBucketEncryption(o.ctx, &s3.GetBucketEncryptionInput{Bucket: name})
		switch {
		case err == nil && len(enc.ServerSideEncryptionConfiguration.Rules) > 0 && enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault != nil:
			d := enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault
			b.encryption = &reconcile.Encryption{Algorithm: string(d.SSEAlgorithm), KMSKeyID: aws.ToString(d.KMSMasterKeyID)}
		case err == nil, awsErrorCode(err) == "ServerSideEncryptionConfigurationNotFoundError":
		default:
			o.failf("read encryption of %s: %v", bucket, err)
		}
		pab, err := o.s3.GetPublicAccessBlock(o.ctx, &s3.GetPublicAccessBlockInput{Bucket: name})
		switch {
		case err == nil:
			b.pab = pab.PublicAccessBlockConfiguration
		case awsErrorCode(err) != "NoSuchPublicAccessBlockConfiguration":
			o.failf("read public access block of %s: %v", bucket, err)
		}
		own, err := o.s3.GetBucketOwnershipControls(o.ctx, &s3.GetBucketOwnershipControlsInput{Bucket: name})
		switch {
		case err == nil && own.OwnershipControls != nil && len(own.OwnershipControls.Rules) > 0:
			b.ownership = string(own.OwnershipControls.Rules[0].ObjectOwnership)
		case err == nil, awsErrorCode(err) == "OwnershipControlsNotFoundError":
		default:
			o.failf("read ownership of %s: %v", bucket, err)
		}
		st.buckets[bucket] = b
	}
	return st
}

// check fails the test when anything foreign differs from the model or, with owned, when
// anything owned differs from the configuration or the next plan is not empty.
func (o *ownership) check(when string, owned bool) {
	o.t.Helper()
	st := o.observe()
	v := o.foreignViolations(st)
	if owned {
		v = append(v, o.ownedViolations(st)...)
	}
	if len(v) > 0 {
		o.failf("%s:\n  %s", when, strings.Join(v, "\n  "))
	}
}

func canonicalStatement(raw json.RawMessage) string {
	c, err := policy.Canonical(raw)
	if err != nil {
		return "invalid: " + err.Error() + ": " + string(raw)
	}
	return c
}

func (o *ownership) foreignViolations(st *ownState) []string {
	var v []string
	for _, bucket := range o.bucketNames() {
		m, b := o.buckets[bucket], st.buckets[bucket]
		var want, got []string
		for _, s := range m.foreign {
			want = append(want, canonicalStatement(s))
		}
		for _, s := range b.policy.Foreign {
			got = append(got, canonicalStatement(s))
		}
		switch {
		case !slices.Equal(want, got):
			v = append(v, fmt.Sprintf("bucket %s: foreign statements changed\n    want %s\n    got  %s", bucket, strings.Join(want, "\n         "), strings.Join(got, "\n         ")))
		default:
			for i := range m.foreign {
				if !bytes.Equal(m.foreign[i], b.policy.Foreign[i]) {
					v = append(v, fmt.Sprintf("bucket %s: foreign statement [%d] not kept byte for byte\n    want %s\n    got  %s", bucket, i, m.foreign[i], b.policy.Foreign[i]))
				}
			}
		}
		if len(b.policy.Foreign)+len(b.policy.Owned) > 0 && !bytes.Equal(m.id, b.policy.ID) {
			v = append(v, fmt.Sprintf("bucket %s: policy Id %s, want %s", bucket, b.policy.ID, m.id))
		}
		if !maps.Equal(m.tags, b.tags) {
			v = append(v, fmt.Sprintf("bucket %s: tags %v, want %v", bucket, b.tags, m.tags))
		}
		if m.versioning != b.versioning {
			v = append(v, fmt.Sprintf("bucket %s: versioning %q, want %q", bucket, b.versioning, m.versioning))
		}
		if b.encryption == nil || *b.encryption != m.encryption {
			v = append(v, fmt.Sprintf("bucket %s: default encryption %+v, want %+v", bucket, b.encryption, m.encryption))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(o.roles)) {
		want, got := o.roles[key], st.roles[key]
		if got == nil {
			v = append(v, "foreign role "+want.arn()+" is gone")
			continue
		}
		var diffs []string
		if got.path != want.path {
			diffs = append(diffs, fmt.Sprintf("path %s, want %s", got.path, want.path))
		}
		if !policy.Equal(got.trust, json.RawMessage(want.trust)) {
			diffs = append(diffs, fmt.Sprintf("trust %s, want %s", got.trust, want.trust))
		}
		if names := slices.Sorted(maps.Keys(got.inline)); !slices.Equal(names, slices.Sorted(maps.Keys(want.inline))) {
			diffs = append(diffs, fmt.Sprintf("inline policies %v, want %v", names, slices.Sorted(maps.Keys(want.inline))))
		}
		for n, doc := range want.inline {
			if g, ok := got.inline[n]; ok && !policy.Equal(g, json.RawMessage(doc)) {
				diffs = append(diffs, fmt.Sprintf("inline policy %s %s, want %s", n, g, doc))
			}
		}
		if !slices.Equal(got.attached, want.attached) {
			diffs = append(diffs, fmt.Sprintf("attached %v, want %v", got.attached, want.attached))
		}
		if !maps.Equal(got.tags, want.tags) {
			diffs = append(diffs, fmt.Sprintf("tags %v, want %v", got.tags, want.tags))
		}
		if len(diffs) > 0 {
			v = append(v, "foreign role "+want.arn()+" changed: "+strings.Join(diffs, "; "))
		}
	}
	for _, arn := range slices.Sorted(maps.Keys(o.assoc)) {
		status, on := st.cluster[arn]
		switch {
		case o.assoc[arn] && (!on || status == "removing"):
			v = append(v, fmt.Sprintf("foreign association %s: %q, want associated", arn, status))
		case !o.assoc[arn] && on && status != "removing":
			v = append(v, fmt.Sprintf("foreign association %s: %q, want removed as the test left it", arn, status))
		}
	}
	return v
}

func (o *ownership) ownedViolations(st *ownState) []string {
	var v []string
	for _, bucket := range o.bucketNames() {
		want, got := o.desiredStatements(bucket), st.buckets[bucket].policy.Owned
		for _, sid := range slices.Sorted(maps.Keys(want)) {
			switch g, ok := got[sid]; {
			case !ok:
				v = append(v, fmt.Sprintf("bucket %s: owned statement %s missing", bucket, sid))
			case !policy.Equal(g, want[sid]):
				v = append(v, fmt.Sprintf("bucket %s: owned statement %s is %s, want %s", bucket, sid, g, want[sid]))
			}
		}
		for _, sid := range slices.Sorted(maps.Keys(got)) {
			if _, ok := want[sid]; !ok {
				v = append(v, fmt.Sprintf("bucket %s: owned statement %s no pair wants is still there", bucket, sid))
			}
		}
		b := st.buckets[bucket]
		if p := b.pab; p == nil || !aws.ToBool(p.BlockPublicAcls) || !aws.ToBool(p.IgnorePublicAcls) || !aws.ToBool(p.BlockPublicPolicy) || !aws.ToBool(p.RestrictPublicBuckets) {
			v = append(v, fmt.Sprintf("bucket %s: public access block %+v, want all on", bucket, p))
		}
		if b.ownership != "BucketOwnerEnforced" {
			v = append(v, fmt.Sprintf("bucket %s: ownership %q, want BucketOwnerEnforced", bucket, b.ownership))
		}
	}
	desiredKeys := map[string]bool{}
	for _, r := range o.desired.Roles {
		key := reconcile.RoleKey(r.AccountID, r.Name)
		desiredKeys[key] = true
		got := st.roles[key]
		if got == nil {
			v = append(v, "owned role "+r.ARN+" missing")
			continue
		}
		trust, _ := json.Marshal(r.Trust)
		pol, _ := json.Marshal(r.Policy)
		var diffs []string
		if got.arn != r.ARN {
			diffs = append(diffs, "ARN "+got.arn)
		}
		if !policy.Equal(got.trust, trust) {
			diffs = append(diffs, fmt.Sprintf("trust %s", got.trust))
		}
		if names := slices.Sorted(maps.Keys(got.inline)); !slices.Equal(names, []string{reconcile.RolePolicyName}) {
			diffs = append(diffs, fmt.Sprintf("inline policies %v", names))
		} else if !policy.Equal(got.inline[reconcile.RolePolicyName], pol) {
			diffs = append(diffs, fmt.Sprintf("inline policy %s", got.inline[reconcile.RolePolicyName]))
		}
		if len(got.attached) > 0 {
			diffs = append(diffs, fmt.Sprintf("attached %v", got.attached))
		}
		for k, want := range r.Tags {
			if got.tags[k] != want {
				diffs = append(diffs, fmt.Sprintf("tag %s=%q, want %q", k, got.tags[k], want))
			}
		}
		if len(diffs) > 0 {
			v = append(v, "owned role "+r.ARN+" not as configured: "+strings.Join(diffs, "; "))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(st.roles)) {
		r := st.roles[key]
		switch {
		case desiredKeys[key]:
		case r.tags[config.ManagedByTag] == "xacctd":
			v = append(v, "role "+r.arn+" is tagged managed-by=xacctd, no pair wants it, and it is still there")
		case o.roles[key] == nil:
			v = append(v, "role "+r.arn+" appeared from nowhere")
		}
	}
	desiredARNs := map[string]bool{}
	for _, a := range o.desired.Associations {
		desiredARNs[a.RoleARN] = true
		if s := st.cluster[a.RoleARN]; s != "in-sync" && s != "adding" {
			v = append(v, fmt.Sprintf("owned association %s: %q, want in-sync (or adding, just after NoWait)", a.RoleARN, s))
		}
	}
	for _, arn := range slices.Sorted(maps.Keys(st.cluster)) {
		if !desiredARNs[arn] && !o.assoc[arn] && st.cluster[arn] != "removing" {
			v = append(v, fmt.Sprintf("association %s (%s) is neither configured nor the test's", arn, st.cluster[arn]))
		}
	}
	p := o.r.Plan(o.ctx).Plan
	for _, c := range p.Changes {
		if c.Action != reconcile.NoOp {
			v = append(v, "next plan not empty: "+c.String())
		}
	}
	for _, c := range p.Conflicts {
		v = append(v, fmt.Sprintf("next plan has a conflict: %s %s: %s", c.Type, c.ID, c.Reason))
	}
	return v
}
