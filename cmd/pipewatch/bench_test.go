package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/bench"
	"github.com/pipewatch/pipewatch/internal/dbtest"
)

// TestBench runs the built binary's bench at a tiny size: every figure is in the JSON, the
// sync children report their memory, and the scratch database is gone afterwards.
func TestBench(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	server := dbtest.URL(ctx, t)
	bin := buildBinary(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "pipewatch_test_bench_" + hex.EncodeToString(b)

	code, stdout, stderr := pipewatch(t, bin, []string{"DATABASE_URL=" + server},
		"bench", "--records", "400", "--format", "json", "--database", name)
	require.Equal(t, 0, code, stderr)

	var res bench.Results
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), stdout)
	require.NotEmpty(t, res.Hardware.CPUModel)
	require.Positive(t, res.Hardware.Cores)
	require.Positive(t, res.Hardware.MemoryBytes)
	require.NotEmpty(t, res.Hardware.PostgresVersion)
	require.Equal(t, 400, res.Records)

	w := res.WritePath
	require.Equal(t, 400, w.Rows)
	require.Positive(t, w.UpsertSeconds)
	require.Positive(t, w.CopySeconds)
	require.InDelta(t, w.CopySeconds/w.UpsertSeconds, w.Ratio, 1e-9)

	f := res.FullPath
	require.Equal(t, int64(100), f.Deals)
	require.Greater(t, f.Records, f.Deals, "deals and their stage history")
	require.Positive(t, f.RecordsPerSecond)
	require.Positive(t, f.FakeServeSeconds)

	require.Len(t, res.APIEfficiency, 3)
	byRun := map[string]bench.APIRun{}
	for _, a := range res.APIEfficiency {
		byRun[a.Run] = a
		require.Positive(t, a.Requests, a.Run)
		require.Positive(t, a.Minimum, a.Run)
	}
	require.EqualValues(t, 1, byRun["backfill (incremental from empty, search API)"].Minimum, "100 deals fit one page of 200")
	require.EqualValues(t, 1, byRun["reconciliation (full read, list API)"].Minimum, "100 deals fit one page of 100")
	noChange := byRun["no-change incremental"]
	require.EqualValues(t, 1, noChange.Requests)
	require.Zero(t, noChange.Writes)

	require.Len(t, res.PeakRSS, 3)
	for i, m := range res.PeakRSS {
		require.Positive(t, m.MaxRSSBytes, "child %d", i)
		require.Positive(t, m.Records)
	}
	require.Equal(t, []int{10, 100, 1000}, []int{res.PeakRSS[0].Deals, res.PeakRSS[1].Deals, res.PeakRSS[2].Deals})
	require.Positive(t, res.RSSGrowth)

	r := res.Rules
	require.Equal(t, 4000, r.OpenDeals)
	require.EqualValues(t, 5000, r.Deals, "open deals and a quarter as many closed")
	require.Positive(t, r.AlertsOpened)
	require.Positive(t, r.Detect)
	require.Positive(t, r.Report)
	require.Len(t, res.Targets, 8)

	conn, err := pgx.Connect(ctx, server)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists))
	require.False(t, exists, "the scratch database is dropped")
}
