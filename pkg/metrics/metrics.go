// Package metrics holds xacctd's Prometheus metrics. They live on a private registry, not the
// global one, so tests and a config reload never collide with collectors registered elsewhere.
// Label values are names from the configuration (pairs, jobs, change types, AWS operations),
// never secrets.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "xacctd"

// Reconcile outcomes, the values of xacctd_reconcile_total{outcome}.
const (
	ReconcileInSync  = "in_sync" // nothing to do: AWS already matched the configuration
	ReconcileChanged = "changed" // changes were applied and AWS now matches
	ReconcileFailed  = "failed"  // AWS still differs: a change failed, a conflict, not in-sync
)

// JobSucceeded is the job outcome that moves xacctd_job_last_success_timestamp_seconds.
const JobSucceeded = "succeeded"

// Metrics is the daemon's set of collectors. Its methods are safe for concurrent use.
type Metrics struct {
	// Registry holds every xacctd metric plus the Go and process collectors; serve it with
	// promhttp.HandlerFor.
	Registry *prometheus.Registry

	now func() time.Time

	reconcileDuration    prometheus.Histogram
	reconcileTotal       *prometheus.CounterVec
	reconcileLastSuccess prometheus.Gauge
	changes              *prometheus.CounterVec
	drift                *prometheus.CounterVec
	apiCalls             *prometheus.CounterVec
	jobRuns              *prometheus.CounterVec
	jobDuration          *prometheus.HistogramVec
	jobLastSuccess       *prometheus.GaugeVec
	pairReady            *prometheus.GaugeVec
	reloadOK             prometheus.Gauge
	reloadLastSuccess    prometheus.Gauge
	leader               prometheus.Gauge
	stateSession         prometheus.Gauge

	// mu guards the names below and keeps a Retain from interleaving with the update of a
	// series it is about to delete.
	mu    sync.Mutex
	pairs map[string]struct{}
	jobs  map[string]struct{}
}

// New returns the metrics of an xacctd binary of the given version, registered on a new
// registry together with the Go runtime and process collectors.
func New(version string) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		now:      time.Now,
		pairs:    map[string]struct{}{},
		jobs:     map[string]struct{}{},

		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "reconcile_duration_seconds",
			Help: "How long one reconcile of all pairs took. " +
				"Alert when the 90th percentile nears the reconcile interval (cycles start to overlap or lag).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300},
		}),
		reconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "reconcile_total",
			Help: "Reconcile runs by outcome: in_sync (nothing to do), changed (changes applied), " +
				"failed (AWS still differs from the configuration). Alert when outcome=\"failed\" keeps increasing over several intervals.",
		}, []string{"outcome"}),
		reconcileLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "reconcile_last_success_timestamp_seconds",
			Help: "Unix time of the last reconcile that left AWS matching the configuration (0: none yet). " +
				"Alert when time() minus this exceeds a few reconcile intervals.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "changes_total",
			Help: "Changes made in AWS by resource type, action and result (applied or failed). " +
				"Alert on any increase of result=\"failed\"; a steady rate of applied changes means something outside xacctd keeps undoing them.",
		}, []string{"type", "action", "result"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "drift_detected_total",
			Help: "Resources found differing from the configuration by a reconcile, by resource type. " +
				"Not an alert by itself; alert when it increases without a config change (someone edits the resources by hand).",
		}, []string{"type"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "aws_api_calls_total",
			Help: "AWS API calls made by xacctd, by operation. " +
				"For capacity and cost; alert only on a sudden sustained rise (a retry loop or throttling).",
		}, []string{"operation"}),
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "job_runs_total",
			Help: "Finished runs of scheduled jobs by job and outcome (succeeded, failed, timed_out, skipped, interrupted, missed). " +
				"Alert on increases of failed, timed_out or missed, and on repeated skipped.",
		}, []string{"job_name", "outcome"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "job_duration_seconds",
			Help: "How long job runs took, by job. " +
				"Alert when it approaches the job's timeout or its schedule interval.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 21600},
		}, []string{"job_name"}),
		jobLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "job_last_success_timestamp_seconds",
			Help: "Unix time at which the job's last successful run finished. " +
				"Alert when time() minus this exceeds the job's schedule interval plus its usual duration (the data is stale).",
		}, []string{"job_name"}),
		pairReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "pair_ready",
			Help: "1 when every link of the pair holds (its jobs can run), 0 when one is broken. " +
				"Alert when 0 for longer than a couple of reconcile intervals.",
		}, []string{"pair"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "config_last_reload_successful",
			Help: "1 when the last configuration load or reload succeeded, 0 when it was rejected (the previous config stays active). " +
				"Alert when 0.",
		}),
		reloadLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load or reload. " +
				"Informational; pair with config_last_reload_successful for alerts.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "leader",
			Help: "1 when this instance makes changes and runs jobs, 0 when standing by. " +
				"Alert when the sum over instances is not exactly 1.",
		}),
		stateSession: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "state_session_up",
			Help: "1 when this instance's state-database session is up (always 1 with the file backend), 0 while it reconnects: " +
				"a follower at 0 cannot take over. Alert when 0 for a few minutes.",
		}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "build_info",
		Help:      "Always 1; the version label names the running xacctd build. Not for alerting; join on it to compare versions.",
	}, []string{"version"})
	buildInfo.WithLabelValues(version).Set(1)

	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.reconcileDuration, m.reconcileTotal, m.reconcileLastSuccess,
		m.changes, m.drift, m.apiCalls,
		m.jobRuns, m.jobDuration, m.jobLastSuccess,
		m.pairReady, m.reloadOK, m.reloadLastSuccess, m.leader, m.stateSession,
	)
	m.stateSession.Set(1)
	// Present from the start so rate() and increase() see the first failure, not a new series.
	for _, o := range []string{ReconcileInSync, ReconcileChanged, ReconcileFailed} {
		m.reconcileTotal.WithLabelValues(o)
	}
	return m
}

