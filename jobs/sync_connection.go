package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/pipewatch/pipewatch/connectors"
)

// Sync job timing. A run yields its worker slot after SyncTimeBudget (its progress is
// committed, so it snoozes and resumes from its cursor); the job timeout leaves room for
// the batch in flight when the budget runs out.
const (
	SyncTimeBudget = 20 * time.Minute
	SyncJobTimeout = 30 * time.Minute
)

// SyncConnectionArgs syncs one stream of one connection.
type SyncConnectionArgs struct {
	ConnectionID int64  `json:"connection_id"`
	Stream       string `json:"stream"`
	// Mode is incremental or full (reconciliation).
	Mode connectors.Mode `json:"mode"`
}

// Kind is the job kind.
func (SyncConnectionArgs) Kind() string { return "sync_connection" }

// InsertOpts makes the job unique per (connection, stream, mode) while one is in flight,
// and never after it finished: ByState leaves out completed, discarded and cancelled, so a
// finished run does not block the next one (River's default keeps completed jobs unique
// until they are cleaned 24h later).
func (SyncConnectionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueSync,
		MaxAttempts: 10,
		UniqueOpts: river.UniqueOpts{
			ByArgs: true,
			ByState: []rivertype.JobState{
				rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
				rivertype.JobStateRetryable, rivertype.JobStateScheduled,
			},
		},
	}
}

// SyncConnectionWorker runs SyncConnectionArgs through the sync engine.
type SyncConnectionWorker struct {
	river.WorkerDefaults[SyncConnectionArgs]
	Engine *SyncEngine
	// TimeBudget overrides SyncTimeBudget.
	TimeBudget time.Duration
}

// NewSyncConnectionWorker builds the worker from deps.
func NewSyncConnectionWorker(deps *Deps) *SyncConnectionWorker {
	return &SyncConnectionWorker{Engine: NewSyncEngine(deps)}
}

// Timeout sizes the job for long syncs.
func (w *SyncConnectionWorker) Timeout(*river.Job[SyncConnectionArgs]) time.Duration {
	return max(SyncJobTimeout, w.timeBudget()+10*time.Minute)
}

func (w *SyncConnectionWorker) timeBudget() time.Duration {
	if w.TimeBudget > 0 {
		return w.TimeBudget
	}
	return SyncTimeBudget
}

// Work runs the sync and turns its outcome into River's: snooze (rate limited, daily
// limit, time budget: progress committed), cancel (re-authorization or a configuration fix
// needed: no retry loop), or an error River retries with backoff. A run that changed data
// enqueues what follows (EnqueueAfterSyncTx) in the transaction that records its success.
func (w *SyncConnectionWorker) Work(ctx context.Context, job *river.Job[SyncConnectionArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	res, err := w.Engine.Run(ctx, SyncRequest{
		ConnectionID: job.Args.ConnectionID, Stream: job.Args.Stream, Mode: job.Args.Mode, TimeBudget: w.timeBudget(),
		OnSucceededTxFunc: func(ctx context.Context, tx pgx.Tx, res SyncResult) error {
			return EnqueueAfterSyncTx(ctx, tx, client, res.ConnectionID, w.Engine.now())
		},
	})
	switch res.Outcome {
	case OutcomeSucceeded:
		return nil
	case OutcomeSnooze:
		return river.JobSnooze(res.RetryAfter)
	case OutcomeCancel:
		return river.JobCancel(err)
	}
	return err
}

// EnqueueAfterSyncTx enqueues, in the transaction that records a sync's success, what
// follows changed data of a connection: detection and reminder planning.
func EnqueueAfterSyncTx(ctx context.Context, tx pgx.Tx, inserter Inserter, connectionID int64, now time.Time) error {
	if err := EnqueueDetectTx(ctx, tx, inserter, connectionID); err != nil {
		return err
	}
	return EnqueuePlanReminders(ctx, tx, inserter, connectionID, now)
}
