package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/xacctd/xacctd/internal/awsconn"
	"github.com/xacctd/xacctd/internal/statestore"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/jobrun"
	"github.com/xacctd/xacctd/pkg/jobsql"
	"github.com/xacctd/xacctd/pkg/jobtemplate"
	"github.com/xacctd/xacctd/pkg/reconcile"
	"github.com/xacctd/xacctd/pkg/schedule"
)

// openStore opens the run history the configuration names.
func openStore(cfg *config.Config, log *zap.Logger) (history.Store, error) {
	s, _, err := statestore.Open(context.Background(), cfg, log, statestore.Options{Version: Version})
	return s, err
}

// newExecutor wires the job runner for cfg.
func newExecutor(cfg *config.Config, log *zap.Logger, clients awsconn.Clients, store history.Store) *jobrun.Executor {
	return &jobrun.Executor{
		Config: cfg, Targets: jobrun.Targets(cfg), Store: store, Logger: log.Named("jobs"),
		Claimer: claimerOf(store),
		Connector: &jobrun.PgxConnector{Redshift: func(ctx context.Context, account, region string) (jobrun.RedshiftAPI, error) {
			return clients.RedshiftClient(ctx, account, region)
		}},
	}
}

// claimerOf returns the store's Claimer when it is shared by several instances.
func claimerOf(store history.Store) history.Claimer {
	c, _ := store.(history.Claimer)
	return c
}

// parseInterspersed parses flags that may come before or after positional arguments
// (`jobs run NAME --dry-run`) and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (e *env) jobs(sub string, args []string) int {
	switch sub {
	case "list":
		return e.jobsList(args)
	case "run":
		return e.jobsRun(args)
	case "history":
		return e.jobsHistory(args)
	}
	fmt.Fprintf(e.stderr, "xacctd jobs: unknown subcommand %q: use list, run NAME or history NAME\n", sub)
	return ExitUsage
}

// setupWithName is setup for commands taking one NAME argument.
func (e *env) setupWithName(cmd string, args []string, withOutput bool, extra func(*flag.FlagSet)) (*config.Config, *zap.Logger, common, string, int) {
	var name string
	var posErr string
	cfg, log, c, code := e.setupArgs(cmd, args, withOutput, extra, func(pos []string) bool {
		if len(pos) != 1 {
			posErr = fmt.Sprintf("xacctd %s: name exactly one job (got %d arguments)", cmd, len(pos))
			return false
		}
		name = pos[0]
		return true
	})
	if posErr != "" {
		fmt.Fprintln(e.stderr, posErr)
	}
	if code >= 0 {
		return nil, nil, c, "", code
	}
	if cfg.Job(name) == nil {
		names := make([]string, 0, len(cfg.Jobs))
		for _, j := range cfg.Jobs {
			names = append(names, j.Name)
		}
		fmt.Fprintf(e.stderr, "xacctd %s: there is no job named %q (jobs: %s)\n", cmd, name, strings.Join(names, ", "))
		return nil, nil, c, "", ExitUsage
	}
	return cfg, log, c, name, -1
}

