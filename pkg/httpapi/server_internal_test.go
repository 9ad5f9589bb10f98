package httpapi

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

type alwaysReady struct{}

func (alwaysReady) Alive() bool           { return true }
func (alwaysReady) Ready() (bool, string) { return true, "" }
func (alwaysReady) Status() any           { return nil }

func TestServerLimits(t *testing.T) {
	s := New("127.0.0.1:0", alwaysReady{}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	type limits struct {
		ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
		MaxHeaderBytes                                            int
	}
	want := limits{5 * time.Second, 10 * time.Second, 30 * time.Second, 60 * time.Second, 64 * 1024}
	got := limits{s.srv.ReadHeaderTimeout, s.srv.ReadTimeout, s.srv.WriteTimeout, s.srv.IdleTimeout, s.srv.MaxHeaderBytes}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("limits (-want +got):\n%s", diff)
	}
	if s.srv.ErrorLog == nil {
		t.Error("http.Server.ErrorLog unset: net/http would log to stderr, outside zap")
	}
}

// The Serve goroutine has returned by the time Shutdown does.
func TestShutdownWaitsForServe(t *testing.T) {
	s := New("127.0.0.1:0", alwaysReady{}, prometheus.NewRegistry(), zaptest.NewLogger(t))
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	default:
		t.Error("Shutdown returned before the Serve goroutine ended")
	}
}
