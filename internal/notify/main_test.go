package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/internal/notify/slackfake"
	"github.com/pipewatch/pipewatch/jobs"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *testClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tuesday15UTC is Tuesday 2026-11-10, 10:00 in New York and 07:00 in Los Angeles.
var tuesday15UTC = time.Date(2026, 11, 10, 15, 0, 0, 0, time.UTC)

type testBundle struct {
	ctx       context.Context
	tx        pgx.Tx
	clock     *testClock
	fake      *slackfake.Server
	logs      *syncBuffer
	console   *syncBuffer
	river     *river.Client[pgx.Tx]
	enq       jobs.NotificationEnqueuer
	deliverer *notify.Deliverer
	connID    int64
}

type setupOpts struct {
	console    bool   // no Slack token: print to the console
	token      string // bot token to use ("" = the fake's)
	opsChannel string
}

// setup gives a test a rolled-back transaction with org and team settings, a fake Slack
// sharing the test clock, and a Deliverer on both.
func setup(t *testing.T, opts setupOpts) *testBundle {
	t.Helper()
	ctx := context.Background()
	b := &testBundle{ctx: ctx, tx: dbtest.TestTx(ctx, t), clock: &testClock{now: tuesday15UTC}, logs: &syncBuffer{}, console: &syncBuffer{}}
	b.fake = slackfake.New(slackfake.Options{NowFunc: b.clock.Now})
	t.Cleanup(b.fake.Close)
	rc, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	b.river, b.enq = rc, jobs.NotificationEnqueuer{Inserter: rc}

	require.NoError(t, b.tx.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ('crm', 'hubspot') RETURNING id`).Scan(&b.connID))
	b.putSetting(t, "org", config.Org{Timezone: "America/New_York", Currency: "USD"})
	b.putSetting(t, "teams", []config.Team{{
		Name: "west", ManagerEmail: "mia@example.com", Members: []string{"ana@example.com"},
		Timezone: "America/Los_Angeles", BusinessDays: config.DefaultBusinessDays, Holidays: []string{"2026-11-26"},
		SlackChannel: "#west-deals",
	}})

	cfg := notify.DelivererConfig{DB: b.tx, Console: b.console, NowFunc: b.clock.Now, OpsChannel: opts.opsChannel,
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(b.logs, testWriter{t}), nil))}
	if !opts.console {
		token := opts.token
		if token == "" {
			token = b.fake.Token()
		}
		cfg.Slack = notify.NewSlackClient(token, b.fake.URL())
	}
	b.deliverer = notify.NewDeliverer(cfg)
	return b
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func (b *testBundle) putSetting(t *testing.T, key string, value any) {
	t.Helper()
	doc, err := json.Marshal(value)
	require.NoError(t, err)
	_, err = b.tx.Exec(b.ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, doc)
	require.NoError(t, err)
}

// addOwner adds a CRM owner; empty strings are NULL.
func (b *testBundle) addOwner(t *testing.T, email, timezone, slackUserID, team string) {
	t.Helper()
	_, err := b.tx.Exec(b.ctx, `
		INSERT INTO owners (connection_id, external_id, email, name, timezone, slack_user_id, team)
		VALUES ($1, $2, $2, $2, NULLIF($3, ''), NULLIF($4, ''), NULLIF($5, ''))`, b.connID, email, timezone, slackUserID, team)
	require.NoError(t, err)
}

// enqueue writes a notification the way producers do, not before the test clock's now.
func (b *testBundle) enqueue(t *testing.T, n jobs.Notification) int64 {
	t.Helper()
	if n.NotBefore.IsZero() {
		n.NotBefore = b.clock.Now()
	}
	id, err := jobs.EnqueueNotification(b.ctx, b.tx, b.river, n)
	require.NoError(t, err)
	return id
}

func (b *testBundle) deliver(id int64) error {
	return b.deliverer.Deliver(b.ctx, id, b.enq)
}

// notificationRow is what a test checks of an outbox row.
type notificationRow struct {
	State, SlackTS, SlackChannelID, Error, DeliveredVia string
	Attempts                                            int
	OutcomeUnknown                                      bool
	NotBefore                                           time.Time
}

func (b *testBundle) row(t *testing.T, id int64) notificationRow {
	t.Helper()
	var r notificationRow
	require.NoError(t, b.tx.QueryRow(b.ctx, `
		SELECT state, coalesce(slack_ts, ''), coalesce(slack_channel_id, ''), coalesce(error, ''), coalesce(delivered_via, ''),
		       attempts, outcome_unknown, not_before
		FROM notifications WHERE id = $1`, id,
	).Scan(&r.State, &r.SlackTS, &r.SlackChannelID, &r.Error, &r.DeliveredVia, &r.Attempts, &r.OutcomeUnknown, &r.NotBefore))
	return r
}

// alert inserts an alert row and returns its id.
func (b *testBundle) alert(t *testing.T, team string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.tx.QueryRow(b.ctx, `
		INSERT INTO alerts (rule, fingerprint, severity, team) VALUES ('idle', gen_random_uuid()::text, 'warning', NULLIF($1, ''))
		RETURNING id`, team).Scan(&id))
	return id
}

func simpleMessage(title string) notify.Message {
	return notify.Message{Title: title, Summary: "Something needs you.", Facts: []notify.Fact{{Label: "Amount", Value: "$1,000"}},
		Actions: []notify.Action{{ID: "alert.ack", Label: "Acknowledge", Value: "1"}}}
}
