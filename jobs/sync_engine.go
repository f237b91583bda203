package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/secrets"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

// Defaults of SyncEngine.
const (
	// DefaultBatchRecords and DefaultBatchWait bound one write: pages are merged until
	// either is reached (DESIGN §3.6: the upsert nears raw COPY speed at thousands of rows).
	DefaultBatchRecords = 5000
	DefaultBatchWait    = 5 * time.Second
	// DefaultReconcileMaxAge is how long an interrupted Full read may be resumed before it
	// starts over.
	DefaultReconcileMaxAge = 7 * 24 * time.Hour
)

// SyncDB is what the engine needs from Postgres: a pool (or, in tests, a transaction whose
// Begin opens a savepoint).
type SyncDB interface {
	store.Querier
	Begin(ctx context.Context) (pgx.Tx, error)
}

// SyncEngine runs one (connection, stream, mode) at a time: it builds the connector, reads
// pages from the stored cursor and commits them in batches, each batch with the cursor of
// its last page, the run's progress and (Full reads) the reconciliation state, in one
// transaction. The River worker and `pipewatch sync` both run it.
type SyncEngine struct {
	DB          SyncDB
	Connectors  ConnectorRegistry
	Credentials *credentials.Store
	// Limiters is shared by every run of the process (nil: each run has its own).
	Limiters *connectors.Limiters
	Logger   *slog.Logger
	NowFunc  func() time.Time
	// BatchRecords and BatchWait bound a write batch (defaults above).
	BatchRecords int
	BatchWait    time.Duration
	// ReconcileMaxAge bounds resuming an interrupted Full read (default above).
	ReconcileMaxAge time.Duration
}

// NewSyncEngine builds the engine from deps. Without deps.Connectors it uses every
// connector of this build (DefaultConnectors); without deps.Limiters, limiters of its own.
func NewSyncEngine(deps *Deps) *SyncEngine {
	e := &SyncEngine{
		DB: deps.Pool, Connectors: deps.Connectors, Credentials: deps.Credentials, Limiters: deps.Limiters,
		Logger: deps.Logger, NowFunc: deps.now,
	}
	if e.Connectors == nil {
		e.Connectors = DefaultConnectors(connectors.HTTPConfig{})
	}
	if e.Limiters == nil {
		e.Limiters = connectors.NewLimiters()
	}
	return e
}

// SyncRequest asks for one run.
type SyncRequest struct {
	ConnectionID int64
	Stream       string
	// Mode is Incremental (the default) or Full. Streams that are not incremental are
	// always read in full.
	Mode connectors.Mode
	// TimeBudget, when set, ends the run after the batch that exceeds it, with its
	// progress committed and OutcomeSnooze (the River worker yields its slot).
	TimeBudget time.Duration
	// AllowInactive runs a connection that is not active (an explicit `pipewatch sync`);
	// scheduled runs skip paused connections and those waiting for re-authorization.
	AllowInactive bool
	// OnSucceededTxFunc, when set, runs in the transaction that records a successful run
	// that wrote rows (the worker enqueues detection there).
	OnSucceededTxFunc func(ctx context.Context, tx pgx.Tx, res SyncResult) error
}

// SyncOutcome tells the caller what to do after a run.
type SyncOutcome string

// Outcomes.
const (
	OutcomeSucceeded SyncOutcome = "succeeded"
	// OutcomeSnooze: progress is committed; run again after SyncResult.RetryAfter.
	OutcomeSnooze SyncOutcome = "snooze"
	// OutcomeRetry: a transient failure (or a cancelled context); retry with backoff.
	OutcomeRetry SyncOutcome = "retry"
	// OutcomeCancel: retrying can't help (re-authorization or a configuration fix needed,
	// or another run of the stream is progressing).
	OutcomeCancel SyncOutcome = "cancel"
)

// SyncResult reports one run.
type SyncResult struct {
	ConnectionID int64
	Connection   string
	Stream       string
	Mode         store.RunMode
	RunID        int64 // 0 when the run could not start
	Status       store.RunStatus
	Outcome      SyncOutcome
	RetryAfter   time.Duration
	store.RunProgress
	// Unchanged counts records read that matched what was stored.
	Unchanged int64
	// Skipped counts records the connector or the store could not take.
	Skipped  int
	Started  time.Time
	Duration time.Duration
	Err      error
}

