package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/xacctd/xacctd/internal/awsconn"
	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/jobrun"
	"github.com/xacctd/xacctd/pkg/logging"
	"github.com/xacctd/xacctd/pkg/reconcile"
)

// setup parses common flags, builds the logger and loads the configuration. On failure it
// has printed why and returns the exit code.
func (e *env) setup(name string, args []string, withOutput bool, extra func(*flag.FlagSet)) (*config.Config, *zap.Logger, common, int) {
	return e.setupArgs(name, args, withOutput, extra, nil)
}

// setupArgs is setup for commands with positional arguments: positional receives them and
// says whether they are right (nil: none are allowed).
func (e *env) setupArgs(name string, args []string, withOutput bool, extra func(*flag.FlagSet), positional func([]string) bool) (*config.Config, *zap.Logger, common, int) {
	var c common
	fs := e.flags(name, &c, withOutput)
	if extra != nil {
		extra(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, c, ExitUsage
	}
	if positional == nil && len(pos) > 0 {
		fmt.Fprintf(e.stderr, "xacctd %s: unexpected argument %q\n", name, pos[0])
		return nil, nil, c, ExitUsage
	}
	if positional != nil && !positional(pos) {
		return nil, nil, c, ExitUsage
	}
	if withOutput && c.output != "text" && c.output != "json" {
		fmt.Fprintf(e.stderr, "xacctd %s: --output %q: use text or json\n", name, c.output)
		return nil, nil, c, ExitUsage
	}
	log, err := logging.New(e.stderr, c.logFormat, c.logLevel)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd %s: %v\n", name, err)
		return nil, nil, c, ExitUsage
	}
	path := config.PathFromEnv(c.config)
	cfg, err := config.Load(path)
	if err != nil {
		e.configError(name, path, err)
		return nil, nil, c, ExitError
	}
	log.Info("configuration loaded", logging.Event("config.loaded"), zap.String("file", path),
		zap.Int("pairs", len(cfg.Pairs)), zap.Int("jobs", len(cfg.Jobs)))
	warnPermissions(log, cfg)
	return cfg, log, c, -1
}

