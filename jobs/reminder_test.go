package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/internal/notify/slackfake"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

// reminderClock runs at real speed from a chosen start and jumps ahead on demand. River
// (Config.Test.Time), the workers, the interaction endpoint and the fake Slack read it.
type reminderClock struct {
	mu      sync.Mutex
	base    time.Time
	started time.Time
}

func (c *reminderClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(time.Since(c.started))
}

// NowOrNil makes the clock a rivertype.TimeGenerator.
func (c *reminderClock) NowOrNil() *time.Time {
	now := c.Now()
	return &now
}

// JumpTo moves the clock to t.
func (c *reminderClock) JumpTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.base, c.started = t, time.Now()
}

// reminderWorld is a worker process (a River client working reminders, planning and
// delivery) on its own schema, a fake Slack with the reps Ana and Bo, and Slack's
// interactivity endpoint.
type reminderWorld struct {
	ctx      context.Context
	schema   string
	pool     *pgxpool.Pool
	clock    *reminderClock
	fake     *slackfake.Server
	deps     *jobs.Deps
	endpoint *httptest.Server
	tokyo    *time.Location
	ana, bo  slackfake.User
	conn     int64
	stages   map[string]int64
}

func newReminderWorld(t *testing.T) *reminderWorld {
	t.Helper()
	ctx := context.Background()
	schema, pool := dbtest.TestSchema(ctx, t)
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	w := &reminderWorld{ctx: ctx, schema: schema, pool: pool, tokyo: tokyo, stages: map[string]int64{},
		clock: &reminderClock{base: time.Date(2026, 3, 6, 16, 0, 0, 0, tokyo), started: time.Now()}}
	w.fake = slackfake.New(slackfake.Options{NowFunc: w.clock.Now})
	t.Cleanup(w.fake.Close)
	w.ana = w.fake.AddUser(slackfake.User{Name: "Ana", Email: "ana@example.com", TZ: "Asia/Tokyo"})
	w.bo = w.fake.AddUser(slackfake.User{Name: "Bo", Email: "bo@example.com", TZ: "Asia/Tokyo"})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w.deps = &jobs.Deps{Pool: pool, Logger: logger, NowFunc: w.clock.Now,
		Slack: notify.NewSlackClient(w.fake.Token(), w.fake.URL()), Console: io.Discard}

	// The web process: an insert-only River client behind Slack's interactivity endpoint.
	web, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: schema, Test: river.TestConfig{Time: w.clock}})
	require.NoError(t, err)
	actions := notify.NewActions()
	jobs.RegisterReminderActions(actions, w.deps, web)
	handler, err := notify.NewInteractionHandler(notify.InteractionConfig{SigningSecret: w.fake.SigningSecret(), DB: pool,
		Actions: actions, Enqueuer: jobs.NotificationEnqueuer{Inserter: web}, Logger: logger, NowFunc: w.clock.Now})
	require.NoError(t, err)
	w.endpoint = httptest.NewServer(handler)
	t.Cleanup(w.endpoint.Close)

	// The config revenue ops applied: team APAC in Tokyo, with Vernal Equinox Day off.
	teams, err := json.Marshal([]config.Team{{Name: "apac", Members: []string{"ana@example.com", "bo@example.com"},
		Timezone: "Asia/Tokyo", BusinessDays: config.DefaultBusinessDays, Holidays: []string{"2026-03-20"}}})
	require.NoError(t, err)
	w.exec(t, `INSERT INTO settings (key, value) VALUES ('teams', $1)`, teams)
	w.conn = w.id(t, `INSERT INTO connections (name, kind, config) VALUES ('hubspot-main', 'hubspot', '{"options": {"portal_id": "4711"}}') RETURNING id`)
	for i, s := range []struct{ ext, name, canonical string }{
		{"s-prop", "Proposal sent", "proposal"}, {"s-nego", "Negotiation", "negotiation"}, {"s-won", "Closed won", "closed_won"},
	} {
		w.stages[s.canonical] = w.id(t, `INSERT INTO stages (connection_id, external_id, name, position, canonical_stage, is_closed, is_won)
			VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`, w.conn, s.ext, s.name, i, s.canonical, s.canonical == "closed_won")
	}
	return w
}

