package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/redshift"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"
)

// backend stands in for moto: it answers 200 with an empty body and records what reached it.
type backend struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD path?query body"
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.seen = append(b.seen, r.Method+" "+r.URL.RequestURI()+" "+string(body))
		b.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

func start(t *testing.T, target string, opts Options) *Proxy {
	t.Helper()
	opts.Logf = t.Logf
	p, err := Start(target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// sdkConfig points the SDK at url with attempts per call and no backoff between them.
func sdkConfig(url string, attempts int) aws.Config {
	return aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIAFAULTPROXYTEST00", "secret", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.RateLimiter = ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		},
	}
}

func s3Client(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

// rawQuery sends a signed-looking query-protocol request (form-encoded Action=).
func rawQuery(ctx context.Context, url, service, action string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/", strings.NewReader("Action="+action+"&Version=2010-05-08"))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAFAULTPROXYTEST00/20260101/us-east-1/"+service+"/aws4_request, SignedHeaders=host, Signature=00")
	return http.DefaultClient.Do(req)
}

// TestOperationNames: the proxy names the operations the SDK sends as awsconn.Counter does,
// for each protocol xacctd uses (S3 REST, IAM/STS/Redshift query) and for JSON.
func TestOperationNames(t *testing.T) {
	b := newBackend(t)
	p := start(t, b.URL, Options{})
	cfg := sdkConfig(p.URL, 1)
	ctx := context.Background()
	s, i, st, rs := s3Client(cfg), iam.NewFromConfig(cfg), sts.NewFromConfig(cfg), redshift.NewFromConfig(cfg)
	bk := aws.String("bucket-a")
	// Errors are expected: the backend's empty answers do not always deserialize.
	_, _ = s.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bk})
	_, _ = s.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: bk, Tagging: &s3types.Tagging{TagSet: []s3types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}})
	_, _ = s.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: bk})
	_, _ = s.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: bk, Policy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
	_, _ = s.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: bk})
	_, _ = s.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: bk})
	_, _ = s.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: bk, PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{BlockPublicAcls: aws.Bool(true)}})
	_, _ = s.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: bk})
	_, _ = s.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: bk, OwnershipControls: &s3types.OwnershipControls{
		Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}}}})
	_, _ = s.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: bk})
	_, _ = s.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: bk, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
		Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAes256}}}}})
	_, _ = s.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bk})
	_, _ = s.PutObject(ctx, &s3.PutObjectInput{Bucket: bk, Key: aws.String("a/b.csv"), Body: strings.NewReader("1\n")})
	_, _ = s.GetObject(ctx, &s3.GetObjectInput{Bucket: bk, Key: aws.String("a/b.csv")})
	_, _ = s.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: bk})
	_, _ = s.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bk, Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String("a/b.csv")}}}})
	_, _ = i.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("r"), AssumeRolePolicyDocument: aws.String("{}")})
	_, _ = i.GetAccountAuthorizationDetails(ctx, &iam.GetAccountAuthorizationDetailsInput{})
	_, _ = st.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/r"), RoleSessionName: aws.String("s")})
	_, _ = rs.DescribeClusters(ctx, &redshift.DescribeClustersInput{})
	_, _ = rs.ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{ClusterIdentifier: aws.String("c"), AddIamRoles: []string{"arn:aws:iam::111111111111:role/r"}})
	// A JSON-protocol request, which xacctd does not send but the proxy understands.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAFAULTPROXYTEST00/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}

	want := []string{
		"s3:CreateBucket", "s3:PutBucketTagging", "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
		"s3:GetPublicAccessBlock", "s3:PutPublicAccessBlock", "s3:GetBucketOwnershipControls", "s3:PutBucketOwnershipControls",
		"s3:GetBucketEncryption", "s3:PutBucketEncryption", "s3:ListObjectsV2", "s3:PutObject", "s3:GetObject", "s3:HeadBucket",
		"s3:DeleteObjects", "iam:CreateRole", "iam:GetAccountAuthorizationDetails", "sts:AssumeRole",
		"redshift:DescribeClusters", "redshift:ModifyClusterIamRoles", "dynamodb:ListTables",
	}
	var got []string
	for _, e := range p.Requests() {
		got = append(got, e.Op)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	if n := len(b.requests()); n != len(want) {
		t.Errorf("backend saw %d requests, want %d (all forwarded)", n, len(want))
	}
}

