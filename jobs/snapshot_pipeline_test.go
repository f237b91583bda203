package jobs_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/jobs"
)

func TestSnapshotPipelineWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 11, 18, 23, 50, 0, 0, time.UTC)

	type testBundle struct {
		tx     pgx.Tx
		worker *rivertest.Worker[jobs.SnapshotPipelineArgs, pgx.Tx]
		logs   *bytes.Buffer
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := dbtest.TestTx(ctx, t)
		var connID, ownerID, stageID int64
		require.NoError(t, tx.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ('snap', 'hubspot') RETURNING id`).Scan(&connID))
		require.NoError(t, tx.QueryRow(ctx, `INSERT INTO owners (connection_id, external_id, email) VALUES ($1, 'u1', 'ana@example.com') RETURNING id`, connID).Scan(&ownerID))
		require.NoError(t, tx.QueryRow(ctx, `INSERT INTO stages (connection_id, external_id, name, probability, canonical_stage)
			VALUES ($1, 's1', 'Proposal', 0.5, 'proposal') RETURNING id`, connID).Scan(&stageID))
		_, err := tx.Exec(ctx, `INSERT INTO deals (connection_id, external_id, amount, currency, stage_id, owner_id, is_closed, deleted_at)
			VALUES ($1, 'd1', 1000, 'USD', $2, $3, false, NULL), ($1, 'd2', 500, 'USD', $2, $3, false, NULL),
			       ($1, 'd3', 700, 'EUR', $2, NULL, false, NULL), ($1, 'd4', 900, 'USD', $2, $3, true, NULL),
			       ($1, 'd5', 800, 'USD', $2, $3, false, now())`, connID, stageID, ownerID)
		require.NoError(t, err)
		logs := &bytes.Buffer{}
		w := &jobs.SnapshotPipelineWorker{DB: tx, Logger: slog.New(slog.NewTextHandler(logs, nil)), NowFunc: func() time.Time { return now }}
		return &testBundle{tx: tx, worker: rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, w), logs: logs}
	}
	snapshot := func(t *testing.T, b *testBundle, day string) []string {
		t.Helper()
		rows, err := b.tx.Query(ctx, `SELECT canonical_stage || ' ' || currency || ' ' || (owner_id IS NULL) || ' ' || deals || ' ' || amount || ' ' || weighted_amount
			FROM pipeline_snapshots WHERE snapshot_date = $1::date ORDER BY 1`, day)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}

	t.Run("RecordsTodayOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 2 {
			res, err := b.worker.Work(ctx, t, b.tx, jobs.SnapshotPipelineArgs{}, nil)
			require.NoError(t, err)
			require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		}
		require.Equal(t, []string{"proposal EUR true 1 700 350.00", "proposal USD false 2 1500 750.00"}, snapshot(t, b, "2026-11-18"))
		require.Contains(t, b.logs.String(), "snapshot: pipeline totals recorded")
	})
	t.Run("GivenDate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.worker.Work(ctx, t, b.tx, jobs.SnapshotPipelineArgs{Date: "2026-11-01"}, nil)
		require.NoError(t, err)
		require.Len(t, snapshot(t, b, "2026-11-01"), 2)
		require.Empty(t, snapshot(t, b, "2026-11-18"))
	})
	t.Run("BadDateCancels", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res, err := b.worker.Work(ctx, t, b.tx, jobs.SnapshotPipelineArgs{Date: "18/11/2026"}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind)
		require.Contains(t, res.Job.Errors[0].Error, `parsing snapshot date "18/11/2026"`)
	})
}
