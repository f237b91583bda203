package migrations_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// common are the columns DESIGN.md §2 gives every synced table.
var common = []string{"connection_id", "external_id", "remote_created_at", "remote_updated_at", "deleted_at", "raw", "synced_at"}

// designTables is every table and column DESIGN.md §2 names: BI tools rely on them.
var designTables = map[string][]string{
	"connections": {"id", "name", "kind", "config", "status", "last_synced_at"},
	"owners":      append([]string{"email", "name", "team", "manager_owner_id", "timezone", "slack_user_id", "active"}, common...),
	"accounts":    append([]string{"name", "domain", "owner_id"}, common...),
	"contacts":    append([]string{"email", "name", "account_id", "owner_id"}, common...),
	"leads":       append([]string{"email", "name", "source", "status", "mql_at", "sql_at", "converted_at", "owner_id"}, common...),
	"pipelines":   append([]string{"name"}, common...),
	"stages": append([]string{"pipeline_id", "name", "position", "probability", "is_closed", "is_won",
		"canonical_stage", "rot_days"}, common...),
	"deals": append([]string{"name", "amount", "currency", "pipeline_id", "stage_id", "owner_id", "account_id",
		"close_date", "closed_at", "is_closed", "is_won", "probability", "forecast_category", "stage_entered_at",
		"last_activity_at", "next_activity_at"}, common...),
	"deal_stage_history": {"deal_id", "stage_id", "entered_at", "exited_at", "source"},
	"deal_changes":       {"deal_id", "field", "old_value", "new_value", "changed_at"},
	"activities": append([]string{"kind", "direction", "occurred_at", "deal_id", "contact_id", "lead_id", "owner_id"},
		common...),
	"sync_cursors": {"connection_id", "stream", "cursor", "updated_at"},
	"sync_runs": {"connection_id", "stream", "started_at", "finished_at", "status", "requests", "retries",
		"records_read", "inserted", "updated", "deleted", "error"},
	"targets": {"owner_id", "team", "period_start", "period_end", "amount", "currency"},
	"alerts": {"rule", "fingerprint", "deal_id", "owner_id", "severity", "state", "details", "first_seen_at",
		"last_seen_at", "notified_at", "snoozed_until", "resolved_at"},
	"notifications": {"alert_id", "reminder_id", "channel", "recipient", "slack_ts", "state", "attempts", "sent_at", "error"},
	"reminders":     {"deal_id", "owner_id", "step", "due_at", "state", "river_job_id"},
	// Beyond the design's table: sealed credentials and apply's settings documents.
	"connection_credentials": {"connection_id", "ciphertext", "applied_refresh_token"},
	"settings":               {"key", "value"},
	// River's own schema is applied by the same Up.
	"river_job": {"id", "kind", "args", "state", "queue"},
}

func TestUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Run("FromEmptyCreatesEveryDesignTableAndColumn", func(t *testing.T) {
		t.Parallel()
		_, pool := dbtest.EmptySchema(ctx, t)
		require.ErrorIs(t, migrations.Check(ctx, pool), migrations.ErrPending)
		require.NoError(t, migrations.Up(ctx, pool, logger))
		require.NoError(t, migrations.Check(ctx, pool))

		rows, err := pool.Query(ctx, `
			SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema()`)
		require.NoError(t, err)
		have := map[string][]string{}
		var table, column string
		_, err = pgx.ForEachRow(rows, []any{&table, &column}, func() error {
			have[table] = append(have[table], column)
			return nil
		})
		require.NoError(t, err)
		for table, columns := range designTables {
			require.Contains(t, have, table, "table %s", table)
			for _, c := range columns {
				require.True(t, slices.Contains(have[table], c), "column %s.%s is missing", table, c)
			}
		}
	})

	t.Run("AMissingLowerVersionIsPending", func(t *testing.T) {
		t.Parallel()
		_, pool := dbtest.EmptySchema(ctx, t)
		require.NoError(t, migrations.Up(ctx, pool, logger))
		// A database that got 00031+ before 00030 existed (areas number in their own ranges).
		_, err := pool.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = 30`)
		require.NoError(t, err)
		require.ErrorIs(t, migrations.Check(ctx, pool), migrations.ErrPending,
			"readiness must not pass with a lower version unapplied")
	})

	t.Run("IdempotentAndConcurrent", func(t *testing.T) {
		t.Parallel()
		_, pool := dbtest.EmptySchema(ctx, t)
		var g errgroup.Group
		for range 4 {
			g.Go(func() error { return migrations.Up(ctx, pool, logger) })
		}
		require.NoError(t, g.Wait())
		require.NoError(t, migrations.Check(ctx, pool))
		require.NoError(t, migrations.Up(ctx, pool, logger), "again")
		require.NoError(t, migrations.Check(ctx, pool))
	})
}
