// Package httpapi serves the daemon's read-only HTTP endpoint: liveness (/healthz), readiness
// (/readyz), a JSON status document (/status) and Prometheus metrics (/metrics). It serves
// nothing that changes state, so every method but GET and HEAD is refused.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/logging"
)

// Source is what the daemon exposes; the daemon implements it. Its methods are called from
// request goroutines, concurrently, and should answer quickly from state already at hand.
type Source interface {
	// Alive reports whether the process works; false only when it is wedged and a restart helps.
	Alive() bool
	// Ready reports whether the configuration is loaded and the last reconcile did not fail;
	// when not, reason says why, for an operator.
	Ready() (ok bool, reason string)
	// Status returns a JSON-marshalable document describing the daemon.
	Status() any
}

// Limits of the http.Server. The endpoint answers small requests from scrapers and probes, so
// anything slower or larger is a broken or hostile client.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
)

const index = `xacctd
/healthz  liveness: 200 while the process works
/readyz   readiness: 200 when the config is loaded and the last reconcile did not fail
/status   status document (JSON)
/metrics  Prometheus metrics
`

// Server is the HTTP endpoint. Start it once; Shutdown stops it and waits for its goroutine.
type Server struct {
	srv *http.Server
	log *zap.Logger

	mu   sync.Mutex
	ln   net.Listener
	done chan struct{} // closed when the Serve goroutine has returned; nil before Start
}

// New returns a server for addr (host:port; ":0" picks a free port) that answers from src and
// serves the metrics of gatherer. Nothing listens until Start.
func New(addr string, src Source, gatherer prometheus.Gatherer, log *zap.Logger) *Server {
	s := &Server{log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", healthz(src))
	mux.HandleFunc("/readyz", readyz(src))
	mux.HandleFunc("/status", s.status(src))
	mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
		ErrorLog:      errorLog{log: log, event: "metrics.gather_failed", msg: "metrics gathered with errors"},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, index)
	})
	s.srv = &http.Server{
		Addr:              addr,
		Handler:           readOnly(mux),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errorLog{log: log, event: "http.error", msg: "http server error"}.stdLog(),
	}
	return s
}

// Start binds the address now, so a port in use is an error for the caller, and serves in a
// goroutine that Shutdown stops.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("http server already started")
	}
	ln, err := net.Listen("tcp", s.srv.Addr)
	if err != nil {
		return fmt.Errorf("http listen on %s (another process uses it? change the listen address): %w", s.srv.Addr, err)
	}
	s.ln = ln
	s.done = make(chan struct{})
	s.log.Info("http endpoint listening", logging.Event("http.listening"), zap.String("address", ln.Addr().String()))
	go func(done chan<- struct{}) {
		defer close(done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http endpoint stopped serving", logging.Event("http.failed"), zap.Error(err))
		}
	}(s.done)
	return nil
}

// Addr returns the bound address, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Shutdown stops accepting connections, lets requests in flight finish until ctx ends (then
// closes their connections) and waits for the serving goroutine. It is a no-op before Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		// Requests still running past the deadline: drop their connections rather than leak them.
		_ = s.srv.Close()
		err = fmt.Errorf("http shutdown: %w", err)
	}
	<-done
	return err
}

// readOnly refuses every method but GET and HEAD, on every path, before routing.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			text(w, http.StatusMethodNotAllowed, "method not allowed: use GET or HEAD\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func healthz(src Source) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if !src.Alive() {
			text(w, http.StatusServiceUnavailable, "not alive\n")
			return
		}
		text(w, http.StatusOK, "ok\n")
	}
}

func readyz(src Source) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		ok, reason := src.Ready()
		if !ok {
			if reason == "" {
				reason = "not ready"
			}
			text(w, http.StatusServiceUnavailable, "not ready: "+strings.TrimSpace(reason)+"\n")
			return
		}
		text(w, http.StatusOK, "ready\n")
	}
}

func (s *Server) status(src Source) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		b, err := json.MarshalIndent(src.Status(), "", "  ")
		if err != nil {
			// A bug in the daemon's status type; the client only needs to know there is none.
			s.log.Error("status document not marshalled", logging.Event("http.status_failed"), zap.Error(err))
			text(w, http.StatusInternalServerError, "status unavailable\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(b, '\n')) // a write error means the client went away
	}
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body) // a write error means the client went away
}
