package analytics_test

import (
	"cmp"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

type snapshotRow struct {
	Owner    int64 // 0 = no owner
	Stage    string
	Currency string
	Deals    int64
	NoAmount int64
	Amount   string
	Weighted string
}

func readSnapshot(ctx context.Context, t *testing.T, tx pgx.Tx, day string) map[[3]string]snapshotRow {
	t.Helper()
	rows, err := tx.Query(ctx, `SELECT coalesce(owner_id, 0), canonical_stage, currency, deals, deals_without_amount, amount, weighted_amount
		FROM pipeline_snapshots WHERE snapshot_date = $1::date`, day)
	require.NoError(t, err)
	out := map[[3]string]snapshotRow{}
	var r snapshotRow
	var amount, weighted decimal.Decimal
	_, err = pgx.ForEachRow(rows, []any{&r.Owner, &r.Stage, &r.Currency, &r.Deals, &r.NoAmount, &amount, &weighted}, func() error {
		r.Amount, r.Weighted = amount.String(), weighted.String()
		key := [3]string{decimal.NewFromInt(r.Owner).String(), r.Stage, r.Currency}
		require.NotContains(t, out, key, "one row per owner, stage and currency")
		out[key] = r
		return nil
	})
	require.NoError(t, err)
	return out
}

// expectedSnapshot sums the generated open deals per owner, canonical stage and currency.
func expectedSnapshot(ds *dataSet) map[[3]string]snapshotRow {
	e := &expecter{ds: ds, scope: analytics.Scope{Kind: analytics.ScopeAll}}
	type acc struct {
		row              snapshotRow
		amount, weighted decimal.Decimal
	}
	sums := map[[3]string]*acc{}
	for _, d := range ds.deals {
		if d.deleted || d.isClosed {
			continue
		}
		var owner int64
		if d.owner >= 0 {
			owner = ds.owners[d.owner].id
		}
		key := [3]string{decimal.NewFromInt(owner).String(), cmp.Or(ds.stages[d.stage].canonical, "unmapped"), d.currency}
		a := sums[key]
		if a == nil {
			a = &acc{row: snapshotRow{Owner: owner, Stage: key[1], Currency: d.currency}}
			sums[key] = a
		}
		a.row.Deals++
		if !d.amount.Valid {
			a.row.NoAmount++
			continue
		}
		a.amount = a.amount.Add(d.amount.Decimal)
		a.weighted = a.weighted.Add(d.amount.Decimal.Mul(e.stageProb(d)))
	}
	out := map[[3]string]snapshotRow{}
	for k, a := range sums {
		a.row.Amount, a.row.Weighted = a.amount.String(), a.weighted.Round(2).String()
		out[k] = a.row
	}
	return out
}

func TestTakeSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	ds := generate(11)
	ds.insert(ctx, t, tx)
	want := expectedSnapshot(ds)

	n, err := analytics.TakeSnapshot(ctx, tx, testNow, testNow)
	require.NoError(t, err)
	require.Equal(t, int64(len(want)), n)
	require.Equal(t, want, readSnapshot(ctx, t, tx, "2026-11-18"))

	// Taking the day again replaces it: same rows, no duplicates.
	later := testNow.Add(3 * time.Hour)
	n, err = analytics.TakeSnapshot(ctx, tx, later, later)
	require.NoError(t, err)
	require.Equal(t, int64(len(want)), n)
	require.Equal(t, want, readSnapshot(ctx, t, tx, "2026-11-18"))

	// The pipeline changes: the next day has its own rows, the day before keeps its own.
	var closed int64
	require.NoError(t, tx.QueryRow(ctx, `WITH c AS (UPDATE deals SET is_closed = true, closed_at = $1
		WHERE NOT is_closed AND deleted_at IS NULL RETURNING 1) SELECT count(*) FROM c`, testNow.AddDate(0, 0, 1)).Scan(&closed))
	require.NotZero(t, closed)
	next := testNow.AddDate(0, 0, 1)
	n, err = analytics.TakeSnapshot(ctx, tx, next, next)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, readSnapshot(ctx, t, tx, "2026-11-19"))
	require.Equal(t, want, readSnapshot(ctx, t, tx, "2026-11-18"))
}
