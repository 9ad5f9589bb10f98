package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var (
	at    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // 1772366400
	later = at.Add(90 * time.Second)                     // 1772366490
)

func newTest(t *testing.T) *Metrics {
	t.Helper()
	m := New("1.2.3")
	m.now = func() time.Time { return later }
	return m
}

func TestMethods(t *testing.T) {
	tests := []struct {
		name  string
		give  func(m *Metrics)
		names []string
		want  string
	}{
		{
			name:  "build info",
			give:  func(*Metrics) {},
			names: []string{"xacctd_build_info"},
			want: `
# HELP xacctd_build_info Always 1; the version label names the running xacctd build. Not for alerting; join on it to compare versions.
# TYPE xacctd_build_info gauge
xacctd_build_info{version="1.2.3"} 1
`,
		},
		{
			name: "reconcile outcomes",
			give: func(m *Metrics) {
				m.ObserveReconcile(40*time.Millisecond, ReconcileInSync)
				m.ObserveReconcile(3*time.Second, ReconcileChanged)
				m.ObserveReconcile(400*time.Second, ReconcileFailed)
			},
			names: []string{"xacctd_reconcile_total", "xacctd_reconcile_duration_seconds"},
			want: `
# HELP xacctd_reconcile_duration_seconds How long one reconcile of all pairs took. Alert when the 90th percentile nears the reconcile interval (cycles start to overlap or lag).
# TYPE xacctd_reconcile_duration_seconds histogram
xacctd_reconcile_duration_seconds_bucket{le="0.05"} 1
xacctd_reconcile_duration_seconds_bucket{le="0.1"} 1
xacctd_reconcile_duration_seconds_bucket{le="0.25"} 1
xacctd_reconcile_duration_seconds_bucket{le="0.5"} 1
xacctd_reconcile_duration_seconds_bucket{le="1"} 1
xacctd_reconcile_duration_seconds_bucket{le="2.5"} 1
xacctd_reconcile_duration_seconds_bucket{le="5"} 2
xacctd_reconcile_duration_seconds_bucket{le="10"} 2
xacctd_reconcile_duration_seconds_bucket{le="20"} 2
xacctd_reconcile_duration_seconds_bucket{le="30"} 2
xacctd_reconcile_duration_seconds_bucket{le="60"} 2
xacctd_reconcile_duration_seconds_bucket{le="120"} 2
xacctd_reconcile_duration_seconds_bucket{le="300"} 2
xacctd_reconcile_duration_seconds_bucket{le="+Inf"} 3
xacctd_reconcile_duration_seconds_sum 403.04
xacctd_reconcile_duration_seconds_count 3
# HELP xacctd_reconcile_total Reconcile runs by outcome: in_sync (nothing to do), changed (changes applied), failed (AWS still differs from the configuration). Alert when outcome="failed" keeps increasing over several intervals.
# TYPE xacctd_reconcile_total counter
xacctd_reconcile_total{outcome="changed"} 1
xacctd_reconcile_total{outcome="failed"} 1
xacctd_reconcile_total{outcome="in_sync"} 1
`,
		},
		{
			name:  "reconcile outcomes start at zero",
			give:  func(*Metrics) {},
			names: []string{"xacctd_reconcile_total", "xacctd_reconcile_last_success_timestamp_seconds"},
			want: `
# HELP xacctd_reconcile_last_success_timestamp_seconds Unix time of the last reconcile that left AWS matching the configuration (0: none yet). Alert when time() minus this exceeds a few reconcile intervals.
# TYPE xacctd_reconcile_last_success_timestamp_seconds gauge
xacctd_reconcile_last_success_timestamp_seconds 0
# HELP xacctd_reconcile_total Reconcile runs by outcome: in_sync (nothing to do), changed (changes applied), failed (AWS still differs from the configuration). Alert when outcome="failed" keeps increasing over several intervals.
# TYPE xacctd_reconcile_total counter
xacctd_reconcile_total{outcome="changed"} 0
xacctd_reconcile_total{outcome="failed"} 0
xacctd_reconcile_total{outcome="in_sync"} 0
`,
		},
		{
			name: "changes",
			give: func(m *Metrics) {
				m.ChangeApplied("iam_role", "create", true)
				m.ChangeApplied("iam_role", "create", true)
				m.ChangeApplied("bucket_policy", "update", false)
			},
			names: []string{"xacctd_changes_total"},
			want: `
# HELP xacctd_changes_total Changes made in AWS by resource type, action and result (applied or failed). Alert on any increase of result="failed"; a steady rate of applied changes means something outside xacctd keeps undoing them.
# TYPE xacctd_changes_total counter
xacctd_changes_total{action="create",result="applied",type="iam_role"} 2
xacctd_changes_total{action="update",result="failed",type="bucket_policy"} 1
`,
		},
		{
			name: "drift",
			give: func(m *Metrics) {
				m.DriftFound("iam_role", 2)
				m.DriftFound("iam_role", 3)
				m.DriftFound("bucket_policy", 0)
				m.DriftFound("association", -1) // ignored: counters only go up
			},
			names: []string{"xacctd_drift_detected_total"},
			want: `
# HELP xacctd_drift_detected_total Resources found differing from the configuration by a reconcile, by resource type. Not an alert by itself; alert when it increases without a config change (someone edits the resources by hand).
# TYPE xacctd_drift_detected_total counter
xacctd_drift_detected_total{type="bucket_policy"} 0
xacctd_drift_detected_total{type="iam_role"} 5
`,
		},
		{
			name: "api calls add per-cycle deltas",
			give: func(m *Metrics) {
				m.APICalls(map[string]int{"iam:GetRole": 3, "s3:GetBucketPolicy": 1})
				m.APICalls(map[string]int{"iam:GetRole": 2, "sts:AssumeRole": -4})
				m.APICalls(nil)
			},
			names: []string{"xacctd_aws_api_calls_total"},
			want: `
# HELP xacctd_aws_api_calls_total AWS API calls made by xacctd, by operation. For capacity and cost; alert only on a sudden sustained rise (a retry loop or throttling).
# TYPE xacctd_aws_api_calls_total counter
xacctd_aws_api_calls_total{operation="iam:GetRole"} 5
xacctd_aws_api_calls_total{operation="s3:GetBucketPolicy"} 1
`,
		},
		{
			name: "jobs",
			give: func(m *Metrics) {
				m.JobFinished("daily", JobSucceeded, 30*time.Second, at)
				m.JobFinished("daily", "failed", 2*time.Second, later)
				m.JobFinished("hourly", "timed_out", 7*time.Hour, later)
			},
			names: []string{"xacctd_job_runs_total", "xacctd_job_last_success_timestamp_seconds"},
			want: `
# HELP xacctd_job_last_success_timestamp_seconds Unix time at which the job's last successful run finished. Alert when time() minus this exceeds the job's schedule interval plus its usual duration (the data is stale).
# TYPE xacctd_job_last_success_timestamp_seconds gauge
xacctd_job_last_success_timestamp_seconds{job_name="daily"} 1.7723664e+09
# HELP xacctd_job_runs_total Finished runs of scheduled jobs by job and outcome (succeeded, failed, timed_out, skipped, interrupted, missed). Alert on increases of failed, timed_out or missed, and on repeated skipped.
# TYPE xacctd_job_runs_total counter
xacctd_job_runs_total{job_name="daily",outcome="failed"} 1
xacctd_job_runs_total{job_name="daily",outcome="succeeded"} 1
xacctd_job_runs_total{job_name="hourly",outcome="timed_out"} 1
`,
		},
		{
			name: "job duration",
			give: func(m *Metrics) {
				m.JobFinished("daily", JobSucceeded, 500*time.Millisecond, at)
				m.JobFinished("daily", JobSucceeded, 45*time.Minute, at)
				m.JobFinished("daily", "failed", 7*time.Hour, at)
			},
			names: []string{"xacctd_job_duration_seconds"},
			want: `
# HELP xacctd_job_duration_seconds How long job runs took, by job. Alert when it approaches the job's timeout or its schedule interval.
# TYPE xacctd_job_duration_seconds histogram
xacctd_job_duration_seconds_bucket{job_name="daily",le="1"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="5"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="15"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="30"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="60"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="120"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="300"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="600"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="1200"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="1800"} 1
xacctd_job_duration_seconds_bucket{job_name="daily",le="3600"} 2
xacctd_job_duration_seconds_bucket{job_name="daily",le="7200"} 2
xacctd_job_duration_seconds_bucket{job_name="daily",le="14400"} 2
xacctd_job_duration_seconds_bucket{job_name="daily",le="21600"} 2
xacctd_job_duration_seconds_bucket{job_name="daily",le="+Inf"} 3
xacctd_job_duration_seconds_sum{job_name="daily"} 27900.5
xacctd_job_duration_seconds_count{job_name="daily"} 3
`,
		},
		{
			name: "pair ready",
			give: func(m *Metrics) {
				m.SetPairReady("sales", true)
				m.SetPairReady("finance", true)
				m.SetPairReady("finance", false)
			},
			names: []string{"xacctd_pair_ready"},
			want: `
# HELP xacctd_pair_ready 1 when every link of the pair holds (its jobs can run), 0 when one is broken. Alert when 0 for longer than a couple of reconcile intervals.
# TYPE xacctd_pair_ready gauge
xacctd_pair_ready{pair="finance"} 0
xacctd_pair_ready{pair="sales"} 1
`,
		},
		{
			name: "config reload ok then rejected keeps the last success time",
			give: func(m *Metrics) {
				m.ConfigReload(true, at)
				m.ConfigReload(false, later)
			},
			names: []string{"xacctd_config_last_reload_successful", "xacctd_config_last_reload_success_timestamp_seconds"},
			want: `
# HELP xacctd_config_last_reload_success_timestamp_seconds Unix time of the last successful configuration load or reload. Informational; pair with config_last_reload_successful for alerts.
# TYPE xacctd_config_last_reload_success_timestamp_seconds gauge
xacctd_config_last_reload_success_timestamp_seconds 1.7723664e+09
# HELP xacctd_config_last_reload_successful 1 when the last configuration load or reload succeeded, 0 when it was rejected (the previous config stays active). Alert when 0.
# TYPE xacctd_config_last_reload_successful gauge
xacctd_config_last_reload_successful 0
`,
		},
		{
			name:  "leader",
			give:  func(m *Metrics) { m.SetLeader(true) },
			names: []string{"xacctd_leader"},
			want: `
# HELP xacctd_leader 1 when this instance makes changes and runs jobs, 0 when standing by. Alert when the sum over instances is not exactly 1.
# TYPE xacctd_leader gauge
xacctd_leader 1
`,
		},
		{
			name:  "state session",
			give:  func(m *Metrics) { m.SetStateSession(false) },
			names: []string{"xacctd_state_session_up"},
			want: `
# HELP xacctd_state_session_up 1 when this instance's state-database session is up (always 1 with the file backend), 0 while it reconnects: a follower at 0 cannot take over. Alert when 0 for a few minutes.
# TYPE xacctd_state_session_up gauge
xacctd_state_session_up 0
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTest(t)
			tt.give(m)
			if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(tt.want), tt.names...); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestGauges(t *testing.T) {
	tests := []struct {
		name string
		give func(m *Metrics)
		get  func(m *Metrics) float64
		want float64
	}{
		{
			name: "reconcile success time moves on in_sync",
			give: func(m *Metrics) { m.ObserveReconcile(time.Second, ReconcileInSync) },
			get:  func(m *Metrics) float64 { return testutil.ToFloat64(m.reconcileLastSuccess) },
			want: float64(later.Unix()),
		},
		{
			name: "reconcile success time moves on changed",
			give: func(m *Metrics) { m.ObserveReconcile(time.Second, ReconcileChanged) },
			get:  func(m *Metrics) float64 { return testutil.ToFloat64(m.reconcileLastSuccess) },
			want: float64(later.Unix()),
		},
		{
			name: "reconcile success time stays on failed",
			give: func(m *Metrics) { m.ObserveReconcile(time.Second, ReconcileFailed) },
			get:  func(m *Metrics) float64 { return testutil.ToFloat64(m.reconcileLastSuccess) },
			want: 0,
		},
		{
			name: "job success time is the run's end, not now",
			give: func(m *Metrics) { m.JobFinished("daily", JobSucceeded, time.Minute, at) },
			get:  func(m *Metrics) float64 { return testutil.ToFloat64(m.jobLastSuccess.WithLabelValues("daily")) },
			want: float64(at.Unix()),
		},
		{
			name: "job success time stays on failure",
			give: func(m *Metrics) {
				m.JobFinished("daily", JobSucceeded, time.Minute, at)
				m.JobFinished("daily", "failed", time.Minute, later)
			},
			get:  func(m *Metrics) float64 { return testutil.ToFloat64(m.jobLastSuccess.WithLabelValues("daily")) },
			want: float64(at.Unix()),
		},
		{
			name: "sub-second precision",
			give: func(m *Metrics) { m.ConfigReload(true, at.Add(250*time.Millisecond)) },
			get:  func(m *Metrics) float64 { return testutil.ToFloat64(m.reloadLastSuccess) },
			want: float64(at.Unix()) + 0.25,
		},
		{
			name: "config reload ok",
			give: func(m *Metrics) { m.ConfigReload(true, at) },
			get:  func(m *Metrics) float64 { return testutil.ToFloat64(m.reloadOK) },
			want: 1,
		},
		{
			name: "leader off",
			give: func(m *Metrics) { m.SetLeader(true); m.SetLeader(false) },
			get:  func(m *Metrics) float64 { return testutil.ToFloat64(m.leader) },
			want: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTest(t)
			tt.give(m)
			if diff := cmp.Diff(tt.want, tt.get(m)); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetain(t *testing.T) {
	m := newTest(t)
	for _, p := range []string{"sales", "finance", "ops"} {
		m.SetPairReady(p, true)
	}
	m.JobFinished("daily", JobSucceeded, time.Minute, at)
	m.JobFinished("daily", "failed", time.Minute, at)
	m.JobFinished("hourly", JobSucceeded, time.Minute, at)
	m.JobFinished("weekly", "skipped", 0, at)

	// "unknown" was never seen: retaining it must not create a series.
	m.Retain([]string{"sales", "unknown"}, []string{"hourly"})

	tests := []struct {
		metric string
		want   int
	}{
		{"xacctd_pair_ready", 1},
		{"xacctd_job_runs_total", 1},
		{"xacctd_job_duration_seconds", 1},
		{"xacctd_job_last_success_timestamp_seconds", 1},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			n, err := testutil.GatherAndCount(m.Registry, tt.metric)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, n); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
		})
	}
	want := `
# HELP xacctd_pair_ready 1 when every link of the pair holds (its jobs can run), 0 when one is broken. Alert when 0 for longer than a couple of reconcile intervals.
# TYPE xacctd_pair_ready gauge
xacctd_pair_ready{pair="sales"} 1
# HELP xacctd_job_runs_total Finished runs of scheduled jobs by job and outcome (succeeded, failed, timed_out, skipped, interrupted, missed). Alert on increases of failed, timed_out or missed, and on repeated skipped.
# TYPE xacctd_job_runs_total counter
xacctd_job_runs_total{job_name="hourly",outcome="succeeded"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "xacctd_pair_ready", "xacctd_job_runs_total"); err != nil {
		t.Error(err)
	}

	// A pair that comes back after a later reload starts a fresh series.
	m.Retain(nil, nil)
	m.SetPairReady("finance", false)
	if diff := cmp.Diff(0.0, testutil.ToFloat64(m.pairReady.WithLabelValues("finance"))); diff != "" {
		t.Errorf("finance (-want +got):\n%s", diff)
	}
	if n, _ := testutil.GatherAndCount(m.Registry, "xacctd_pair_ready", "xacctd_job_runs_total"); n != 1 {
		t.Errorf("after Retain(nil, nil) and one pair: %d series, want 1", n)
	}
}

func TestLint(t *testing.T) {
	m := newTest(t)
	m.ObserveReconcile(time.Second, ReconcileChanged)
	m.ChangeApplied("iam_role", "create", true)
	m.DriftFound("iam_role", 1)
	m.APICalls(map[string]int{"iam:GetRole": 1})
	m.JobFinished("daily", JobSucceeded, time.Minute, at)
	m.SetPairReady("sales", true)
	m.ConfigReload(true, at)
	m.SetLeader(true)

	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}

	// Every family is exposed, with help text.
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help text", mf.GetName())
		}
	}
	for _, name := range []string{
		"xacctd_build_info",
		"xacctd_reconcile_duration_seconds",
		"xacctd_reconcile_total",
		"xacctd_reconcile_last_success_timestamp_seconds",
		"xacctd_changes_total",
		"xacctd_drift_detected_total",
		"xacctd_aws_api_calls_total",
		"xacctd_job_runs_total",
		"xacctd_job_duration_seconds",
		"xacctd_job_last_success_timestamp_seconds",
		"xacctd_pair_ready",
		"xacctd_config_last_reload_successful",
		"xacctd_config_last_reload_success_timestamp_seconds",
		"xacctd_leader",
		"go_goroutines",
		"process_start_time_seconds",
	} {
		if !got[name] {
			t.Errorf("%s missing from the exposition", name)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	m := newTest(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			m.Retain([]string{"a"}, []string{"j"})
		}
	}()
	for i := range 200 {
		m.SetPairReady("a", i%2 == 0)
		m.SetPairReady("b", true)
		m.JobFinished("j", JobSucceeded, time.Second, at)
		m.JobFinished("k", "failed", time.Second, at)
		m.ObserveReconcile(time.Second, ReconcileInSync)
	}
	<-done
	if _, err := m.Registry.Gather(); err != nil {
		t.Fatal(err)
	}
}
