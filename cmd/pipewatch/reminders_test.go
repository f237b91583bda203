package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

func TestRemindersCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema, pool := dbtest.TestSchema(ctx, t)

	list := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		a := &app{stdout: &stdout, stderr: &stderr, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), pool: pool}
		err := runReminders(ctx, a, append([]string{"list"}, args...))
		return stdout.String(), err
	}

	out, err := list()
	require.NoError(t, err)
	require.Equal(t, "no active reminder cadences (a deal entering proposal starts one after the next sync)\n", out)

	exec := func(sql string, args ...any) {
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	exec(`INSERT INTO connections (name, kind) VALUES ('pd', 'pipedrive')`)
	exec(`INSERT INTO stages (connection_id, external_id, name, canonical_stage) SELECT id, '3', 'Proposal Made', 'proposal' FROM connections`)
	exec(`INSERT INTO owners (connection_id, external_id, email, timezone) SELECT id, '7', 'ana@example.com', 'Europe/Berlin' FROM connections`)
	exec(`INSERT INTO owners (connection_id, external_id, email) SELECT id, '8', 'bo@example.com' FROM connections`)
	entered := time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC) // a Friday
	exec(`INSERT INTO deals (connection_id, external_id, name, stage_id, owner_id, stage_entered_at)
		SELECT c.id, 'd' || o.external_id, 'Deal of ' || o.email, s.id, o.id, $1 FROM connections c, stages s, owners o`, entered)

	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema})
	require.NoError(t, err)
	cadences := reminder.New(reminder.Config{Queue: jobs.NewReminderQueue(client), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NowFunc: func() time.Time { return entered.Add(time.Hour) }})
	sum, err := cadences.Plan(ctx, pool, reminder.Scope{})
	require.NoError(t, err)
	require.Equal(t, 2, sum.Started)

	out, err = list("--owner", "ana@example.com")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6)
	require.Regexp(t, `^DEAL\s+OWNER\s+STEP\s+DUE \(REP'S TIME\)\s+ZONE\s+STATE\s+WHY$`, lines[0])
	require.Regexp(t, `^Deal of ana@example.com \(#\d+\)\s+ana@example.com\s+1/5\s+Tue 24 Nov 09:00 CET\s+Europe/Berlin \(crm\)\s+scheduled\s+`+
		`2 business days after entering proposal on Fri 20 Nov 15:00 CET$`, lines[1])
	require.Regexp(t, `\s5/5\s+Mon 21 Dec 09:00 CET\s`, lines[5])

	out, err = list()
	require.NoError(t, err)
	require.Regexp(t, `bo@example.com\s+1/5\s+Tue 24 Nov 09:00 UTC\s+UTC \(org\)\s+scheduled`, out)

	out, err = list("--format", "json", "--owner", "BO@example.com")
	require.NoError(t, err)
	var listed []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &listed))
	require.Len(t, listed, 5)
	require.Equal(t, "2026-11-24T09:00:00Z", listed[0]["due_at"])
	require.Equal(t, "org", listed[0]["time_zone_source"])

	_, err = list("--format", "xml")
	require.True(t, errors.Is(err, errUsage))
	var stdout bytes.Buffer
	err = runReminders(ctx, &app{stdout: &stdout, stderr: io.Discard, pool: pool}, []string{"show"})
	require.EqualError(t, err, "usage: pipewatch reminders list [--owner EMAIL] [--all] [--format table|json]")
}
