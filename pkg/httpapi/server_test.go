package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/xacctd/xacctd/pkg/httpapi"
)

// source is a Source the tests steer.
type source struct {
	mu     sync.Mutex
	alive  bool
	ready  bool
	reason string
	status any
	block  chan struct{} // when set, Status waits for it to close
}

func (s *source) Alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alive
}

func (s *source) Ready() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready, s.reason
}

func (s *source) Status() any {
	s.mu.Lock()
	st, block := s.status, s.block
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	return st
}

func (s *source) set(f func(s *source)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func healthy() *source {
	return &source{alive: true, ready: true, status: map[string]any{"version": "1.2.3", "pairs": []string{"sales"}}}
}

func testRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "xacctd_test_total", Help: "A test counter."})
	c.Add(3)
	reg.MustRegister(c)
	return reg
}

// start runs a server on a free loopback port and shuts it down when the test ends.
func start(t *testing.T, src httpapi.Source, g prometheus.Gatherer, log *zap.Logger) *httpapi.Server {
	t.Helper()
	s := httpapi.New("127.0.0.1:0", src, g, log)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

type response struct {
	Code        int
	Body        string
	ContentType string
	Allow       string
}

func do(t *testing.T, method, url string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Code: res.StatusCode, Body: string(b), ContentType: res.Header.Get("Content-Type"), Allow: res.Header.Get("Allow")}
}

const (
	textType = "text/plain; charset=utf-8"
	index    = `xacctd
/healthz  liveness: 200 while the process works
/readyz   readiness: 200 when the config is loaded and the last reconcile did not fail
/status   status document (JSON)
/metrics  Prometheus metrics
`
	notAllowed = "method not allowed: use GET or HEAD\n"
)