// configError prints why a configuration did not load: every problem with its position, or
// the read error.
func (e *env) configError(cmd, path string, err error) {
	var cerr *config.Error
	if errors.As(err, &cerr) {
		fmt.Fprintln(e.stderr, cerr.Error())
		fmt.Fprintf(e.stderr, "%s: %d problem(s); nothing was applied\n", path, len(cerr.Problems))
		return
	}
	fmt.Fprintf(e.stderr, "xacctd %s: %v\n", cmd, err)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newReconciler(cfg *config.Config, log *zap.Logger) (*reconcile.Reconciler, *awsconn.Counter) {
	counter := awsconn.NewCounter()
	accounts := awsconn.New(cfg, counter)
	return &reconcile.Reconciler{
		Config: cfg, Clients: awsconn.Clients{Accounts: accounts},
		Options: reconcile.ApplyOptions{Logger: log.Named("reconcile")},
	}, counter
}

func stats(counter *awsconn.Counter, start time.Time) reconcile.Stats {
	total, byOp := counter.Snapshot()
	return reconcile.Stats{APICalls: total, ByOperation: byOp, DurationMS: time.Since(start).Milliseconds()}
}

func (e *env) plan(args []string) int {
	cfg, log, c, code := e.setup("plan", args, true, nil)
	if code >= 0 {
		return code
	}
	ctx, cancel := signalContext()
	defer cancel()
	start := time.Now()
	r, counter := newReconciler(cfg, log)
	snap := r.Plan(ctx)
	st := stats(counter, start)
	if err := writePlan(e.stdout, c.output, snap.Plan, st); err != nil {
		fmt.Fprintf(e.stderr, "xacctd plan: %v\n", err)
		return ExitError
	}
	log.Info("plan finished", logging.Event("reconcile.finished"), zap.Int("changes", len(snap.Plan.Changes)),
		zap.Int("conflicts", len(snap.Plan.Conflicts)), zap.Int("api_calls", st.APICalls), zap.Int64("duration_ms", st.DurationMS))
	switch {
	case len(snap.Plan.Conflicts) > 0:
		return ExitError
	case !snap.Plan.Empty():
		return ExitChanges
	}
	return ExitOK
}

func writePlan(w io.Writer, output string, p *reconcile.Plan, st reconcile.Stats) error {
	if output == "json" {
		return reconcile.WriteJSON(w, p, st)
	}
	if err := reconcile.WriteText(w, p); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n(%d AWS calls, %d ms)\n", st.APICalls, st.DurationMS)
	return err
}

func (e *env) apply(args []string) int {
	cfg, log, c, code := e.setup("apply", args, true, nil)
	if code >= 0 {
		return code
	}
	ctx, cancel := signalContext()
	defer cancel()
	start := time.Now()
	r, counter := newReconciler(cfg, log)
	log.Info("reconcile started", logging.Event("reconcile.started"))
	res := r.Apply(ctx)
	st := stats(counter, start)
	if c.output == "json" {
		doc := struct {
			reconcile.Document
			Results   []reconcile.ChangeResult `json:"results"`
			NotInSync []string                 `json:"not_in_sync"`
			InSync    bool                     `json:"in_sync"`
			Remaining []reconcile.Change       `json:"remaining"`
		}{
			Document: reconcile.Document{Changes: res.Before.Plan.Changes, Conflicts: res.After.Plan.Conflicts, Summary: res.Before.Plan.Summary(), Stats: st},
			Results:  res.Result.Results, NotInSync: res.Result.NotInSync, InSync: res.InSync(), Remaining: res.After.Plan.Changes,
		}
		if doc.Results == nil {
			doc.Results = []reconcile.ChangeResult{}
		}
		writeJSON(e.stdout, doc)
	} else {
		writeApplyText(e.stdout, res, st)
	}
	ev := "reconcile.finished"
	if !res.InSync() {
		ev = "reconcile.failed"
	}
	log.Info("apply finished", logging.Event(ev), zap.Bool("in_sync", res.InSync()), zap.Int("api_calls", st.APICalls), zap.Int64("duration_ms", st.DurationMS))
	if !res.InSync() {
		return ExitError
	}
	return ExitOK
}

func writeApplyText(w io.Writer, res *reconcile.ApplyResult, st reconcile.Stats) {
	if len(res.Result.Results) == 0 && res.Before.Plan.Empty() {
		fmt.Fprintln(w, "No changes: AWS matches the configuration.")
	}
	counts := map[reconcile.Outcome]int{}
	for _, r := range res.Result.Results {
		counts[r.Outcome]++
		line := fmt.Sprintf("  %-7s %s %s %s", r.Outcome, r.Action, r.Type, r.ID)
		if r.Error != "" {
			line += "\n          " + r.Error
		}
		fmt.Fprintln(w, line)
	}
	if len(res.Result.Results) > 0 {
		fmt.Fprintf(w, "\nApplied %d, failed %d, skipped %d.\n", counts[reconcile.Applied], counts[reconcile.Failed], counts[reconcile.Skipped])
	}
	for _, id := range res.Result.NotInSync {
		fmt.Fprintf(w, "  not in-sync yet: %s\n", id)
	}
	if len(res.After.Plan.Conflicts) > 0 || !res.After.Plan.Empty() {
		fmt.Fprintln(w, "\nStill different from the configuration:")
		_ = reconcile.WriteText(w, res.After.Plan)
	} else {
		fmt.Fprintln(w, "In sync.")
	}
	fmt.Fprintf(w, "(%d AWS calls, %d ms)\n", st.APICalls, st.DurationMS)
}

func (e *env) check(args []string) int {
	var probe *bool
	cfg, log, c, code := e.setup("check", args, true, func(fs *flag.FlagSet) {
		probe = fs.Bool("probe", false, "also test each pair for real: UNLOAD ('SELECT 1') per unload pair, a read per copy pair")
	})
	if code >= 0 {
		return code
	}
	ctx, cancel := signalContext()
	defer cancel()
	start := time.Now()
	r, counter := newReconciler(cfg, log)
	snap := r.Plan(ctx)
	ready := reconcile.Readiness(snap)
	all := true
	for _, p := range ready {
		all = all && p.Ready
		ev, lvl := "pair.ready", log.Info
		if !p.Ready {
			ev, lvl = "pair.not_ready", log.Warn
		}
		lvl("pair checked", logging.Event(ev), zap.String("pair", p.Pair), zap.String("reason", p.Reason()))
	}
	probes := map[string]jobrun.ProbeResult{}
	if *probe {
		exec := newExecutor(cfg, log, r.Clients.(awsconn.Clients), nil)
		for _, p := range cfg.Pairs {
			res := exec.Probe(ctx, p)
			probes[p.Name] = res
			all = all && res.OK
			if res.OK {
				log.Info("probe passed", logging.Event("probe.succeeded"), zap.String("pair", p.Name))
				continue
			}
			last := res.Steps[len(res.Steps)-1]
			log.Warn("probe failed", logging.Event("probe.failed"), zap.String("pair", p.Name), zap.String("step", last.Name),
				zap.String("broken_link", last.Link), zap.String("error_class", last.Failure.Class), zap.String("error", last.Failure.Message))
		}
	}
	st := stats(counter, start)
	if c.output == "json" {
		doc := map[string]any{"pairs": ready, "ready": all, "stats": st}
		if *probe {
			doc["probes"] = probes
		}
		writeJSON(e.stdout, doc)
	} else {
		for _, p := range ready {
			state := "ready"
			if !p.Ready {
				state = "NOT READY"
			}
			fmt.Fprintf(e.stdout, "pair %s (%s): %s\n", p.Pair, p.Method, state)
			for _, l := range p.Links {
				mark := "ok  "
				if !l.OK {
					mark = "FAIL"
				}
				fmt.Fprintf(e.stdout, "  %s %s: %s\n", mark, l.Name, l.Detail)
			}
			if res, ok := probes[p.Pair]; ok {
				for _, s := range res.Steps {
					mark := "ok  "
					if !s.OK {
						mark = "FAIL"
					}
					fmt.Fprintf(e.stdout, "  %s probe: %s: %s\n", mark, s.Name, s.Detail)
					if s.Link != "" {
						fmt.Fprintf(e.stdout, "       broken link: %s\n", s.Link)
					}
				}
			}
		}
		fmt.Fprintf(e.stdout, "(%d AWS calls, %d ms)\n", st.APICalls, st.DurationMS)
	}
	if !all {
		return ExitError
	}
	return ExitOK
}
