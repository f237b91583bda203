package reminder_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// clock is a controllable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// testBundle is one test's world: a rolled-back transaction holding a HubSpot connection
// with proposal, negotiation and won stages, the rep Ana (Tokyo in the CRM) and her deal
// "Acme renewal", which entered proposal on Friday 6 March 2026 at 15:30 in Tokyo.
type testBundle struct {
	ctx      context.Context
	tx       pgx.Tx
	clock    *clock
	cadences *reminder.Cadences
	tokyo    *time.Location
	conn     int64
	stages   map[pipeline.CanonicalStage]int64
	owner    int64
	deal     int64
	entered  time.Time
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	tx := dbtest.TestTx(ctx, t)
	tokyo := mustZone(t, "Asia/Tokyo")
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	b := &testBundle{ctx: ctx, tx: tx, clock: &clock{t: at(t, tokyo, "2026-03-06 16:00")}, tokyo: tokyo,
		stages: map[pipeline.CanonicalStage]int64{}, entered: at(t, tokyo, "2026-03-06 15:30")}
	b.cadences = reminder.New(reminder.Config{Queue: jobs.NewReminderQueue(client),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NowFunc: b.clock.Now})

	b.conn = b.id(t, `INSERT INTO connections (name, kind, config) VALUES ('hubspot-main', 'hubspot', '{"options": {"portal_id": "4711"}}') RETURNING id`)
	for _, s := range []struct {
		stage          pipeline.CanonicalStage
		name           string
		closed, won    bool
		externalID     string
		positionInFlow int
	}{
		{pipeline.StageNeedsAssessment, "Discovery", false, false, "s-disc", 1},
		{pipeline.StageProposal, "Proposal sent", false, false, "s-prop", 2},
		{pipeline.StageNegotiation, "Negotiation", false, false, "s-nego", 3},
		{pipeline.StageClosedWon, "Closed won", true, true, "s-won", 4},
	} {
		b.stages[s.stage] = b.id(t, `INSERT INTO stages (connection_id, external_id, name, position, is_closed, is_won, canonical_stage)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, b.conn, s.externalID, s.name, s.positionInFlow, s.closed, s.won, s.stage)
	}
	b.owner = b.addOwner(t, "o-ana", "ana@example.com", "Asia/Tokyo")
	b.deal = b.addDeal(t, "d-acme", "Acme renewal", b.owner, b.entered)
	return b
}

func (b *testBundle) id(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.tx.QueryRow(b.ctx, sql, args...).Scan(&id))
	return id
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.tx.Exec(b.ctx, sql, args...)
	require.NoError(t, err)
}

func (b *testBundle) addOwner(t *testing.T, externalID, email, zone string) int64 {
	t.Helper()
	return b.id(t, `INSERT INTO owners (connection_id, external_id, email, name, timezone) VALUES ($1, $2, NULLIF($3, ''), $2, NULLIF($4, ''))
		RETURNING id`, b.conn, externalID, email, zone)
}

// addDeal adds an open deal in proposal since entered, with its vendor stage history.
func (b *testBundle) addDeal(t *testing.T, externalID, name string, owner int64, entered time.Time) int64 {
	t.Helper()
	id := b.id(t, `INSERT INTO deals (connection_id, external_id, name, amount, currency, stage_id, stage_external_id,
		owner_id, owner_external_id, stage_entered_at, remote_updated_at)
		SELECT $1, $2, $3, 12500, 'USD', $4, 's-prop', $5, o.external_id, $6, $6 FROM owners o WHERE o.id = $5 RETURNING id`,
		b.conn, externalID, name, b.stages[pipeline.StageProposal], owner, entered)
	b.exec(t, `INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, source) VALUES ($1, $2, 's-prop', $3, 'vendor')`,
		id, b.stages[pipeline.StageProposal], entered)
	return id
}

// move moves deal to stage at when (closing the open history stay), as a sync observes it.
func (b *testBundle) move(t *testing.T, deal int64, stage pipeline.CanonicalStage, when time.Time) {
	t.Helper()
	b.exec(t, `UPDATE deal_stage_history SET exited_at = $2 WHERE deal_id = $1 AND exited_at IS NULL`, deal, when)
	b.exec(t, `INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, source)
		SELECT $1, id, external_id, $3, 'observed' FROM stages WHERE id = $2`, deal, b.stages[stage], when)
	b.exec(t, `UPDATE deals d SET stage_id = s.id, stage_external_id = s.external_id, stage_entered_at = $3::timestamptz,
		is_closed = s.is_closed, is_won = s.is_won, closed_at = CASE WHEN s.is_closed THEN $3::timestamptz END
		FROM stages s WHERE d.id = $1 AND s.id = $2`, deal, b.stages[stage], when)
}

// addActivity logs an activity on deal.
func (b *testBundle) addActivity(t *testing.T, deal int64, owner *int64, kind pipeline.ActivityKind, direction pipeline.Direction, when time.Time) {
	t.Helper()
	b.exec(t, `INSERT INTO activities (connection_id, external_id, kind, direction, subject, occurred_at, deal_id, owner_id, remote_created_at)
		VALUES ($1, gen_random_uuid()::text, $2, NULLIF($3, ''), 'Re: proposal', $4, $5, $6, $4)`,
		b.conn, kind, direction, when, deal, owner)
}

func (b *testBundle) setSetting(t *testing.T, key string, value any) {
	t.Helper()
	doc, err := json.Marshal(value)
	require.NoError(t, err)
	b.exec(t, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, doc)
}

func (b *testBundle) plan(t *testing.T) reminder.PlanSummary {
	t.Helper()
	sum, err := b.cadences.Plan(b.ctx, b.tx, reminder.Scope{})
	require.NoError(t, err)
	return sum
}

// reminderRow is a reminders row with its job.
type reminderRow struct {
	ID       int64
	Step     int
	Due      time.Time
	State    string
	Reason   string
	JobID    int64
	JobState string
	JobAt    time.Time
}

// reminders returns the reminders of deal by step, with their River jobs.
func (b *testBundle) reminders(t *testing.T, deal int64) []reminderRow {
	t.Helper()
	rows, err := b.tx.Query(b.ctx, `
		SELECT r.id, r.step, r.due_at, r.state, coalesce(r.reason, ''), coalesce(j.id, 0), coalesce(j.state::text, ''),
		       coalesce(j.scheduled_at, 'epoch')
		FROM reminders r LEFT JOIN river_job j ON j.id = r.river_job_id
		WHERE r.deal_id = $1 ORDER BY r.step, r.id`, deal)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (reminderRow, error) {
		var r reminderRow
		err := row.Scan(&r.ID, &r.Step, &r.Due, &r.State, &r.Reason, &r.JobID, &r.JobState, &r.JobAt)
		return r, err
	})
	require.NoError(t, err)
	return out
}

// scheduled returns the local due times of deal's scheduled reminders, checking that each
// has a scheduled River job at that time.
func (b *testBundle) scheduled(t *testing.T, deal int64) []string {
	t.Helper()
	var out []string
	for _, r := range b.reminders(t, deal) {
		if r.State != "scheduled" {
			continue
		}
		require.Equal(t, "scheduled", r.JobState, "reminder %d (step %d) has a scheduled job", r.ID, r.Step)
		require.True(t, r.JobAt.Equal(r.Due), "job of step %d runs at %s, the reminder is due %s", r.Step, r.JobAt, r.Due)
		out = append(out, r.Due.In(b.tokyo).Format("Mon 2006-01-02 15:04"))
	}
	return out
}

// cadence returns the state and reason of deal's latest cadence.
func (b *testBundle) cadence(t *testing.T, deal int64) (state, reason string) {
	t.Helper()
	require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT state, coalesce(reason, '') FROM reminder_cadences WHERE deal_id = $1
		ORDER BY id DESC LIMIT 1`, deal).Scan(&state, &reason))
	return state, reason
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.tx.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

// fire fires deal's scheduled reminder of step with its own job.
func (b *testBundle) fire(t *testing.T, deal int64, step int) reminder.Outcome {
	t.Helper()
	for _, r := range b.reminders(t, deal) {
		if r.Step == step && r.State == "scheduled" {
			out, err := b.cadences.Fire(b.ctx, b.tx, r.ID, r.JobID)
			require.NoError(t, err)
			return out
		}
	}
	t.Fatalf("deal %d has no scheduled step %d", deal, step)
	return reminder.Outcome{}
}

// the default schedule of the Acme deal (Tokyo, no holidays).
var acmeSchedule = []string{
	"Tue 2026-03-10 09:00", "Fri 2026-03-13 09:00", "Thu 2026-03-19 09:00", "Thu 2026-03-26 09:00", "Mon 2026-04-06 09:00",
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }
