package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/internal/web"
	"github.com/pipewatch/pipewatch/jobs"
)

// runtimeOptions are what `pipewatch worker` and `pipewatch demo` choose differently.
type runtimeOptions struct {
	Jobs jobs.Config
	// Credentials opens the connections' secrets (nil = PIPEWATCH_SECRET_KEY).
	Credentials *credentials.Store
	// Console receives the messages when there is no Slack token.
	Console io.Writer
	// SlackToken, SlackAPIURL, SlackSigningSecret and SlackOpsChannel configure Slack
	// (SLACK_BOT_TOKEN, SLACK_API_URL, SLACK_SIGNING_SECRET, PIPEWATCH_SLACK_OPS_CHANNEL).
	SlackToken, SlackAPIURL, SlackSigningSecret, SlackOpsChannel string
	// Web configures the HTTP server (its Ready check is filled in here).
	Web web.Config
}

// runtime is a worker process's parts: the jobs' dependencies, the River client that
// works them and the HTTP server (health, metrics, the report API, Slack buttons).
type runtime struct {
	deps   *jobs.Deps
	client *river.Client[pgx.Tx]
	srv    *web.Server
}

// newRuntime wires the worker: every River worker and periodic job, Slack delivery (or the
// console), and the HTTP routes. Nothing starts until the caller starts client and srv.
func newRuntime(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger, o runtimeOptions) (*runtime, error) {
	deps := &jobs.Deps{Pool: pool, Logger: logger, Console: o.Console, SlackOpsChannel: o.SlackOpsChannel}
	if err := addSyncDeps(deps); err != nil {
		return nil, err
	}
	if o.Credentials != nil {
		deps.Credentials = o.Credentials
	}
	if deps.Slack = notify.NewSlackClient(o.SlackToken, o.SlackAPIURL); deps.Slack != nil {
		if team, err := notify.CheckSlackToken(ctx, deps.Slack); err != nil {
			logger.ErrorContext(ctx, "worker: Slack rejects SLACK_BOT_TOKEN; messages will fail until it is fixed", "error", err)
		} else {
			logger.InfoContext(ctx, "worker: posting to Slack", "workspace", team)
		}
	}
	client, err := jobs.NewClient(deps, o.Jobs)
	if err != nil {
		return nil, err
	}

	o.Web.Logger = logger
	o.Web.Ready = func(ctx context.Context) error { return ready(ctx, pool) }
	srv := web.New(o.Web)
	srv.HandleAdmin("GET /api/report", web.NewReportHandler(pool, logger, deps.NowFunc))
	actions := notify.NewActions()
	jobs.RegisterAlertActions(actions, deps)
	jobs.RegisterReminderActions(actions, deps, client)
	buttons, err := notify.NewInteractionHandler(notify.InteractionConfig{
		SigningSecret: o.SlackSigningSecret, DB: pool, Actions: actions,
		Enqueuer: jobs.NotificationEnqueuer{Inserter: client}, Logger: logger, NowFunc: deps.NowFunc,
	})
	if err != nil {
		if o.SlackToken != "" {
			logger.WarnContext(ctx, "worker: Slack buttons are off", "reason", err)
		}
	} else {
		srv.Handle("POST /slack/interactions", buttons)
	}
	return &runtime{deps: deps, client: client, srv: srv}, nil
}
