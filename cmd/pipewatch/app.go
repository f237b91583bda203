package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pipewatch/pipewatch/internal/devdb"
)

// app is what every command shares: output streams, the logger and the database.
type app struct {
	stdout, stderr io.Writer
	logger         *slog.Logger
	pool           *pgxpool.Pool
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{stdout: stdout, stderr: stderr, logger: newLogger(stderr)}
}

// db opens the database once, found by devdb's discovery: DATABASE_URL, else the
// default local server, else a private instance started from the installed PostgreSQL
// binaries; the database is created when missing.
func (a *app) db(ctx context.Context) (*pgxpool.Pool, error) {
	if a.pool != nil {
		return a.pool, nil
	}
	discovery := &devdb.Discovery{EnvVar: "DATABASE_URL", Database: "pipewatch", Logger: a.logger}
	pool, err := discovery.Open(ctx)
	if err != nil {
		return nil, err
	}
	a.pool = pool
	return pool, nil
}

func (a *app) close() {
	if a.pool != nil {
		a.pool.Close()
	}
}
