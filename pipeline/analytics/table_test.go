package analytics_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

func TestWriteTable(t *testing.T) {
	t.Parallel()
	d := decimal.RequireFromString
	nd := func(s string) decimal.NullDecimal { return decimal.NewNullDecimal(d(s)) }
	r := &analytics.Report{
		AsOf:   "2026-11-18",
		Period: analytics.PeriodInfo{Label: "2026-11", Start: "2026-11-01", End: "2026-11-30"},
		Scope:  analytics.ScopeInfo{Kind: analytics.ScopeTeam, Value: "east"},
		OpenPipeline: analytics.OpenPipeline{Deals: 3, WithoutOwner: 1, Reopened: 1,
			ByCurrency: []analytics.PipelineTotal{
				{Amounts: analytics.Amounts{Currency: "", Deals: 1, DealsWithoutAmount: 1, Amount: d("0"), Weighted: d("0")}, ClosingInPeriod: d("0")},
				{Amounts: analytics.Amounts{Currency: "USD", Deals: 2, Amount: d("1234567.5"), Weighted: d("-12.345")}, ClosingInPeriod: d("1000")},
			}},
		WinRate: analytics.WinRate{Won: 1, Lost: 2, Rate: nd("0.3333")},
		Coverage: []analytics.Coverage{{Subject: "owner", Name: "ana@example.com", Currency: "USD", Target: d("1000"),
			Remaining: d("1000"), OpenPipeline: d("2500"), Coverage: nd("2.5"), RequiredCoverage: d("3.3333"), Status: analytics.CoverageShort,
			PipelineNeeded: d("3333.3"), Shortfall: d("833.3")}},
		Owners: []analytics.OwnerRow{{Owner: "", Currency: "USD", OpenDeals: 1, OpenAmount: d("10"), Weighted: d("5")}},
	}
	var out bytes.Buffer
	require.NoError(t, analytics.WriteTable(&out, r))
	text := out.String()
	require.True(t, strings.HasPrefix(text, "Pipeline report 2026-11 (2026-11-01 to 2026-11-30), scope team:east, as of 2026-11-18\n"))
	for _, want := range []string{
		"CURRENCY  DEALS  NO AMOUNT  AMOUNT        WEIGHTED  CLOSING IN PERIOD\n" +
			"(none)    1      1          0.00          0.00      0.00\n" +
			"USD       2      0          1,234,567.50  -12.35    1,000.00\n",
		"without owner: 1, reopened: 1\n",
		"WIN RATE (closed in period): 1 won, 2 lost, 33.3%\n",
		"SALES CYCLE (won in period, days): median –, mean –, p90 – (0 deals, 0 without a usable creation date)\n",
		"owner    ana@example.com  USD       1,000.00  0.00  1,000.00   2,500.00       2.50×     3.33×     833.30     short\n",
		"(no owner)",
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "LEAD VELOCITY", "no lead section when the report has none")
	require.NotContains(t, text, "UNMAPPED STAGES", "no unmapped section when every stage is mapped")
}