// ObserveReconcile records one reconcile of duration d ending with outcome (ReconcileInSync,
// ReconcileChanged or ReconcileFailed). Any outcome but failed counts as a success.
func (m *Metrics) ObserveReconcile(d time.Duration, outcome string) {
	m.reconcileDuration.Observe(d.Seconds())
	m.reconcileTotal.WithLabelValues(outcome).Inc()
	if outcome != ReconcileFailed {
		m.reconcileLastSuccess.Set(unixSeconds(m.now()))
	}
}

// ChangeApplied records one change made (ok) or refused (!ok) in AWS.
func (m *Metrics) ChangeApplied(typ, action string, ok bool) {
	result := "applied"
	if !ok {
		result = "failed"
	}
	m.changes.WithLabelValues(typ, action, result).Inc()
}

// DriftFound records n resources of type typ found differing from the configuration.
func (m *Metrics) DriftFound(typ string, n int) {
	if n < 0 {
		return
	}
	m.drift.WithLabelValues(typ).Add(float64(n))
}

// APICalls adds one cycle's AWS API calls, counted per operation since the previous call.
func (m *Metrics) APICalls(byOperation map[string]int) {
	for op, n := range byOperation {
		if n < 0 {
			continue
		}
		m.apiCalls.WithLabelValues(op).Add(float64(n))
	}
}

// JobFinished records a run of job that ended with outcome after d (d < 0: the run never
// started, as for skipped and missed occurrences, and no duration is observed); at is when
// it ended and becomes the job's last success when outcome is JobSucceeded.
func (m *Metrics) JobFinished(job, outcome string, d time.Duration, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[job] = struct{}{}
	m.jobRuns.WithLabelValues(job, outcome).Inc()
	if d >= 0 {
		m.jobDuration.WithLabelValues(job).Observe(d.Seconds())
	}
	if outcome == JobSucceeded {
		m.jobLastSuccess.WithLabelValues(job).Set(unixSeconds(at))
	}
}

// SetJobLastSuccess restores a job's last success time (from the run history at start), so
// that "no success for too long" alerts hold across restarts.
func (m *Metrics) SetJobLastSuccess(job string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[job] = struct{}{}
	m.jobLastSuccess.WithLabelValues(job).Set(unixSeconds(at))
}

// SetPairReady records whether every link of pair holds.
func (m *Metrics) SetPairReady(pair string, ready bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pairs[pair] = struct{}{}
	m.pairReady.WithLabelValues(pair).Set(boolValue(ready))
}

// ConfigReload records the result of a configuration load or reload attempted at at.
func (m *Metrics) ConfigReload(ok bool, at time.Time) {
	m.reloadOK.Set(boolValue(ok))
	if ok {
		m.reloadLastSuccess.Set(unixSeconds(at))
	}
}

// SetLeader records whether this instance is the one that acts. A single host always is.
func (m *Metrics) SetLeader(leader bool) { m.leader.Set(boolValue(leader)) }

// SetStateSession records whether the state-database session is up.
func (m *Metrics) SetStateSession(up bool) { m.stateSession.Set(boolValue(up)) }

// Retain deletes the series of pairs and jobs not named, after a reload removed them from the
// configuration, so dashboards and alerts stop seeing a frozen last value. Call it only once the
// removed jobs have stopped: a run that finishes later brings its series back.
func (m *Metrics) Retain(pairs, jobs []string) {
	keepPairs := set(pairs)
	keepJobs := set(jobs)
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.pairs {
		if _, ok := keepPairs[p]; ok {
			continue
		}
		m.pairReady.DeleteLabelValues(p)
		delete(m.pairs, p)
	}
	for j := range m.jobs {
		if _, ok := keepJobs[j]; ok {
			continue
		}
		m.jobRuns.DeletePartialMatch(prometheus.Labels{"job_name": j})
		m.jobDuration.DeleteLabelValues(j)
		m.jobLastSuccess.DeleteLabelValues(j)
		delete(m.jobs, j)
	}
}

func set(names []string) map[string]struct{} {
	s := make(map[string]struct{}, len(names))
	for _, n := range names {
		s[n] = struct{}{}
	}
	return s
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds keeps sub-second precision; adding the fraction to the whole seconds, rather than
// dividing nanoseconds, keeps whole seconds exact.
func unixSeconds(t time.Time) float64 { return float64(t.Unix()) + float64(t.Nanosecond())/1e9 }