func (w *reminderWorld) id(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var id int64
	require.NoError(t, w.pool.QueryRow(w.ctx, sql, args...).Scan(&id))
	return id
}

func (w *reminderWorld) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := w.pool.Exec(w.ctx, sql, args...)
	require.NoError(t, err)
}

// startWorker starts a worker process's River client; stop it with stopWorker.
func (w *reminderWorld) startWorker(t *testing.T) *river.Client[pgx.Tx] {
	t.Helper()
	workers := river.NewWorkers()
	river.AddWorker(workers, jobs.NewReminderWorker(w.deps))
	river.AddWorker(workers, jobs.NewPlanRemindersWorker(w.deps))
	river.AddWorker(workers, jobs.NewDeliverNotificationWorker(w.deps))
	client, err := river.NewClient(riverpgxv5.New(w.pool), &river.Config{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Schema:   w.schema,
		Workers:  workers,
		Queues:   map[string]river.QueueConfig{jobs.QueueNotify: {MaxWorkers: 4}, jobs.QueueDetect: {MaxWorkers: 1}},
		TestOnly: true,
		Test:     river.TestConfig{Time: w.clock},
		// The test clock runs weeks behind the database's: River's rescuer would take every
		// running job for stuck (attempted "long ago") and run it again.
		RescueStuckJobsAfter: 365 * 24 * time.Hour,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(w.ctx))
	return client
}

func (w *reminderWorld) stopWorker(t *testing.T, client *river.Client[pgx.Tx]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, client.Stop(ctx))
}

// addDeal adds a deal of owner that entered proposal at entered.
func (w *reminderWorld) addDeal(t *testing.T, ext, name, ownerExt string, entered time.Time) int64 {
	t.Helper()
	id := w.id(t, `INSERT INTO deals (connection_id, external_id, name, amount, currency, stage_id, stage_external_id,
		owner_id, owner_external_id, stage_entered_at, remote_updated_at)
		SELECT $1, $2, $3, 48000, 'USD', $4, 's-prop', o.id, o.external_id, $6, $6 FROM owners o WHERE o.external_id = $5 RETURNING id`,
		w.conn, ext, name, w.stages["proposal"], ownerExt, entered)
	w.exec(t, `INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, source) VALUES ($1, $2, 's-prop', $3, 'vendor')`,
		id, w.stages["proposal"], entered)
	return id
}

// move writes what a sync writes when a deal moves to another stage at when.
func (w *reminderWorld) move(t *testing.T, deal int64, canonical string, when time.Time) {
	t.Helper()
	w.exec(t, `UPDATE deal_stage_history SET exited_at = $2 WHERE deal_id = $1 AND exited_at IS NULL`, deal, when)
	w.exec(t, `INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, source)
		SELECT $1, id, external_id, $3, 'observed' FROM stages WHERE id = $2`, deal, w.stages[canonical], when)
	w.exec(t, `UPDATE deals d SET stage_id = s.id, stage_external_id = s.external_id, stage_entered_at = $3::timestamptz,
		is_closed = s.is_closed, is_won = s.is_won FROM stages s WHERE d.id = $1 AND s.id = $2`, deal, w.stages[canonical], when)
}

// plan enqueues planning for the connection to run now, as the periodic job does (the
// sync worker's EnqueuePlanReminders runs it when its debounce window ends).
func (w *reminderWorld) plan(t *testing.T, client *river.Client[pgx.Tx]) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(w.ctx, w.pool, func(tx pgx.Tx) error {
		_, err := client.InsertTx(w.ctx, tx, jobs.PlanRemindersArgs{ConnectionID: w.conn}, nil)
		return err
	}))
}

// states returns "step:state" for each reminder of deal.
func (w *reminderWorld) states(deal int64) ([]string, error) {
	rows, err := w.pool.Query(w.ctx, `SELECT step, state FROM reminders WHERE deal_id = $1 ORDER BY step, id`, deal)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var step int
		var state string
		err := row.Scan(&step, &state)
		return fmt.Sprintf("%d:%s", step, state), err
	})
}