var (
	errTimeBudget = errors.New("time budget used up; progress is committed and the run resumes from its cursor")
	errInactive   = errors.New("connection is not active")
)

func (e *SyncEngine) now() time.Time {
	if e.NowFunc != nil {
		return e.NowFunc()
	}
	return time.Now()
}

func (e *SyncEngine) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Connector builds the connector of conn with a fresh Stats.
func (e *SyncEngine) Connector(ctx context.Context, conn store.Connection) (connectors.Connector, *connectors.Stats, error) {
	var creds credentials.Credentials
	if e.Credentials != nil {
		c, err := e.Credentials.Load(ctx, e.DB, conn.ID)
		switch {
		case errors.Is(err, credentials.ErrNotFound):
		case err != nil:
			return nil, nil, fmt.Errorf("opening the credentials of connection %s: %w", conn.Name, err)
		default:
			creds = c
		}
	}
	stats := &connectors.Stats{}
	c, err := e.Connectors.New(ctx, ConnectorParams{
		Connection: conn, Credentials: creds, CredentialStore: e.Credentials, DB: e.DB,
		Stats: stats, Limiters: e.Limiters, Logger: e.logger().With("connection", conn.Name), NowFunc: e.NowFunc,
	})
	if err != nil {
		return nil, nil, err
	}
	return c, stats, nil
}

// Run runs one sync and records it in sync_runs. It returns the result and its error
// (res.Err); res.Outcome says whether to retry, snooze or give up.
func (e *SyncEngine) Run(ctx context.Context, req SyncRequest) (SyncResult, error) {
	res := SyncResult{ConnectionID: req.ConnectionID, Stream: req.Stream, Started: e.now()}
	conn, err := store.LoadConnection(ctx, e.DB, req.ConnectionID)
	if err != nil {
		return e.fail(ctx, res, nil, err)
	}
	res.Connection = conn.Name
	if conn.Status != store.StatusActive && !req.AllowInactive {
		return e.fail(ctx, res, &conn, fmt.Errorf("%w: %s is %s (%s)", errInactive, conn.Name, conn.Status, conn.StatusReason))
	}
	connector, stats, err := e.Connector(ctx, conn)
	if err != nil {
		return e.fail(ctx, res, &conn, err)
	}
	stream, ok := connectors.StreamByName(connector, req.Stream)
	if !ok {
		var names []string
		for _, s := range connector.Streams() {
			names = append(names, s.Name)
		}
		return e.fail(ctx, res, &conn, fmt.Errorf("%w: %s connection %s has no stream %q (streams: %s)",
			errUnknownStream, conn.Kind, conn.Name, req.Stream, strings.Join(names, ", ")))
	}
	return e.run(ctx, res, conn, connector, stats, stream, req)
}

var errUnknownStream = errors.New("unknown stream")

// RunConnection runs every stream of a connection in mode: RunStreams with no more settings.
func (e *SyncEngine) RunConnection(ctx context.Context, connectionID int64, mode connectors.Mode, allowInactive bool) ([]SyncResult, error) {
	return e.RunStreams(ctx, SyncRequest{ConnectionID: connectionID, Mode: mode, AllowInactive: allowInactive})
}

// RunStreams runs every stream of req.ConnectionID (req.Stream is ignored) in the
// connector's order, referenced entities first and deletion streams included, and returns
// one result per stream. It stops early when the credentials are rejected or the context
// ends; other failures don't keep the remaining streams from syncing.
func (e *SyncEngine) RunStreams(ctx context.Context, req SyncRequest) ([]SyncResult, error) {
	conn, err := store.LoadConnection(ctx, e.DB, req.ConnectionID)
	if err != nil {
		return nil, err
	}
	connector, _, err := e.Connector(ctx, conn)
	if err != nil {
		res, err := e.fail(ctx, SyncResult{ConnectionID: conn.ID, Connection: conn.Name, Started: e.now()}, &conn, err)
		return []SyncResult{res}, err
	}
	var (
		results []SyncResult
		errs    []error
	)
	for _, s := range connector.Streams() {
		sreq := req
		sreq.Stream = s.Name
		res, err := e.Run(ctx, sreq)
		results = append(results, res)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", conn.Name, s.Name, err))
			if errors.Is(err, connectors.ErrUnauthorized) || errors.Is(err, errInactive) || ctx.Err() != nil {
				break
			}
		}
	}
	return results, errors.Join(errs...)
}

