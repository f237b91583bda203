package jobs_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

// errCrash stands for a process killed in the middle of a sync: the engine never gets to
// record the end of its run.
type errCrash struct{}

// TestSyncEngineInterrupted kills syncs part way (a cancelled context while a batch is in
// flight, a crash between batches) and checks that running again ends exact, with no
// duplicates. It commits, so it runs on a schema of its own.
func TestSyncEngineInterrupted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := dbtest.TestSchema(ctx, t)

	setup := func(t *testing.T) *syncBundle {
		t.Helper()
		_, err := pool.Exec(ctx, `TRUNCATE connections CASCADE`)
		require.NoError(t, err)
		b := newSyncBundle(ctx, t, pool, 1500, 700, 100)
		b.syncReference(ctx, t)
		return b
	}

	t.Run("CancelledWhileABatchIsInFlight", func(t *testing.T) {
		b := setup(t)
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		// Pages hold 100 deals and their 100 stage entries, so a batch of 1,000 records is
		// five pages. Page 10 fills the second batch; the context ends as it is written.
		b.vendor.setHook(func(_ context.Context, call int, _ connectors.ReadRequest) error {
			if call == 10 {
				cancel()
			}
			return nil
		})
		res, err := b.run(runCtx, t, "deals", connectors.Incremental)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, jobs.OutcomeRetry, res.Outcome, "a cancelled run is never a success")
		require.Equal(t, store.RunCancelled, res.Status)
		require.EqualValues(t, 500, countRows(ctx, t, pool, `SELECT count(*) FROM deals`), "only the first batch committed")
		var status string
		require.NoError(t, pool.QueryRow(ctx, `SELECT status FROM sync_runs WHERE id = $1`, res.RunID).Scan(&status))
		require.Equal(t, "cancelled", status)

		b.vendor.setHook(nil)
		res = b.mustRun(ctx, t, "deals", connectors.Incremental)
		require.EqualValues(t, 10, res.Requests, "resumed after the first batch")
		b.requireExact(ctx, t)
		require.EqualValues(t, 1500, countRows(ctx, t, pool, `SELECT count(*) FROM deal_stage_history`))
	})

	t.Run("CrashBetweenBatches", func(t *testing.T) {
		b := setup(t)
		b.vendor.setHook(func(_ context.Context, call int, _ connectors.ReadRequest) error {
			if call == 11 { // two batches (1,000 deals) committed, a third one read in part
				panic(errCrash{})
			}
			return nil
		})
		require.PanicsWithValue(t, errCrash{}, func() { _, _ = b.run(ctx, t, "deals", connectors.Incremental) })
		require.EqualValues(t, 1000, countRows(ctx, t, pool, `SELECT count(*) FROM deals`))

		b.vendor.setHook(nil)
		res := b.mustRun(ctx, t, "deals", connectors.Incremental)
		require.EqualValues(t, 500, res.Inserted/2, "deals after the second batch, with their stage entries")
		b.requireExact(ctx, t)
		var interrupted string
		require.NoError(t, pool.QueryRow(ctx, `SELECT status || ': ' || error FROM sync_runs WHERE stream = 'deals' ORDER BY id LIMIT 1`).Scan(&interrupted))
		require.Contains(t, interrupted, "failed: interrupted")
	})

	t.Run("CrashDuringAFullReadResumesAndReconciles", func(t *testing.T) {
		b := setup(t)
		b.mustRun(ctx, t, "deals", connectors.Incremental)
		b.vendor.purge("d00100")
		b.vendor.purge("d01499")
		b.vendor.setHook(func(_ context.Context, call int, _ connectors.ReadRequest) error {
			if call == 12 {
				panic(errCrash{})
			}
			return nil
		})
		require.PanicsWithValue(t, errCrash{}, func() { _, _ = b.run(ctx, t, "deals", connectors.Full) })
		require.EqualValues(t, 0, countRows(ctx, t, pool, `SELECT count(*) FROM deals WHERE deleted_at IS NOT NULL`))
		require.EqualValues(t, 1000, countRows(ctx, t, pool, `SELECT count(*) FROM sync_reconciliation_seen`))

		b.vendor.setHook(nil)
		res := b.mustRun(ctx, t, "deals", connectors.Full)
		require.EqualValues(t, 2, res.Deleted)
		require.EqualValues(t, 5, res.Requests, "the read resumed after its last committed batch")
		b.requireExact(ctx, t)
	})
}
