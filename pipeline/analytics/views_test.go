package analytics_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

// TestViews checks the BI views against the metrics computed independently from the
// generated records: the same definitions, whatever the entry point.
func TestViews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	ds := generate(42)
	ds.insert(ctx, t, tx)
	all := analytics.Scope{Kind: analytics.ScopeAll}
	q4 := (&expecter{ds: ds, period: mustPeriod(t, "2026-Q4"), scope: all, today: utcDay(testNow)}).report()

	t.Run("OpenDeals", func(t *testing.T) {
		var n int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM pipeline_open_deals`).Scan(&n))
		require.Equal(t, q4.OpenPipeline.Deals, n)
	})
	t.Run("MetricsByOwnerAddUpToOpenPipeline", func(t *testing.T) {
		rows, err := tx.Query(ctx, `SELECT currency, sum(open_deals), sum(open_amount), round(sum(weighted_amount), 2)
			FROM pipeline_metrics_by_owner GROUP BY currency ORDER BY currency COLLATE "C"`)
		require.NoError(t, err)
		var got []string
		var cur string
		var n int64
		var amount, weighted decimal.Decimal
		_, err = pgx.ForEachRow(rows, []any{&cur, &n, &amount, &weighted}, func() error {
			got = append(got, cur+" "+decimal.NewFromInt(n).String()+" "+amount.String()+" "+weighted.String())
			return nil
		})
		require.NoError(t, err)
		var want []string
		for _, c := range q4.OpenPipeline.ByCurrency {
			want = append(want, c.Currency+" "+decimal.NewFromInt(c.Deals).String()+" "+c.Amount.String()+" "+c.Weighted.String())
		}
		require.Equal(t, want, got)
	})
	t.Run("WinRatesOfTheQuarter", func(t *testing.T) {
		var won, lost int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT sum(won_deals), sum(lost_deals) FROM pipeline_win_rates
			WHERE month BETWEEN '2026-10-01' AND '2026-12-01'`).Scan(&won, &lost))
		require.Equal(t, q4.WinRate.Won, won)
		require.Equal(t, q4.WinRate.Lost, lost)
	})
	t.Run("LeadVelocity", func(t *testing.T) {
		rows, err := tx.Query(ctx, `SELECT to_char(month, 'YYYY-MM'), qualified_leads, lead_velocity_rate FROM pipeline_lead_velocity
			WHERE month BETWEEN '2026-09-01' AND '2026-11-01' ORDER BY month`)
		require.NoError(t, err)
		str := func(m analytics.LeadMonth) string {
			rate := "null"
			if m.Rate.Valid {
				rate = m.Rate.Decimal.String()
			}
			return m.Month + " " + decimal.NewFromInt(m.QualifiedLeads).String() + " " + rate
		}
		var got, want []string
		var m analytics.LeadMonth
		_, err = pgx.ForEachRow(rows, []any{&m.Month, &m.QualifiedLeads, &m.Rate}, func() error {
			got = append(got, str(m))
			return nil
		})
		require.NoError(t, err)
		for _, m := range q4.LeadVelocity.Series[1:] { // the report's base month has no rate of its own
			want = append(want, str(m))
		}
		require.Equal(t, want, got[1:])
		require.Equal(t, strings.Fields(str(q4.LeadVelocity.Series[0]))[:2], strings.Fields(got[0])[:2], "same count for the base month")
	})
	t.Run("CloseDatePushes", func(t *testing.T) {
		want := 0
		for _, d := range ds.deals {
			for _, c := range d.changes {
				old, ok1 := parseDay(c.old)
				nw, ok2 := parseDay(c.new)
				if !d.deleted && c.field == "close_date" && ok1 && ok2 && nw.After(old) {
					want++
				}
			}
		}
		var n int64
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM pipeline_close_date_pushes WHERE days_pushed > 0`).Scan(&n))
		require.Equal(t, int64(want), n)
		// Odd values in deal_changes are skipped, not fatal to the view.
		_, err := tx.Exec(ctx, `INSERT INTO deal_changes (deal_id, field, old_value, new_value, changed_at)
			VALUES ($1, 'close_date', '2026-13-01', 'soon', $2), ($1, 'close_date', '', '2027-01-01', $2)`, ds.deals[0].id, testNow)
		require.NoError(t, err)
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM pipeline_close_date_pushes WHERE days_pushed > 0`).Scan(&n))
		require.Equal(t, int64(want), n)
	})
	t.Run("UnmappedStages", func(t *testing.T) {
		rows, err := tx.Query(ctx, `SELECT stage_name || ':' || open_deals FROM pipeline_unmapped_stages ORDER BY stage_id`)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		var want []string
		for _, u := range q4.UnmappedStages {
			want = append(want, u.Name+":"+decimal.NewFromInt(u.OpenDeals).String())
		}
		require.Equal(t, want, got)
	})
}