// run is one started run: its state between batches.
type run struct {
	e         *SyncEngine
	log       *slog.Logger
	conn      store.Connection
	connector connectors.Connector
	stream    connectors.Stream
	mode      connectors.Mode
	reconcile bool
	syncStart time.Time
	stats     *connectors.Stats

	cursor   store.StreamCursor    // incremental reads
	recon    *store.Reconciliation // full reads
	progress store.RunProgress
	res      *SyncResult
	skipped  []string
	// warnings are kept in sync_runs.error of a run that still succeeded.
	warnings []string
	// onSucceeded runs in the transaction that records a successful run that wrote rows.
	onSucceeded func(ctx context.Context, tx pgx.Tx, res SyncResult) error
}

func (e *SyncEngine) run(ctx context.Context, res SyncResult, conn store.Connection, connector connectors.Connector,
	stats *connectors.Stats, stream connectors.Stream, req SyncRequest) (SyncResult, error) {
	r := &run{e: e, conn: conn, connector: connector, stream: stream, mode: connectors.Incremental,
		syncStart: res.Started, stats: stats, res: &res, onSucceeded: req.OnSucceededTxFunc}
	if req.Mode == connectors.Full || !stream.Incremental {
		r.mode = connectors.Full
		r.reconcile = stream.Reconcile
	}
	res.Mode = store.RunIncremental
	switch {
	case r.reconcile:
		res.Mode = store.RunReconcile
	case r.mode == connectors.Full:
		res.Mode = store.RunFull
	}
	r.log = e.logger().With("connection", conn.Name, "connection_id", conn.ID, "stream", stream.Name, "mode", res.Mode)

	var err error
	if r.mode == connectors.Full {
		r.recon, err = store.ResumeReconciliation(ctx, e.DB, conn.ID, stream.Name, res.Started, e.reconcileMaxAge())
	} else {
		r.cursor, err = store.LoadCursor(ctx, e.DB, conn.ID, stream.Name)
	}
	if err == nil {
		res.RunID, err = store.StartRun(ctx, e.DB, conn.ID, stream.Name, res.Mode, res.Started)
	}
	if err != nil {
		return e.fail(ctx, res, &conn, err)
	}
	if r.recon != nil && r.recon.Resumed {
		r.log.InfoContext(ctx, "sync: resuming an interrupted full read", "started_at", r.recon.StartedAt, "cursor", r.recon.Cursor)
	}
	err = r.read(connectors.WithStats(ctx, stats), req.TimeBudget)
	return e.finish(ctx, r, err)
}

func (e *SyncEngine) batchRecords() int {
	if e.BatchRecords > 0 {
		return e.BatchRecords
	}
	return DefaultBatchRecords
}

func (e *SyncEngine) batchWait() time.Duration {
	if e.BatchWait > 0 {
		return e.BatchWait
	}
	return DefaultBatchWait
}

func (e *SyncEngine) reconcileMaxAge() time.Duration {
	if e.ReconcileMaxAge > 0 {
		return e.ReconcileMaxAge
	}
	return DefaultReconcileMaxAge
}

