// Package statestore opens the run history the configuration's state section names, for
// the daemon and the CLI alike: the file backend, or the PostgreSQL backend (pgstate).
package statestore

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/xacctd/xacctd/pkg/config"
	"github.com/xacctd/xacctd/pkg/history"
	"github.com/xacctd/xacctd/pkg/logging"
	"github.com/xacctd/xacctd/pkg/pgstate"
)

// Options are what the caller adds to the configuration.
type Options struct {
	Version   string
	OnLeader  func(bool) // postgres: called when a leader term starts and ends
	OnSession func(bool) // postgres: called when the state-database session is lost and back
}

// Open opens the run history of cfg. For backend postgres it also returns the state
// database (the same object as the store), which elects the leader; nil for file.
func Open(ctx context.Context, cfg *config.Config, log *zap.Logger, opts Options) (history.Store, *pgstate.DB, error) {
	switch cfg.State.Backend {
	case "postgres":
		dsn, err := cfg.State.DSNSecret()
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		db, err := pgstate.Open(ctx, dsn.Reveal(), pgstate.Options{
			Logger: log.Named("state"), Version: opts.Version,
			Retention: cfg.State.Retention, MaxRunsPerJob: cfg.State.MaxRunsPerJob,
			OnLeader: opts.OnLeader, OnSession: opts.OnSession,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("open the state database: %w", err)
		}
		return db, db, nil
	case "file", "":
		s, err := history.OpenFile(cfg.State.Dir, history.FileOptions{
			Retention: cfg.State.Retention, MaxRunsPerJob: cfg.State.MaxRunsPerJob,
			OnCorrupt: func(path string, err error) {
				log.Error("run history file unreadable; moved aside", logging.Event("state.corrupt"),
					zap.String("file", path), zap.Error(err))
			},
		})
		if err != nil {
			return nil, nil, fmt.Errorf("open the run history: %w", err)
		}
		return s, nil, nil
	}
	return nil, nil, fmt.Errorf("state.backend %q is not known", cfg.State.Backend)
}
