package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/internal/notify/slackfake"
	"github.com/pipewatch/pipewatch/jobs"
)

// Polls give up after waitFor: generous, as the machine is shared, and free when things
// are quick.
const (
	waitFor   = 45 * time.Second
	pollEvery = 50 * time.Millisecond
)

// deliveryClock runs at real speed from a chosen start and can jump ahead. River (through
// Config.Test.Time), the delivery worker and the fake Slack all read it, so a test can skip
// a night of quiet hours or minutes of outage while rate limits still pass in real seconds.
type deliveryClock struct {
	mu      sync.Mutex
	base    time.Time
	started time.Time
}

func newDeliveryClock(start time.Time) *deliveryClock {
	return &deliveryClock{base: start, started: time.Now()}
}

func (c *deliveryClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.started))
}

// NowOrNil makes the clock a rivertype.TimeGenerator.
func (c *deliveryClock) NowOrNil() *time.Time {
	now := c.Now()
	return &now
}

func (c *deliveryClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base = c.base.Add(d)
}

// lockedBuffer collects log lines from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type deliveryBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	clock  *deliveryClock
	fake   *slackfake.Server
	client *river.Client[pgx.Tx]
	worker *jobs.DeliverNotificationWorker
	logs   *lockedBuffer
}

// setupDelivery starts a River client working the notify queue with the delivery worker
// against a fake Slack, all on one clock starting at start.
func setupDelivery(t *testing.T, start time.Time) *deliveryBundle {
	t.Helper()
	ctx := context.Background()
	schema, pool := dbtest.TestSchema(ctx, t)
	b := &deliveryBundle{ctx: ctx, pool: pool, clock: newDeliveryClock(start), logs: &lockedBuffer{}}
	b.fake = slackfake.New(slackfake.Options{NowFunc: b.clock.Now})
	t.Cleanup(b.fake.Close)
	b.fake.AddChannel(slackfake.Channel{Name: "revops", Member: true})

	logger := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	deps := &jobs.Deps{Pool: pool, Logger: logger, NowFunc: b.clock.Now,
		Slack: notify.NewSlackClient(b.fake.Token(), b.fake.URL()), Console: io.Discard, SlackOpsChannel: "#revops"}
	b.worker = jobs.NewDeliverNotificationWorker(deps)
	workers := river.NewWorkers()
	river.AddWorker(workers, b.worker)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Schema:   schema,
		Workers:  workers,
		Queues:   map[string]river.QueueConfig{jobs.QueueNotify: {MaxWorkers: 4}},
		TestOnly: true,
		Test:     river.TestConfig{Time: b.clock},
		// The test clock runs weeks behind the database's: River's rescuer would take every
		// running job for stuck (attempted "long ago") and run it again.
		RescueStuckJobsAfter: 365 * 24 * time.Hour,
	})
	require.NoError(t, err)
	b.client = client
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
	})

	org, err := json.Marshal(config.Org{Timezone: "America/New_York", Currency: "USD"})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO settings (key, value) VALUES ('org', $1)`, org)
	require.NoError(t, err)
	return b
}

// enqueue writes a notification as a producer does, in its own transaction.
func (b *deliveryBundle) enqueue(t *testing.T, n jobs.Notification) int64 {
	t.Helper()
	n.NotBefore = b.clock.Now()
	var id int64
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		id, err = jobs.EnqueueNotification(b.ctx, tx, b.client, n)
		return err
	}))
	return id
}

// state reads a notification's state and error; polls call it, so it returns its error
// instead of failing the test off the test goroutine.
func (b *deliveryBundle) state(id int64) (state, errText string, err error) {
	err = b.pool.QueryRow(b.ctx, `SELECT state, coalesce(error, '') FROM notifications WHERE id = $1`, id).Scan(&state, &errText)
	return state, errText, err
}

func (b *deliveryBundle) waitState(t *testing.T, id int64, want string) {
	t.Helper()
	require.Eventually(t, func() bool { s, _, err := b.state(id); return err == nil && s == want }, waitFor, pollEvery,
		"notification %d never became %s", id, want)
}

// jobState reads the state of a notification's delivery job.
func (b *deliveryBundle) jobState(notificationID int64) (state string, scheduledAt time.Time, err error) {
	err = b.pool.QueryRow(b.ctx, `
		SELECT state, scheduled_at FROM river_job
		WHERE kind = 'deliver_notification' AND (args->>'notification_id')::bigint = $1`, notificationID).Scan(&state, &scheduledAt)
	return state, scheduledAt, err
}

func message(title string) notify.Message {
	return notify.Message{Title: title, Summary: "Needs a look.", Actions: []notify.Action{{ID: "alert.ack", Label: "Acknowledge", Value: "1"}}}
}

func TestDeliverNotificationWorker(t *testing.T) {
	t.Parallel()
	la, err := time.LoadLocation("America/Los_Angeles")
	require.NoError(t, err)

	t.Run("LateAlertWaitsForNextBusinessDayWindow", func(t *testing.T) {
		t.Parallel()
		b := setupDelivery(t, time.Date(2026, 11, 13, 23, 0, 0, 0, la)) // Friday 23:00 in the rep's zone
		b.fake.AddUser(slackfake.User{Name: "Ana", Email: "ana@example.com", TZ: "America/Los_Angeles"})
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelDM, Recipient: "ana@example.com", Message: message("Stalled deal: Acme")})

		monday8 := time.Date(2026, 11, 16, 8, 0, 0, 0, la)
		require.Eventually(t, func() bool {
			state, at, err := b.jobState(id)
			return err == nil && state == "scheduled" && at.Sub(monday8).Abs() < time.Second
		}, waitFor, pollEvery, "the job snoozes until Monday 08:00 in Los Angeles")
		require.Empty(t, b.fake.Posts())

		b.clock.Advance(monday8.Sub(b.clock.Now()) - time.Minute)
		_, scheduledAt, err := b.jobState(id)
		require.NoError(t, err)
		require.True(t, scheduledAt.After(b.clock.Now()), "a minute before the window the job is not due")
		require.Empty(t, b.fake.Posts())

		b.clock.Advance(time.Minute)
		b.waitState(t, id, "sent")
		posts := b.fake.Posts()
		require.Len(t, posts, 1)
		require.False(t, posts[0].At.Before(monday8))
		require.Less(t, posts[0].At.Sub(monday8), time.Minute)
		require.Contains(t, posts[0].Text, "Stalled deal: Acme")
	})

	t.Run("OutageAndRateLimitDelayButEveryMessageArrivesOnce", func(t *testing.T) {
		t.Parallel()
		b := setupDelivery(t, time.Date(2026, 11, 10, 10, 0, 0, 0, la))
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		b.fake.SetOutage(b.clock.Now().Add(4*time.Minute), http.StatusServiceUnavailable)
		var ids []int64
		for _, title := range []string{"Won: Acme", "Won: Beta", "Won: Gamma"} {
			ids = append(ids, b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelSlack, Recipient: "#deals", Message: message(title)}))
		}
		require.Eventually(t, func() bool { return b.fake.Calls("chat.postMessage") >= 6 }, waitFor, pollEvery,
			"each message is retried during the outage")
		for _, id := range ids {
			state, errText, err := b.state(id)
			require.NoError(t, err)
			require.Equal(t, "pending", state)
			require.Contains(t, errText, "503")
		}
		require.Empty(t, b.fake.Posts())

		b.clock.Advance(5 * time.Minute) // Slack is back; retries are due
		for _, id := range ids {
			b.waitState(t, id, "sent")
		}
		posts := b.fake.Posts()
		require.Len(t, posts, 3, "exactly once each")
		titles := map[string]bool{}
		for _, p := range posts {
			title, _, _ := strings.Cut(p.Text, "\n")
			titles[title] = true
		}
		require.Equal(t, map[string]bool{"Won: Acme": true, "Won: Beta": true, "Won: Gamma": true}, titles)
		for i := 1; i < len(posts); i++ {
			require.GreaterOrEqual(t, posts[i].At.Sub(posts[i-1].At), time.Second, "one message per second per channel")
		}
		var snoozes int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT coalesce(sum((metadata->>'snoozes')::int), 0) FROM river_job WHERE kind = 'deliver_notification'`).Scan(&snoozes))
		require.Positive(t, snoozes, "the per-channel 429 was honoured with a snooze")
		require.Eventually(t, func() bool {
			var unfinished int
			err := b.pool.QueryRow(b.ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&unfinished)
			return err == nil && unfinished == 0
		}, waitFor, pollEvery, "every job completes; none is discarded")
	})

	t.Run("PermanentErrorCancelsAndTellsRevenueOps", func(t *testing.T) {
		t.Parallel()
		b := setupDelivery(t, time.Date(2026, 11, 10, 10, 0, 0, 0, la))
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelSlack, Recipient: "#gone", Message: message("Coverage shortfall")})

		b.waitState(t, id, "failed")
		_, errText, err := b.state(id)
		require.NoError(t, err)
		require.Equal(t, "Slack channel #gone was not found: check the channel id or name, and invite the pipewatch app if the channel is private", errText)
		require.Eventually(t, func() bool { s, _, err := b.jobState(id); return err == nil && s == "cancelled" }, waitFor, pollEvery,
			"no retry loop")
		require.Equal(t, 1, b.fake.Calls("chat.postMessage")-len(b.fake.Posts()), "one failed call only")
		require.Eventually(t, func() bool { return len(b.fake.Posts()) == 1 }, waitFor, pollEvery)
		ops := b.fake.Posts()[0]
		require.Contains(t, ops.Text, "A Slack message could not be delivered")
		require.Contains(t, ops.Text, "#gone was not found")
		require.Contains(t, b.logs.String(), `level=ERROR msg="notify: delivery failed for good"`)
	})

	t.Run("RerunOfSentNotificationPostsNothing", func(t *testing.T) {
		t.Parallel()
		b := setupDelivery(t, time.Date(2026, 11, 10, 10, 0, 0, 0, la))
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindDigest, Channel: notify.ChannelSlack, Recipient: "#deals", Message: message("Digest")})
		b.waitState(t, id, "sent")
		require.Eventually(t, func() bool { s, _, err := b.jobState(id); return err == nil && s == "completed" }, waitFor, pollEvery)
		var jobID int64
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT id FROM river_job WHERE (args->>'notification_id')::bigint = $1`, id).Scan(&jobID))
		job, err := b.client.JobGet(b.ctx, jobID)
		require.NoError(t, err)

		// River runs a job again when its completion was lost (a crash, a rescued job): the
		// completed job is made available again, as if its completion had never been saved.
		tx, err := b.pool.Begin(b.ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(b.ctx)) })
		_, err = tx.Exec(b.ctx, `UPDATE river_job SET state = 'available', finalized_at = NULL WHERE id = $1`, jobID)
		require.NoError(t, err)
		res, err := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, b.worker).WorkJob(b.ctx, t, tx, job)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Len(t, b.fake.Posts(), 1)
	})

	t.Run("ButtonPressUpdatesTheMessage", func(t *testing.T) {
		t.Parallel()
		b := setupDelivery(t, time.Date(2026, 11, 10, 10, 0, 0, 0, la))
		b.fake.AddChannel(slackfake.Channel{Name: "deals", Member: true})
		id := b.enqueue(t, jobs.Notification{Kind: notify.KindAlert, Channel: notify.ChannelSlack, Recipient: "#deals", Message: message("Stalled deal: Acme")})
		b.waitState(t, id, "sent")

		actions := notify.NewActions()
		actions.Register("alert.", notify.ActionHandlerFunc(func(_ context.Context, _ pgx.Tx, p notify.Press) (*notify.Message, error) {
			return &notify.Message{Title: "Stalled deal: Acme", Summary: "Acknowledged."}, nil
		}))
		handler, err := notify.NewInteractionHandler(notify.InteractionConfig{SigningSecret: b.fake.SigningSecret(), DB: b.pool,
			Actions: actions, Enqueuer: jobs.NotificationEnqueuer{Inserter: b.client}, Logger: slog.New(slog.NewTextHandler(b.logs, nil)), NowFunc: b.clock.Now})
		require.NoError(t, err)
		srv := httptest.NewServer(handler)
		t.Cleanup(srv.Close)

		req, err := b.fake.Press(srv.URL+"/slack/interactions", b.fake.Posts()[0], "alert.ack", "U0ANA", time.Now())
		require.NoError(t, err)
		res, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, res.Body.Close())
		require.Equal(t, http.StatusOK, res.StatusCode)

		posted := b.fake.Posts()[0]
		require.Eventually(t, func() bool {
			m, _ := b.fake.Message(posted.Channel, posted.TS)
			return m.Text == "Stalled deal: Acme\nAcknowledged."
		}, waitFor, pollEvery, "chat.update reaches Slack")
		require.Len(t, b.fake.Posts(), 1)
	})
}