// read pulls pages and commits them in batches until the stream is done. Only one batch
// is held in memory. When a read fails, the pages read before it are committed first (a
// rate-limited run keeps its progress), unless the context ended.
func (r *run) read(ctx context.Context, budget time.Duration) error {
	cur := r.committedCursor()
	var (
		batch      pipeline.Batch
		seen       = store.Seen{}
		pending    bool
		batchStart = r.e.now()
	)
	flush := func(done bool) error {
		if err := r.commit(ctx, &batch, seen, cur, done); err != nil {
			return err
		}
		batch, seen, pending, batchStart = pipeline.Batch{}, store.Seen{}, false, r.e.now()
		return nil
	}
	for {
		page, err := r.connector.Read(ctx, connectors.ReadRequest{
			Stream: r.stream.Name, Mode: r.mode, Cursor: connectors.Cursor(cur), SyncStart: r.syncStart,
		})
		if err == nil && !page.Done && string(page.Next) == cur {
			err = connectors.Permanent(fmt.Errorf("the connector returned cursor %q again without finishing the stream", shortCursor(cur)))
		}
		if err != nil {
			err = fmt.Errorf("reading %s after cursor %q: %w", r.stream.Name, shortCursor(cur), err)
			if pending && ctx.Err() == nil {
				if ferr := flush(false); ferr != nil {
					return errors.Join(err, ferr)
				}
			}
			return err
		}
		for _, s := range page.Skipped {
			r.skip(ctx, s.Entity, s.ExternalID, s.Reason)
			seen.Add(s.Entity, s.ExternalID) // it exists at the vendor: never tombstone it
		}
		batch.Append(page.Batch)
		if r.reconcile {
			seen.AddBatch(&page.Batch)
		}
		r.progress.Read += int64(page.Batch.Len() + len(page.Skipped))
		cur, pending = string(page.Next), true
		if page.Done || batch.Len() >= r.e.batchRecords() || r.e.now().Sub(batchStart) >= r.e.batchWait() {
			if err := flush(page.Done); err != nil {
				return err
			}
		}
		if page.Done {
			return nil
		}
		if budget > 0 && r.e.now().Sub(r.syncStart) >= budget {
			if pending {
				if err := flush(false); err != nil {
					return err
				}
			}
			return errTimeBudget
		}
	}
}

// committedCursor is the cursor last committed by this run, or read at its start.
func (r *run) committedCursor() string {
	if r.recon != nil {
		return r.recon.Cursor
	}
	return r.cursor.Value
}

// commit writes one batch with the cursor after it and the run's progress, in one
// transaction. On the last page of a Full read it finishes the reconciliation.
func (r *run) commit(ctx context.Context, batch *pipeline.Batch, seen store.Seen, next string, done bool) error {
	if batch.Len() == 0 && next == r.committedCursor() && !(done && r.recon != nil) {
		return nil // nothing to write: a caught-up incremental read
	}
	now := r.e.now()
	progress := r.progress
	var counts store.Counts
	err := pgx.BeginFunc(ctx, r.e.DB, func(tx pgx.Tx) error {
		var err error
		counts, err = store.WriteBatch(ctx, tx, store.Write{
			ConnectionID: r.conn.ID, Batch: batch, SyncedAt: now, StageMap: r.conn.Config.StageMap,
			FullRead: r.mode == connectors.Full,
		})
		if err != nil {
			return err
		}
		switch {
		case r.recon != nil && done:
			var tombstoned int64
			tombstoned, err = r.recon.Finish(ctx, tx, seen, r.stream.Entities, r.reconcile, now)
			counts.Deleted += tombstoned
			r.warnings = r.recon.Refused
		case r.recon != nil:
			if !r.reconcile {
				seen = nil
			}
			err = r.recon.Advance(ctx, tx, seen, next, now)
		default:
			r.cursor, err = store.SaveCursor(ctx, tx, r.conn.ID, r.stream.Name, r.cursor, next, now)
		}
		if err != nil {
			return err
		}
		progress.Inserted += counts.Inserted
		progress.Updated += counts.Updated
		progress.Deleted += counts.Deleted
		progress.Requests, progress.Retries = r.stats.Requests.Load(), r.stats.Retries.Load()
		return store.UpdateRun(ctx, tx, r.res.RunID, progress)
	})
	if err != nil {
		return fmt.Errorf("committing %s batch up to cursor %q: %w", r.stream.Name, shortCursor(next), err)
	}
	r.progress = progress
	r.res.Unchanged += counts.Unchanged
	for _, rej := range counts.Rejected {
		r.skip(ctx, rej.Entity, rej.ExternalID, rej.Reason)
	}
	r.log.DebugContext(ctx, "sync: batch committed", "records", batch.Len(), "inserted", counts.Inserted,
		"updated", counts.Updated, "deleted", counts.Deleted, "cursor", next, "done", done)
	return nil
}

const maxSkippedListed = 10

func (r *run) skip(ctx context.Context, entity pipeline.Entity, id, reason string) {
	r.log.WarnContext(ctx, "sync: skipped record", "entity", entity, "external_id", id, "reason", reason)
	r.res.Skipped++
	if len(r.skipped) < maxSkippedListed {
		r.skipped = append(r.skipped, store.Rejection{Entity: entity, ExternalID: id, Reason: reason}.String())
	}
}

