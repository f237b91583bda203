package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/pipewatch/pipewatch/internal/web"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/migrations"
)

func runWorker(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet(a, "worker")
	addr := fs.String("http", envOr("PIPEWATCH_HTTP_ADDR", web.DefaultAddr), "HTTP listen address (PIPEWATCH_HTTP_ADDR)")
	var cfg jobs.Config
	fs.IntVar(&cfg.SyncWorkers, "sync-workers", 4, "concurrent sync jobs in this process")
	fs.IntVar(&cfg.DetectWorkers, "detect-workers", 1, "concurrent detect jobs in this process")
	fs.IntVar(&cfg.NotifyWorkers, "notify-workers", 2, "concurrent notification jobs in this process")
	fs.IntVar(&cfg.MaintenanceWorkers, "maintenance-workers", 1, "concurrent maintenance jobs in this process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: pipewatch worker takes no arguments", errUsage)
	}
	pool, err := a.db(ctx)
	if err != nil {
		return err
	}
	if err := migrations.Check(ctx, pool); err != nil {
		return err
	}
	rt, err := newRuntime(ctx, pool, a.logger, runtimeOptions{
		Jobs:               cfg,
		Console:            a.stdout,
		SlackToken:         os.Getenv("SLACK_BOT_TOKEN"),
		SlackAPIURL:        os.Getenv("SLACK_API_URL"),
		SlackSigningSecret: os.Getenv("SLACK_SIGNING_SECRET"),
		SlackOpsChannel:    os.Getenv("PIPEWATCH_SLACK_OPS_CHANNEL"),
		Web:                web.Config{Addr: *addr, AdminToken: os.Getenv("PIPEWATCH_ADMIN_TOKEN")},
	})
	if err != nil {
		return err
	}
	client, srv := rt.client, rt.srv

	// ctx ends on SIGINT/SIGTERM (or when the HTTP server fails). River then stops
	// fetching and gives running jobs its SoftStopTimeout to finish before their
	// contexts are cancelled (they snooze or retry); the HTTP server drains requests.
	g, gctx := errgroup.WithContext(ctx)
	if err := client.Start(gctx); err != nil {
		return fmt.Errorf("starting River: %w", err)
	}
	a.logger.InfoContext(ctx, "worker: started", "http", *addr, "sync_workers", cfg.SyncWorkers,
		"detect_workers", cfg.DetectWorkers, "notify_workers", cfg.NotifyWorkers, "maintenance_workers", cfg.MaintenanceWorkers)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error {
		<-client.Stopped()
		return nil
	})
	err = g.Wait()
	a.logger.InfoContext(context.WithoutCancel(ctx), "worker: stopped")
	return err
}

// ready is the worker's readiness: the database answers and its schema is current.
func ready(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging database: %w", err)
	}
	return migrations.Check(ctx, pool)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
