package schedule

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/xacctd/xacctd/pkg/config"
)

// Entry is a job as the scheduler sees it.
type Entry struct {
	Job      string
	Pair     string
	Cluster  string
	Spec     string // the schedule as written, for display
	Schedule cron.Schedule
	Location *time.Location
	Overlap  string // skip or queue
	CatchUp  time.Duration
	Enabled  bool // disabled entries are never fired, but RunNow runs them
}

// Next returns the entry's first occurrence strictly after t, in its zone.
func (e Entry) Next(t time.Time) time.Time {
	n := Next(e.Schedule, e.Location, t)
	if n.IsZero() {
		return n
	}
	return n.In(e.Location)
}

// Entries builds the scheduler's entries and per-cluster limits from a validated config.
func Entries(cfg *config.Config) ([]Entry, map[string]int, error) {
	limits := map[string]int{}
	for name, c := range cfg.Clusters {
		limits[name] = c.MaxConcurrentJobs
	}
	entries := make([]Entry, 0, len(cfg.Jobs))
	for _, j := range cfg.Jobs {
		sched, err := config.CronParser.Parse(j.Schedule)
		if err != nil {
			return nil, nil, fmt.Errorf("job %s: schedule %q: %w", j.Name, j.Schedule, err)
		}
		loc, err := time.LoadLocation(j.Timezone)
		if err != nil {
			return nil, nil, fmt.Errorf("job %s: timezone %q: %w", j.Name, j.Timezone, err)
		}
		cluster := ""
		if p := cfg.Pair(j.Pair); p != nil {
			cluster = p.Cluster
		}
		entries = append(entries, Entry{
			Job: j.Name, Pair: j.Pair, Cluster: cluster, Spec: j.Schedule,
			Schedule: sched, Location: loc, Overlap: j.Overlap, CatchUp: j.CatchUp,
			Enabled: j.IsEnabled(),
		})
	}
	return entries, limits, nil
}
