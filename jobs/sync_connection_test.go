package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

func TestSyncConnectionWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		*syncBundle
		tx     pgx.Tx
		worker *rivertest.Worker[jobs.SyncConnectionArgs, pgx.Tx]
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := dbtest.TestTx(ctx, t)
		sb := newSyncBundle(ctx, t, tx, 300, 10, 100)
		w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &jobs.SyncConnectionWorker{Engine: sb.engine})
		return &testBundle{syncBundle: sb, tx: tx, worker: w}
	}
	args := func(b *testBundle) jobs.SyncConnectionArgs {
		return jobs.SyncConnectionArgs{ConnectionID: b.connID, Stream: "deals", Mode: connectors.Incremental}
	}

	t.Run("CompletesAndEnqueuesDetection", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res, err := b.worker.Work(ctx, t, b.tx, args(b), nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		b.requireExact(ctx, t)
		rivertest.RequireInsertedTx[*riverpgxv5.Driver](ctx, t, b.tx, &jobs.DetectArgs{ConnectionID: b.connID}, nil)

		// A run that changes nothing causes no detection of its own.
		_, err = b.tx.Exec(ctx, `DELETE FROM river_job WHERE kind = 'detect'`)
		require.NoError(t, err)
		res, err = b.worker.Work(ctx, t, b.tx, args(b), nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		rivertest.RequireNotInsertedTx[*riverpgxv5.Driver](ctx, t, b.tx, &jobs.DetectArgs{}, nil)
	})

	t.Run("SnoozesWhenRateLimited", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.vendor.setHook(func(_ context.Context, call int, _ connectors.ReadRequest) error {
			if call == 2 {
				return &connectors.RateLimitError{RetryAfter: 5 * time.Minute}
			}
			return nil
		})
		res, err := b.worker.Work(ctx, t, b.tx, args(b), nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.Equal(t, rivertype.JobStateScheduled, res.Job.State)
		require.WithinDuration(t, time.Now().Add(5*time.Minute), res.Job.ScheduledAt, time.Minute)
		cur, err := store.LoadCursor(ctx, b.tx, b.connID, "deals")
		require.NoError(t, err)
		require.True(t, cur.Stored, "the page read before the 429 and its cursor are committed")
	})

	t.Run("CancelsWhenCredentialsAreRejected", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.vendor.setHook(func(context.Context, int, connectors.ReadRequest) error { return connectors.ErrUnauthorized })
		res, err := b.worker.Work(ctx, t, b.tx, args(b), nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind, "no retry loop on a 401")
		require.Equal(t, "needs_reauth", connectionStatus(ctx, t, b.tx, b.connID))
	})

	t.Run("RetriesTransientFailures", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.vendor.setHook(func(context.Context, int, connectors.ReadRequest) error {
			return errors.New("dial tcp: connection refused")
		})
		res, err := b.worker.Work(ctx, t, b.tx, args(b), nil)
		require.Error(t, err)
		require.Equal(t, river.EventKindJobFailed, res.EventKind)
		require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, res.Job.State,
			"retried with backoff, not given up")
		require.Len(t, res.Job.Errors, 1)
	})
}

func connectionStatus(ctx context.Context, t *testing.T, db store.Querier, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, db.QueryRow(ctx, `SELECT status FROM connections WHERE id = $1`, id).Scan(&s))
	return s
}

