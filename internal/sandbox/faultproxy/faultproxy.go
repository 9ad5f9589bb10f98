// Package faultproxy is a fault-injecting HTTP proxy for tests of AWS clients. It listens on
// loopback in front of an AWS endpoint (the sandbox's moto) and, by rules chosen per AWS
// operation and by count or seeded chance, answers requests with the errors AWS sends under
// load (503 SlowDown, 500 InternalError, 400 Throttling, each in the request's protocol),
// resets connections, or stops listening altogether as if the endpoint had gone down. It
// counts the requests it sees and the faults it injects.
//
// Point the SDK at it with AWS_ENDPOINT_URL=p.URL before the SDK configuration is loaded.
package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Fault is what the proxy does to a request instead of (or, with AfterForward, after)
// forwarding it.
type Fault int

// Faults.
const (
	// SlowDown answers HTTP 503: S3's SlowDown, ServiceUnavailable in query and JSON protocols.
	SlowDown Fault = iota + 1
	// InternalError answers HTTP 500: S3's InternalError, InternalFailure elsewhere.
	InternalError
	// Throttling answers HTTP 400 Throttling (query protocol) or ThrottlingException (JSON);
	// S3 has no throttling code of its own and gets 503 SlowDown.
	Throttling
	// Drop resets the connection without an answer.
	Drop
	// Down resets the connection and stops listening: every later connection is refused
	// until Up, as when the endpoint's process is stopped.
	Down
)

func (f Fault) String() string {
	switch f {
	case 0:
		return "none"
	case SlowDown:
		return "slow-down"
	case InternalError:
		return "internal-error"
	case Throttling:
		return "throttling"
	case Drop:
		return "drop"
	case Down:
		return "down"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// Rule selects requests and says which fault they get. Rules are tried in order; the first
// one that selects a request and decides to fault it applies.
type Rule struct {
	// Op selects requests by "service:Operation" ("s3:PutBucketPolicy"); "iam:*" selects a
	// whole service; "" selects every request.
	Op string
	// Path, when set, narrows the selection to that path and below ("/bucket").
	Path string
	// Match, when set, narrows the selection to the requests it accepts. It runs under the
	// proxy's lock: it must not call the proxy.
	Match func(Request) bool
	// Skip lets the first Skip selected requests through.
	Skip int
	// Times is how many requests the rule faults at most; 0 means no limit.
	Times int
	// Probability is the chance that an eligible request is faulted; 0 means every eligible
	// request is. The draw is a seeded function of the rule, the request (operation, path,
	// query and body), which call of that identical request it belongs to and its SDK
	// attempt: clients whose requests interleave differently from run to run (accounts and
	// buckets worked on in parallel) meet the same faults, and a resend by net/http meets
	// the fault of the attempt it resends.
	Probability float64
	Fault       Fault
	// AfterForward sends the request on and then faults the answer: the operation takes
	// effect but the client never learns it (a lost response).
	AfterForward bool
}

func (r *Rule) selects(req Request) bool {
	switch {
	case r.Match != nil && !r.Match(req):
		return false
	case r.Path != "" && req.Path != r.Path && !strings.HasPrefix(req.Path, strings.TrimSuffix(r.Path, "/")+"/"):
		return false
	case r.Op == "":
		return true
	case strings.HasSuffix(r.Op, ":*"):
		return req.Service == strings.TrimSuffix(r.Op, ":*")
	}
	return req.Op() == r.Op
}

type ruleState struct {
	Rule
	selected, faulted int
}

// Entry is one request the proxy received.
type Entry struct {
	Op        string
	Path      string
	AccessKey string
	Fault     Fault // 0: forwarded untouched
	// Invocation and Attempt are the SDK's amz-sdk-invocation-id (one per API call, kept
	// across its retries) and the attempt number from amz-sdk-request; "" and 0 when absent.
	// The same invocation and attempt twice is a resend by net/http, not by the SDK.
	Invocation string
	Attempt    int
}

// Stats counts requests received and faults injected. Connections refused while the proxy
// is down are not seen and not counted.
type Stats struct {
	Seen, Faulted         int
	SeenByOp, FaultedByOp map[string]int
	// Calls counts API calls (SDK invocations) and Attempts their attempts, as the SDK sends
	// them; Seen - Attempts requests were resent by net/http on its own. Requests without
	// the SDK's headers count as a call and an attempt each.
	Calls, Attempts int
}

// Options configures Start.
type Options struct {
	Seed  uint64 // seeds the draws of Rule.Probability
	Rules []Rule
	Logf  func(string, ...any) // nil discards
}

// Proxy is a running fault-injecting proxy. Close it when done.
type Proxy struct {
	URL string // http://127.0.0.1:PORT

	target    *url.URL
	addr      string
	transport *http.Transport
	logf      func(string, ...any)
	inflight  sync.WaitGroup // handlers; Close waits for them

	mu        sync.Mutex
	seed      uint64
	rules     []*ruleState
	calls     map[string]map[string]uint64 // request identity -> SDK invocation -> which call
	log       []Entry
	srv       *http.Server // nil while down
	serveDone chan struct{}
	closed    bool
}

// Start listens on 127.0.0.1 at a free port and proxies to target ("http://127.0.0.1:PORT").
func Start(target string, opts Options) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an absolute URL", target)
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		URL:    "http://" + ln.Addr().String(),
		target: u, addr: ln.Addr().String(), logf: opts.Logf,
		// Proxy nil: never an HTTP_PROXY from the environment, the target is on loopback.
		transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 32, ResponseHeaderTimeout: time.Minute},
		seed:      opts.Seed,
		calls:     map[string]map[string]uint64{},
	}
	p.setRulesLocked(opts.Rules)
	p.serve(ln)
	return p, nil
}

