package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

// pipelineSQL fills a migrated, empty schema with one fresh HubSpot connection, 20 teams
// of a manager and 10 reps, two pipelines of six standard stages, @closed won and lost deals
// over the last year with the stage history of the won ones (5 to 12 days per stage), and
// @open open deals the way a working sales floor has them: days in the current stage
// spread like the won deals' stays (exponential, mean 9 days, so about 3 in 10 run past the
// learned threshold), 90 % touched in the last 4 days, 85 % with a next step booked, 4 %
// past their close date, 2 % of amount zero; close-date pushes on 1 % of them, @leads leads
// with MQL and SQL dates over two years, and this quarter's targets per rep and team.
// Modeled on the alerting and analytics benchmarks' data.
const pipelineSQL = `
INSERT INTO connections (name, kind, config, last_synced_at)
VALUES ('bench', 'hubspot', '{"schedule": "15m", "options": {"portal_id": "42"}}', @now::timestamptz - interval '5 minutes');
INSERT INTO owners (connection_id, external_id, email, name, team)
SELECT 1, 'm' || i, 'manager' || i || '@example.com', 'Manager ' || i, 'team' || i FROM generate_series(1, 20) i;
INSERT INTO owners (connection_id, external_id, email, name, team, manager_owner_id, active)
SELECT 1, 'o' || i, 'rep' || i || '@example.com', 'Rep ' || i, 'team' || (i % 20 + 1), i % 20 + 1, i % 50 <> 0
FROM generate_series(1, 200) i;
INSERT INTO pipelines (connection_id, external_id, name) VALUES (1, 'p1', 'New business'), (1, 'p2', 'Renewals');
INSERT INTO stages (connection_id, external_id, pipeline_id, name, position, probability, canonical_stage, is_closed, is_won)
SELECT 1, p || '-' || s.pos, p, s.name, s.pos, s.prob, s.canonical, s.closed, s.won
FROM generate_series(1, 2) p,
     (VALUES (1, 'Qualified', 0.2, 'qualification', false, false), (2, 'Discovery', 0.4, 'needs_assessment', false, false),
             (3, 'Proposal', 0.6, 'proposal', false, false), (4, 'Negotiation', 0.8, 'negotiation', false, false),
             (5, 'Won', 1.0, 'closed_won', true, true), (6, 'Lost', 0.0, 'closed_lost', true, false))
     AS s(pos, name, prob, canonical, closed, won);
INSERT INTO deals (connection_id, external_id, name, amount, currency, pipeline_id, stage_id, owner_id, close_date,
                   closed_at, is_closed, is_won, remote_created_at)
SELECT 1, 'c' || i, 'Closed ' || i, 1000 + (i::bigint * 7919) % 200000, 'USD', 1 + i % 2,
       CASE WHEN i % 3 = 0 THEN 6 ELSE 5 END + 6 * (i % 2), 21 + i % 200,
       (@now::timestamptz - make_interval(days => i % 365))::date, @now::timestamptz - make_interval(days => i % 365),
       true, i % 3 <> 0, @now::timestamptz - make_interval(days => i % 365 + 60)
FROM generate_series(1, @closed) i;
INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, exited_at, source)
SELECT d.id, s.id, s.external_id, d.remote_created_at + make_interval(days => (s.position - 1) * 12),
       d.remote_created_at + make_interval(days => s.position * 12 - (d.id % 7)::int), 'vendor'
FROM deals d JOIN stages s ON s.pipeline_id = d.pipeline_id AND s.position <= 4 WHERE d.is_won;
INSERT INTO deals (connection_id, external_id, name, amount, currency, pipeline_id, stage_id, owner_id, close_date,
                   remote_created_at, stage_entered_at, last_activity_at, next_activity_at)
SELECT 1, 'o' || i, 'Deal ' || i,
       CASE WHEN i % 50 = 0 THEN 0 ELSE 1000 + (i::bigint * 7919) % 200000 END, 'USD',
       1 + i % 2, 1 + (i / 2) % 4 + 6 * (i % 2), 21 + i % 200,
       (@now::timestamptz + make_interval(days => (i * 31) % 125 - 5))::date,
       @now::timestamptz - make_interval(days => 40 + i % 100),
       @now::timestamptz - make_interval(secs => least(90, -9 * ln(((i::bigint * 7919) % 1000 + 1) / 1001.0)) * 86400),
       @now::timestamptz - make_interval(days => CASE WHEN i % 10 = 0 THEN 5 + (i * 17) % 55 ELSE (i * 17) % 4 END, hours => i % 24),
       CASE WHEN i % 20 < 17 THEN @now::timestamptz + make_interval(days => 1 + i % 10)
            WHEN i % 20 = 17 THEN NULL
            ELSE @now::timestamptz - make_interval(days => 1 + i % 5) END
FROM generate_series(1, @open) i;
INSERT INTO deal_changes (deal_id, field, old_value, new_value, changed_at)
SELECT d.id, 'close_date', (d.close_date - 30 * k)::text, (d.close_date - 30 * (k - 1))::text,
       @now::timestamptz - make_interval(days => 10 * k)
FROM deals d, generate_series(1, 3) k
WHERE NOT d.is_closed AND d.id % 97 = 0 AND k <= 1 + d.id % 3;
INSERT INTO leads (connection_id, external_id, status, mql_at, sql_at, owner_id, remote_created_at)
SELECT 1, 'l' || i, 'new',
       CASE WHEN i % 3 > 0 THEN t + interval '5 days' END, CASE WHEN i % 3 = 2 THEN t + interval '12 days' END,
       21 + i % 200, t
FROM (SELECT i, @now::timestamptz - make_interval(days => (i * 7919) % 730) AS t FROM generate_series(1, @leads) i) l;
INSERT INTO targets (owner_email, period_start, period_end, amount, currency)
SELECT email, @qstart::date, @qend::date, 400000, 'USD' FROM owners WHERE external_id LIKE 'o%';
INSERT INTO targets (team, period_start, period_end, amount, currency)
SELECT DISTINCT team, @qstart::date, @qend::date, 4000000, 'USD' FROM owners;
`