func (w *reminderWorld) waitStates(t *testing.T, deal int64, want ...string) {
	t.Helper()
	var got []string
	require.Eventually(t, func() bool {
		var err error
		got, err = w.states(deal)
		return err == nil && strings.Join(got, " ") == strings.Join(want, " ")
	}, 30*time.Second, 50*time.Millisecond, "deal %d: want %v", deal, want)
}

// schedule returns the local due times of deal's scheduled reminders whose River job is
// scheduled at the same time.
func (w *reminderWorld) schedule(t *testing.T, deal int64) []string {
	t.Helper()
	rows, err := w.pool.Query(w.ctx, `
		SELECT r.due_at FROM reminders r JOIN river_job j ON j.id = r.river_job_id
		WHERE r.deal_id = $1 AND r.state = 'scheduled' AND j.state = 'scheduled' AND j.scheduled_at = r.due_at
		ORDER BY r.step`, deal)
	require.NoError(t, err)
	dues, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	require.NoError(t, err)
	out := make([]string, len(dues))
	for i, d := range dues {
		out[i] = d.In(w.tokyo).Format("Mon 2006-01-02 15:04 MST")
	}
	return out
}

// postsTo returns the messages posted to a user's DM whose text mentions the deal.
func (w *reminderWorld) postsTo(user slackfake.User, deal string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range w.fake.Posts() {
		if m.Channel == w.fake.DMChannel(user.ID) && strings.Contains(m.Text, deal) {
			out = append(out, m)
		}
	}
	return out
}

