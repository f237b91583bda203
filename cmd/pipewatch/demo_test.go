package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/notify/slackfake"
)

// TestDemoOnce runs `pipewatch demo --once` in-process on a test schema: the sandbox
// CRMs, the config applied, River with every worker, and the summary.
func TestDemoOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	schema, pool := dbtest.TestSchema(ctx, t)
	var out bytes.Buffer
	err := playDemo(ctx, &out, pool, testDemoOptions(t, schema))
	require.NoError(t, err, out.String())
	text := out.String()

	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(&n), sql)
		return n
	}

	t.Run("SyncedBothCRMs", func(t *testing.T) {
		require.Zero(t, count(`SELECT count(*) FROM sync_runs WHERE status <> 'succeeded'`))
		require.Equal(t, 2, count(`SELECT count(DISTINCT connection_id) FROM deals`))
		require.Greater(t, count(`SELECT count(*) FROM deals`), 800)
		require.Greater(t, count(`SELECT count(*) FROM activities`), 5000)
		require.Greater(t, count(`SELECT count(*) FROM leads WHERE sql_at IS NOT NULL`), 100)
		require.Equal(t, 3, count(`SELECT count(DISTINCT currency) FROM deals d JOIN connections c ON c.id = d.connection_id WHERE c.kind = 'hubspot'`))
		require.Positive(t, count(`SELECT count(*) FROM deal_changes WHERE field = 'close_date'`), "the minute's pushes were observed")
		require.Contains(t, text, "Synced (every run of every stream")
	})

	t.Run("AlertsOfEveryRule", func(t *testing.T) {
		rows, err := pool.Query(ctx, `SELECT DISTINCT rule FROM alerts`)
		require.NoError(t, err)
		rules, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Subset(t, rules, []string{"idle", "stuck_in_stage", "past_close_date", "close_date_slipped", "no_next_step",
			"coverage_shortfall", "lead_velocity_drop"})
		require.Contains(t, text, "Close date slipped:")
		require.Contains(t, text, "Alerts: ")
	})

	t.Run("MessagesDeliveredOrWaitingForWorkingHours", func(t *testing.T) {
		require.Positive(t, count(`SELECT count(*) FROM notifications WHERE kind = 'digest'`), "managers get a digest of the baseline")
		require.Positive(t, count(`SELECT count(*) FROM notifications WHERE kind = 'alert'`), "a slipped deal is told to its owner")
		require.Zero(t, count(`SELECT count(*) FROM notifications WHERE state NOT IN ('sent', 'pending')`))
		require.Zero(t, count(`SELECT count(*) FROM notifications WHERE state = 'pending' AND not_before <= now()`),
			"whatever waits, waits for the recipient's working hours")
		if count(`SELECT count(*) FROM notifications WHERE state = 'sent'`) > 0 {
			require.Contains(t, text, "── Slack message · ")
		}
	})

	t.Run("ReportAndReminders", func(t *testing.T) {
		require.Contains(t, text, "Win rate:")
		require.Contains(t, text, "team EMEA")
		require.Positive(t, count(`SELECT count(*) FROM reminders WHERE state = 'scheduled'`))
		require.Contains(t, text, "Follow-up reminders:")
	})
}

func testDemoOptions(t *testing.T, schema string) demoOptions {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return demoOptions{
		Seed: 11, Once: true, Every: time.Minute, Listener: ln, Schema: schema, Database: schema,
		Timeout: 2 * time.Minute, ConfigDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
	}
}

// TestDemoOnceToSlack posts the demo's messages to a (fake) Slack workspace: the sandbox
// people's DMs reach --slack-user, the channel messages --slack-channel.
func TestDemoOnceToSlack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	schema, pool := dbtest.TestSchema(ctx, t)
	fake := slackfake.New(slackfake.Options{PostInterval: time.Millisecond})
	t.Cleanup(fake.Close)
	me := fake.AddUser(slackfake.User{Name: "me", Email: "me@example.com", TZ: "UTC"})
	channel := fake.AddChannel(slackfake.Channel{Name: "pipewatch-demo", Member: true})

	o := testDemoOptions(t, schema)
	o.SlackToken, o.SlackAPIURL = fake.Token(), fake.URL()
	o.SlackUser, o.SlackChannel = "me@example.com", "#pipewatch-demo"
	var out bytes.Buffer
	require.NoError(t, playDemo(ctx, &out, pool, o), out.String())
	require.NotContains(t, out.String(), "── Slack message", "nothing goes to the console")

	var failed, sent int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'failed'), count(*) FILTER (WHERE state = 'sent' AND delivered_via = 'slack') FROM notifications`).
		Scan(&failed, &sent))
	require.Zero(t, failed)
	var dms, posts int
	for _, m := range fake.Posts() {
		switch m.Channel {
		case fake.DMChannel(me.ID):
			dms++
		case channel.ID:
			posts++
		}
	}
	require.Equal(t, sent, dms+posts, "every message sent went to the user or the channel")
}