// TestSyncConnectionUniqueness runs a real River client: a sync is unique while in flight,
// and a finished one never blocks the next.
func TestSyncConnectionUniqueness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema, pool := dbtest.TestSchema(ctx, t)
	b := newSyncBundle(ctx, t, pool, 50, 10, 100)

	release := make(chan struct{})
	b.vendor.setHook(func(ctx context.Context, call int, _ connectors.ReadRequest) error {
		if call == 1 {
			select { // the first run stays in flight until released
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	workers := river.NewWorkers()
	river.AddWorker(workers, &jobs.SyncConnectionWorker{Engine: b.engine})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: schema, TestOnly: true, Workers: workers, SkipUnknownJobCheck: true,
		Queues: map[string]river.QueueConfig{jobs.QueueSync: {MaxWorkers: 2}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	completed, cancelSub := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancelSub()
	require.NoError(t, client.Start(ctx))
	defer func() { require.NoError(t, client.Stop(context.WithoutCancel(ctx))) }()

	args := jobs.SyncConnectionArgs{ConnectionID: b.connID, Stream: "deals", Mode: connectors.Incremental}
	first, err := client.Insert(ctx, args, nil)
	require.NoError(t, err)
	require.False(t, first.UniqueSkippedAsDuplicate)
	require.Eventually(t, func() bool {
		j, err := client.JobGet(ctx, first.Job.ID)
		return err == nil && j.State == rivertype.JobStateRunning
	}, 10*time.Second, 20*time.Millisecond)

	dup, err := client.Insert(ctx, args, nil)
	require.NoError(t, err)
	require.True(t, dup.UniqueSkippedAsDuplicate, "skipped while one is in flight")
	require.Equal(t, first.Job.ID, dup.Job.ID)

	close(release)
	select {
	case ev := <-completed:
		require.Equal(t, river.EventKindJobCompleted, ev.Kind)
		require.Equal(t, first.Job.ID, ev.Job.ID)
	case <-time.After(20 * time.Second):
		t.Fatal("the sync did not complete")
	}

	again, err := client.Insert(ctx, args, nil)
	require.NoError(t, err)
	require.False(t, again.UniqueSkippedAsDuplicate, "a finished run never blocks the next")
	select {
	case ev := <-completed:
		require.Equal(t, river.EventKindJobCompleted, ev.Kind)
		require.Equal(t, again.Job.ID, ev.Job.ID)
	case <-time.After(20 * time.Second):
		t.Fatal("the second sync did not complete")
	}
	b.requireExact(ctx, t)
}

func TestEnqueueSyncsWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		*syncBundle
		tx     pgx.Tx
		worker *rivertest.Worker[jobs.EnqueueSyncsArgs, pgx.Tx]
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := dbtest.TestTx(ctx, t)
		sb := newSyncBundle(ctx, t, tx, 10, 1, 100)
		_, err := tx.Exec(ctx, `INSERT INTO connections (name, kind, status, status_reason) VALUES ('old', 'hubspot', 'paused', 'not in the config file')`)
		require.NoError(t, err)
		w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &jobs.EnqueueSyncsWorker{Engine: sb.engine})
		return &testBundle{syncBundle: sb, tx: tx, worker: w}
	}
	// enqueued returns "stream/mode" of the sync jobs inserted, and removes them.
	enqueued := func(t *testing.T, b *testBundle) []string {
		t.Helper()
		rows, err := b.tx.Query(ctx, `DELETE FROM river_job WHERE kind = 'sync_connection' RETURNING args`)
		require.NoError(t, err)
		raw, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		require.NoError(t, err)
		var out []string
		for _, r := range raw {
			var a jobs.SyncConnectionArgs
			require.NoError(t, json.Unmarshal(r, &a))
			require.Equal(t, b.connID, a.ConnectionID, "only active connections are synced")
			out = append(out, a.Stream+"/"+string(a.Mode))
		}
		slices.Sort(out)
		return out
	}
	recordRuns := func(t *testing.T, b *testBundle, at time.Time, streams ...string) {
		t.Helper()
		for _, s := range streams {
			_, err := store.StartRun(ctx, b.tx, b.connID, s, store.RunIncremental, at)
			require.NoError(t, err)
		}
	}
	allStreams := []string{"archived_deals/incremental", "deals/incremental", "owners/incremental", "pipelines/incremental"}

	t.Run("NewConnectionSyncsEveryStreamAndReconcilesADayLater", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		now := b.clock.Now()
		_, err := b.worker.Work(ctx, t, b.tx, jobs.EnqueueSyncsArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, allStreams, enqueued(t, b))

		recordRuns(t, b, now, "owners", "pipelines", "deals", "archived_deals")
		b.clock.Advance(5 * time.Minute)
		_, err = b.worker.Work(ctx, t, b.tx, jobs.EnqueueSyncsArgs{}, nil)
		require.NoError(t, err)
		require.Empty(t, enqueued(t, b), "nothing is due 5 minutes into a 15 minute schedule")

		b.clock.Advance(10 * time.Minute)
		_, err = b.worker.Work(ctx, t, b.tx, jobs.EnqueueSyncsArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, allStreams, enqueued(t, b))

		// A day after the first sync, the reconcilable incremental stream is read in full.
		b.clock.Advance(24 * time.Hour)
		_, err = b.worker.Work(ctx, t, b.tx, jobs.EnqueueSyncsArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, sortedWith(allStreams, "deals/full"), enqueued(t, b))
	})

	t.Run("ABrokenConnectionIsMarkedAndTheOthersStillSync", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var brokenID int64
		require.NoError(t, b.tx.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ('sf', 'salesforce') RETURNING id`).Scan(&brokenID))
		_, err := b.worker.Work(ctx, t, b.tx, jobs.EnqueueSyncsArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, allStreams, enqueued(t, b))
		var status, reason string
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT status, status_reason FROM connections WHERE id = $1`, brokenID).Scan(&status, &reason))
		require.Equal(t, "error", status)
		require.Contains(t, reason, "this pipewatch build has no salesforce connector (it syncs: hubspot)")
	})
}

func sortedWith(s []string, more ...string) []string {
	out := append(slices.Clone(s), more...)
	slices.Sort(out)
	return out
}
