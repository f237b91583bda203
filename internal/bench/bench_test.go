package bench

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResultsChecks(t *testing.T) {
	t.Parallel()

	type testBundle struct{ r *Results }
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{r: &Results{
			Hardware:  Hardware{CPUModel: "Test CPU", Cores: 2, MemoryBytes: 4 << 30, PostgresVersion: "15.20"},
			WritePath: WritePath{Rows: 1000, BatchSize: 5000, Ratio: 0.6},
			APIEfficiency: []APIRun{
				{Run: "backfill (incremental from empty, search API)", Deals: 1000, PageSize: 200, Requests: 5, Minimum: 5, Ratio: 1},
				{Run: "no-change incremental", Requests: 1, Minimum: 1, Ratio: 1},
			},
			Rules:     Rules{Deals: 1250, OpenDeals: 1000, Detect: 0.5, Report: 0.2},
			PeakRSS:   []MemoryPoint{{Records: 100, MaxRSSBytes: 30 << 20}, {Records: 10000, MaxRSSBytes: 40 << 20}},
			RSSGrowth: 40.0 / 30,
		}}
	}
	met := func(r *Results) map[string]bool {
		out := map[string]bool{}
		for _, c := range r.checks() {
			out[c.Name] = c.Met
		}
		return out
	}

	t.Run("AllMet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for name, ok := range met(b.r) {
			require.True(t, ok, name)
		}
	})

	t.Run("EachTargetCanMiss", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.r.WritePath.Ratio = 0.49
		b.r.APIEfficiency[0].Ratio = 1.06
		b.r.APIEfficiency[1].Requests, b.r.APIEfficiency[1].Writes = 2, 3
		b.r.Rules.Detect, b.r.Rules.Report = 3, 2
		b.r.RSSGrowth = 2
		for name, ok := range met(b.r) {
			require.False(t, ok, name)
		}
	})

	t.Run("TableNamesTheHardwareAndMisses", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.r.Rules.Detect = 7
		b.r.Targets = b.r.checks()
		var buf bytes.Buffer
		require.NoError(t, b.r.WriteTable(&buf))
		require.Contains(t, buf.String(), "Test CPU, 2 cores, 4.0 GiB memory, PostgreSQL 15.20")
		require.Contains(t, buf.String(), "detect on 1000 open deals (s)")
		require.Contains(t, buf.String(), "MISSED")
	})
}