func TestRoutes(t *testing.T) {
	tests := []struct {
		name   string
		source func(s *source)
		method string
		path   string
		want   response
	}{
		{name: "healthz", method: "GET", path: "/healthz", want: response{Code: 200, Body: "ok\n", ContentType: textType}},
		{name: "healthz wedged", source: func(s *source) { s.alive = false }, method: "GET", path: "/healthz",
			want: response{Code: 503, Body: "not alive\n", ContentType: textType}},
		{name: "healthz head", method: "HEAD", path: "/healthz", want: response{Code: 200, ContentType: textType}},
		{name: "readyz", method: "GET", path: "/readyz", want: response{Code: 200, Body: "ready\n", ContentType: textType}},
		{name: "readyz not ready", source: func(s *source) { s.ready, s.reason = false, "last reconcile failed" }, method: "GET", path: "/readyz",
			want: response{Code: 503, Body: "not ready: last reconcile failed\n", ContentType: textType}},
		{name: "readyz not ready without reason", source: func(s *source) { s.ready = false }, method: "GET", path: "/readyz",
			want: response{Code: 503, Body: "not ready: not ready\n", ContentType: textType}},
		{name: "readyz head not ready", source: func(s *source) { s.ready = false }, method: "HEAD", path: "/readyz",
			want: response{Code: 503, ContentType: textType}},
		{name: "status", method: "GET", path: "/status", want: response{Code: 200, ContentType: "application/json",
			Body: "{\n  \"pairs\": [\n    \"sales\"\n  ],\n  \"version\": \"1.2.3\"\n}\n"}},
		{name: "status head", method: "HEAD", path: "/status", want: response{Code: 200, ContentType: "application/json"}},
		{name: "status not marshalable", source: func(s *source) { s.status = map[string]any{"bad": make(chan int)} }, method: "GET", path: "/status",
			want: response{Code: 500, Body: "status unavailable\n", ContentType: textType}},
		{name: "status nil", source: func(s *source) { s.status = nil }, method: "GET", path: "/status",
			want: response{Code: 200, Body: "null\n", ContentType: "application/json"}},
		{name: "index", method: "GET", path: "/", want: response{Code: 200, Body: index, ContentType: textType}},
		{name: "index head", method: "HEAD", path: "/", want: response{Code: 200, ContentType: textType}},
		{name: "unknown", method: "GET", path: "/nope", want: response{Code: 404, Body: "404 page not found\n", ContentType: textType}},
		{name: "subpath", method: "GET", path: "/healthz/x", want: response{Code: 404, Body: "404 page not found\n", ContentType: textType}},
		{name: "post", method: "POST", path: "/healthz", want: response{Code: 405, Body: notAllowed, ContentType: textType, Allow: "GET, HEAD"}},
		{name: "put", method: "PUT", path: "/status", want: response{Code: 405, Body: notAllowed, ContentType: textType, Allow: "GET, HEAD"}},
		{name: "delete", method: "DELETE", path: "/metrics", want: response{Code: 405, Body: notAllowed, ContentType: textType, Allow: "GET, HEAD"}},
		{name: "patch index", method: "PATCH", path: "/", want: response{Code: 405, Body: notAllowed, ContentType: textType, Allow: "GET, HEAD"}},
		{name: "options", method: "OPTIONS", path: "/readyz", want: response{Code: 405, Body: notAllowed, ContentType: textType, Allow: "GET, HEAD"}},
		{name: "post unknown", method: "POST", path: "/nope", want: response{Code: 405, Body: notAllowed, ContentType: textType, Allow: "GET, HEAD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := healthy()
			if tt.source != nil {
				src.set(tt.source)
			}
			s := start(t, src, testRegistry(t), zaptest.NewLogger(t))
			got := do(t, tt.method, "http://"+s.Addr()+tt.path)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tt.method, tt.path, diff)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	s := start(t, healthy(), testRegistry(t), zaptest.NewLogger(t))
	got := do(t, "GET", "http://"+s.Addr()+"/metrics")
	if got.Code != 200 {
		t.Fatalf("code %d, want 200; body:\n%s", got.Code, got.Body)
	}
	if !strings.HasPrefix(got.ContentType, "text/plain") {
		t.Errorf("content type %q, want text/plain", got.ContentType)
	}
	for _, want := range []string{"# HELP xacctd_test_total A test counter.", "# TYPE xacctd_test_total counter", "xacctd_test_total 3"} {
		if !strings.Contains(got.Body, want) {
			t.Errorf("body lacks %q:\n%s", want, got.Body)
		}
	}
	head := do(t, "HEAD", "http://"+s.Addr()+"/metrics")
	if diff := cmp.Diff(response{Code: 200, ContentType: got.ContentType}, head); diff != "" {
		t.Errorf("HEAD /metrics (-want +got):\n%s", diff)
	}
}

// brokenCollector fails on every collection, as a collector reading a vanished file might.
type brokenCollector struct{ desc *prometheus.Desc }

func (c brokenCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c brokenCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(c.desc, errors.New("collector broke"))
}

// A gatherer that fails in part still serves what it has, and the error goes to the log.
func TestMetricsGatherError(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	reg := testRegistry(t)
	reg.MustRegister(brokenCollector{desc: prometheus.NewDesc("xacctd_broken", "Always fails.", nil, nil)})
	s := start(t, healthy(), reg, zap.New(core))
	got := do(t, "GET", "http://"+s.Addr()+"/metrics")
	if got.Code != 200 || !strings.Contains(got.Body, "xacctd_test_total 3") {
		t.Errorf("got %d:\n%s\nwant 200 with the metrics gathered", got.Code, got.Body)
	}
	entries := logs.FilterField(zap.String("event", "metrics.gather_failed")).All()
	if len(entries) != 1 {
		t.Fatalf("%d metrics.gather_failed lines, want 1; all: %v", len(entries), logs.All())
	}
	if e := entries[0].ContextMap()["error"]; !strings.Contains(e.(string), "collector broke") {
		t.Errorf("error field %q lacks the gather error", e)
	}
}

func TestStatusErrorLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	src := healthy()
	src.status = func() {}
	s := start(t, src, testRegistry(t), zap.New(core))
	if got := do(t, "GET", "http://"+s.Addr()+"/status"); got.Code != 500 {
		t.Errorf("code %d, want 500", got.Code)
	}
	if n := logs.FilterField(zap.String("event", "http.status_failed")).Len(); n != 1 {
		t.Errorf("%d http.status_failed lines, want 1", n)
	}
}

func TestReadinessFlips(t *testing.T) {
	src := healthy()
	src.ready, src.reason = false, "config not loaded"
	s := start(t, src, testRegistry(t), zaptest.NewLogger(t))
	url := "http://" + s.Addr() + "/readyz"

	steps := []struct {
		give       func(s *source)
		wantCode   int
		wantBody   string
		wantHealth int
	}{
		{give: func(*source) {}, wantCode: 503, wantBody: "not ready: config not loaded\n", wantHealth: 200},
		{give: func(s *source) { s.ready, s.reason = true, "" }, wantCode: 200, wantBody: "ready\n", wantHealth: 200},
		{give: func(s *source) { s.ready, s.reason = false, "reconcile failed: 2 changes failed" }, wantCode: 503,
			wantBody: "not ready: reconcile failed: 2 changes failed\n", wantHealth: 200},
		{give: func(s *source) { s.ready, s.reason = true, "" }, wantCode: 200, wantBody: "ready\n", wantHealth: 200},
		{give: func(s *source) { s.alive = false }, wantCode: 200, wantBody: "ready\n", wantHealth: 503},
	}
	for i, st := range steps {
		src.set(st.give)
		got := do(t, "GET", url)
		if diff := cmp.Diff(response{Code: st.wantCode, Body: st.wantBody, ContentType: textType}, got); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", i, diff)
		}
		if h := do(t, "GET", "http://"+s.Addr()+"/healthz"); h.Code != st.wantHealth {
			t.Errorf("step %d: healthz %d, want %d", i, h.Code, st.wantHealth)
		}
	}
}

