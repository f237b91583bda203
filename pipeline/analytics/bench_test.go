package analytics_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

// benchDataSQL fills a migrated schema with 1,000,000 deals (30% open, 35% won, 35% lost,
// created over three years, 200 owners in 10 teams, 3 currencies, two connections;
// written in creation order, as a sync reading by modification time roughly does),
// 5,000,000 stage-history rows (five stays per deal), 300,000 close-date changes,
// 200,000 leads and Q4 2026 targets per owner, team and org.
const benchDataSQL = `
SELECT setseed(0.42);
INSERT INTO connections (name, kind) VALUES ('bench-hubspot', 'hubspot'), ('bench-pipedrive', 'pipedrive');
INSERT INTO pipelines (connection_id, external_id, name)
SELECT id, 'p-' || name, name FROM connections;
INSERT INTO stages (connection_id, external_id, pipeline_id, name, position, probability, is_closed, is_won, canonical_stage)
SELECT p.connection_id, p.id || '-' || s.pos, p.id, s.name, s.pos, s.prob, s.closed, s.won, s.canonical
FROM pipelines p
CROSS JOIN (VALUES (1, 'Prospect', 0.1, false, false, 'lead_generation'),
                   (2, 'Qualified', 0.2, false, false, 'qualification'),
                   (3, 'Discovery', 0.4, false, false, 'needs_assessment'),
                   (4, 'Proposal', 0.6, false, false, 'proposal'),
                   (5, 'Negotiation', 0.8, false, false, 'negotiation'),
                   (6, 'Contract', 0.9, false, false, 'closing'),
                   (7, 'Won', 1.0, true, true, 'closed_won'),
                   (8, 'Lost', 0.0, true, false, 'closed_lost'),
                   (9, 'Legal', NULL, false, false, NULL)) AS s (pos, name, prob, closed, won, canonical);
INSERT INTO owners (connection_id, external_id, email, name, team)
SELECT c.id, 'u' || i, 'rep' || i || '@example.com', 'Rep ' || i, 'team' || (i % 10)
FROM generate_series(1, 200) i
JOIN connections c ON c.name = CASE WHEN i % 4 = 0 THEN 'bench-pipedrive' ELSE 'bench-hubspot' END;

CREATE TEMP TABLE bench_deals AS
SELECT i,
       timestamptz '2024-01-01' + random() * (timestamptz '2026-11-18' - timestamptz '2024-01-01') AS created,
       random() AS state,
       (random() * 200)::int AS age,
       1 + (random() * 199)::int AS owner,
       (ARRAY['USD', 'USD', 'EUR', 'GBP'])[1 + (random() * 3)::int] AS currency,
       CASE WHEN random() < 0.97 THEN round((1000 + random() * 99000)::numeric, 2) END AS amount,
       1 + (random() * 5)::int AS open_pos,
       (ARRAY['pipeline', 'best_case', 'commit', 'omitted'])[1 + (random() * 3)::int] AS forecast
FROM generate_series(1, 1000000) i;

INSERT INTO deals (connection_id, external_id, amount, currency, pipeline_id, stage_id, owner_id, close_date,
                   closed_at, is_closed, is_won, forecast_category, remote_created_at)
SELECT o.connection_id, 'd' || b.i, b.amount, b.currency, p.id, s.id, o.id,
       (least(b.created + b.age * interval '1 day', timestamptz '2026-11-18' - interval '1 hour')
        + CASE WHEN b.state < 0.3 THEN interval '30 days' ELSE interval '0' END)::date,
       CASE WHEN b.state >= 0.3 THEN least(b.created + b.age * interval '1 day', timestamptz '2026-11-18' - interval '1 hour') END,
       b.state >= 0.3, b.state >= 0.65, b.forecast, b.created
FROM bench_deals b
JOIN owners o ON o.external_id = 'u' || b.owner
JOIN pipelines p ON p.connection_id = o.connection_id
JOIN stages s ON s.pipeline_id = p.id
             AND s.position = CASE WHEN b.state >= 0.65 THEN 7 WHEN b.state >= 0.3 THEN 8 ELSE b.open_pos END
ORDER BY b.created;

INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, exited_at, source)
SELECT d.id, s.id, s.external_id,
       d.remote_created_at + (k - 1) * interval '3 days',
       CASE WHEN k < 5 THEN d.remote_created_at + k * interval '3 days' END,
       'vendor'
FROM deals d
CROSS JOIN generate_series(1, 5) k
JOIN stages s ON s.pipeline_id = d.pipeline_id
             AND s.position = CASE WHEN k = 5 AND d.is_closed THEN CASE WHEN d.is_won THEN 7 ELSE 8 END
                                   ELSE least(k, 6) END
ORDER BY d.id, k;

INSERT INTO deal_changes (deal_id, field, old_value, new_value, changed_at)
SELECT d.id, 'close_date', d.close_date - 45, d.close_date, d.remote_created_at + interval '10 days'
FROM deals d
WHERE d.id % 10 < 3;

INSERT INTO leads (connection_id, external_id, status, mql_at, sql_at, owner_id, remote_created_at)
SELECT o.connection_id, 'l' || i, 'new',
       CASE WHEN i % 3 > 0 THEN t + interval '5 days' END,
       CASE WHEN i % 3 = 2 THEN t + interval '12 days' END,
       o.id, t
FROM (SELECT i, timestamptz '2024-01-01' + random() * (timestamptz '2026-11-01' - timestamptz '2024-01-01') AS t,
             1 + (random() * 199)::int AS owner
      FROM generate_series(1, 200000) i) l
JOIN owners o ON o.external_id = 'u' || l.owner;

INSERT INTO targets (owner_email, period_start, period_end, amount, currency)
SELECT email, '2026-10-01', '2026-12-31', 400000, 'USD' FROM owners;
INSERT INTO targets (team, period_start, period_end, amount, currency)
SELECT DISTINCT team, date '2026-10-01', date '2026-12-31', 8000000, 'USD' FROM owners;
INSERT INTO targets (period_start, period_end, amount, currency) VALUES ('2026-10-01', '2026-12-31', 80000000, 'USD');
`

// BenchmarkBuildReport measures the whole report over 1,000,000 deals and 5,000,000
// stage-history rows. Setting the data up takes a minute or two and is not timed.
func BenchmarkBuildReport(b *testing.B) {
	ctx := context.Background()
	_, pool := dbtest.TestSchema(ctx, b)
	start := time.Now()
	_, err := pool.Exec(ctx, benchDataSQL)
	require.NoError(b, err)
	_, err = pool.Exec(ctx, "VACUUM ANALYZE") // as autovacuum would: statistics and the visibility map
	require.NoError(b, err)
	// Flush the bulk load now, so its writes don't land inside the timed reports.
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Logf("no CHECKPOINT (needs a superuser or pg_checkpoint): %v", err)
	}
	b.Logf("generated 1,000,000 deals and 5,000,000 stage-history rows in %s", time.Since(start).Round(time.Second))

	now := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	for _, scope := range []string{"all", "team:team3", "owner:rep7@example.com"} {
		b.Run(scope, func(b *testing.B) {
			sc, err := analytics.ParseScope(scope)
			require.NoError(b, err)
			req := analytics.Request{Period: mustPeriod(b, "2026-Q4"), Scope: sc, Now: now}
			for b.Loop() {
				r, err := analytics.BuildReport(ctx, pool, req)
				require.NoError(b, err)
				require.NotZero(b, r.OpenPipeline.Deals)
			}
		})
	}
}
