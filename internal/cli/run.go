package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/daemon"
	"github.com/xacctd/xacctd/pkg/logging"
	"github.com/xacctd/xacctd/pkg/sdnotify"
)

// runDaemon is `xacctd run`: SIGHUP reloads (bursts coalesce into one reload), SIGTERM or
// SIGINT stops cleanly, a second one exits at once.
func (e *env) runDaemon(args []string) int {
	var c common
	fs := e.flags("run", &c, false)
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "xacctd run: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	log, err := logging.New(e.stderr, c.logFormat, c.logLevel)
	if err != nil {
		fmt.Fprintf(e.stderr, "xacctd run: %v\n", err)
		return ExitUsage
	}
	defer log.Sync() //nolint:errcheck // stderr
	path := config.PathFromEnv(c.config)
	// Signals are caught before anything else, so that an early SIGTERM is a clean stop.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	app, err := daemon.New(daemon.Options{ConfigPath: path, Logger: log, Version: Version, Notifier: sdnotify.New()})
	if err != nil {
		e.configError("run", path, err)
		return ExitError
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan struct{}, 1)
	go func() {
		stopping := false
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP:
				select {
				case reload <- struct{}{}: // one pending reload covers a burst
				default:
				}
			case stopping:
				fmt.Fprintf(e.stderr, "xacctd run: second %s: exiting at once\n", sig)
				os.Exit(ExitError)
			default:
				stopping = true
				cancel()
			}
		}
	}()
	if err := app.Run(ctx, reload); err != nil {
		fmt.Fprintf(e.stderr, "xacctd run: %v\n", err)
		return ExitError
	}
	return ExitOK
}