// SetRules replaces the rules; their counts (Skip, Times) start again from zero.
func (p *Proxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setRulesLocked(rules)
}

func (p *Proxy) setRulesLocked(rules []Rule) {
	p.rules = nil
	for _, r := range rules {
		p.rules = append(p.rules, &ruleState{Rule: r})
	}
}

// Stats returns what the proxy has seen and injected so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{SeenByOp: map[string]int{}, FaultedByOp: map[string]int{}}
	calls, attempts := map[string]bool{}, map[string]bool{}
	for i, e := range p.log {
		id := e.Invocation
		if id == "" {
			id = fmt.Sprint("#", i)
		}
		calls[id] = true
		attempts[fmt.Sprint(id, "/", e.Attempt)] = true
		s.Seen++
		s.SeenByOp[e.Op]++
		if e.Fault != 0 {
			s.Faulted++
			s.FaultedByOp[e.Op]++
		}
	}
	s.Calls, s.Attempts = len(calls), len(attempts)
	return s
}

// Requests returns every request received so far, in the order received.
func (p *Proxy) Requests() []Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Entry(nil), p.log...)
}

func (p *Proxy) serve(ln net.Listener) {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(logfWriter(p.logf), "faultproxy: ", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns when Down or Close closes the server
	}()
	p.srv, p.serveDone = srv, done
}

// Down stops listening and closes every connection: new connections are refused until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	srv, done := p.srv, p.serveDone
	p.srv = nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-done
	p.logf("faultproxy: down")
}

// Up listens again at the same address after Down.
func (p *Proxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: up after close")
	}
	if p.srv != nil {
		return nil
	}
	// The port was ours a moment ago; the kernel may take a moment to let it go.
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			p.logf("faultproxy: up")
			return nil
		}
	}
	return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
}

