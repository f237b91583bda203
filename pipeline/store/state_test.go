package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

func TestSaveCursor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("CompareAndSwap", func(t *testing.T) {
		t.Parallel()
		tx := dbtest.TestTx(ctx, t)
		connID := newConnection(ctx, t, tx, "hs")

		first, err := store.LoadCursor(ctx, tx, connID, "deals")
		require.NoError(t, err)
		require.Equal(t, store.StreamCursor{}, first)

		// Two runs read the same (absent) cursor; the first to commit wins.
		a, err := store.SaveCursor(ctx, tx, connID, "deals", first, "c1", t0)
		require.NoError(t, err)
		require.Equal(t, store.StreamCursor{Value: "c1", Stored: true}, a)
		_, err = store.SaveCursor(ctx, tx, connID, "deals", first, "c1-other", t0)
		require.ErrorIs(t, err, store.ErrConcurrentRun)

		b, err := store.SaveCursor(ctx, tx, connID, "deals", a, "c2", t0)
		require.NoError(t, err)
		_, err = store.SaveCursor(ctx, tx, connID, "deals", a, "c3", t0)
		require.ErrorIs(t, err, store.ErrConcurrentRun, "a stale run can't move the cursor")

		// Saving the same value writes nothing.
		same, err := store.SaveCursor(ctx, tx, connID, "deals", b, "c2", t0.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, b, same)
		require.EqualValues(t, 1, count(ctx, t, tx, `SELECT count(*) FROM sync_cursors WHERE updated_at = $1`, t0))

		got, err := store.LoadCursor(ctx, tx, connID, "deals")
		require.NoError(t, err)
		require.Equal(t, store.StreamCursor{Value: "c2", Stored: true}, got)
	})
}

func TestRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("StartProgressFinishAndInterrupted", func(t *testing.T) {
		t.Parallel()
		tx := dbtest.TestTx(ctx, t)
		connID := newConnection(ctx, t, tx, "hs")

		crashed, err := store.StartRun(ctx, tx, connID, "deals", store.RunIncremental, t0)
		require.NoError(t, err)
		require.NoError(t, store.UpdateRun(ctx, tx, crashed, store.RunProgress{Requests: 3, Read: 400, Inserted: 400}))

		id, err := store.StartRun(ctx, tx, connID, "deals", store.RunReconcile, t0.Add(time.Hour))
		require.NoError(t, err)
		var status, errText string
		var inserted int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT status, error, inserted FROM sync_runs WHERE id = $1`, crashed).Scan(&status, &errText, &inserted))
		require.Equal(t, "failed", status)
		require.Contains(t, errText, "interrupted")
		require.EqualValues(t, 400, inserted, "committed progress stays on record")

		p := store.RunProgress{Requests: 5, Retries: 1, Read: 10, Inserted: 2, Updated: 3, Deleted: 1}
		require.NoError(t, store.FinishRun(ctx, tx, id, store.RunSucceeded, p, "", t0.Add(2*time.Hour)))
		var got store.RunProgress
		var mode string
		require.NoError(t, tx.QueryRow(ctx, `SELECT status, mode, requests, retries, records_read, inserted, updated, deleted
			FROM sync_runs WHERE id = $1`, id).Scan(&status, &mode, &got.Requests, &got.Retries, &got.Read, &got.Inserted, &got.Updated, &got.Deleted))
		require.Equal(t, "succeeded", status)
		require.Equal(t, "reconcile", mode)
		require.Equal(t, p, got)

		last, err := store.LastRuns(ctx, tx, connID, []string{"deals", "owners"})
		require.NoError(t, err)
		require.True(t, last["deals"].LastStarted.Equal(t0.Add(time.Hour)))
		require.True(t, last["deals"].LastFullStarted.Equal(t0.Add(time.Hour)))
		require.True(t, last["owners"].LastStarted.IsZero())
	})
}

func TestReconciliation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		tx     pgx.Tx
		connID int64
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := dbtest.TestTx(ctx, t)
		b := &testBundle{tx: tx, connID: newConnection(ctx, t, tx, "hs")}
		var deals []pipeline.Deal
		for _, id := range []string{"d1", "d2", "d3", "gone"} {
			deals = append(deals, pipeline.Deal{Record: rec(id, t0)})
		}
		batch := pipeline.Batch{Deals: deals}
		write(ctx, t, tx, store.Write{ConnectionID: b.connID, Batch: &batch, SyncedAt: t0})
		return b
	}
	begin := func(t *testing.T, b *testBundle, fn func(tx pgx.Tx) error) error {
		t.Helper()
		return pgx.BeginFunc(ctx, b.tx, fn)
	}

	t.Run("TombstonesOnlyAfterTheCompleteReadAndResumes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		start := t0.Add(time.Hour)
		r, err := store.ResumeReconciliation(ctx, b.tx, b.connID, "deals", start, 7*24*time.Hour)
		require.NoError(t, err)
		require.False(t, r.Resumed)

		require.NoError(t, begin(t, b, func(tx pgx.Tx) error {
			return r.Advance(ctx, tx, store.Seen{pipeline.EntityDeals: {"d1", "d2"}}, "page-2", start)
		}))
		// A deal created during the read by an incremental run, where the read had passed.
		created := pipeline.Batch{Deals: []pipeline.Deal{{Record: rec("new", start.Add(time.Minute))}}}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &created, SyncedAt: start.Add(time.Minute)})

		// The read is interrupted here: nothing is tombstoned. Another process resumes it.
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM deals WHERE deleted_at IS NOT NULL`))
		resumed, err := store.ResumeReconciliation(ctx, b.tx, b.connID, "deals", start.Add(time.Hour), 7*24*time.Hour)
		require.NoError(t, err)
		require.True(t, resumed.Resumed)
		require.Equal(t, "page-2", resumed.Cursor)
		require.True(t, resumed.StartedAt.Equal(start))

		var deleted int64
		require.NoError(t, begin(t, b, func(tx pgx.Tx) error {
			deleted, err = resumed.Finish(ctx, tx, store.Seen{pipeline.EntityDeals: {"d3"}}, []pipeline.Entity{pipeline.EntityDeals}, true, start.Add(2*time.Hour))
			return err
		}))
		require.EqualValues(t, 1, deleted)
		rows, err := b.tx.Query(ctx, `SELECT external_id FROM deals WHERE deleted_at IS NOT NULL`)
		require.NoError(t, err)
		gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"gone"}, gone)
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM sync_reconciliations`))
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM sync_reconciliation_seen`))
	})

	t.Run("SingleBatchReadStoresNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r, err := store.ResumeReconciliation(ctx, b.tx, b.connID, "deals", t0.Add(time.Hour), 7*24*time.Hour)
		require.NoError(t, err)
		var deleted int64
		require.NoError(t, begin(t, b, func(tx pgx.Tx) error {
			deleted, err = r.Finish(ctx, tx, store.Seen{pipeline.EntityDeals: {"d1", "d2", "d3"}}, []pipeline.Entity{pipeline.EntityDeals}, true, t0.Add(time.Hour))
			return err
		}))
		require.EqualValues(t, 1, deleted)
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM sync_reconciliations`))
	})

	t.Run("AReadMissingMostRecordsTombstonesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var deals []pipeline.Deal
		for i := range 30 {
			deals = append(deals, pipeline.Deal{Record: rec(fmt.Sprintf("more-%d", i), t0)})
		}
		more := pipeline.Batch{Deals: deals}
		write(ctx, t, b.tx, store.Write{ConnectionID: b.connID, Batch: &more, SyncedAt: t0})

		r, err := store.ResumeReconciliation(ctx, b.tx, b.connID, "deals", t0.Add(time.Hour), 7*24*time.Hour)
		require.NoError(t, err)
		var deleted int64
		require.NoError(t, begin(t, b, func(tx pgx.Tx) error {
			// An answer that lost most records (a token without a scope, an empty page).
			deleted, err = r.Finish(ctx, tx, store.Seen{pipeline.EntityDeals: {"d1", "d2"}}, []pipeline.Entity{pipeline.EntityDeals}, true, t0.Add(time.Hour))
			return err
		}))
		require.Zero(t, deleted)
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM deals WHERE deleted_at IS NOT NULL`))
		require.Len(t, r.Refused, 1)
		require.Contains(t, r.Refused[0], "did not tombstone 32 of 34 deals")
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM sync_reconciliations`), "the read is over; the next starts afresh")
	})

	t.Run("OverlappingReadsCannotBothAdvance", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r1, err := store.ResumeReconciliation(ctx, b.tx, b.connID, "deals", t0, time.Hour)
		require.NoError(t, err)
		r2, err := store.ResumeReconciliation(ctx, b.tx, b.connID, "deals", t0, time.Hour)
		require.NoError(t, err)
		require.NoError(t, begin(t, b, func(tx pgx.Tx) error { return r1.Advance(ctx, tx, nil, "p2", t0) }))
		err = begin(t, b, func(tx pgx.Tx) error { return r2.Advance(ctx, tx, nil, "p2", t0) })
		require.ErrorIs(t, err, store.ErrConcurrentRun)
	})

	t.Run("StaleUnfinishedReadStartsOver", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r, err := store.ResumeReconciliation(ctx, b.tx, b.connID, "deals", t0, time.Hour)
		require.NoError(t, err)
		require.NoError(t, begin(t, b, func(tx pgx.Tx) error {
			return r.Advance(ctx, tx, store.Seen{pipeline.EntityDeals: {"d1"}}, "p2", t0)
		}))
		fresh, err := store.ResumeReconciliation(ctx, b.tx, b.connID, "deals", t0.Add(2*time.Hour), time.Hour)
		require.NoError(t, err)
		require.False(t, fresh.Resumed)
		require.Empty(t, fresh.Cursor)
		require.EqualValues(t, 0, count(ctx, t, b.tx, `SELECT count(*) FROM sync_reconciliation_seen`))
	})
}
