package main

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
)

func TestDetectCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildBinary(t)
	schema, pool := dbtest.TestSchema(ctx, t)
	env := []string{"DATABASE_URL=" + dbtest.SchemaURL(ctx, t, schema)}
	now := time.Now()
	var connID, ownerID, stageID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO connections (name, kind, config, last_synced_at)
		VALUES ('hubspot-main', 'hubspot', '{"schedule": "15m", "options": {"portal_id": "42"}}', $1) RETURNING id`, now).Scan(&connID))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO owners (connection_id, external_id, email, name) VALUES ($1, 'u1', 'ana@example.com', 'Ana') RETURNING id`, connID).Scan(&ownerID))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO stages (connection_id, external_id, name, canonical_stage) VALUES ($1, 's1', 'Qualified', 'qualification') RETURNING id`, connID).Scan(&stageID))
	_, err := pool.Exec(ctx, `INSERT INTO deals (connection_id, external_id, name, amount, currency, stage_id, owner_id,
		remote_created_at, stage_entered_at, last_activity_at, next_activity_at, close_date)
		VALUES ($1, '9001', 'Acme renewal', 50000, 'USD', $2, $3, $4, $5, $6, $7, $8)`,
		connID, stageID, ownerID, now.AddDate(0, 0, -30), now.AddDate(0, 0, -20), now.AddDate(0, 0, -10), now.AddDate(0, 0, -1),
		now.AddDate(0, 1, 0))
	require.NoError(t, err)
	// The connection's first evaluation is behind it: new conditions notify.
	_, err = pool.Exec(ctx, `INSERT INTO alert_baselines (scope, baselined_at) VALUES ($1, $2), ('org', $2)`,
		"connection:"+strconv.FormatInt(connID, 10), now.Add(-time.Hour))
	require.NoError(t, err)

	counts := func(t *testing.T) map[string]int {
		t.Helper()
		out := map[string]int{}
		for _, table := range []string{"alerts", "notifications", "detect_runs", "river_job", "alert_baselines", "stage_learned_times"} {
			var n int
			require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n))
			out[table] = n
		}
		return out
	}

	t.Run("DryRunShowsAndChangesNothing", func(t *testing.T) {
		before := counts(t)
		code, stdout, stderr := pipewatch(t, bin, env, "detect", "--dry-run")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "Dry run: nothing was saved and nothing will be sent.")
		require.Contains(t, stdout, "hubspot-main")
		require.Contains(t, stdout, "would tell 2")
		require.Contains(t, stdout, "no touch for 10 days (threshold 7 days)")
		require.Contains(t, stdout, "Acme renewal")
		require.Contains(t, stdout, "next activity overdue")
		require.Equal(t, before, counts(t), "a dry run leaves every table as it was")

		code, stdout, stderr = pipewatch(t, bin, env, "detect", "--dry-run", "--format", "json")
		require.Equal(t, 0, code, stderr)
		var doc struct {
			DryRun bool `json:"dry_run"`
			Told   int  `json:"told"`
			Alerts []struct {
				Rule     string `json:"rule"`
				Delivery string `json:"delivery"`
				Details  struct {
					DealExternalID string `json:"deal_external_id"`
					DaysIdle       int    `json:"days_idle"`
				} `json:"details"`
			} `json:"alerts"`
		}
		require.NoError(t, json.Unmarshal([]byte(stdout), &doc))
		require.True(t, doc.DryRun)
		require.Equal(t, 2, doc.Told)
		require.Equal(t, before, counts(t))
	})

	t.Run("RunSavesAndEnqueues", func(t *testing.T) {
		code, stdout, stderr := pipewatch(t, bin, env, "detect")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "told 2")
		c := counts(t)
		require.Equal(t, 2, c["alerts"])
		require.Equal(t, 2, c["notifications"])
		require.Equal(t, 2, c["river_job"], "each message has its delivery job")
		require.Equal(t, 1, c["detect_runs"])

		code, stdout, stderr = pipewatch(t, bin, env, "detect")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "told 0")
		require.Equal(t, 2, counts(t)["notifications"])
	})

	t.Run("UnknownConnection", func(t *testing.T) {
		code, _, stderr := pipewatch(t, bin, env, "detect", "--connection", "nope")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, `no connection named "nope" (known: hubspot-main)`)
	})
}