// TestFaultsAsTheSDKSeesThem: each fault reaches the SDK as the error AWS would send, the SDK
// treats it as retryable (it tries MaxAttempts times), and nothing reaches the backend.
func TestFaultsAsTheSDKSeesThem(t *testing.T) {
	tests := []struct {
		name       string
		fault      Fault
		call       func(context.Context, aws.Config) error
		op         string
		wantCode   string // "" when there is no HTTP answer
		wantStatus int
	}{
		{"s3 slow down", SlowDown, putPolicy, "s3:PutBucketPolicy", "SlowDown", 503},
		{"s3 internal error", InternalError, putPolicy, "s3:PutBucketPolicy", "InternalError", 500},
		{"s3 throttling is slow down", Throttling, putPolicy, "s3:PutBucketPolicy", "SlowDown", 503},
		{"s3 drop", Drop, putPolicy, "s3:PutBucketPolicy", "", 0},
		{"iam throttling", Throttling, createRole, "iam:CreateRole", "Throttling", 400},
		{"iam unavailable", SlowDown, createRole, "iam:CreateRole", "ServiceUnavailable", 503},
		{"iam internal", InternalError, createRole, "iam:CreateRole", "InternalFailure", 500},
		{"iam drop", Drop, createRole, "iam:CreateRole", "", 0},
		{"redshift throttling", Throttling, modifyRoles, "redshift:ModifyClusterIamRoles", "Throttling", 400},
		{"sts throttling", Throttling, assumeRole, "sts:AssumeRole", "Throttling", 400},
	}
	const attempts = 3
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			p := start(t, b.URL, Options{Rules: []Rule{{Op: tt.op, Fault: tt.fault}}})
			err := tt.call(context.Background(), sdkConfig(p.URL, attempts))
			if err == nil {
				t.Fatal("call succeeded through a fault")
			}
			var ae smithy.APIError
			var re *smithyhttp.ResponseError
			switch {
			case tt.wantCode == "" && errors.As(err, &ae):
				t.Errorf("got an API error %s, want a connection error: %v", ae.ErrorCode(), err)
			case tt.wantCode != "" && (!errors.As(err, &ae) || ae.ErrorCode() != tt.wantCode):
				t.Errorf("error %v: want code %s", err, tt.wantCode)
			case tt.wantCode != "" && (!errors.As(err, &re) || re.HTTPStatusCode() != tt.wantStatus):
				t.Errorf("error %v: want HTTP %d", err, tt.wantStatus)
			}
			s := p.Stats()
			if s.SeenByOp[tt.op] != attempts || s.FaultedByOp[tt.op] != attempts {
				t.Errorf("seen %d, faulted %d of %s; want %d each (the SDK retries it)", s.SeenByOp[tt.op], s.FaultedByOp[tt.op], tt.op, attempts)
			}
			if got := b.requests(); len(got) != 0 {
				t.Errorf("faulted requests reached the backend: %q", got)
			}
			var got []int
			for _, e := range p.Requests() {
				got = append(got, e.Attempt)
				if e.Invocation == "" || e.Invocation != p.Requests()[0].Invocation {
					t.Errorf("invocation id %q, want one non-empty id for the call and its retries", e.Invocation)
				}
			}
			if diff := cmp.Diff([]int{1, 2, 3}, got); diff != "" {
				t.Errorf("attempts (-want +got):\n%s", diff)
			}
			if s.Calls != 1 || s.Attempts != attempts {
				t.Errorf("stats: %d calls, %d attempts; want 1, %d", s.Calls, s.Attempts, attempts)
			}
		})
	}
}

func putPolicy(ctx context.Context, cfg aws.Config) error {
	_, err := s3Client(cfg).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("b"), Policy: aws.String("{}")})
	return err
}

func createRole(ctx context.Context, cfg aws.Config) error {
	_, err := iam.NewFromConfig(cfg).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("r"), AssumeRolePolicyDocument: aws.String("{}")})
	return err
}

func modifyRoles(ctx context.Context, cfg aws.Config) error {
	_, err := redshift.NewFromConfig(cfg).ModifyClusterIamRoles(ctx, &redshift.ModifyClusterIamRolesInput{ClusterIdentifier: aws.String("c")})
	return err
}

func assumeRole(ctx context.Context, cfg aws.Config) error {
	_, err := sts.NewFromConfig(cfg).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/r"), RoleSessionName: aws.String("s")})
	return err
}