// generatePipeline runs pipelineSQL for open open deals and returns the number of deals.
func generatePipeline(ctx context.Context, pool *pgxpool.Pool, open int, now time.Time) (int64, error) {
	q := analytics.QuarterOf(now)
	args := pgx.NamedArgs{"now": now, "open": open, "closed": max(1, open/4), "leads": max(1, open/5),
		"qstart": q.Start, "qend": q.End}
	for _, stmt := range strings.Split(strings.TrimSpace(pipelineSQL), ";\n") {
		if _, err := pool.Exec(ctx, stmt, args); err != nil {
			return 0, fmt.Errorf("generating the %d-deal pipeline: %w", open, err)
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil { // as autovacuum would: statistics and the visibility map
		return 0, fmt.Errorf("analyzing the generated pipeline: %w", err)
	}
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM deals`).Scan(&n)
	return n, err
}

// Rules are the detect and report timings.
type Rules struct {
	Deals        int64   `json:"deals"`
	OpenDeals    int     `json:"open_deals"`
	SetupSeconds float64 `json:"setup_seconds"`
	AlertsOpened int     `json:"alerts_opened"`
	DetectFirst  float64 `json:"detect_first_run_seconds"`
	// Detect is the median of DetectRuns, three runs after the first.
	Detect        float64   `json:"detect_seconds"`
	DetectRuns    []float64 `json:"detect_runs_seconds"`
	Report        float64   `json:"report_seconds"`
	ReportPeriod  string    `json:"report_period"`
	DetectTargetS float64   `json:"detect_target_seconds"`
	ReportTargetS float64   `json:"report_target_seconds"`
}

// measureRules generates the pipeline and times detect (its first run, which records
// every existing condition, and the steady state that every later run and every sync
// triggers) and the whole org report for the current quarter.
func measureRules(ctx context.Context, pool *pgxpool.Pool, open int, logger *slog.Logger) (Rules, error) {
	r := Rules{OpenDeals: open, DetectTargetS: 3, ReportTargetS: 2}
	now := time.Now().UTC().Truncate(time.Second)
	start := time.Now()
	if err := truncate(ctx, pool); err != nil {
		return r, err
	}
	n, err := generatePipeline(ctx, pool, open, now.Add(-5*time.Minute))
	if err != nil {
		return r, err
	}
	r.Deals, r.SetupSeconds = n, time.Since(start).Seconds()

	client, err := jobs.NewClient(&jobs.Deps{Pool: pool, Logger: logger}, jobs.Config{}) // inserts only
	if err != nil {
		return r, err
	}
	det := &alerting.Detector{Logger: logger, NowFunc: func() time.Time { return now },
		Outbox: jobs.NotificationOutbox{Inserter: client}}
	detect := func() (*alerting.Report, float64, error) {
		var rep *alerting.Report
		start := time.Now()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var err error
			rep, err = det.Run(ctx, tx, alerting.Options{})
			return err
		})
		return rep, time.Since(start).Seconds(), err
	}
	first, secs, err := detect()
	if err != nil {
		return r, fmt.Errorf("running detect: %w", err)
	}
	r.AlertsOpened, r.DetectFirst = first.Opened, secs
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE alerts`); err != nil {
		return r, fmt.Errorf("analyzing the alerts: %w", err)
	}
	for range 3 {
		now = now.Add(time.Minute)
		_, secs, err := detect()
		if err != nil {
			return r, fmt.Errorf("running detect again: %w", err)
		}
		r.DetectRuns = append(r.DetectRuns, secs)
	}
	r.Detect = slices.Sorted(slices.Values(r.DetectRuns))[1]

	period := analytics.QuarterOf(now)
	r.ReportPeriod = period.Label
	start = time.Now()
	if _, err := analytics.BuildReport(ctx, pool, analytics.Request{Period: period, Scope: analytics.Scope{Kind: analytics.ScopeAll}, Now: now}); err != nil {
		return r, fmt.Errorf("building the report: %w", err)
	}
	r.Report = time.Since(start).Seconds()
	return r, nil
}
