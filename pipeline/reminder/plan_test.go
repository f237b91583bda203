package reminder_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

func TestPlan(t *testing.T) {
	t.Parallel()

	t.Run("StartsFiveRemindersAtNineInTheRepsZone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.Equal(t, reminder.PlanSummary{Started: 1}, b.plan(t))
		require.Equal(t, acmeSchedule, b.scheduled(t, b.deal))

		var zone, source string
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT timezone, zone_source FROM reminder_cadences WHERE deal_id = $1`, b.deal).
			Scan(&zone, &source))
		require.Equal(t, "Asia/Tokyo", zone)
		require.Equal(t, "crm", source)
		rows := b.reminders(t, b.deal)
		require.Equal(t, "2 business days after entering proposal on Fri 6 Mar 15:30 JST", rows[0].Reason)
		require.Equal(t, "21 business days after entering proposal on Fri 6 Mar 15:30 JST", rows[4].Reason)
	})

	t.Run("PlanningAgainChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		before := b.reminders(t, b.deal)
		b.clock.Set(b.clock.Now().Add(time.Hour))
		require.Equal(t, reminder.PlanSummary{}, b.plan(t))
		require.Equal(t, before, b.reminders(t, b.deal), "same rows, same jobs")
		require.Equal(t, 5, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'reminder'`))
	})

	t.Run("TeamHolidayShiftsTheRest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.exec(t, `UPDATE owners SET timezone = NULL WHERE id = $1`, b.owner)
		b.setSetting(t, "teams", []config.Team{{Name: "apac", Members: []string{"ana@example.com"}, Timezone: "Asia/Tokyo",
			BusinessDays: config.DefaultBusinessDays, Holidays: []string{"2026-03-20"}}})
		b.plan(t)
		require.Equal(t, []string{
			"Tue 2026-03-10 09:00", "Fri 2026-03-13 09:00", "Thu 2026-03-19 09:00", "Fri 2026-03-27 09:00", "Tue 2026-04-07 09:00",
		}, b.scheduled(t, b.deal))
		var source string
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT zone_source FROM reminder_cadences WHERE deal_id = $1`, b.deal).Scan(&source))
		require.Equal(t, "team", source)
	})

	t.Run("TimeZoneChangeReschedules", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		old := b.reminders(t, b.deal)
		b.exec(t, `UPDATE owners SET timezone = 'America/New_York' WHERE id = $1`, b.owner)
		require.Equal(t, reminder.PlanSummary{Rescheduled: 1}, b.plan(t))

		newYork := mustZone(t, "America/New_York")
		var got []string
		for _, r := range b.reminders(t, b.deal) {
			require.Equal(t, "scheduled", r.State)
			require.True(t, r.JobAt.Equal(r.Due))
			got = append(got, r.Due.In(newYork).Format("Mon 2006-01-02 15:04 MST"))
		}
		// Friday 15:30 in Tokyo is Friday 01:30 in New York; daylight saving starts on 8 March.
		require.Equal(t, []string{"Tue 2026-03-10 09:00 EDT", "Fri 2026-03-13 09:00 EDT", "Thu 2026-03-19 09:00 EDT",
			"Thu 2026-03-26 09:00 EDT", "Mon 2026-04-06 09:00 EDT"}, got)
		for _, r := range old {
			var state string
			require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT state FROM river_job WHERE id = $1`, r.JobID).Scan(&state))
			require.Equal(t, "cancelled", state, "the job of the old due time is cancelled")
		}
	})

	t.Run("CadenceChangeReschedules", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		r := config.DefaultReminders()
		r.Steps, r.SendAt = []int{1, 3}, "10:30"
		b.setSetting(t, "reminders", r)
		require.Equal(t, reminder.PlanSummary{Rescheduled: 1}, b.plan(t))
		require.Equal(t, []string{"Mon 2026-03-09 10:30", "Wed 2026-03-11 10:30"}, b.scheduled(t, b.deal))
		rows := b.reminders(t, b.deal)
		for _, r := range rows[2:] {
			require.Equal(t, "cancelled", r.State)
			require.Equal(t, "the cadence now has 2 steps", r.Reason)
			require.Equal(t, "cancelled", r.JobState)
		}
	})

	t.Run("WonDealEndsTheCadence", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.move(t, b.deal, pipeline.StageClosedWon, at(t, b.tokyo, "2026-03-09 11:00"))
		require.Equal(t, reminder.PlanSummary{Ended: 1}, b.plan(t))
		state, reason := b.cadence(t, b.deal)
		require.Equal(t, "cancelled", state)
		require.Equal(t, "the deal was won", reason)
		for _, r := range b.reminders(t, b.deal) {
			require.Equal(t, "cancelled", r.State)
			require.Equal(t, "the deal was won", r.Reason)
			require.Equal(t, "cancelled", r.JobState)
		}
	})

	t.Run("MovingToNegotiationEndsTheCadence", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.move(t, b.deal, pipeline.StageNegotiation, at(t, b.tokyo, "2026-03-09 11:00"))
		require.Equal(t, reminder.PlanSummary{Ended: 1}, b.plan(t))
		_, reason := b.cadence(t, b.deal)
		require.Equal(t, "the deal left proposal: it moved to negotiation", reason)
		require.Empty(t, b.scheduled(t, b.deal))
	})

	t.Run("StopWhenClosedGoesOnThroughNegotiation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := config.DefaultReminders()
		r.StopWhen = config.StopClosed
		b.setSetting(t, "reminders", r)
		b.plan(t)
		b.move(t, b.deal, pipeline.StageNegotiation, at(t, b.tokyo, "2026-03-09 11:00"))
		require.Equal(t, reminder.PlanSummary{}, b.plan(t))
		require.Equal(t, acmeSchedule, b.scheduled(t, b.deal))
		b.move(t, b.deal, pipeline.StageNeedsAssessment, at(t, b.tokyo, "2026-03-10 08:00"))
		require.Equal(t, reminder.PlanSummary{Ended: 1}, b.plan(t))
	})

	t.Run("EnteringAgainStartsANewCadence", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.move(t, b.deal, pipeline.StageNegotiation, at(t, b.tokyo, "2026-03-09 11:00"))
		b.move(t, b.deal, pipeline.StageProposal, at(t, b.tokyo, "2026-03-11 14:00"))
		b.clock.Set(at(t, b.tokyo, "2026-03-11 14:10"))
		// Both moves happened between two planning runs: the history tells.
		require.Equal(t, reminder.PlanSummary{Started: 1, Ended: 1}, b.plan(t))
		require.Equal(t, 2, b.count(t, `SELECT count(*) FROM reminder_cadences WHERE deal_id = $1`, b.deal))
		require.Equal(t, []string{"Fri 2026-03-13 09:00", "Wed 2026-03-18 09:00", "Tue 2026-03-24 09:00",
			"Tue 2026-03-31 09:00", "Thu 2026-04-09 09:00"}, b.scheduled(t, b.deal))
		require.Equal(t, reminder.PlanSummary{}, b.plan(t))
	})

	t.Run("MoveBetweenTwoProposalStagesIsTheSameEpisode", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		revised := b.id(t, `INSERT INTO stages (connection_id, external_id, name, canonical_stage) VALUES ($1, 's-rev', 'Quote revised', 'proposal') RETURNING id`, b.conn)
		b.exec(t, `UPDATE deal_stage_history SET exited_at = $2 WHERE deal_id = $1`, b.deal, at(t, b.tokyo, "2026-03-09 10:00"))
		b.exec(t, `INSERT INTO deal_stage_history (deal_id, stage_id, stage_external_id, entered_at, source) VALUES ($1, $2, 's-rev', $3, 'observed')`,
			b.deal, revised, at(t, b.tokyo, "2026-03-09 10:00"))
		b.exec(t, `UPDATE deals SET stage_id = $2, stage_entered_at = $3 WHERE id = $1`, b.deal, revised, at(t, b.tokyo, "2026-03-09 10:00"))
		require.Equal(t, reminder.PlanSummary{}, b.plan(t))
		require.Equal(t, acmeSchedule, b.scheduled(t, b.deal))
	})

	t.Run("StoppedByTheRepStaysStopped", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.exec(t, `UPDATE reminder_cadences SET state = 'stopped', ended_by = 'rep' WHERE deal_id = $1`, b.deal)
		b.exec(t, `UPDATE deals SET stage_entered_at = stage_entered_at - interval '1 minute' WHERE id = $1`, b.deal) // a vendor correction
		require.Equal(t, reminder.PlanSummary{}, b.plan(t))
	})

	t.Run("OldEpisodesDoNotFlood", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.exec(t, `DELETE FROM deal_stage_history`)
		b.exec(t, `UPDATE deals SET stage_entered_at = $2 WHERE id = $1`, b.deal, at(t, b.tokyo, "2026-01-05 10:00"))
		// Entered proposal on 18 February: step 5 (+21) was due Thursday 19 March 09:00, an
		// hour before this plan runs; the first four are long past.
		late := b.addDeal(t, "d-late", "Late Ltd", b.owner, at(t, b.tokyo, "2026-02-18 12:00"))
		b.clock.Set(at(t, b.tokyo, "2026-03-19 10:00"))
		require.Equal(t, reminder.PlanSummary{Started: 2}, b.plan(t))

		old := b.reminders(t, b.deal)
		require.Len(t, old, 5)
		for _, r := range old {
			require.Equal(t, "skipped", r.State)
			require.Contains(t, r.Reason, "before pipewatch planned it")
			require.Zero(t, r.JobID, "no job for a skipped step")
		}
		state, reason := b.cadence(t, b.deal)
		require.Equal(t, "finished", state)
		require.Equal(t, "every follow-up was due before pipewatch planned it", reason)

		rows := b.reminders(t, late)
		require.Equal(t, []string{"skipped", "skipped", "skipped", "skipped", "scheduled"},
			[]string{rows[0].State, rows[1].State, rows[2].State, rows[3].State, rows[4].State})
		require.True(t, rows[4].Due.Equal(b.clock.Now()), "the step missed by an hour goes out now")
		require.Contains(t, rows[4].Reason, "due Thu 19 Mar 09:00 JST, before pipewatch planned it, so it is sent late")
	})

	t.Run("TurningRemindersOffEndsCadences", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		r := config.DefaultReminders()
		r.Enabled = false
		b.setSetting(t, "reminders", r)
		require.Equal(t, reminder.PlanSummary{Ended: 1}, b.plan(t))
		_, reason := b.cadence(t, b.deal)
		require.Equal(t, "reminders are turned off in the config", reason)
		r.Enabled = true
		b.setSetting(t, "reminders", r)
		require.Equal(t, reminder.PlanSummary{}, b.plan(t), "the episode keeps quiet when they are turned on again")
	})

	t.Run("ScopeIsOneConnection", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := b.id(t, `INSERT INTO connections (name, kind) VALUES ('pipedrive', 'pipedrive') RETURNING id`)
		sum, err := b.cadences.Plan(b.ctx, b.tx, reminder.Scope{ConnectionID: other})
		require.NoError(t, err)
		require.Equal(t, reminder.PlanSummary{}, sum)
		sum, err = b.cadences.Plan(b.ctx, b.tx, reminder.Scope{ConnectionID: b.conn})
		require.NoError(t, err)
		require.Equal(t, reminder.PlanSummary{Started: 1}, sum)
	})

	t.Run("OneFailingDealDoesNotHoldTheOthers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := b.addDeal(t, "d-bolt", "Bolt", b.owner, b.entered)
		// Another planner holds Acme's lock, and this run gives up waiting for it.
		var schema string
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT current_schema()`).Scan(&schema))
		conn, err := pgx.Connect(b.ctx, dbtest.URL(b.ctx, t))
		require.NoError(t, err)
		defer conn.Close(b.ctx)
		_, err = conn.Exec(b.ctx, `SELECT pg_advisory_lock(hashtextextended('pipewatch.reminders.' || $1::text || '.' || $2::bigint, 0))`, schema, b.deal)
		require.NoError(t, err)
		b.exec(t, `SET LOCAL lock_timeout = '200ms'`)

		require.Equal(t, reminder.PlanSummary{Started: 1, Failed: 1}, b.plan(t))
		require.Empty(t, b.reminders(t, b.deal))
		require.Len(t, b.scheduled(t, other), 5)

		_, err = conn.Exec(b.ctx, `SELECT pg_advisory_unlock_all()`)
		require.NoError(t, err)
		require.Equal(t, reminder.PlanSummary{Started: 1}, b.plan(t), "the next run plans it")
	})

	t.Run("BrokenSettingsSayWhat", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.setSetting(t, "reminders", map[string]any{"enabled": true, "trigger": "proposal", "steps": []int{5, 2}, "send_at": "09:00",
			"stop_when": "left_stage"})
		_, err := b.cadences.Plan(b.ctx, b.tx, reminder.Scope{})
		require.ErrorContains(t, err, "reminders.steps: steps must increase: step 2 (2) is not after step 1 (5) (run `pipewatch apply` again)")
	})
}
