package alerting

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestEvaluateCoverage(t *testing.T) {
	t.Parallel()
	rule := config.DefaultRules().CoverageShortfall
	q4 := Target{OwnerEmail: "ana@example.com", Amount: dec("100000"), Currency: "USD",
		PeriodStart: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), PeriodEnd: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}
	ana := func(id int64) bool { return id == 1 }

	t.Run("ShortOfOneOverWinRate", func(t *testing.T) {
		t.Parallel()
		// Won 20k of 100k; 160k open → 2× of the remaining 80k. Trailing 10 won of 40
		// closed = 25 % → 4× needed.
		totals := []OwnerTotals{
			{OwnerID: 1, Currency: "USD", Open: dec("160000"), OpenDeals: 8, Won: dec("20000"), TrailingWon: 10, TrailingClosed: 40},
			{OwnerID: 2, Currency: "USD", Open: dec("900000"), Won: dec("0"), TrailingWon: 1, TrailingClosed: 1},
			{OwnerID: 1, Currency: "EUR", Open: dec("500000"), Won: dec("0")},
		}
		e, sev, ok := EvaluateCoverage(q4, totals, ana, rule)
		require.True(t, ok)
		require.Equal(t, SeverityWarning, sev)
		require.Equal(t, "owner", e.Scope)
		require.True(t, dec("80000").Equal(e.Remaining))
		require.True(t, dec("160000").Equal(e.OpenPipeline), "other owners and currencies are left out")
		require.True(t, dec("2").Equal(e.Coverage))
		require.True(t, dec("0.25").Equal(e.TrailingWinRate.Decimal))
		require.True(t, dec("4").Equal(e.RequiredCoverage))
		require.True(t, dec("320000").Equal(e.PipelineNeeded))
		require.True(t, dec("160000").Equal(e.Shortfall))
	})

	t.Run("RequiredCoverageStaysWithinFloorAndCap", func(t *testing.T) {
		t.Parallel()
		high := []OwnerTotals{{OwnerID: 1, Currency: "USD", Open: dec("150000"), TrailingWon: 9, TrailingClosed: 10}}
		e, _, ok := EvaluateCoverage(q4, high, ana, rule)
		require.True(t, ok, "1.5× is short of the 2× floor even though 1 ÷ 90 % is 1.1×")
		require.True(t, dec("2").Equal(e.RequiredCoverage))

		none := []OwnerTotals{{OwnerID: 1, Currency: "USD", Open: dec("450000")}}
		e, _, ok = EvaluateCoverage(q4, none, ana, rule)
		require.True(t, ok, "without closed deals the cap (5×) applies")
		require.True(t, dec("5").Equal(e.RequiredCoverage))
		require.False(t, e.TrailingWinRate.Valid)
	})

	t.Run("EnoughCoverageOrTargetMetIsQuiet", func(t *testing.T) {
		t.Parallel()
		enough := []OwnerTotals{{OwnerID: 1, Currency: "USD", Open: dec("400000"), TrailingWon: 1, TrailingClosed: 4}}
		_, _, ok := EvaluateCoverage(q4, enough, ana, rule)
		require.False(t, ok, "4× of 100k remaining is exactly what a 25 % win rate needs")
		met := []OwnerTotals{{OwnerID: 1, Currency: "USD", Won: dec("100000")}}
		_, _, ok = EvaluateCoverage(q4, met, ana, rule)
		require.False(t, ok, "a met target needs no pipeline")
	})

	t.Run("CriticalBelowHalfTheNeed", func(t *testing.T) {
		t.Parallel()
		low := []OwnerTotals{{OwnerID: 1, Currency: "USD", Open: dec("90000"), TrailingWon: 1, TrailingClosed: 4}}
		_, sev, ok := EvaluateCoverage(q4, low, ana, rule)
		require.True(t, ok)
		require.Equal(t, SeverityCritical, sev, "0.9× is under half of 4×")
	})
}

func TestEvaluateLeadVelocity(t *testing.T) {
	t.Parallel()
	r := config.DefaultRules().LeadVelocityDrop
	tests := []struct {
		name              string
		current, previous int
		wantOK            bool
		wantSeverity      Severity
		wantChange        float64
	}{
		{"DropOfAFifth", 80, 100, true, SeverityWarning, -0.2},
		{"SteepDrop", 12, 20, true, SeverityCritical, -0.4},
		{"SmallDrop", 90, 100, false, "", -0.1},
		{"Growth", 130, 100, false, "", 0.3},
		{"TooFewToJudge", 1, 9, false, "", 0},
		{"NothingBefore", 0, 0, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			change, sev, ok := EvaluateLeadVelocity(tt.current, tt.previous, r)
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.wantSeverity, sev)
			require.InDelta(t, tt.wantChange, change, 1e-9)
		})
	}
}
