package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

// DetectInterval is how often the periodic detect job evaluates every connection.
const DetectInterval = 15 * time.Minute

// DetectArgs evaluates the alert rules: the deal rules of one connection (0 = every
// connection) and the org rules (coverage, lead velocity).
type DetectArgs struct {
	ConnectionID int64 `json:"connection_id,omitempty" river:"unique"`
}

// Kind is stable: renaming it would orphan queued jobs.
func (DetectArgs) Kind() string { return "detect" }

// InsertOpts keeps one pending detect per connection: syncs of several streams that end
// together cause one run. A sync that ends while its connection's detect runs is picked
// up by the periodic run.
func (DetectArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueDetect,
		MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

// EnqueueDetectTx schedules detection for connectionID in tx. The sync worker calls it in
// the transaction that records a successful sync, so detection runs exactly when the
// synced data is committed.
func EnqueueDetectTx(ctx context.Context, tx pgx.Tx, inserter Inserter, connectionID int64) error {
	if _, err := inserter.InsertTx(ctx, tx, DetectArgs{ConnectionID: connectionID}, nil); err != nil {
		return fmt.Errorf("enqueueing detection for connection %d: %w", connectionID, err)
	}
	return nil
}

// DetectWorker runs alerting.Detector in one transaction: alerts and the notifications
// they cause commit together, or not at all.
type DetectWorker struct {
	river.WorkerDefaults[DetectArgs]
	DB interface {
		Begin(context.Context) (pgx.Tx, error)
	}
	Logger *slog.Logger
	// NowFunc is the clock (nil = time.Now).
	NowFunc func() time.Time
}

// NewDetectWorker builds the worker from deps.
func NewDetectWorker(deps *Deps) *DetectWorker {
	return &DetectWorker{DB: deps.Pool, Logger: deps.Logger, NowFunc: deps.now}
}

// Timeout leaves room for a million open deals.
func (w *DetectWorker) Timeout(*river.Job[DetectArgs]) time.Duration { return 5 * time.Minute }

// Work evaluates the rules and enqueues the notifications.
func (w *DetectWorker) Work(ctx context.Context, job *river.Job[DetectArgs]) error {
	d := &alerting.Detector{
		Logger: w.Logger, NowFunc: w.NowFunc,
		Outbox: NotificationOutbox{Inserter: river.ClientFromContext[pgx.Tx](ctx)},
	}
	return pgx.BeginFunc(ctx, w.DB, func(tx pgx.Tx) error {
		rep, err := d.Run(ctx, tx, alerting.Options{ConnectionID: job.Args.ConnectionID})
		if err != nil {
			return fmt.Errorf("detecting alerts: %w", err)
		}
		skipped := 0
		for _, s := range rep.Scopes {
			if !s.Evaluated {
				skipped++
			}
		}
		w.Logger.InfoContext(ctx, "detect: done", "run_id", rep.RunID, "connection_id", job.Args.ConnectionID,
			"opened", rep.Opened, "resolved", rep.Resolved, "told", rep.Told, "escalated", rep.Escalated,
			"notifications", len(rep.Notifications), "skipped_scopes", skipped)
		return nil
	})
}

func detectPeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(DetectInterval),
		func() (river.JobArgs, *river.InsertOpts) { return DetectArgs{}, nil },
		&river.PeriodicJobOpts{ID: "detect", RunOnStart: true})
}

// RegisterAlertActions routes the buttons of alert messages (Snooze 3d, Snooze 7d,
// Acknowledge: action ids starting with alerting.ActionPrefix) to alerting.Actions.
func RegisterAlertActions(actions *notify.Actions, deps *Deps) {
	actions.Register(alerting.ActionPrefix, &alerting.Actions{Logger: deps.Logger, NowFunc: deps.now})
}

// NotificationOutbox is alerting's Outbox on the notifications table: EnqueueNotification
// with the given River inserter.
type NotificationOutbox struct {
	Inserter Inserter
}

// Enqueue writes n to the outbox and schedules its delivery in tx.
func (o NotificationOutbox) Enqueue(ctx context.Context, tx pgx.Tx, n alerting.Notification) (int64, error) {
	return EnqueueNotification(ctx, tx, o.Inserter, Notification{
		Kind: n.Kind, AlertID: n.AlertID, Channel: n.Recipient.Channel, Recipient: n.Recipient.Address,
		Message: n.Message, DedupeKey: n.DedupeKey,
	})
}