func TestStartLogsAddress(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s := start(t, healthy(), testRegistry(t), zap.New(core))
	entries := logs.FilterField(zap.String("event", "http.listening")).All()
	if len(entries) != 1 {
		t.Fatalf("%d http.listening lines, want 1", len(entries))
	}
	if diff := cmp.Diff(s.Addr(), entries[0].ContextMap()["address"]); diff != "" {
		t.Errorf("address field (-want +got):\n%s", diff)
	}
	if s.Addr() == "127.0.0.1:0" || !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr %q, want the bound port", s.Addr())
	}
}

func TestAddressInUse(t *testing.T) {
	first := start(t, healthy(), testRegistry(t), zaptest.NewLogger(t))
	second := httpapi.New(first.Addr(), healthy(), testRegistry(t), zaptest.NewLogger(t))
	err := second.Start()
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start on a used address: %v, want EADDRINUSE", err)
	}
	if !strings.Contains(err.Error(), first.Addr()) {
		t.Errorf("error %q does not name the address", err)
	}
	if second.Addr() != "" {
		t.Errorf("Addr after a failed Start: %q, want empty", second.Addr())
	}
	// Nothing started, so nothing to stop.
	if err := second.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after a failed Start: %v", err)
	}
}

func TestStartTwice(t *testing.T) {
	s := start(t, healthy(), testRegistry(t), zaptest.NewLogger(t))
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded, want an error")
	}
}

func TestShutdownBeforeStart(t *testing.T) {
	s := httpapi.New("127.0.0.1:0", healthy(), testRegistry(t), zaptest.NewLogger(t))
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
}

// Shutdown lets a request in flight finish, stops listening and leaves no server goroutine.
func TestShutdownGraceful(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	src := healthy()
	src.block = make(chan struct{})
	s := httpapi.New("127.0.0.1:0", src, testRegistry(t), zap.New(core))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()

	type result struct {
		code int
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + addr + "/status")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		inflight <- result{code: res.StatusCode}
	}()
	waitFor(t, "the request to reach the handler", func() bool { return strings.Contains(stacks(), "(*source).Status") })

	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(src.block)
	if r := <-inflight; r.err != nil || r.code != 200 {
		t.Errorf("in-flight request: code %d, err %v; want 200", r.code, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}

	http.DefaultClient.CloseIdleConnections()
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("server still answers after Shutdown")
	}
	noServerGoroutines(t)
	if n := logs.FilterField(zap.String("event", "http.failed")).Len(); n != 0 {
		t.Errorf("%d http.failed lines after a clean shutdown, want 0", n)
	}
}

// When the deadline passes with a request still running, Shutdown closes its connection and
// returns the deadline error, still without leaving goroutines behind.
func TestShutdownDeadline(t *testing.T) {
	src := healthy()
	src.block = make(chan struct{})
	s := httpapi.New("127.0.0.1:0", src, testRegistry(t), zaptest.NewLogger(t))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	inflight := make(chan error, 1)
	go func() {
		res, err := http.Get("http://" + s.Addr() + "/status")
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
		inflight <- err
	}()
	waitFor(t, "the request to reach the handler", func() bool { return strings.Contains(stacks(), "(*source).Status") })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want a deadline error", err)
	}
	if err := <-inflight; err == nil {
		t.Error("the cut-off request succeeded, want a connection error")
	}
	close(src.block) // the handler itself returns once its Source answers
	noServerGoroutines(t)
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noServerGoroutines checks that neither the Serve goroutine nor a connection goroutine is left.
// A goroutine may still be unwinding just after the channel Shutdown waits on is closed, hence
// the short wait.
func noServerGoroutines(t *testing.T) {
	t.Helper()
	leaked := func() string {
		st := stacks()
		for _, fn := range []string{"httpapi.(*Server).Start", "net/http.(*Server).Serve", "net/http.(*conn).serve"} {
			if strings.Contains(st, fn) {
				return fn
			}
		}
		return ""
	}
	deadline := time.Now().Add(2 * time.Second)
	for fn := leaked(); fn != ""; fn = leaked() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutine %s still running after Shutdown:\n%s", fn, stacks())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type panicking struct{ *source }

func (panicking) Alive() bool { panic("wedged") }

// net/http recovers a handler's panic and reports it through ErrorLog, which must reach zap.
func TestServerErrorsReachZap(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := start(t, panicking{healthy()}, testRegistry(t), zap.New(core))
	if res, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		_ = res.Body.Close()
		t.Fatalf("a panicking handler answered %d, want the connection dropped", res.StatusCode)
	}
	waitFor(t, "an http.error line", func() bool { return logs.FilterField(zap.String("event", "http.error")).Len() > 0 })
	e := logs.FilterField(zap.String("event", "http.error")).All()[0]
	if got := e.ContextMap()["error"].(string); !strings.Contains(got, "panic serving") || !strings.Contains(got, "wedged") {
		t.Errorf("error field %q, want the recovered panic", got)
	}
}
