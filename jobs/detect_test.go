package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

func TestDetectWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type detectBundle struct {
		tx     pgx.Tx
		now    time.Time
		connID int64
	}
	setup := func(t *testing.T) *detectBundle {
		t.Helper()
		b := &detectBundle{tx: dbtest.TestTx(ctx, t), now: time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)}
		q := func(sql string, args ...any) int64 {
			var id int64
			require.NoError(t, b.tx.QueryRow(ctx, sql, args...).Scan(&id))
			return id
		}
		b.connID = q(`INSERT INTO connections (name, kind, config, last_synced_at) VALUES ('detect-crm', 'pipedrive',
			'{"schedule": "15m", "options": {"company_domain": "acme"}}', $1) RETURNING id`, b.now.Add(-time.Minute))
		owner := q(`INSERT INTO owners (connection_id, external_id, email) VALUES ($1, 'u1', 'ana@example.com') RETURNING id`, b.connID)
		stage := q(`INSERT INTO stages (connection_id, external_id, name, canonical_stage) VALUES ($1, 's1', 'Qualified', 'qualification') RETURNING id`, b.connID)
		q(`INSERT INTO deals (connection_id, external_id, name, amount, currency, stage_id, owner_id, remote_created_at,
			stage_entered_at, last_activity_at, next_activity_at) VALUES ($1, '77', 'Acme', 1000, 'USD', $2, $3, $4, $4, $5, $6) RETURNING id`,
			b.connID, stage, owner, b.now.AddDate(0, 0, -20), b.now.AddDate(0, 0, -9), b.now.AddDate(0, 0, 3))
		_, err := b.tx.Exec(ctx, `INSERT INTO alert_baselines (scope, baselined_at) VALUES ($1, $2), ('org', $2)`,
			"connection:"+strconv.FormatInt(b.connID, 10), b.now.Add(-24*time.Hour))
		require.NoError(t, err)
		return b
	}
	worker := func(b *detectBundle) *jobs.DetectWorker {
		return &jobs.DetectWorker{DB: b.tx, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NowFunc: func() time.Time { return b.now }}
	}

	t.Run("DetectsAndEnqueuesDeliveryInOneTransaction", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// The next activity is booked: idle is held off, nothing is due.
		w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, worker(b))
		res, err := w.Work(ctx, t, b.tx, jobs.DetectArgs{ConnectionID: b.connID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		var alerts int
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT count(*) FROM alerts`).Scan(&alerts))
		require.Zero(t, alerts)

		_, err = b.tx.Exec(ctx, `UPDATE deals SET next_activity_at = NULL`)
		require.NoError(t, err)
		res, err = w.Work(ctx, t, b.tx, jobs.DetectArgs{ConnectionID: b.connID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		rows, err := b.tx.Query(ctx, `SELECT n.id, n.recipient, a.rule FROM notifications n JOIN alerts a ON a.id = n.alert_id ORDER BY a.rule`)
		require.NoError(t, err)
		type told struct {
			ID        int64
			Recipient string
			Rule      string
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[told])
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, "idle", got[0].Rule)
		require.Equal(t, "no_next_step", got[1].Rule)
		var delivering []int64
		for _, n := range got {
			require.Equal(t, "ana@example.com", n.Recipient)
			delivering = append(delivering, n.ID)
		}
		var scheduled []int64
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT array_agg((args->>'notification_id')::bigint ORDER BY id) FROM river_job
			WHERE kind = 'deliver_notification' AND queue = $1`, jobs.QueueNotify).Scan(&scheduled))
		require.ElementsMatch(t, delivering, scheduled, "each notification has its delivery job, in the same transaction")
	})

	t.Run("StaleConnectionDetectsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.tx.Exec(ctx, `UPDATE deals SET next_activity_at = NULL`)
		require.NoError(t, err)
		b.now = b.now.Add(2 * time.Hour)
		w := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, worker(b))
		res, err := w.Work(ctx, t, b.tx, jobs.DetectArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		var alerts, sent int
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM notifications)`).Scan(&alerts, &sent))
		require.Zero(t, alerts)
		require.Zero(t, sent)
	})
}

func TestEnqueueDetectTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `DELETE FROM river_job`)
	require.NoError(t, err)

	for _, id := range []int64{7, 7, 8} {
		require.NoError(t, jobs.EnqueueDetectTx(ctx, tx, client, id))
	}
	var n int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'detect' AND queue = $1`, jobs.QueueDetect).Scan(&n))
	require.Equal(t, 2, n, "syncs of several streams that end together cause one detect per connection")
	rivertest.RequireManyInsertedTx[*riverpgxv5.Driver](ctx, t, tx, []rivertest.ExpectedJob{
		{Args: &jobs.DetectArgs{ConnectionID: 7}, Opts: &rivertest.RequireInsertedOpts{Queue: jobs.QueueDetect}},
		{Args: &jobs.DetectArgs{ConnectionID: 8}, Opts: &rivertest.RequireInsertedOpts{Queue: jobs.QueueDetect}},
	})
}

func TestRegisterAlertActions(t *testing.T) {
	t.Parallel()
	actions := notify.NewActions()
	jobs.RegisterAlertActions(actions, &jobs.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, id := range []string{alerting.ActionSnooze3Days, alerting.ActionSnooze7Days, alerting.ActionAcknowledge} {
		h, ok := actions.Handler(id).(*alerting.Actions)
		require.True(t, ok, id)
		require.NotNil(t, h)
	}
	require.Nil(t, actions.Handler("reminder.done"), "only alert buttons")
}
