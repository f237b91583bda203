// Package migrations holds pipewatch's SQL schema as embedded goose migrations and
// applies it, together with River's own schema, under one Postgres advisory lock.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// FS holds the app migrations (goose SQL files, numbered NNNNN_verb_object.sql).
//
//go:embed *.sql
var FS embed.FS

// lockKey is the advisory lock that serializes concurrent `pipewatch migrate` runs.
const lockKey = int64(0x7069706577617463) // "pipewatc"

// Up applies River's migrations and then the app's, holding an advisory lock so that
// concurrent callers wait for each other instead of racing on DDL. It is idempotent.
// The pool's search_path decides the schema both land in.
func Up(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring a connection for migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey)
	}()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("creating the River migrator: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("applying River migrations: %w", err)
	}
	for _, v := range res.Versions {
		logger.InfoContext(ctx, "migrations: applied River migration", "version", v.Version, "name", v.Name)
	}

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := newProvider(db)
	if err != nil {
		return err
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("applying app migrations: %w", err)
	}
	for _, r := range results {
		logger.InfoContext(ctx, "migrations: applied app migration", "version", r.Source.Version, "file", r.Source.Path)
	}
	return nil
}

// ErrPending reports that the database schema is behind the binary.
var ErrPending = errors.New("database migrations are pending: run `pipewatch migrate`")

// Check returns nil when both River's and the app's migrations are current, ErrPending
// when some are missing, or the error that prevented the check.
func Check(ctx context.Context, pool *pgxpool.Pool) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("creating the River migrator: %w", err)
	}
	res, err := migrator.Validate(ctx, nil)
	if err != nil {
		return fmt.Errorf("checking River migrations: %w", err)
	}
	if !res.OK {
		return ErrPending
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := newProvider(db)
	if err != nil {
		return err
	}
	pending, err := provider.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("checking app migrations: %w", err)
	}
	if pending {
		return ErrPending
	}
	return nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	// Out-of-order application: each area of the code numbers its migrations in its own
	// range, so a database may already hold a higher version when a lower one is added.
	provider, err := goose.NewProvider(goose.DialectPostgres, db, FS,
		goose.WithDisableGlobalRegistry(true), goose.WithAllowOutofOrder(true))
	if err != nil {
		return nil, fmt.Errorf("loading app migrations: %w", err)
	}
	return provider, nil
}
