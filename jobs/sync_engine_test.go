package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// testClock advances by step on every reading, so every write of a test has its own time.
type testClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), step: time.Millisecond}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type syncBundle struct {
	db     jobs.SyncDB
	engine *jobs.SyncEngine
	vendor *fakeVendor
	connID int64
	clock  *testClock
	logs   *bytes.Buffer
}

// newSyncBundle wires an engine on db to a fake vendor of n deals (ties of tie, pages of
// pageSize) behind an active hubspot connection.
func newSyncBundle(ctx context.Context, t *testing.T, db jobs.SyncDB, n, tie, pageSize int) *syncBundle {
	t.Helper()
	var connID int64
	require.NoError(t, db.QueryRow(ctx, `INSERT INTO connections (name, kind, config) VALUES ('hs', 'hubspot', '{"schedule":"15m"}') RETURNING id`).Scan(&connID))
	vendor := newFakeVendor(n, tie, pageSize)
	clock := newTestClock()
	logs := &bytes.Buffer{}
	engine := &jobs.SyncEngine{
		DB: db, Connectors: vendor.registry(), NowFunc: clock.Now,
		Logger:       slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil)),
		BatchRecords: 1000, BatchWait: time.Hour,
	}
	return &syncBundle{db: db, engine: engine, vendor: vendor, connID: connID, clock: clock, logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (b *syncBundle) run(ctx context.Context, t *testing.T, stream string, mode connectors.Mode) (jobs.SyncResult, error) {
	t.Helper()
	return b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: stream, Mode: mode})
}

func (b *syncBundle) mustRun(ctx context.Context, t *testing.T, stream string, mode connectors.Mode) jobs.SyncResult {
	t.Helper()
	res, err := b.run(ctx, t, stream, mode)
	require.NoError(t, err)
	require.Equal(t, jobs.OutcomeSucceeded, res.Outcome)
	return res
}

// requireExact checks that the stored live deals are exactly the vendor's: same ids, no
// duplicates, same fields, amounts to the cent.
func (b *syncBundle) requireExact(ctx context.Context, t *testing.T) {
	t.Helper()
	rows, err := b.db.Query(ctx, `SELECT external_id, name, amount::text, stage_external_id, owner_external_id,
		to_char(close_date, 'YYYY-MM-DD'), stage_id IS NOT NULL AND owner_id IS NOT NULL
		FROM deals WHERE connection_id = $1 AND deleted_at IS NULL`, b.connID)
	require.NoError(t, err)
	type stored struct {
		ID, Name, Amount, Stage, Owner, CloseDate string
		Resolved                                  bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stored])
	require.NoError(t, err)
	want := b.vendor.liveDeals()
	require.Len(t, got, len(want))
	for _, g := range got {
		w, ok := want[g.ID]
		require.True(t, ok, "deal %s is live in the store but not at the vendor", g.ID)
		require.Equal(t, stored{w.ExternalID, w.Name, w.Amount.Decimal.StringFixed(2), w.StageExternalID, w.OwnerExternalID,
			w.CloseDate.Format("2006-01-02"), g.Resolved}, g)
	}
}

func countRows(ctx context.Context, t *testing.T, db store.Querier, query string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRow(ctx, query, args...).Scan(&n))
	return n
}

func (b *syncBundle) syncReference(ctx context.Context, t *testing.T) {
	t.Helper()
	b.mustRun(ctx, t, "owners", connectors.Incremental)
	b.mustRun(ctx, t, "pipelines", connectors.Incremental)
}

func TestSyncEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	setup := func(t *testing.T, n, tie, pageSize int) *syncBundle {
		t.Helper()
		return newSyncBundle(ctx, t, dbtest.TestTx(ctx, t), n, tie, pageSize)
	}

	t.Run("BackfillWithTiesIsExactAndANoChangeSyncWritesNothing", func(t *testing.T) {
		t.Parallel()
		// 2,500 deals, 650 sharing each timestamp, pages of 100: ties cross many pages.
		b := setup(t, 2500, 650, 100)
		b.syncReference(ctx, t)
		res := b.mustRun(ctx, t, "deals", connectors.Incremental)
		require.EqualValues(t, 2500*2, res.Inserted, "deals and their stage entries")
		require.EqualValues(t, 2500*2, res.Read)
		require.EqualValues(t, 25, res.Requests)
		b.requireExact(ctx, t)
		require.EqualValues(t, 2500, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_stage_history WHERE source = 'vendor'`))

		var runStatus string
		var inserted, requests int64
		require.NoError(t, b.db.QueryRow(ctx, `SELECT status, inserted, requests FROM sync_runs WHERE id = $1`, res.RunID).
			Scan(&runStatus, &inserted, &requests))
		require.Equal(t, "succeeded", runStatus)
		require.EqualValues(t, 5000, inserted)
		require.EqualValues(t, 25, requests)
		require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM connections WHERE last_synced_at IS NOT NULL`))

		// Nothing changed at the vendor: one request per stream, zero rows written.
		for _, stream := range []string{"owners", "pipelines", "deals", "archived_deals"} {
			res := b.mustRun(ctx, t, stream, connectors.Incremental)
			require.EqualValues(t, 1, res.Requests, stream)
			require.Zero(t, res.Inserted+res.Updated+res.Deleted, stream)
		}
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE synced_at > $1`, res.Started.Add(res.Duration)))
	})

	t.Run("ChangesBetweenSyncsUpdateRowsAndAreObserved", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 300, 50, 100)
		b.syncReference(ctx, t)
		b.mustRun(ctx, t, "deals", connectors.Incremental)

		later := vendorT0.Add(time.Hour)
		b.vendor.edit("d00010", later, func(d *pipeline.Deal) { d.StageExternalID, d.StageEnteredAt = "s3", later })
		b.vendor.edit("d00011", later, func(d *pipeline.Deal) { d.CloseDate = d.CloseDate.AddDate(0, 1, 0) })
		b.vendor.edit("d00012", later, func(d *pipeline.Deal) { d.Amount.Decimal = d.Amount.Decimal.Add(d.Amount.Decimal) })
		res := b.mustRun(ctx, t, "deals", connectors.Incremental)
		// Three deals, and the observed entry in the new stage that the vendor's entry confirms.
		require.EqualValues(t, 4, res.Updated)
		require.Zero(t, res.Inserted)
		b.requireExact(ctx, t)

		rows, err := b.db.Query(ctx, `SELECT d.external_id || ':' || c.field FROM deal_changes c JOIN deals d ON d.id = c.deal_id ORDER BY 1`)
		require.NoError(t, err)
		changes, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"d00010:stage", "d00011:close_date", "d00012:amount"}, changes)
		require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
			WHERE d.external_id = 'd00010' AND h.stage_external_id = 's1' AND h.exited_at = $1`, later))
		require.EqualValues(t, 1, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_stage_history h JOIN deals d ON d.id = h.deal_id
			WHERE d.external_id = 'd00010' AND h.stage_external_id = 's3' AND h.exited_at IS NULL AND h.source = 'vendor'`))
	})

	t.Run("ArchivedAreTombstonedAndRestoredLiveAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 200, 10, 100)
		b.mustRun(ctx, t, "deals", connectors.Incremental)
		b.vendor.archive("d00001", vendorT0.Add(time.Hour))
		b.vendor.archive("d00002", vendorT0.Add(time.Hour))
		res := b.mustRun(ctx, t, "archived_deals", connectors.Incremental)
		require.EqualValues(t, 2, res.Deleted)
		b.requireExact(ctx, t)
		require.EqualValues(t, 200, countRows(ctx, t, b.db, `SELECT count(*) FROM deals`), "tombstoned, never deleted")

		b.vendor.restore("d00001", vendorT0.Add(2*time.Hour))
		res = b.mustRun(ctx, t, "deals", connectors.Incremental)
		require.EqualValues(t, 1, res.Updated)
		res = b.mustRun(ctx, t, "archived_deals", connectors.Incremental)
		require.Zero(t, res.Deleted)
		b.requireExact(ctx, t)
	})

	t.Run("ReferencesBeforeTheirTargetsResolveLater", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 150, 10, 100)
		b.mustRun(ctx, t, "deals", connectors.Incremental)
		require.EqualValues(t, 150, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE owner_id IS NULL AND stage_id IS NULL`))
		b.syncReference(ctx, t)
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE owner_id IS NULL OR stage_id IS NULL OR pipeline_id IS NULL`))
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM deal_stage_history WHERE stage_id IS NULL`))
	})

	t.Run("RateLimitSnoozesWithProgressKept", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 1000, 100, 100)
		// Pages 1-6 are read (600 records, below the 1,000-record batch), then a 429 that
		// outlasts the HTTP chain's patience.
		b.vendor.setHook(func(_ context.Context, call int, _ connectors.ReadRequest) error {
			if call == 7 {
				return &connectors.RateLimitError{RetryAfter: 90 * time.Second, Message: "TEN_SECONDLY_ROLLING"}
			}
			return nil
		})
		res, err := b.run(ctx, t, "deals", connectors.Incremental)
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.Equal(t, jobs.OutcomeSnooze, res.Outcome)
		require.Equal(t, store.RunSnoozed, res.Status)
		require.Equal(t, 90*time.Second, res.RetryAfter)
		require.EqualValues(t, 600, countRows(ctx, t, b.db, `SELECT count(*) FROM deals`), "pages read before the 429 are committed")

		// The resumed run starts after page 6: four more pages, nothing read twice.
		b.vendor.setHook(nil)
		res = b.mustRun(ctx, t, "deals", connectors.Incremental)
		require.EqualValues(t, 4, res.Requests)
		require.EqualValues(t, 400*2, res.Inserted, "deals and their stage entries")
		b.requireExact(ctx, t)
	})

	t.Run("DailyLimitSnoozesUntilTheReset", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 10, 1, 100)
		b.vendor.setHook(func(context.Context, int, connectors.ReadRequest) error {
			return &connectors.RateLimitError{RetryAfter: 7 * time.Hour, Daily: true}
		})
		res, _ := b.run(ctx, t, "deals", connectors.Incremental)
		require.Equal(t, jobs.OutcomeSnooze, res.Outcome)
		require.Equal(t, 7*time.Hour, res.RetryAfter)
	})

	t.Run("UnauthorizedNeedsReauthAndStops", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 10, 1, 100)
		b.vendor.setHook(func(context.Context, int, connectors.ReadRequest) error {
			return connectors.ErrUnauthorized
		})
		res, err := b.run(ctx, t, "deals", connectors.Incremental)
		require.ErrorIs(t, err, connectors.ErrUnauthorized)
		require.Equal(t, jobs.OutcomeCancel, res.Outcome)
		var status, reason, runErr string
		require.NoError(t, b.db.QueryRow(ctx, `SELECT status, status_reason FROM connections WHERE id = $1`, b.connID).Scan(&status, &reason))
		require.Equal(t, "needs_reauth", status)
		require.Contains(t, reason, "hubspot rejected the stored credentials (HTTP 401) while syncing deals")
		require.Contains(t, reason, "run `pipewatch apply`, then `pipewatch sync --connection hs`")
		require.NoError(t, b.db.QueryRow(ctx, `SELECT status, error FROM sync_runs WHERE id = $1`, res.RunID).Scan(&status, &runErr))
		require.Equal(t, "failed", status)
		require.Contains(t, runErr, "401")

		// Scheduled runs don't hammer the vendor with rejected credentials.
		b.vendor.setHook(nil)
		res, err = b.run(ctx, t, "deals", connectors.Incremental)
		require.Error(t, err)
		require.Equal(t, jobs.OutcomeCancel, res.Outcome)
		require.Zero(t, res.Requests)

		// An explicit run with working credentials proves them: active again.
		res, err = b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: "deals", AllowInactive: true})
		require.NoError(t, err)
		require.NoError(t, b.db.QueryRow(ctx, `SELECT status FROM connections WHERE id = $1`, b.connID).Scan(&status))
		require.Equal(t, "active", status)
	})

	t.Run("PermanentErrorMarksTheConnection", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 10, 1, 100)
		b.vendor.setHook(func(context.Context, int, connectors.ReadRequest) error {
			return connectors.Permanent(errors.New("HTTP 400: property hs_foo does not exist"))
		})
		res, err := b.run(ctx, t, "deals", connectors.Incremental)
		require.Error(t, err)
		require.Equal(t, jobs.OutcomeCancel, res.Outcome)
		var status, reason string
		require.NoError(t, b.db.QueryRow(ctx, `SELECT status, status_reason FROM connections WHERE id = $1`, b.connID).Scan(&status, &reason))
		require.Equal(t, "error", status)
		require.Contains(t, reason, "syncing deals failed and retrying can't fix it: HTTP 400: property hs_foo does not exist")

		// Another stream succeeding doesn't hide it; the failing stream succeeding does.
		b.vendor.setHook(nil)
		_, err = b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: "owners", AllowInactive: true})
		require.NoError(t, err)
		require.Equal(t, "error", connectionStatus(ctx, t, b.db, b.connID))
		_, err = b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: "deals", AllowInactive: true})
		require.NoError(t, err)
		require.Equal(t, "active", connectionStatus(ctx, t, b.db, b.connID))
	})

	t.Run("TransientErrorRetriesAndKeepsProgress", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 500, 10, 100)
		b.vendor.setHook(func(_ context.Context, call int, _ connectors.ReadRequest) error {
			if call == 3 {
				return &connectors.HTTPError{Method: "POST", Path: "/crm/v3/objects/deals/search", StatusCode: 502, Body: "bad gateway"}
			}
			return nil
		})
		res, err := b.run(ctx, t, "deals", connectors.Incremental)
		require.Error(t, err)
		require.Equal(t, jobs.OutcomeRetry, res.Outcome)
		require.Equal(t, store.RunFailed, res.Status)
		require.EqualValues(t, 200, countRows(ctx, t, b.db, `SELECT count(*) FROM deals`))
		b.vendor.setHook(nil)
		b.mustRun(ctx, t, "deals", connectors.Incremental)
		b.requireExact(ctx, t)
	})

	t.Run("SkippedRecordsAreLoggedAndSummarized", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, 1, 100)
		b.vendor.setHook(nil)
		reg := jobs.ConnectorRegistry{"hubspot": func(context.Context, jobs.ConnectorParams) (connectors.Connector, error) {
			return skippingConnector{}, nil
		}}
		b.engine.Connectors = reg
		res := b.mustRun(ctx, t, "deals", connectors.Incremental)
		require.Equal(t, 2, res.Skipped)
		require.EqualValues(t, 1, res.Inserted)
		var runErr, status string
		require.NoError(t, b.db.QueryRow(ctx, `SELECT status, error FROM sync_runs WHERE id = $1`, res.RunID).Scan(&status, &runErr))
		require.Equal(t, "succeeded", status)
		require.Equal(t, `skipped 2 records: deals 42: amount "12,5" is not a number; deals 43: deal is won but not closed`, runErr)
		require.Contains(t, b.logs.String(), `msg="sync: skipped record" connection=hs connection_id=`)
		require.Contains(t, b.logs.String(), `entity=deals external_id=42 reason="amount \"12,5\" is not a number"`)
	})

	t.Run("ReconciliationTombstonesOnlyAfterACompleteFullRead", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 1000, 10, 100)
		b.engine.BatchRecords = 300
		b.mustRun(ctx, t, "deals", connectors.Incremental)
		b.vendor.purge("d00005")
		b.vendor.purge("d00950")

		// The full read fails after 4 pages (3 committed batches' worth of ids are kept).
		b.vendor.setHook(func(_ context.Context, call int, _ connectors.ReadRequest) error {
			if call == 5 {
				return errors.New("connection reset by peer")
			}
			return nil
		})
		res, err := b.run(ctx, t, "deals", connectors.Full)
		require.Error(t, err)
		require.Equal(t, store.RunReconcile, res.Mode)
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM deals WHERE deleted_at IS NOT NULL`), "no tombstones from partial data")

		// The next full read resumes where it stopped and reconciles at the end.
		b.vendor.setHook(nil)
		res = b.mustRun(ctx, t, "deals", connectors.Full)
		require.EqualValues(t, 6, res.Requests, "pages 5-10 only")
		require.EqualValues(t, 2, res.Deleted)
		b.requireExact(ctx, t)
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM sync_reconciliations`))
		require.EqualValues(t, 0, countRows(ctx, t, b.db, `SELECT count(*) FROM sync_reconciliation_seen`))
	})

	t.Run("OverlappingRunsCannotBothAdvanceTheCursor", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 300, 10, 100)
		b.engine.BatchRecords = 100
		other := &jobs.SyncEngine{DB: b.db, Connectors: b.vendor.registry(), NowFunc: b.clock.Now}
		var otherRes jobs.SyncResult
		b.vendor.setHook(func(ctx context.Context, call int, _ connectors.ReadRequest) error {
			if call == 2 { // while the first run is between batches, a second one runs to the end
				b.vendor.setHook(nil)
				otherRes, _ = other.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: "deals"})
			}
			return nil
		})
		res, err := b.run(ctx, t, "deals", connectors.Incremental)
		require.ErrorIs(t, err, store.ErrConcurrentRun)
		require.Equal(t, jobs.OutcomeCancel, res.Outcome)
		require.Equal(t, jobs.OutcomeSucceeded, otherRes.Outcome)
		b.requireExact(ctx, t)
	})

	t.Run("TimeBudgetSnoozesWithProgressCommitted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 500, 10, 100)
		b.clock.step = time.Second
		res, err := b.engine.Run(ctx, jobs.SyncRequest{ConnectionID: b.connID, Stream: "deals", TimeBudget: 3 * time.Second})
		require.Error(t, err)
		require.Equal(t, jobs.OutcomeSnooze, res.Outcome)
		require.Zero(t, res.RetryAfter)
		require.Positive(t, res.Inserted)
		b.clock.step = time.Millisecond
		b.mustRun(ctx, t, "deals", connectors.Incremental)
		b.requireExact(ctx, t)
	})

	t.Run("UnknownStreamNamesTheStreams", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, 1, 100)
		res, err := b.run(ctx, t, "dealz", connectors.Incremental)
		require.EqualError(t, err, `unknown stream: hubspot connection hs has no stream "dealz" (streams: owners, pipelines, deals, archived_deals)`)
		require.Equal(t, jobs.OutcomeCancel, res.Outcome)
	})
}

// skippingConnector returns one good deal and two the connector and the store can't take.
type skippingConnector struct{}

func (skippingConnector) Streams() []connectors.Stream {
	return []connectors.Stream{{Name: "deals", Entities: []pipeline.Entity{pipeline.EntityDeals}, Incremental: true}}
}

func (skippingConnector) Read(context.Context, connectors.ReadRequest) (connectors.Page, error) {
	return connectors.Page{
		Batch: pipeline.Batch{Deals: []pipeline.Deal{
			{Record: rawRecord("41", vendorT0)},
			{Record: rawRecord("43", vendorT0), IsWon: true},
		}},
		Skipped: []connectors.SkippedRecord{{Entity: pipeline.EntityDeals, ExternalID: "42", Reason: `amount "12,5" is not a number`}},
		Next:    "c1", Done: true,
	}, nil
}
