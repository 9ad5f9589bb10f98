package pgstate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migration is one step of the schema. Steps are applied in order, each once, in the
// transaction that records it; a step is never edited once released (add another).
type migration struct {
	Version int
	Name    string
	SQL     string
}

// migrations is the schema, oldest first.
var migrations = []migration{
	{1, "run history", `
CREATE TABLE xacctd_runs (
	id             text PRIMARY KEY,
	job            text NOT NULL,
	pair           text NOT NULL DEFAULT '',
	cluster        text NOT NULL DEFAULT '',
	kind           text NOT NULL DEFAULT '',
	trigger        text NOT NULL,
	scheduled_time timestamptz NOT NULL,
	start_time     timestamptz,
	end_time       timestamptz,
	attempt        integer NOT NULL DEFAULT 0,
	outcome        text NOT NULL,
	error_class    text NOT NULL DEFAULT '',
	error_code     text NOT NULL DEFAULT '',
	error          text NOT NULL DEFAULT '',
	hint           text NOT NULL DEFAULT '',
	rows           bigint,
	files          integer,
	owner_host     text NOT NULL DEFAULT '',
	owner_pid      integer NOT NULL DEFAULT 0,
	owner_boot     text NOT NULL DEFAULT '',
	owner_session  integer,
	happened_at    timestamptz NOT NULL,
	recorded_at    timestamptz NOT NULL DEFAULT now()
);
-- The claim: one scheduled occurrence (job + scheduled time) is held by at most one run.
-- A run cut short (interrupted) gives the occurrence back, so that catch-up may run it.
CREATE UNIQUE INDEX xacctd_runs_occurrence ON xacctd_runs (job, scheduled_time)
	WHERE trigger IN ('schedule', 'catch_up') AND outcome <> 'interrupted';
CREATE INDEX xacctd_runs_job_newest ON xacctd_runs (job, happened_at DESC, scheduled_time DESC, id COLLATE "C" DESC);
CREATE INDEX xacctd_runs_running ON xacctd_runs (owner_session) WHERE outcome = 'running';
`},
	{2, "leader terms", `
CREATE TABLE xacctd_leader_terms (
	term        bigserial PRIMARY KEY,
	host        text NOT NULL,
	pid         integer NOT NULL,
	session     integer NOT NULL,
	version     text NOT NULL DEFAULT '',
	acquired_at timestamptz NOT NULL DEFAULT now(),
	released_at timestamptz
);
ALTER TABLE xacctd_runs ADD COLUMN leader_term bigint;
`},
}

// SchemaVersion is the schema version this build creates and expects.
func SchemaVersion() int { return migrations[len(migrations)-1].Version }

// migrate brings the schema to SchemaVersion in one transaction that holds a transaction
// advisory lock, so that instances starting together apply each step once: the others
// wait for the lock, then find nothing left to do. It returns the steps it applied.
func migrate(ctx context.Context, conn *pgx.Conn, lockNS int32, by string) (from int, applied []migration, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockNS); err != nil {
		return 0, nil, fmt.Errorf("take the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS xacctd_schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	applied_by text NOT NULL DEFAULT ''
)`); err != nil {
		return 0, nil, fmt.Errorf("create xacctd_schema_migrations: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM xacctd_schema_migrations`).Scan(&from); err != nil {
		return 0, nil, fmt.Errorf("read the schema version: %w", err)
	}
	if from > SchemaVersion() {
		return from, nil, fmt.Errorf("the state database has schema version %d, newer than this xacctd knows (%d): "+
			"an instance of a newer xacctd migrated it; upgrade this one", from, SchemaVersion())
	}
	for _, m := range migrations {
		if m.Version <= from {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return from, nil, fmt.Errorf("schema migration %d (%s): %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO xacctd_schema_migrations (version, name, applied_by) VALUES ($1, $2, $3)`,
			m.Version, m.Name, by); err != nil {
			return from, nil, fmt.Errorf("record schema migration %d: %w", m.Version, err)
		}
		applied = append(applied, m)
	}
	if err := tx.Commit(ctx); err != nil {
		return from, nil, fmt.Errorf("commit the schema migrations: %w", err)
	}
	return from, applied, nil
}
