package main

import (
	"context"
	"io"
	"log/slog"
	"os"

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

// db opens the database once: DATABASE_URL or the default, created when missing.
func (a *app) db(ctx context.Context) (*pgxpool.Pool, error) {
	if a.pool != nil {
		return a.pool, nil
	}
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = "postgres://localhost:5432/pipewatch"
	}
	pool, err := devdb.OpenPool(ctx, url)
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
