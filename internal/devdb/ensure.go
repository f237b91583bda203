// Package devdb finds the Postgres database pipewatch uses (DATABASE_URL, the default
// local server, or a private instance it starts itself) and creates the database when
// it is missing. Every command and the test harness (internal/dbtest) share it.
package devdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnsureDatabase creates the database named in url when the server has none of that name.
// It connects to the server's maintenance database ("postgres") to do so. When no
// server answers at all the error wraps ErrNoServer.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parsing database URL: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return fmt.Errorf("%w at %s:%d: %w", ErrNoServer, cfg.Host, cfg.Port, err)
	}
	if pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("connecting to database %q as %q: %w", cfg.Database, cfg.User, err)
	}
	name := cfg.Database
	admin := cfg.Copy()
	admin.Database = "postgres"
	aconn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to the server to create database %q: %w", name, err)
	}
	defer aconn.Close(context.WithoutCancel(ctx))
	_, err = aconn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	// duplicate_database, or unique_violation on pg_database: created concurrently.
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %q: %w", name, err)
	}
	return nil
}

// OpenPool ensures the database exists and returns a pool on it, checked with a ping.
func OpenPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	if err := EnsureDatabase(ctx, url); err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("opening database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pinging database: %w", err)
	}
	return pool, nil
}
