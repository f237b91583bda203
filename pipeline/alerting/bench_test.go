package alerting_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

// benchDeals is the size of the generated pipeline.
const benchDeals = 1_000_000

// generatePipeline fills a fresh schema with one connection, 200 owners under 20
// managers, two pipelines of six stages, 100,000 won and lost deals with stage history,
// benchDeals open deals with a realistic spread of activity, next steps and close dates,
// and close-date pushes on some of them.
func generatePipeline(ctx context.Context, tb testing.TB, pool *pgxpool.Pool, now time.Time) {
	tb.Helper()
	steps := []string{
		`INSERT INTO connections (name, kind, config, last_synced_at)
		 VALUES ('bench', 'hubspot', '{"schedule": "15m", "options": {"portal_id": "42"}}', @now)`,
		`INSERT INTO owners (connection_id, external_id, email, name, team)
		 SELECT 1, 'm' || i, 'manager' || i || '@example.com', 'Manager ' || i, 'team' || i FROM generate_series(1, 20) i`,
		`INSERT INTO owners (connection_id, external_id, email, name, team, manager_owner_id, active)
		 SELECT 1, 'o' || i, 'rep' || i || '@example.com', 'Rep ' || i, 'team' || (i % 20 + 1), i % 20 + 1, i % 50 <> 0
		 FROM generate_series(1, 200) i`,
		`INSERT INTO pipelines (connection_id, external_id, name) VALUES (1, 'p1', 'New business'), (1, 'p2', 'Renewals')`,
		`INSERT INTO stages (connection_id, external_id, pipeline_id, name, position, canonical_stage, is_closed, is_won)
		 SELECT 1, p || '-' || s.pos, p, s.name, s.pos, s.canonical, s.closed, s.won
		 FROM generate_series(1, 2) p,
		      (VALUES (1, 'Qualified', 'qualification', false, false), (2, 'Discovery', 'needs_assessment', false, false),
		              (3, 'Proposal', 'proposal', false, false), (4, 'Negotiation', 'negotiation', false, false),
		              (5, 'Won', 'closed_won', true, true), (6, 'Lost', 'closed_lost', true, false)) AS s(pos, name, canonical, closed, won)`,
		`INSERT INTO deals (connection_id, external_id, name, amount, currency, pipeline_id, stage_id, owner_id, close_date,
		                    closed_at, is_closed, is_won, remote_created_at)
		 SELECT 1, 'c' || i, 'Closed ' || i, 1000 + (i::bigint * 7919) % 200000, 'USD', 1 + i % 2,
		        CASE WHEN i % 3 = 0 THEN 6 ELSE 5 END + 6 * (i % 2), 21 + i % 200,
		        (@now::timestamptz - make_interval(days => i % 300))::date, @now::timestamptz - make_interval(days => i % 300),
		        true, i % 3 <> 0, @now::timestamptz - make_interval(days => i % 300 + 60)
		 FROM generate_series(1, 100000) i`,
		`INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, exited_at, source)
		 SELECT d.id, s.id, s.external_id, d.remote_created_at + make_interval(days => (s.position - 1) * 12),
		        d.remote_created_at + make_interval(days => (s.position - 1) * 12 + 8 + (d.id % 14)::int), 'vendor'
		 FROM deals d JOIN stages s ON s.pipeline_id = d.pipeline_id AND s.position <= 4 WHERE d.is_won`,
		// Open deals, spread like a working pipeline: most were touched this week and have a
		// next step booked, a tail has gone quiet, a few close dates have passed.
		`INSERT INTO deals (connection_id, external_id, name, amount, currency, pipeline_id, stage_id, owner_id, close_date,
		                    remote_created_at, stage_entered_at, last_activity_at, next_activity_at)
		 SELECT 1, 'o' || i, 'Deal ' || i,
		        CASE WHEN i % 50 = 0 THEN 0 ELSE 1000 + (i::bigint * 7919) % 200000 END, 'USD',
		        1 + i % 2, 1 + (i / 2) % 4 + 6 * (i % 2), 21 + i % 200,
		        (@now::timestamptz + make_interval(days => CASE WHEN i % 25 = 0 THEN -(1 + i % 40) ELSE i % 120 END))::date,
		        @now::timestamptz - make_interval(days => 40 + i % 100),
		        @now::timestamptz - make_interval(days => CASE WHEN i % 20 = 0 THEN 20 + i % 50 ELSE ((i::bigint * 13) % 20)::int END, hours => i % 24),
		        @now::timestamptz - make_interval(days => CASE WHEN i % 10 = 0 THEN 7 + ((i::bigint * 17) % 40)::int ELSE ((i::bigint * 17) % 6)::int END, hours => i % 24),
		        CASE WHEN i % 100 < 85 THEN @now::timestamptz + make_interval(days => 1 + i % 10)
		             WHEN i % 100 < 91 THEN NULL
		             WHEN i % 100 < 97 THEN @now::timestamptz - make_interval(days => 1 + i % 5)
		             ELSE @now::timestamptz + make_interval(days => 20 + i % 30) END
		 FROM generate_series(1, @n) i`,
		`INSERT INTO deal_changes (deal_id, field, old_value, new_value, changed_at)
		 SELECT d.id, 'close_date', (d.close_date - 30 * k)::text, (d.close_date - 30 * (k - 1))::text,
		        @now::timestamptz - make_interval(days => 10 * k)
		 FROM deals d, generate_series(1, 3) k
		 WHERE NOT d.is_closed AND d.id % 97 = 0 AND k <= 1 + d.id % 3`,
		`ANALYZE`,
	}
	for _, s := range steps {
		_, err := pool.Exec(ctx, s, pgx.NamedArgs{"now": now, "n": benchDeals})
		require.NoError(tb, err, s)
	}
}

// BenchmarkDetect measures detect over a million open deals: the steady state (every
// run after the first, what the scheduler and each sync trigger), with the first run's
// time (which records every existing condition) reported as first_run_s.
func BenchmarkDetect(b *testing.B) {
	ctx := context.Background()
	_, pool := dbtest.TestSchema(ctx, b)
	now := wednesday
	generatePipeline(ctx, b, pool, now.Add(-5*time.Minute))
	var logs io.Writer = io.Discard
	if testing.Verbose() {
		logs = os.Stderr
	}
	det := &alerting.Detector{
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		NowFunc: func() time.Time { return now },
		Outbox:  jobs.NotificationOutbox{Inserter: &fakeInserter{}},
	}
	run := func() *alerting.Report {
		var rep *alerting.Report
		require.NoError(b, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			rep, err = det.Run(ctx, tx, alerting.Options{})
			return err
		}))
		return rep
	}
	start := time.Now()
	first := run()
	firstRun := time.Since(start)
	// What autovacuum does after the first run's inserts (visibility map, statistics).
	_, err := pool.Exec(ctx, `VACUUM ANALYZE alerts`)
	require.NoError(b, err)

	for b.Loop() {
		now = now.Add(time.Minute)
		rep := run()
		require.Zero(b, rep.Opened)
	}
	b.ReportMetric(firstRun.Seconds(), "first_run_s")
	b.ReportMetric(float64(first.Opened), "open_alerts")
}
