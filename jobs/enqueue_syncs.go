package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

// DefaultReconcileInterval is how often each reconcilable stream is read in full to catch
// deletions and changes that never move a cursor. It must stay well inside the vendors'
// retention of deletions: Pipedrive purges deleted records after 30 days, HubSpot keeps
// archived ones 90 days.
const DefaultReconcileInterval = 24 * time.Hour

// EnqueueSyncsInterval is how often the fan-out runs.
const EnqueueSyncsInterval = time.Minute

// EnqueueSyncsArgs fans out the syncs that are due.
type EnqueueSyncsArgs struct{}

// Kind is the job kind.
func (EnqueueSyncsArgs) Kind() string { return "enqueue_syncs" }

// InsertOpts keeps one fan-out per minute even when a new leader schedules it again.
func (EnqueueSyncsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, UniqueOpts: river.UniqueOpts{ByPeriod: EnqueueSyncsInterval}}
}

// EnqueueSyncsWorker enqueues, for every active connection, an incremental sync of each
// stream whose schedule (connections.config schedule) has come round since its last run,
// and a Full (reconciliation) sync of each reconcilable stream once per ReconcileInterval.
// Jobs already in flight are skipped by SyncConnectionArgs' uniqueness.
type EnqueueSyncsWorker struct {
	river.WorkerDefaults[EnqueueSyncsArgs]
	Engine *SyncEngine
	// ReconcileInterval overrides DefaultReconcileInterval.
	ReconcileInterval time.Duration
}

// NewEnqueueSyncsWorker builds the worker from deps.
func NewEnqueueSyncsWorker(deps *Deps) *EnqueueSyncsWorker {
	return &EnqueueSyncsWorker{Engine: NewSyncEngine(deps)}
}

func enqueueSyncsPeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(EnqueueSyncsInterval),
		func() (river.JobArgs, *river.InsertOpts) { return EnqueueSyncsArgs{}, nil },
		&river.PeriodicJobOpts{ID: "enqueue_syncs", RunOnStart: true})
}

// scheduleSlack lets a stream whose last run started a little less than a schedule ago
// count as due, so a 15m schedule checked every minute runs every 15 minutes, not 16.
const scheduleSlack = 30 * time.Second

// Work enqueues the due syncs in one transaction.
func (w *EnqueueSyncsWorker) Work(ctx context.Context, job *river.Job[EnqueueSyncsArgs]) error {
	e := w.Engine
	conns, err := store.ConnectionsByStatus(ctx, e.DB, store.StatusActive)
	if err != nil {
		return err
	}
	now := e.now()
	var params []river.InsertManyParams
	for _, conn := range conns {
		p, err := w.due(ctx, conn, now)
		if err != nil {
			// One broken connection never holds up the others; its status says why.
			e.logger().WarnContext(ctx, "enqueue_syncs: skipping connection", "connection", conn.Name, "error", err)
			e.applyConnectionOutcome(ctx, conn, classify(conn, "", err, now))
			continue
		}
		params = append(params, p...)
	}
	if len(params) == 0 {
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	var results []*rivertype.JobInsertResult
	err = pgx.BeginFunc(ctx, e.DB, func(tx pgx.Tx) error {
		res, err := client.InsertManyTx(ctx, tx, params)
		results = res
		return err
	})
	if err != nil {
		return fmt.Errorf("enqueueing %d syncs: %w", len(params), err)
	}
	var skipped int
	for _, r := range results {
		if r.UniqueSkippedAsDuplicate {
			skipped++
		}
	}
	e.logger().InfoContext(ctx, "enqueue_syncs: syncs enqueued", "due", len(params), "already_in_flight", skipped)
	return nil
}

// due returns the sync jobs of conn that are due at now.
func (w *EnqueueSyncsWorker) due(ctx context.Context, conn store.Connection, now time.Time) ([]river.InsertManyParams, error) {
	every, err := conn.Config.SyncInterval()
	if err != nil {
		return nil, connectors.Permanent(err)
	}
	connector, _, err := w.Engine.Connector(ctx, conn)
	if err != nil {
		return nil, err
	}
	streams := connector.Streams()
	names := make([]string, len(streams))
	for i, s := range streams {
		names[i] = s.Name
	}
	last, err := store.LastRuns(ctx, w.Engine.DB, conn.ID, names)
	if err != nil {
		return nil, err
	}
	reconcileEvery := w.ReconcileInterval
	if reconcileEvery <= 0 {
		reconcileEvery = DefaultReconcileInterval
	}
	var params []river.InsertManyParams
	for _, s := range streams {
		runs := last[s.Name]
		if runs.LastStarted.IsZero() || now.Sub(runs.LastStarted) >= every-scheduleSlack {
			params = append(params, river.InsertManyParams{Args: SyncConnectionArgs{ConnectionID: conn.ID, Stream: s.Name, Mode: connectors.Incremental}})
		}
		// Streams that are not incremental are read in full on every run already. A new
		// connection's first reconciliation comes one interval after its first sync.
		if !s.Reconcile || !s.Incremental {
			continue
		}
		since := runs.LastFullStarted
		if since.IsZero() {
			since = runs.FirstStarted
		}
		if !since.IsZero() && now.Sub(since) >= reconcileEvery-scheduleSlack {
			params = append(params, river.InsertManyParams{Args: SyncConnectionArgs{ConnectionID: conn.ID, Stream: s.Name, Mode: connectors.Full}})
		}
	}
	return params, nil
}