// TestPassThrough: without a fault the request reaches the backend unchanged.
func TestPassThrough(t *testing.T) {
	b := newBackend(t)
	p := start(t, b.URL, Options{Rules: []Rule{{Op: "iam:*", Fault: Throttling}}}) // another service's rule
	doc := `{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}`
	_, err := s3Client(sdkConfig(p.URL, 1)).PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String("b"), Policy: aws.String(doc)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"PUT /b?policy= " + doc}, b.requests()); diff != "" {
		t.Errorf("backend (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Stats{Seen: 1, SeenByOp: map[string]int{"s3:PutBucketPolicy": 1}, FaultedByOp: map[string]int{}, Calls: 1, Attempts: 1}, p.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestSkipTimesPath: Skip lets requests through, Times ends the faults, Path narrows them.
func TestSkipTimesPath(t *testing.T) {
	b := newBackend(t)
	p := start(t, b.URL, Options{Rules: []Rule{{Op: "s3:PutBucketPolicy", Path: "/hit", Skip: 1, Times: 2, Fault: SlowDown}}})
	cfg := sdkConfig(p.URL, 1)
	for _, bucket := range []string{"hit", "miss", "hit", "hit", "hit", "hit-not"} {
		_, _ = s3Client(cfg).PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String("{}")})
	}
	var got []Fault
	for _, e := range p.Requests() {
		got = append(got, e.Fault)
	}
	if diff := cmp.Diff([]Fault{0, 0, SlowDown, SlowDown, 0, 0}, got); diff != "" {
		t.Errorf("faults (-want +got):\n%s", diff)
	}
	if n := len(b.requests()); n != 4 {
		t.Errorf("backend saw %d requests, want 4", n)
	}
}

// TestAfterForward: the operation reaches the backend, the client gets the fault.
func TestAfterForward(t *testing.T) {
	b := newBackend(t)
	p := start(t, b.URL, Options{Rules: []Rule{{Op: "iam:CreateRole", Fault: InternalError, AfterForward: true, Times: 1}}})
	err := createRole(context.Background(), sdkConfig(p.URL, 1))
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InternalFailure" {
		t.Errorf("error %v, want InternalFailure", err)
	}
	if got := b.requests(); len(got) != 1 || !strings.Contains(got[0], "Action=CreateRole") {
		t.Errorf("backend saw %q, want the CreateRole", got)
	}
}

// TestProbabilitySeeded: the same seed gives the same faults per operation, however the
// requests of different operations interleave; the share of faults is near the probability;
// another seed gives other faults.
func TestProbabilitySeeded(t *testing.T) {
	b := newBackend(t)
	const n, prob = 300, 0.25
	// pattern sends n ListRoles and n CreateRole, interleaved or one after the other, and
	// returns the faults each operation met in order.
	pattern := func(seed uint64, interleaved bool) map[string][]Fault {
		p := start(t, b.URL, Options{Seed: seed, Rules: []Rule{{Probability: prob, Fault: Throttling}}})
		var actions []string
		for i := range 2 * n {
			switch {
			case interleaved && i%2 == 0, !interleaved && i < n:
				actions = append(actions, "ListRoles")
			default:
				actions = append(actions, "CreateRole")
			}
		}
		for _, a := range actions {
			resp, err := rawQuery(context.Background(), p.URL, "iam", a)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		out := map[string][]Fault{}
		for _, e := range p.Requests() {
			out[e.Op] = append(out[e.Op], e.Fault)
		}
		return out
	}
	a, again, other := pattern(7, true), pattern(7, false), pattern(8, true)
	if diff := cmp.Diff(a, again); diff != "" {
		t.Errorf("same seed, different faults (-interleaved +in sequence):\n%s", diff)
	}
	if cmp.Equal(a, other) {
		t.Error("seeds 7 and 8 gave the same faults")
	}
	if cmp.Equal(a["iam:ListRoles"], a["iam:CreateRole"]) {
		t.Error("two operations met the same faults: the draws do not depend on the operation")
	}
	for op, faults := range a {
		faulted := 0
		for _, f := range faults {
			if f != 0 {
				faulted++
			}
		}
		if share := float64(faulted) / n; len(faults) != n || share < prob-0.07 || share > prob+0.07 {
			t.Errorf("%s: %d of %d requests faulted (%.2f), want about %.2f of %d", op, faulted, len(faults), share, prob, n)
		}
	}
}

// TestResendMeetsSameFault: a request net/http sends again (same SDK invocation and attempt)
// meets the fault its first sending met, so resends, which depend on connection reuse, do
// not change which faults the later requests meet.
func TestResendMeetsSameFault(t *testing.T) {
	b := newBackend(t)
	p := start(t, b.URL, Options{Seed: 1, Rules: []Rule{{Probability: 0.5, Fault: Throttling}}})
	send := func(inv string, attempt int) Fault {
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/", strings.NewReader("Action=ListRoles&Version=2010-05-08"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAFAULTPROXYTEST00/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00")
		req.Header.Set("Amz-Sdk-Invocation-Id", inv)
		req.Header.Set("Amz-Sdk-Request", fmt.Sprintf("attempt=%d; max=3", attempt))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		log := p.Requests()
		return log[len(log)-1].Fault
	}
	faulted := 0
	for i := range 40 {
		inv := fmt.Sprint("call-", i)
		for attempt := 1; attempt <= 2; attempt++ {
			first, again := send(inv, attempt), send(inv, attempt)
			if first != again {
				t.Errorf("%s attempt %d: %s, resent: %s", inv, attempt, first, again)
			}
			if first != 0 {
				faulted++
			}
		}
	}
	if faulted == 0 || faulted == 80 {
		t.Errorf("%d of 80 attempts faulted at probability 0.5", faulted)
	}
}

