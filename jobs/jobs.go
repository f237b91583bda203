// Package jobs holds pipewatch's River jobs: args and workers for sync, detection, alert
// delivery, reminders and maintenance, and the client that runs them.
package jobs

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/slack-go/slack"
)

// Queues. Each has its own worker budget so a slow vendor never starves Slack delivery.
const (
	QueueSync        = "sync"
	QueueDetect      = "detect"
	QueueNotify      = "notify"
	QueueMaintenance = "maintenance"
)

// Deps are what workers need. Fields are filled by cmd/pipewatch.
type Deps struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// NowFunc is the clock; tests and the demo control it.
	NowFunc func() time.Time
	// Slack is the Slack Web API client (notify.NewSlackClient); nil prints notifications
	// to Console instead.
	Slack *slack.Client
	// Console receives notifications when Slack is nil (os.Stdout in the binary).
	Console io.Writer
	// SlackOpsChannel is where revenue ops hear about Slack deliveries that failed for
	// good ("" = an ERROR log line only).
	SlackOpsChannel string
	// Connectors builds a connection's connector by kind (DefaultConnectors in the binary).
	Connectors ConnectorRegistry
	// Credentials opens the connections' sealed secrets (nil: connectors get none).
	Credentials *credentials.Store
	// Limiters shares the vendors' rate-limit budgets between the syncs of this process.
	Limiters *connectors.Limiters
}

func (d *Deps) now() time.Time {
	if d.NowFunc != nil {
		return d.NowFunc()
	}
	return time.Now()
}

// Register adds every worker to workers.
func Register(workers *river.Workers, deps *Deps) {
	river.AddWorker(workers, NewDeliverNotificationWorker(deps))
	river.AddWorker(workers, NewSnapshotPipelineWorker(deps))
	river.AddWorker(workers, NewDetectWorker(deps))
	river.AddWorker(workers, NewSyncConnectionWorker(deps))
	river.AddWorker(workers, NewEnqueueSyncsWorker(deps))
	river.AddWorker(workers, NewReminderWorker(deps))
	river.AddWorker(workers, NewPlanRemindersWorker(deps))
}

// PeriodicJobs are the jobs River's leader schedules.
func PeriodicJobs(deps *Deps) []*river.PeriodicJob {
	return []*river.PeriodicJob{
		snapshotPipelinePeriodicJob(),
		detectPeriodicJob(),
		enqueueSyncsPeriodicJob(),
		planRemindersPeriodic(),
	}
}

// Config holds the knobs of the River client.
type Config struct {
	// Schema is the Postgres schema River's tables live in ("" = search_path).
	Schema string
	// Workers per queue in this process.
	SyncWorkers, DetectWorkers, NotifyWorkers, MaintenanceWorkers int
	// TestOnly is for tests (no start jitter).
	TestOnly bool
}

// NewClient returns a River client that works every pipewatch queue and schedules the
// periodic jobs. Start it to work jobs; an unstarted client only inserts.
func NewClient(deps *Deps, cfg Config) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	Register(workers, deps)
	client, err := river.NewClient(riverpgxv5.New(deps.Pool), &river.Config{
		Logger:  deps.Logger,
		Schema:  cfg.Schema,
		Workers: workers,
		Queues: map[string]river.QueueConfig{
			QueueSync:        {MaxWorkers: max(cfg.SyncWorkers, 1)},
			QueueDetect:      {MaxWorkers: max(cfg.DetectWorkers, 1)},
			QueueNotify:      {MaxWorkers: max(cfg.NotifyWorkers, 1)},
			QueueMaintenance: {MaxWorkers: max(cfg.MaintenanceWorkers, 1)},
		},
		PeriodicJobs:    PeriodicJobs(deps),
		SoftStopTimeout: 20 * time.Second,
		TestOnly:        cfg.TestOnly,
	})
	if err != nil {
		return nil, fmt.Errorf("creating River client: %w", err)
	}
	return client, nil
}
