package alerting_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline/alerting"
)

func TestRules(t *testing.T) {
	t.Parallel()

	type env struct {
		b          *testBundle
		conn, ana  int64
		qual, prop int64
	}
	setupRules := func(t *testing.T, kind string, rules ...string) env {
		t.Helper()
		b := setup(t)
		b.rules(t, onlyRules(rules...))
		conn := b.established(t, "crm", kind, nil)
		return env{b: b, conn: conn, ana: b.owner(t, conn, "ana@example.com", ownerOpts{}),
			qual: b.stage(t, conn, "Qualified", "qualification", 0), prop: b.stage(t, conn, "Proposal", "proposal", 0)}
	}
	ruleDeals := func(t *testing.T, b *testBundle, rule string) []int64 {
		t.Helper()
		var ids []int64
		for _, a := range b.alerts(t, "rule = $1 AND state = 'open'", rule) {
			ids = append(ids, a.DealID)
		}
		return ids
	}

	t.Run("ZeroAmountDealsNeverIdleOrStuck", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "hubspot", "idle", "stuck_in_stage", "past_close_date")
		b := e.b
		zero := b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(0), created: b.now.Add(-90 * day),
			stageEntered: b.now.Add(-60 * day), lastActivity: b.now.Add(-50 * day), closeDate: b.now.AddDate(0, 0, -3)})
		empty := b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, created: b.now.Add(-90 * day),
			stageEntered: b.now.Add(-60 * day), lastActivity: b.now.Add(-50 * day)})
		b.detect(t)
		require.Empty(t, ruleDeals(t, b, "idle"))
		require.Empty(t, ruleDeals(t, b, "stuck_in_stage"))
		require.Equal(t, []int64{zero}, ruleDeals(t, b, "past_close_date"), "other rules still watch them")
		_ = empty
	})

	t.Run("ScheduledNextActivitySuppressesIdle", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "hubspot", "idle", "no_next_step")
		b := e.b
		touched := b.now.Add(-20 * day)
		base := deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: touched, stageEntered: touched, lastActivity: touched}
		scheduled := base
		scheduled.nextActivity = b.now.Add(3 * day)
		overdue := base
		overdue.nextActivity = b.now.Add(-time.Hour)
		farAway := base
		farAway.nextActivity = b.now.Add(30 * day)
		planned := base
		ids := map[string]int64{
			"scheduled": b.deal(t, scheduled), "overdue": b.deal(t, overdue), "far": b.deal(t, farAway), "planned": b.deal(t, planned),
		}
		// A planned task logged as an activity counts like the CRM's next activity date.
		b.exec(t, `INSERT INTO activities (connection_id, external_id, kind, occurred_at, done, deal_id) VALUES ($1, 'task-1', 'task', $2, false, $3)`,
			e.conn, b.now.Add(2*day), ids["planned"])
		b.detect(t)
		require.Equal(t, []int64{ids["overdue"]}, ruleDeals(t, b, "idle"),
			"a scheduled, not overdue next step holds idle off, however far away")
		require.ElementsMatch(t, []int64{ids["overdue"], ids["far"]}, ruleDeals(t, b, "no_next_step"))
		reasons := map[int64]string{}
		for _, a := range b.alerts(t, "rule = 'no_next_step'") {
			reasons[a.DealID] = a.Details.Reason
		}
		require.Equal(t, map[int64]string{ids["overdue"]: "overdue", ids["far"]: "too_far"}, reasons)
	})

	t.Run("LoggedActivityIsATouch", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "hubspot", "idle")
		b := e.b
		old := b.now.Add(-30 * day)
		fresh := b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: old, stageEntered: old, lastActivity: old})
		stale := b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: old, stageEntered: old, lastActivity: old})
		b.exec(t, `INSERT INTO activities (connection_id, external_id, kind, direction, occurred_at, deal_id) VALUES
			($1, 'a1', 'email', 'inbound', $2, $3), ($1, 'a2', 'call', 'outbound', $4, $5), ($1, 'a3', 'meeting', NULL, $6, $5)`,
			e.conn, b.now.Add(-2*day), fresh, b.now.Add(-9*day), stale, b.now.Add(-12*day))
		b.detect(t)
		require.Equal(t, []int64{stale}, ruleDeals(t, b, "idle"))
		d := b.alerts(t, "rule = 'idle'")[0].Details
		require.Equal(t, "activity", d.LastTouchSource)
		require.Equal(t, "call (outbound)", d.LastActivityKind)
		require.Equal(t, b.now.Add(-9*day), d.LastTouchAt.UTC())
		require.Equal(t, "7d", d.Threshold)
	})

	t.Run("BusinessDayThresholdsFollowTheTeamCalendar", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "hubspot", "idle")
		b := e.b
		// Berlin works Monday to Thursday. Now is Wednesday 14:00 in Berlin: 5 business days
		// back is Tuesday of the week before last for Berlin (Fri to Sun do not count), and
		// the previous Wednesday for the org.
		b.setting(t, "teams", []config.Team{{Name: "emea", Members: []string{"eva@example.com"}, Timezone: "Europe/Berlin",
			BusinessDays: config.Weekdays{time.Monday, time.Tuesday, time.Wednesday, time.Thursday}}})
		eva := b.owner(t, e.conn, "eva@example.com", ownerOpts{})
		touched := b.now.Add(-8 * day) // Tuesday a week ago: 6 business days for the org, 5 for Berlin
		ana := b.deal(t, deal{conn: e.conn, stage: e.prop, owner: e.ana, amount: money(100), created: touched, stageEntered: touched, lastActivity: touched})
		evaDeal := b.deal(t, deal{conn: e.conn, stage: e.prop, owner: eva, amount: money(100), created: touched, stageEntered: touched, lastActivity: touched})
		b.detect(t)
		require.Equal(t, []int64{ana}, ruleDeals(t, b, "idle"), "exactly 5 Berlin business days is not over the threshold")
		b.advance(t, time.Hour, e.conn)
		b.detect(t)
		require.ElementsMatch(t, []int64{ana, evaDeal}, ruleDeals(t, b, "idle"))
		var team string
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT team FROM alerts WHERE deal_id = $1`, evaDeal).Scan(&team))
		require.Equal(t, "emea", team)
	})

	t.Run("HubSpotDefaultCloseDateIsNoDate", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "hubspot", "past_close_date")
		b := e.b
		created := time.Date(2026, 5, 12, 10, 0, 0, 0, time.UTC)
		defaulted := b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: created,
			closeDate: time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC)})
		edited := b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: created,
			closeDate: time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC)})
		b.exec(t, `INSERT INTO deal_changes (deal_id, field, old_value, new_value, changed_at) VALUES ($1, 'close_date', '2026-05-20', '2026-05-31', $2)`,
			edited, created.Add(day))
		real := b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: created,
			closeDate: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)})
		b.detect(t)
		require.ElementsMatch(t, []int64{edited, real}, ruleDeals(t, b, "past_close_date"))
		_ = defaulted
	})

	t.Run("StuckLearnsFromWonDeals", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "hubspot", "stuck_in_stage")
		b := e.b
		// 30 won deals stayed 1..30 days in Qualified: the 75th percentile is 22.75 days.
		for i := range 30 {
			won := b.deal(t, deal{conn: e.conn, stage: e.prop, owner: e.ana, amount: money(100), closed: true, won: true,
				closedAt: b.now.Add(-10 * day), created: b.now.Add(-100 * day)})
			entered := b.now.Add(-90 * day)
			b.exec(t, `INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, exited_at, source)
				VALUES ($1, $2, 's-Qualified', $3, $4, 'vendor')`, won, e.qual, entered, entered.Add(time.Duration(i+1)*day))
		}
		at := func(days float64) int64 {
			entered := b.now.Add(-time.Duration(days * float64(day)))
			return b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: entered, stageEntered: entered})
		}
		under, over, critical := at(22), at(24), at(35)
		_ = under
		b.detect(t)
		require.ElementsMatch(t, []int64{over, critical}, ruleDeals(t, b, "stuck_in_stage"))
		for _, a := range b.alerts(t, "rule = 'stuck_in_stage'") {
			require.Equal(t, alerting.SourceLearned, a.Details.ThresholdSource)
			require.Equal(t, 30, a.Details.WonDealsLearnedFrom)
			require.InDelta(t, 22.8, a.Details.ThresholdDays, 1e-9)
			want := "warning"
			if a.DealID == critical {
				want = "critical" // 35 > 1.5 × 22.8
			}
			require.Equal(t, want, a.Severity)
		}
	})

	t.Run("PipedriveRotDaysAreHonoured", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "pipedrive", "stuck_in_stage")
		b := e.b
		rotting := b.stage(t, e.conn, "Demo", "needs_assessment", 5)
		entered := b.now.Add(-6 * day)
		id := b.deal(t, deal{conn: e.conn, stage: rotting, owner: e.ana, amount: money(100), created: entered, stageEntered: entered})
		b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: entered, stageEntered: entered})
		b.detect(t)
		require.Equal(t, []int64{id}, ruleDeals(t, b, "stuck_in_stage"))
		require.Equal(t, alerting.SourceRotDays, b.alerts(t, "")[0].Details.ThresholdSource)
	})

	t.Run("PipedriveRotDaysSetTheIdleThreshold", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "pipedrive", "idle")
		b := e.b
		rotting := b.stage(t, e.conn, "Demo", "needs_assessment", 5) // needs assessment's own threshold: 10 days
		touched := b.now.Add(-7 * day)
		base := deal{conn: e.conn, owner: e.ana, amount: money(100), created: touched, stageEntered: touched, lastActivity: touched}
		rotten := base
		rotten.stage = rotting
		fresh := base
		fresh.stage = e.qual // 7 days: not idle yet
		fresh.lastActivity = b.now.Add(-6 * day)
		id := b.deal(t, rotten)
		b.deal(t, fresh)
		b.detect(t)
		require.Equal(t, []int64{id}, ruleDeals(t, b, "idle"))
		d := b.alerts(t, "rule = 'idle'")[0].Details
		require.Equal(t, "5d", d.Threshold)
		require.Equal(t, alerting.SourceRotDays, d.ThresholdSource)
		sent := b.notifications(t)
		require.Len(t, sent, 1)
		require.Contains(t, sent[0].Message.Summary, "(threshold 5 days, the CRM's rotting days)")
	})

	t.Run("StageEntryFromHistoryWhenTheDealHasNone", func(t *testing.T) {
		t.Parallel()
		e := setupRules(t, "hubspot", "stuck_in_stage")
		b := e.b
		id := b.deal(t, deal{conn: e.conn, stage: e.qual, owner: e.ana, amount: money(100), created: b.now.Add(-90 * day)})
		b.exec(t, `INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, source) VALUES ($1, $2, 's-Qualified', $3, 'observed')`,
			id, e.qual, b.now.Add(-40*day))
		b.detect(t)
		require.Equal(t, []int64{id}, ruleDeals(t, b, "stuck_in_stage"))
		require.Equal(t, b.now.Add(-40*day), b.alerts(t, "")[0].Details.StageEnteredAt.UTC())
	})
}
