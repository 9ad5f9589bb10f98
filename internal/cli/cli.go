// Package cli is xacctd's command line: it parses arguments, loads the configuration and
// calls into the packages that do the work. Exit codes follow design.md §2.
package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/logging"
)

// Version is set at build time with -ldflags "-X github.com/xacctd/xacctd/internal/cli.Version=v1.2.3".
var Version = "dev"

// Exit codes.
const (
	ExitOK      = 0
	ExitError   = 1 // invalid config, failed command
	ExitChanges = 2 // plan: changes pending
	ExitUsage   = 64
)

const usage = `xacctd manages cross-account Redshift <-> S3 access and runs UNLOAD/COPY jobs.

Usage:
  xacctd validate [--config F] [--output text|json]   check the configuration (0 valid, 1 invalid)
  xacctd plan     [--config F] [--output text|json]   show what apply would change (0 none, 2 pending, 1 error)
  xacctd apply    [--config F] [--output text|json]   make AWS match the configuration (0 in sync, 1 error)
  xacctd check    [--config F] [--probe]              preflight every pair; --probe runs a real UNLOAD per pair
  xacctd run      [--config F]                        the daemon: SIGHUP reloads, SIGTERM stops (0 after a clean stop)
  xacctd jobs list    [--config F] [--output text|json]           schedule, next run, last result
  xacctd jobs run     [--config F] NAME [--dry-run] [--at TIME]  run one job now, as a scheduled run would (0 ok, 1 failed or skipped)
  xacctd jobs history [--config F] NAME [--limit N] [--output F] past runs of a job, newest first
  xacctd version

Common flags:
  --config F          configuration file (default $XACCTD_CONFIG, else /etc/xacctd/config.yaml)
  --log-format F      json, console or auto (default auto: console on a terminal, else json)
  --log-level L       debug, info, warn or error (default info)
`

type env struct {
	stdout, stderr io.Writer
}

// common holds the flags every command takes.
type common struct {
	config    string
	logFormat string
	logLevel  string
	output    string
}

func (e *env) flags(name string, c *common, withOutput bool) *flag.FlagSet {
	fs := flag.NewFlagSet("xacctd "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&c.config, "config", "", "configuration file")
	fs.StringVar(&c.logFormat, "log-format", "auto", "json, console or auto")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	if withOutput {
		fs.StringVar(&c.output, "output", "text", "text or json")
	}
	fs.Usage = func() { fmt.Fprint(e.stderr, usage) }
	return fs
}

// Main runs the command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "validate":
		return e.validate(rest)
	case "version", "--version", "-version":
		return e.version()
	case "plan":
		return e.plan(rest)
	case "apply":
		return e.apply(rest)
	case "check":
		return e.check(rest)
	case "run":
		return e.runDaemon(rest)
	case "jobs":
		if len(rest) == 0 {
			fmt.Fprintln(stderr, "xacctd jobs: name a subcommand: list, run NAME or history NAME")
			return ExitUsage
		}
		return e.jobs(rest[0], rest[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "xacctd: unknown command %q\n\n%s", cmd, usage)
	return ExitUsage
}

func (e *env) version() int {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	fmt.Fprintf(e.stdout, "xacctd %s%s %s %s/%s\n", Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return ExitOK
}

type problemJSON struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e *env) validate(args []string) int {
	var c common
	fs := e.flags("validate", &c, true)
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "xacctd validate: unexpected argument %q (use --config FILE)\n", fs.Arg(0))
		return ExitUsage
	}
	if c.output != "text" && c.output != "json" {
		fmt.Fprintf(e.stderr, "xacctd validate: --output %q: use text or json\n", c.output)
		return ExitUsage
	}
	log, err := logging.New(e.stderr, c.logFormat, c.logLevel)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd validate: %v\n", err)
		return ExitUsage
	}
	path := config.PathFromEnv(c.config)
	cfg, err := config.Load(path)
	var cerr *config.Error
	switch {
	case err == nil:
	case errors.As(err, &cerr):
		if c.output == "json" {
			out := struct {
				Valid    bool          `json:"valid"`
				Problems []problemJSON `json:"problems"`
			}{}
			for _, p := range cerr.Problems {
				out.Problems = append(out.Problems, problemJSON{p.File, p.Line, p.Column, p.Path, p.Msg})
			}
			writeJSON(e.stdout, out)
			return ExitError
		}
		e.configError("validate", path, err)
		return ExitError
	default:
		e.configError("validate", path, err)
		return ExitError
	}
	warnPermissions(log, cfg)
	if c.output == "json" {
		writeJSON(e.stdout, map[string]any{"valid": true, "summary": summary(cfg)})
		return ExitOK
	}
	s := summary(cfg)
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, s[k])
	}
	fmt.Fprintf(e.stdout, "%s: valid (%s)\n", path, strings.Join(parts, ", "))
	return ExitOK
}

func summary(cfg *config.Config) map[string]int {
	return map[string]int{
		"accounts": len(cfg.Accounts),
		"clusters": len(cfg.Clusters),
		"buckets":  len(cfg.Buckets),
		"pairs":    len(cfg.Pairs),
		"jobs":     len(cfg.Jobs),
	}
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