// Close stops the proxy and waits for its handlers.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.Down()
	p.inflight.Wait()
	p.transport.CloseIdleConnections()
	return nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		reset(w)
		return
	}
	p.inflight.Add(1)
	p.mu.Unlock()
	defer p.inflight.Done()

	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		reset(w)
		return
	}
	req := classify(r, body)
	h := fnv.New64a()
	_, _ = h.Write(body)
	fault, after := p.decide(req, fmt.Sprintf("%s %s?%s %x", req.Op(), r.URL.Path, r.URL.RawQuery, h.Sum64()))
	if fault != 0 && !after {
		p.inject(w, req, fault)
		return
	}
	resp, err := p.forward(r, body)
	if err != nil {
		p.logf("faultproxy: %s: forward: %v", req.Op(), err)
		if fault != 0 {
			p.inject(w, req, fault)
			return
		}
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if fault != 0 {
		_, _ = io.Copy(io.Discard, resp.Body)
		p.inject(w, req, fault)
		return
	}
	for k, vs := range resp.Header {
		if !hopByHop(k) {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// decide records the request and picks its fault, if any; identity tells identical
// requests (retries) from others.
func (p *Proxy) decide(req Request, identity string) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Which call of this identical request this is; the retries and resends of one call
	// share it.
	calls := p.calls[identity]
	if calls == nil {
		calls = map[string]uint64{}
		p.calls[identity] = calls
	}
	inv := req.Invocation
	if inv == "" {
		inv = fmt.Sprint("#", len(p.log))
	}
	call, ok := calls[inv]
	if !ok {
		call = uint64(len(calls))
		calls[inv] = call
	}
	var fault Fault
	var after bool
	for i, r := range p.rules {
		if !r.selects(req) {
			continue
		}
		r.selected++
		if r.selected <= r.Skip || (r.Times > 0 && r.faulted >= r.Times) {
			continue
		}
		if r.Probability > 0 && r.Probability < 1 && draw(p.seed, i, identity, call, req.Attempt) >= r.Probability {
			continue
		}
		r.faulted++
		fault, after = r.Fault, r.AfterForward
		break
	}
	p.log = append(p.log, Entry{Op: req.Op(), Path: req.Path, AccessKey: req.AccessKey, Fault: fault, Invocation: req.Invocation, Attempt: req.Attempt})
	if fault != 0 {
		p.logf("faultproxy: #%d %s: %s (after forward: %t)", len(p.log), req.Op(), fault, after)
	}
	return fault, after
}

// draw is a uniform number in [0, 1) determined by its arguments.
func draw(seed uint64, rule int, key string, call uint64, attempt int) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	x := seed ^ h.Sum64() ^ uint64(rule)<<56 ^ uint64(attempt)<<48 ^ call*0x9e3779b97f4a7c15
	for range 2 { // splitmix64's finalizer
		x ^= x >> 30
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 27
		x *= 0x94d049bb133111eb
		x ^= x >> 31
	}
	return float64(x>>11) / (1 << 53)
}

func (p *Proxy) forward(r *http.Request, body []byte) (*http.Response, error) {
	u := *p.target
	u.Path, u.RawPath, u.RawQuery = r.URL.Path, r.URL.RawPath, r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		if !hopByHop(k) && k != "Expect" {
			out.Header[k] = vs
		}
	}
	out.ContentLength = int64(len(body))
	return p.transport.RoundTrip(out)
}

func (p *Proxy) inject(w http.ResponseWriter, req Request, f Fault) {
	switch f {
	case Drop:
		reset(w)
		return
	case Down:
		reset(w)
		p.Down()
		return
	}
	status, ctype, body := errorResponse(req, f)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Amzn-RequestId", "faultproxy")
	if req.Protocol == JSON {
		w.Header().Set("X-Amzn-ErrorType", errorCode(req, f))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// reset closes the client's connection with a TCP reset, without an answer.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faultproxy: the connection cannot be taken over") // HTTP/1 only, which is all it serves
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func errorCode(req Request, f Fault) string {
	switch {
	case req.Protocol == RESTXML && f == InternalError:
		return "InternalError"
	case req.Protocol == RESTXML:
		return "SlowDown"
	case f == Throttling && req.Protocol == JSON:
		return "ThrottlingException"
	case f == Throttling:
		return "Throttling"
	case f == SlowDown && req.Protocol == JSON:
		return "ServiceUnavailableException"
	case f == SlowDown:
		return "ServiceUnavailable"
	}
	return "InternalFailure"
}

// errorResponse is the answer AWS gives for f, in the request's protocol.
func errorResponse(req Request, f Fault) (status int, contentType string, body []byte) {
	code := errorCode(req, f)
	status = http.StatusServiceUnavailable
	switch {
	case f == InternalError:
		status = http.StatusInternalServerError
	case f == Throttling && req.Protocol != RESTXML:
		status = http.StatusBadRequest
	}
	msg := map[string]string{
		"SlowDown":                    "Please reduce your request rate.",
		"InternalError":               "We encountered an internal error. Please try again.",
		"Throttling":                  "Rate exceeded",
		"ThrottlingException":         "Rate exceeded",
		"ServiceUnavailable":          "Service is unavailable. Please try again.",
		"ServiceUnavailableException": "Service is unavailable. Please try again.",
		"InternalFailure":             "The request processing has failed because of an unknown error.",
	}[code]
	switch req.Protocol {
	case RESTXML:
		return status, "application/xml", fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>%s</Code><Message>%s</Message><RequestId>faultproxy</RequestId><HostId>faultproxy</HostId></Error>`, code, msg)
	case JSON:
		return status, "application/x-amz-json-1.1", fmt.Appendf(nil, `{"__type":%q,"message":%q}`, code, msg)
	}
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	return status, "text/xml", fmt.Appendf(nil, `<ErrorResponse><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>faultproxy</RequestId></ErrorResponse>`, typ, code, msg)
}

func hopByHop(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

type logfWriter func(string, ...any)

func (f logfWriter) Write(b []byte) (int, error) {
	f("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
