// Command xacctd-sandbox runs the local two-account world (moto, PostgreSQL,
// the Redshift stand-in) until it is signalled, and describes it in an
// environment file that xacctd and the tests read.
//
//	go run ./cmd/xacctd-sandbox --env-file F [--config-out C]
package main

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

	"github.com/xacctd/xacctd/internal/sandbox"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("xacctd-sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envFile := fs.String("env-file", "", "write the world's environment (KEY=value lines, mode 0600) to this file once it is ready (required)")
	configOut := fs.String("config-out", "", "also write an xacctd config fragment (accounts, clusters) for the world to this file")
	roleDelay := fs.Duration("role-delay", 0, "how long cluster role associations stay adding/removing (0: moto extension default, 2s)")
	verbose := fs.Bool("v", false, "print the components' logs to stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *envFile == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: xacctd-sandbox --env-file FILE [--config-out FILE] [--role-delay 2s] [-v]")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	opts := sandbox.Options{RoleDelay: *roleDelay}
	if *verbose {
		opts.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	w, err := sandbox.Start(ctx, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "xacctd-sandbox: interrupted while starting")
		} else {
			fmt.Fprintf(stderr, "xacctd-sandbox: %v\n", err)
		}
		return 1
	}
	code := serve(ctx, w, *envFile, *configOut, stdout, stderr)
	if err := w.Close(); err != nil {
		fmt.Fprintf(stderr, "xacctd-sandbox: stop: %v\n", err)
		code = 1
	}
	// The file names endpoints that are gone now; do not leave it to mislead.
	_ = os.Remove(*envFile)
	if code == 0 {
		fmt.Fprintln(stdout, "xacctd-sandbox: stopped")
	}
	return code
}

// serve publishes the world and waits for a signal.
func serve(ctx context.Context, w *sandbox.World, envFile, configOut string, stdout, stderr io.Writer) int {
	if configOut != "" {
		if err := sandbox.WriteFileAtomic(configOut, []byte(w.ConfigFragment()), 0o644); err != nil {
			fmt.Fprintf(stderr, "xacctd-sandbox: %v\n", err)
			return 1
		}
	}
	// Written last: its appearance tells waiting tools the world is ready.
	if err := sandbox.WriteFileAtomic(envFile, []byte(sandbox.FormatEnv(w.Env())), 0o600); err != nil {
		fmt.Fprintf(stderr, "xacctd-sandbox: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, `xacctd-sandbox: ready in %v
  moto (AWS):        %s   accounts %s (warehouse), %s (lake)
  redshift stand-in: %s   cluster %s, database %s, user %s
  postgres:          %s:%d
  environment:       %s
`, w.StartDuration.Round(time.Millisecond), w.Moto.URL, w.WarehouseAccount, w.LakeAccount,
		w.RedshiftEndpoint, w.Cluster, w.Database, w.DBUser, w.Postgres.Host, w.Postgres.Port, envFile)
	if configOut != "" {
		fmt.Fprintf(stdout, "  config fragment:   %s\n", configOut)
	}
	fmt.Fprintf(stdout, `
Use it from a shell:
  set -a; . %s; set +a
  psql "host=${XACCTD_SANDBOX_REDSHIFT_ENDPOINT%%:*} port=${XACCTD_SANDBOX_REDSHIFT_ENDPOINT##*:} dbname=$XACCTD_SANDBOX_DATABASE user=$XACCTD_SANDBOX_DB_USER password=$XACCTD_SANDBOX_DB_PASSWORD sslmode=disable"
S3 clients must use path-style addressing. Stop with Ctrl-C or SIGTERM.
`, envFile)
	<-ctx.Done()
	fmt.Fprintln(stdout, "xacctd-sandbox: stopping")
	return 0
}