// press presses a button of m as user, through the signed interactivity endpoint.
func (w *reminderWorld) press(t *testing.T, m slackfake.Message, actionID string, user slackfake.User) {
	t.Helper()
	req, err := w.fake.Press(w.endpoint.URL, m, actionID, user.ID, time.Now())
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func buttons(m slackfake.Message) []string {
	var ids []string
	for _, b := range m.Blocks.BlockSet {
		if actions, ok := b.(*slack.ActionBlock); ok && actions.Elements != nil {
			for _, e := range actions.Elements.ElementSet {
				if btn, ok := e.(*slack.ButtonBlockElement); ok && btn.ActionID != notify.LinkActionID {
					ids = append(ids, btn.ActionID)
				}
			}
		}
	}
	return ids
}

// TestRemindersEndToEnd runs the whole flow on real River clients, Postgres and a fake
// Slack: planning, five reminders on Tokyo business days at 09:00 (a
// holiday shifting the rest), delivery as DMs, the Done and Stop buttons updating their
// messages, a move back to negotiation and a win ending cadences, an outbound email
// skipping a step, and a worker restart that neither loses nor duplicates a reminder.
func TestRemindersEndToEnd(t *testing.T) {
	t.Parallel()
	w := newReminderWorld(t)
	tokyo := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, w.tokyo)
		require.NoError(t, err)
		return v
	}
	w.exec(t, `INSERT INTO owners (connection_id, external_id, email, name) VALUES ($1, 'o-ana', 'ana@example.com', 'Ana'),
		($1, 'o-bo', 'bo@example.com', 'Bo')`, w.conn)
	friday := tokyo("2026-03-06 15:30") // a Friday afternoon in Tokyo
	acme := w.addDeal(t, "d-acme", "Acme renewal", "o-ana", friday)
	bolt := w.addDeal(t, "d-bolt", "Bolt expansion", "o-bo", friday)
	cobalt := w.addDeal(t, "d-cobalt", "Cobalt pilot", "o-ana", friday)

	first := w.startWorker(t)
	w.plan(t, first)
	scheduled := []string{"1:scheduled", "2:scheduled", "3:scheduled", "4:scheduled", "5:scheduled"}
	w.waitStates(t, acme, scheduled...)
	// +2, +5, +9, +14 and +21 business days; Vernal Equinox Day (Friday 20 March) moves
	// steps 4 and 5 by a day.
	require.Equal(t, []string{"Tue 2026-03-10 09:00 JST", "Fri 2026-03-13 09:00 JST", "Thu 2026-03-19 09:00 JST",
		"Fri 2026-03-27 09:00 JST", "Tue 2026-04-07 09:00 JST"}, w.schedule(t, acme))
	require.Equal(t, w.schedule(t, acme), w.schedule(t, bolt))

	// Monday: Cobalt moves back to negotiation; the next planning cancels its reminders.
	w.clock.JumpTo(tokyo("2026-03-09 11:00"))
	w.move(t, cobalt, "negotiation", tokyo("2026-03-09 10:40"))
	w.plan(t, first)
	w.waitStates(t, cobalt, "1:cancelled", "2:cancelled", "3:cancelled", "4:cancelled", "5:cancelled")
	var reason string
	require.NoError(t, w.pool.QueryRow(w.ctx, `SELECT reason FROM reminder_cadences WHERE deal_id = $1`, cobalt).Scan(&reason))
	require.Equal(t, "the deal left proposal: it moved to negotiation", reason)

	// Tuesday 09:00: the first follow-ups go out as DMs.
	w.clock.JumpTo(tokyo("2026-03-10 09:00"))
	w.waitStates(t, acme, "1:sent", "2:scheduled", "3:scheduled", "4:scheduled", "5:scheduled")
	w.waitStates(t, bolt, "1:sent", "2:scheduled", "3:scheduled", "4:scheduled", "5:scheduled")
	require.Eventually(t, func() bool { return len(w.fake.Posts()) == 2 }, 30*time.Second, 50*time.Millisecond)
	acmePost := w.postsTo(w.ana, "Acme renewal")
	require.Len(t, acmePost, 1)
	require.Contains(t, acmePost[0].Text, "Follow-up 1 of 5")
	require.Contains(t, acmePost[0].Text, "48,000 USD")
	require.Equal(t, []string{"reminder.done", "reminder.snooze_1bd", "reminder.stop"}, buttons(acmePost[0]))
	require.False(t, acmePost[0].At.Before(tokyo("2026-03-10 09:00")))
	boltPost := w.postsTo(w.bo, "Bolt expansion")
	require.Len(t, boltPost, 1)
	require.Empty(t, w.postsTo(w.ana, "Cobalt"))

	// Ana presses Done: her message is updated in place, keeping only Stop.
	w.press(t, acmePost[0], "reminder.done", w.ana)
	require.Eventually(t, func() bool {
		m, ok := w.fake.Message(acmePost[0].Channel, acmePost[0].TS)
		return ok && strings.Contains(m.Text, "Marked done")
	}, 30*time.Second, 50*time.Millisecond, "Done updates the message")
	m, _ := w.fake.Message(acmePost[0].Channel, acmePost[0].TS)
	require.Equal(t, []string{"reminder.stop"}, buttons(m))

	// Bo presses Stop: his message loses its buttons and his deal gets no more reminders.
	w.press(t, boltPost[0], "reminder.stop", w.bo)
	require.Eventually(t, func() bool {
		m, ok := w.fake.Message(boltPost[0].Channel, boltPost[0].TS)
		return ok && strings.Contains(m.Text, "Reminders stopped for this deal") && len(buttons(m)) == 0
	}, 30*time.Second, 50*time.Millisecond, "Stop updates the message")
	w.waitStates(t, bolt, "1:sent", "2:cancelled", "3:cancelled", "4:cancelled", "5:cancelled")
	var cancelledJobs int
	require.NoError(t, w.pool.QueryRow(w.ctx, `SELECT count(*) FROM reminders r JOIN river_job j ON j.id = r.river_job_id
		WHERE r.deal_id = $1 AND r.state = 'cancelled' AND j.state = 'cancelled'`, bolt).Scan(&cancelledJobs))
	require.Equal(t, 4, cancelledJobs, "Stop cancels the River jobs of the remaining reminders")

	// The worker stops; Friday's reminder falls due while none runs; a new worker starts.
	w.stopWorker(t, first)
	w.clock.JumpTo(tokyo("2026-03-13 09:00"))
	second := w.startWorker(t)
	defer w.stopWorker(t, second)
	w.plan(t, second) // planning again on the new worker changes nothing
	w.waitStates(t, acme, "1:sent", "2:sent", "3:scheduled", "4:scheduled", "5:scheduled")
	require.Eventually(t, func() bool { return len(w.postsTo(w.ana, "Acme renewal")) == 2 }, 30*time.Second, 50*time.Millisecond)

	// Ana emails the customer on Monday; Thursday's reminder is skipped and the rest count
	// from the email (+5 and +12 business days, the holiday still skipped).
	w.clock.JumpTo(tokyo("2026-03-16 10:00"))
	w.exec(t, `INSERT INTO activities (connection_id, external_id, kind, direction, subject, occurred_at, deal_id, owner_id, owner_external_id)
		SELECT $1, 'e-1', 'email', 'outbound', 'Checking in', $2, $3, o.id, o.external_id FROM owners o WHERE o.external_id = 'o-ana'`,
		w.conn, tokyo("2026-03-16 09:45"), acme)
	w.clock.JumpTo(tokyo("2026-03-19 09:00"))
	w.waitStates(t, acme, "1:sent", "2:sent", "3:skipped", "4:scheduled", "5:scheduled")
	require.Equal(t, []string{"Tue 2026-03-24 09:00 JST", "Thu 2026-04-02 09:00 JST"}, w.schedule(t, acme))
	require.NoError(t, w.pool.QueryRow(w.ctx, `SELECT reason FROM reminders WHERE deal_id = $1 AND step = 3`, acme).Scan(&reason))
	require.Equal(t, `touched since follow-up 2: outbound email "Checking in" on Mon 16 Mar 09:45 JST`, reason)

	// Acme is won on Friday: the next planning cancels the rest.
	w.clock.JumpTo(tokyo("2026-03-20 15:00"))
	w.move(t, acme, "closed_won", tokyo("2026-03-20 14:30"))
	w.plan(t, second)
	w.waitStates(t, acme, "1:sent", "2:sent", "3:skipped", "4:cancelled", "5:cancelled")

	// Nothing was lost or sent twice across the restart: one post per sent reminder, and
	// one reminder notification each (plus the two button updates).
	require.Len(t, w.postsTo(w.ana, "Acme renewal"), 2)
	require.Len(t, w.fake.Posts(), 3)
	var perReminder []int
	rows, err := w.pool.Query(w.ctx, `SELECT count(*) FROM notifications WHERE kind = 'reminder' AND slack_ts IS NOT NULL
		AND dedupe_key IS NOT NULL GROUP BY reminder_id ORDER BY reminder_id`)
	require.NoError(t, err)
	perReminder, err = pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	require.Equal(t, []int{1, 1, 1}, perReminder)

	var listed []reminder.Listed
	require.NoError(t, reminder.List(w.ctx, w.pool, reminder.ListFilter{OwnerEmail: "ana@example.com", Ended: true},
		func(l reminder.Listed) error { listed = append(listed, l); return nil }))
	require.Len(t, listed, 10)
}

func TestEnqueuePlanReminders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `DELETE FROM river_job`)
	require.NoError(t, err)
	base := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Duration{3 * time.Second, 11 * time.Second, 16 * time.Second} {
		require.NoError(t, jobs.EnqueuePlanReminders(ctx, tx, client, 42, base.Add(at)))
	}
	rows, err := tx.Query(ctx, `SELECT scheduled_at FROM river_job WHERE kind = 'plan_reminders' AND (args->>'connection_id')::bigint = 42
		ORDER BY scheduled_at`)
	require.NoError(t, err)
	runs, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	require.NoError(t, err)
	require.Equal(t, []time.Time{base.Add(15 * time.Second), base.Add(30 * time.Second)}, []time.Time{runs[0].UTC(), runs[1].UTC()},
		"syncs within one window share a run at its end, which comes after each of their commits")
	require.Len(t, runs, 2)
}
