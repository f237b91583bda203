package analytics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func analyticsStage(s string) pipeline.CanonicalStage { return pipeline.CanonicalStage(s) }

func TestBuildReport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	ds := generate(42)
	ds.insert(ctx, t, tx)

	periods := []string{"2026-Q4", "2026-10", "2027-Q1", "2024-Q1", "2026-08-15..2026-09-30"}
	scopes := []string{"all", "team:east", "owner:ana@example.com", fmt.Sprintf("pipeline:%d", ds.pipelines[1].id),
		"connection:pipedrive-eu"}
	for _, ps := range periods {
		for _, ss := range scopes {
			t.Run(ps+"/"+ss, func(t *testing.T) {
				period := mustPeriod(t, ps)
				scope, err := analytics.ParseScope(ss)
				require.NoError(t, err)
				got, err := analytics.BuildReport(ctx, tx, analytics.Request{Period: period, Scope: scope, Now: testNow})
				require.NoError(t, err)
				want := (&expecter{ds: ds, period: period, scope: scope, today: utcDay(testNow)}).report()
				wantJSON, err := json.MarshalIndent(want, "", "  ")
				require.NoError(t, err)
				gotJSON, err := json.MarshalIndent(got, "", "  ")
				require.NoError(t, err)
				require.JSONEq(t, string(wantJSON), string(gotJSON))
			})
		}
	}
}