func (e *env) jobsList(args []string) int {
	cfg, log, c, code := e.setup("jobs list", args, true, nil)
	if code >= 0 {
		return code
	}
	store, err := openStore(cfg, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd jobs list: %v\n", err)
		return ExitError
	}
	defer store.Close()
	ctx, cancel := signalContext()
	defer cancel()
	latest, err := store.Latest(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd jobs list: %v\n", err)
		return ExitError
	}
	entries, _, err := schedule.Entries(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd jobs list: %v\n", err)
		return ExitError
	}
	now := time.Now()
	type jobJSON struct {
		Name     string       `json:"name"`
		Kind     string       `json:"kind"`
		Pair     string       `json:"pair"`
		Cluster  string       `json:"cluster"`
		Schedule string       `json:"schedule"`
		Timezone string       `json:"timezone"`
		Enabled  bool         `json:"enabled"`
		Next     *time.Time   `json:"next_run,omitempty"`
		Last     *history.Run `json:"last_run,omitempty"`
	}
	var out []jobJSON
	for _, en := range entries {
		j := jobJSON{Name: en.Job, Kind: cfg.Job(en.Job).Kind(), Pair: en.Pair, Cluster: en.Cluster, Schedule: en.Spec,
			Timezone: en.Location.String(), Enabled: en.Enabled}
		if n := en.Next(now); en.Enabled && !n.IsZero() {
			j.Next = &n
		}
		if r, ok := latest[en.Job]; ok {
			j.Last = &r
		}
		out = append(out, j)
	}
	if c.output == "json" {
		writeJSON(e.stdout, map[string]any{"jobs": out})
		return ExitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tKIND\tPAIR\tSCHEDULE\tNEXT RUN\tLAST RUN")
	for _, j := range out {
		next := "disabled"
		if j.Next != nil {
			next = j.Next.Format("2006-01-02 15:04 MST")
		}
		last := "never"
		if j.Last != nil {
			loc, _ := time.LoadLocation(j.Timezone)
			last = describeRun(*j.Last, loc)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%s\t%s\n", j.Name, j.Kind, j.Pair, j.Schedule, j.Timezone, next, last)
	}
	_ = tw.Flush()
	return ExitOK
}

// describeRun is one line about a run, times in the job's zone.
func describeRun(r history.Run, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	s := string(r.Outcome) + " " + r.ScheduledTime.In(loc).Format("2006-01-02 15:04 MST")
	if r.Rows != nil {
		s += fmt.Sprintf(" (%d rows)", *r.Rows)
	}
	if r.ErrorClass != "" {
		s += " [" + r.ErrorClass + "]"
	}
	return s
}

func (e *env) jobsHistory(args []string) int {
	var limit *int
	cfg, log, c, name, code := e.setupWithName("jobs history", args, true, func(fs *flag.FlagSet) {
		limit = fs.Int("limit", 20, "show at most this many runs, newest first (0: all)")
	})
	if code >= 0 {
		return code
	}
	store, err := openStore(cfg, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd jobs history: %v\n", err)
		return ExitError
	}
	defer store.Close()
	ctx, cancel := signalContext()
	defer cancel()
	runs, err := store.Runs(ctx, name, *limit)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd jobs history: %v\n", err)
		return ExitError
	}
	if c.output == "json" {
		if runs == nil {
			runs = []history.Run{}
		}
		writeJSON(e.stdout, map[string]any{"job": name, "runs": runs})
		return ExitOK
	}
	if len(runs) == 0 {
		fmt.Fprintf(e.stdout, "job %s has no recorded runs\n", name)
		return ExitOK
	}
	loc, err := time.LoadLocation(cfg.Job(name).Timezone)
	if err != nil {
		loc = time.UTC
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCHEDULED\tTRIGGER\tOUTCOME\tATTEMPT\tDURATION\tROWS\tRUN ID\tERROR")
	for _, r := range runs {
		dur, rows := "-", "-"
		if !r.Start.IsZero() && !r.End.IsZero() {
			dur = r.End.Sub(r.Start).Round(time.Millisecond).String()
		}
		if r.Rows != nil {
			rows = fmt.Sprint(*r.Rows)
		}
		msg := r.Error
		if r.ErrorClass != "" {
			msg = r.ErrorClass + ": " + msg
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.ScheduledTime.In(loc).Format("2006-01-02 15:04:05 MST"), r.Trigger,
			r.Outcome, r.Attempt, dur, rows, r.ID, msg)
	}
	_ = tw.Flush()
	return ExitOK
}

func (e *env) jobsRun(args []string) int {
	var dryRun *bool
	var at *string
	cfg, log, _, name, code := e.setupWithName("jobs run", args, false, func(fs *flag.FlagSet) {
		dryRun = fs.Bool("dry-run", false, "print the statement the run would send, and do nothing")
		at = fs.String("at", "", "scheduled time the templates see (RFC 3339, or 2006-01-02T15:04 in the job's zone); default now")
	})
	if code >= 0 {
		return code
	}
	job := cfg.Job(name)
	loc, err := time.LoadLocation(job.Timezone)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd jobs run: %v\n", err)
		return ExitError
	}
	scheduled := time.Now().Truncate(time.Second)
	if *at != "" {
		if scheduled, err = parseAt(*at, loc); err != nil {
			fmt.Fprintf(e.stderr, "xacctd jobs run: --at %q: %v\n", *at, err)
			return ExitUsage
		}
	}
	if *dryRun {
		d := jobtemplate.Data{ScheduledTime: scheduled.In(loc), RunID: history.NewID(scheduled), Job: name}
		st, err := jobsql.Render(job, jobrun.Targets(cfg)[job.Pair], d)
		if err != nil {
			fmt.Fprintf(e.stderr, "xacctd jobs run: job %s: %v\n", name, err)
			return ExitError
		}
		fmt.Fprintf(e.stdout, "-- job %s, scheduled %s, run id %s\n%s;\n", name, d.ScheduledTime.Format(time.RFC3339), d.RunID, st.SQL)
		return ExitOK
	}
	store, err := openStore(cfg, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd jobs run: %v\n", err)
		return ExitError
	}
	defer store.Close()
	ctx, cancel := signalContext()
	defer cancel()

	// Gating as in the daemon: the pair must be ready, which one observation of AWS tells.
	r, _ := newReconciler(cfg, log)
	ready := reconcile.Readiness(r.Plan(ctx))
	entries, limits, err := schedule.Entries(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd jobs run: %v\n", err)
		return ExitError
	}
	exec := newExecutor(cfg, log, r.Clients.(awsconn.Clients), store)
	sched := schedule.New(entries, limits, schedule.Options{Logger: log.Named("schedule"), Runner: exec, Gate: jobrun.Gate(ready)})
	defer sched.Stop(context.Background())
	runErr := sched.RunAt(ctx, name, scheduled)

	var skip *schedule.SkipError
	if errors.As(runErr, &skip) {
		fmt.Fprintf(e.stdout, "job %s skipped: %s\n", name, skip.Reason)
		return ExitError
	}
	runs, err := store.Runs(context.WithoutCancel(ctx), name, 1)
	if err == nil && len(runs) == 1 {
		last := runs[0]
		fmt.Fprintf(e.stdout, "job %s run %s: %s", name, last.ID, last.Outcome)
		if last.Rows != nil {
			fmt.Fprintf(e.stdout, ", %d rows", *last.Rows)
		}
		if !last.End.IsZero() {
			fmt.Fprintf(e.stdout, " in %s", last.End.Sub(last.Start).Round(time.Millisecond))
		}
		fmt.Fprintf(e.stdout, " (attempt %d)\n", last.Attempt)
	}
	if runErr != nil {
		var f *jobrun.Failure
		if errors.As(runErr, &f) {
			fmt.Fprintf(e.stdout, "  %s\n", f.Error())
			if f.Hint != "" {
				fmt.Fprintf(e.stdout, "  hint: %s\n", f.Hint)
			}
		} else {
			fmt.Fprintf(e.stdout, "  %v\n", runErr)
		}
		return ExitError
	}
	return ExitOK
}

func parseAt(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("use RFC 3339 (2026-01-02T03:00:00Z) or 2026-01-02T03:00 in the job's zone")
}
