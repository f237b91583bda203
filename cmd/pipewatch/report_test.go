package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
)

func TestReportCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildBinary(t)
	schema, pool := dbtest.TestSchema(ctx, t)
	env := []string{"DATABASE_URL=" + dbtest.SchemaURL(ctx, t, schema)}
	var connID, ownerID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ('hubspot-main', 'hubspot') RETURNING id`).Scan(&connID))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO owners (connection_id, external_id, email, team) VALUES ($1, 'u1', 'ana@example.com', 'east') RETURNING id`, connID).Scan(&ownerID))
	_, err := pool.Exec(ctx, `INSERT INTO deals (connection_id, external_id, amount, currency, owner_id, is_closed, is_won, closed_at, remote_created_at)
		VALUES ($1, 'd1', 1000, 'USD', $2, true, true, '2026-10-10T12:00:00Z', '2026-09-30T12:00:00Z'),
		       ($1, 'd2', 400, 'USD', $2, true, false, '2026-10-11T12:00:00Z', '2026-09-01T12:00:00Z'),
		       ($1, 'd3', 900, 'EUR', $2, false, false, NULL, '2026-10-01T12:00:00Z')`, connID, ownerID)
	require.NoError(t, err)

	t.Run("JSON", func(t *testing.T) {
		code, stdout, stderr := pipewatch(t, bin, env, "report", "--period", "2026-Q4", "--scope", "team:east", "--format", "json")
		require.Equal(t, 0, code, stderr)
		var doc struct {
			SchemaVersion int `json:"schema_version"`
			Period        struct{ Label string }
			WinRate       struct {
				Won, Lost  int
				ByCurrency []struct {
					Currency  string `json:"currency"`
					ValueRate string `json:"value_rate"`
				} `json:"by_currency"`
			} `json:"win_rate"`
			SalesCycle struct {
				MedianDays string `json:"median_days"`
			} `json:"sales_cycle"`
		}
		require.NoError(t, json.Unmarshal([]byte(stdout), &doc))
		require.Equal(t, 1, doc.SchemaVersion)
		require.Equal(t, "2026-Q4", doc.Period.Label)
		require.Equal(t, 1, doc.WinRate.Won)
		require.Equal(t, 1, doc.WinRate.Lost)
		require.Len(t, doc.WinRate.ByCurrency, 1)
		require.Equal(t, "USD", doc.WinRate.ByCurrency[0].Currency)
		require.Equal(t, "0.7143", doc.WinRate.ByCurrency[0].ValueRate)
		require.Equal(t, "10", doc.SalesCycle.MedianDays)
	})
	t.Run("Table", func(t *testing.T) {
		code, stdout, stderr := pipewatch(t, bin, env, "report", "--period", "2026-10")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "Pipeline report 2026-10 (2026-10-01 to 2026-10-31), scope all")
		require.Contains(t, stdout, "WIN RATE (closed in period): 1 won, 1 lost, 50.0%")
		require.Contains(t, stdout, "ana@example.com")
	})
	t.Run("BadPeriodIsAUsageError", func(t *testing.T) {
		code, _, stderr := pipewatch(t, bin, env, "report", "--period", "Q4")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, `pipewatch report: usage: period "Q4": want a month (2026-11)`)
	})
	t.Run("BadFormat", func(t *testing.T) {
		code, _, stderr := pipewatch(t, bin, env, "report", "--format", "csv")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, `--format "csv": want table or json`)
	})
	t.Run("UnknownTeam", func(t *testing.T) {
		code, _, stderr := pipewatch(t, bin, env, "report", "--scope", "team:north")
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "pipewatch report: scope team:north: no such team, owner, pipeline or connection")
	})
}