func (r *run) skippedSummary() string {
	if r.res.Skipped == 0 {
		return ""
	}
	s := fmt.Sprintf("skipped %d records: %s", r.res.Skipped, strings.Join(r.skipped, "; "))
	if more := r.res.Skipped - len(r.skipped); more > 0 {
		s += fmt.Sprintf("; and %d more (see the worker log)", more)
	}
	return s
}

// finish classifies the run's end, records it and applies its consequences.
func (e *SyncEngine) finish(ctx context.Context, r *run, err error) (SyncResult, error) {
	res := r.res
	res.RunProgress = r.progress
	res.Requests, res.Retries = r.stats.Requests.Load(), r.stats.Retries.Load()
	o := classify(r.conn, r.stream.Name, err, e.now())
	res.Status, res.Outcome, res.RetryAfter, res.Err = o.runStatus, o.outcome, o.retryAfter, err
	res.Duration = e.now().Sub(res.Started)

	// Bookkeeping must land even when ctx was cancelled: the run's end is part of its record.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	var errText []string
	if err != nil {
		errText = append(errText, err.Error())
	}
	if s := r.skippedSummary(); s != "" {
		errText = append(errText, s)
	}
	for _, w := range r.warnings {
		r.log.ErrorContext(ctx, "sync: "+w)
		errText = append(errText, w)
	}
	// The run's end, the connection's state and what the success causes (detection)
	// commit together.
	succeeded := err == nil
	ferr := pgx.BeginFunc(bctx, e.DB, func(tx pgx.Tx) error {
		if err := store.FinishRun(bctx, tx, res.RunID, res.Status, res.RunProgress, strings.Join(errText, "\n"), e.now()); err != nil {
			return err
		}
		if o.connStatus != "" {
			if err := store.SetConnectionStatus(bctx, tx, r.conn.ID, o.connStatus, o.reason, e.now()); err != nil {
				return err
			}
		}
		if !succeeded {
			return nil
		}
		if err := store.MarkSynced(bctx, tx, r.conn.ID, e.now()); err != nil {
			return err
		}
		if r.onSucceeded != nil && res.Inserted+res.Updated+res.Deleted > 0 {
			return r.onSucceeded(bctx, tx, *res)
		}
		return nil
	})
	if ferr != nil {
		e.logger().ErrorContext(ctx, "sync: recording the end of a run", "run_id", res.RunID, "error", ferr)
		if succeeded { // the data is committed; a retry re-reads nothing new and records the end
			err, res.Err, res.Outcome, res.Status = ferr, ferr, OutcomeRetry, store.RunFailed
		}
	}
	if o.connStatus != "" {
		r.log.WarnContext(ctx, "sync: connection needs attention", "status", o.connStatus, "reason", o.reason)
	}
	level := slog.LevelInfo
	if o.outcome == OutcomeRetry || o.outcome == OutcomeCancel {
		level = slog.LevelWarn
	}
	r.log.Log(ctx, level, "sync: run finished", "status", res.Status, "outcome", res.Outcome, "requests", res.Requests,
		"retries", res.Retries, "read", res.Read, "inserted", res.Inserted, "updated", res.Updated, "deleted", res.Deleted,
		"skipped", res.Skipped, "duration", res.Duration.Round(time.Millisecond), "error", err)
	return *res, err
}

// fail ends a run that could not start reading. conn is nil when it could not be loaded.
func (e *SyncEngine) fail(ctx context.Context, res SyncResult, conn *store.Connection, err error) (SyncResult, error) {
	c := store.Connection{ID: res.ConnectionID}
	if conn != nil {
		c = *conn
	}
	o := classify(c, res.Stream, err, e.now())
	res.Status, res.Outcome, res.RetryAfter, res.Err = o.runStatus, o.outcome, o.retryAfter, err
	res.Duration = e.now().Sub(res.Started)
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if res.RunID != 0 {
		if ferr := store.FinishRun(bctx, e.DB, res.RunID, res.Status, res.RunProgress, err.Error(), e.now()); ferr != nil {
			e.logger().ErrorContext(ctx, "sync: recording the end of a run", "run_id", res.RunID, "error", ferr)
		}
	}
	if conn != nil {
		e.applyConnectionOutcome(bctx, c, o)
	}
	e.logger().WarnContext(ctx, "sync: run could not start", "connection_id", res.ConnectionID, "stream", res.Stream,
		"outcome", o.outcome, "error", err)
	return res, err
}