// TestDownRefusesUntilUp: from the selected request on, connections are refused (as when the
// endpoint's process is stopped) until Up; then the same URL works again.
func TestDownRefusesUntilUp(t *testing.T) {
	b := newBackend(t)
	p := start(t, b.URL, Options{Rules: []Rule{{Skip: 2, Times: 1, Fault: Down}}})
	ctx := context.Background()
	for i := range 2 {
		resp, err := rawQuery(ctx, p.URL, "iam", "ListRoles")
		if err != nil {
			t.Fatalf("request %d before the fault: %v", i+1, err)
		}
		resp.Body.Close()
	}
	if resp, err := rawQuery(ctx, p.URL, "iam", "CreateRole"); err == nil {
		resp.Body.Close()
		t.Fatalf("the request that takes the proxy down got an answer: %s", resp.Status)
	}
	addr := strings.TrimPrefix(p.URL, "http://")
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while down: %v, want connection refused", err)
	}
	if _, err := rawQuery(ctx, p.URL, "iam", "ListRoles"); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("request while down: %v, want connection refused", err)
	}
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	resp, err := rawQuery(ctx, p.URL, "iam", "ListRoles")
	if err != nil {
		t.Fatalf("request after Up: %v", err)
	}
	resp.Body.Close()
	s := p.Stats()
	if s.Seen != 4 || s.Faulted != 1 || len(b.requests()) != 3 {
		t.Errorf("seen %d, faulted %d, forwarded %d; want 4, 1, 3 (refused connections are not seen)", s.Seen, s.Faulted, len(b.requests()))
	}
}

// TestCloseLeavesNoGoroutines: Close stops the server, the handlers and idle connections,
// also after a Down/Up cycle and with requests in flight.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	p, err := Start(slow.URL, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	p.Down()
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if resp, err := client.Get(p.URL + "/b/k"); err == nil {
				resp.Body.Close()
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // the requests are in flight at the backend
	began := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close took %v with requests in flight", d)
	}
	wg.Wait()
	client.CloseIdleConnections()
	slow.Close()
	for deadline := time.Now().Add(3 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestMatchByAccessKey: Match narrows a rule, here to one session's access key (one account
// of a client that works in several).
func TestMatchByAccessKey(t *testing.T) {
	b := newBackend(t)
	const other = "AKIAFAULTPROXYOTHER0"
	p := start(t, b.URL, Options{Rules: []Rule{{Op: "iam:CreateRole", Match: func(r Request) bool { return r.AccessKey == other }, Fault: Throttling}}})
	mine, theirs := sdkConfig(p.URL, 1), sdkConfig(p.URL, 1)
	theirs.Credentials = credentials.NewStaticCredentialsProvider(other, "secret", "")
	_ = createRole(context.Background(), mine)
	_ = createRole(context.Background(), theirs)
	var got []string
	for _, e := range p.Requests() {
		got = append(got, e.AccessKey+" "+e.Fault.String())
	}
	if diff := cmp.Diff([]string{"AKIAFAULTPROXYTEST00 none", other + " throttling"}, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
