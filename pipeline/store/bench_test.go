package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

// BenchmarkWritePath compares the write path (normalized deals → the real upsert, batches
// of 5,000 committed one by one) with a raw COPY of the same rows into a table of the same
// shape. The headline is upsert/copy, the write path's speed as a fraction of raw COPY's
// (target ≥ 0.5). Run: go test ./pipeline/store -run '^$' -bench WritePath -benchtime 1x
func BenchmarkWritePath(b *testing.B) {
	ctx := context.Background()
	_, pool := dbtest.TestSchema(ctx, b)
	deals := store.SyntheticDeals(20_000, 1)
	var last store.WriteComparison
	for b.Loop() {
		c, err := store.CompareWritePath(ctx, pool, deals, 5000)
		require.NoError(b, err)
		last = c
	}
	b.ReportMetric(last.Ratio(), "upsert/copy")
	b.ReportMetric(last.UpsertRowsPerSecond(), "upsert_rows/s")
	b.ReportMetric(last.CopyRowsPerSecond(), "copy_rows/s")
	b.ReportMetric(float64(last.Rows)/last.Replay.Seconds(), "replay_rows/s")
}

func TestCompareWritePath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := dbtest.TestSchema(ctx, t)
	c, err := store.CompareWritePath(ctx, pool, store.SyntheticDeals(600, 7), 250)
	require.NoError(t, err)
	require.Equal(t, 600, c.Rows)
	require.Positive(t, c.Upsert)
	require.Positive(t, c.RawCopy)
	require.Positive(t, c.Replay)
	require.EqualValues(t, 0, count(ctx, t, pool, `SELECT count(*) FROM connections`), "the scratch connection is removed")
	require.EqualValues(t, 0, count(ctx, t, pool, `SELECT count(*) FROM pg_tables WHERE tablename LIKE 'pw_bench_copy_%'`))
}