func (e *SyncEngine) applyConnectionOutcome(ctx context.Context, conn store.Connection, o outcome) {
	if o.connStatus == "" {
		return
	}
	if err := store.SetConnectionStatus(ctx, e.DB, conn.ID, o.connStatus, o.reason, e.now()); err != nil {
		e.logger().ErrorContext(ctx, "sync: setting the connection status", "connection_id", conn.ID, "status", o.connStatus, "error", err)
		return
	}
	e.logger().WarnContext(ctx, "sync: connection needs attention", "connection", conn.Name, "status", o.connStatus, "reason", o.reason)
}

// outcome is what a run's error means.
type outcome struct {
	outcome    SyncOutcome
	runStatus  store.RunStatus
	retryAfter time.Duration
	// connStatus, when set, becomes the connection's status with reason.
	connStatus, reason string
}

// classify maps a run's error to what happens next. It is the one place where connector
// and store errors turn into outcomes.
func classify(conn store.Connection, stream string, err error, now time.Time) outcome {
	var (
		rl   *connectors.RateLimitError
		perm *connectors.PermanentError
	)
	name, what := conn.Name, "syncing "+stream
	if stream == "" {
		what = "setting up the connection"
	}
	switch {
	case err == nil:
		return outcome{outcome: OutcomeSucceeded, runStatus: store.RunSucceeded}
	case errors.Is(err, errTimeBudget):
		return outcome{outcome: OutcomeSnooze, runStatus: store.RunSnoozed}
	case errors.As(err, &rl):
		// A daily limit snoozes to its reset (RetryAfter reaches it); progress is committed.
		return outcome{outcome: OutcomeSnooze, runStatus: store.RunSnoozed, retryAfter: max(rl.RetryAfter, time.Second)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Never a success: the run stopped early. Its committed batches stay.
		return outcome{outcome: OutcomeRetry, runStatus: store.RunCancelled}
	case errors.Is(err, connectors.ErrUnauthorized):
		return outcome{outcome: OutcomeCancel, runStatus: store.RunFailed, connStatus: store.StatusNeedsReauth,
			reason: fmt.Sprintf("%s rejected the stored credentials (HTTP 401) while syncing %s at %s. To reconnect: "+
				"issue a new token (or re-authorize the OAuth app), put it in the environment variable the config file "+
				"names for %s, run `pipewatch apply`, then `pipewatch sync --connection %s`. Scheduled syncs of this "+
				"connection are paused until then.", conn.Kind, stream, now.UTC().Format(time.RFC3339), name, name)}
	case errors.Is(err, secrets.ErrWrongKey):
		return outcome{outcome: OutcomeCancel, runStatus: store.RunFailed, connStatus: store.StatusNeedsReauth,
			reason: fmt.Sprintf("the stored credentials of %s can't be opened with this %s: start pipewatch with the key "+
				"they were stored with, or run `pipewatch apply` to store them again with the current key", name, secrets.EnvKey)}
	case errors.Is(err, secrets.ErrNoKey), errors.Is(err, errInactive), errors.Is(err, errUnknownStream),
		errors.Is(err, store.ErrConnectionNotFound):
		return outcome{outcome: OutcomeCancel, runStatus: store.RunFailed}
	case errors.Is(err, store.ErrConcurrentRun):
		return outcome{outcome: OutcomeCancel, runStatus: store.RunCancelled}
	case errors.As(err, &perm):
		return outcome{outcome: OutcomeCancel, runStatus: store.RunFailed, connStatus: store.StatusError,
			reason: fmt.Sprintf("%s failed and retrying can't fix it: %v. Fix the connection in the config file, "+
				"run `pipewatch apply`, then `pipewatch sync --connection %s`.", what, perm.Err, name)}
	}
	return outcome{outcome: OutcomeRetry, runStatus: store.RunFailed}
}

// shortCursor keeps error messages readable: some cursors carry hundreds of record ids.
func shortCursor(c string) string {
	const limit = 120
	if len(c) <= limit {
		return c
	}
	return fmt.Sprintf("%s…(%d bytes)", c[:limit], len(c))
}
