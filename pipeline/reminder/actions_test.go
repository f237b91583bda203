package reminder_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

// sentFirst plans the Acme deal and sends its first follow-up on Tuesday 10 March 09:00.
func sentFirst(t *testing.T) (*testBundle, int64) {
	t.Helper()
	b := setup(t)
	b.plan(t)
	b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
	require.Equal(t, reminder.ResultSent, b.fire(t, b.deal, 1).Result)
	return b, b.reminders(t, b.deal)[0].ID
}

func (b *testBundle) press(t *testing.T, actionID string, reminderID int64) *notify.Message {
	t.Helper()
	msg, err := b.cadences.HandleAction(b.ctx, b.tx, notify.Press{ActionID: actionID, Value: itoa(reminderID),
		NotificationID: b.notifications(t)[0].ID, SlackUserID: "U0ANA"})
	require.NoError(t, err)
	require.NotNil(t, msg)
	_, err = notify.Render(1, *msg)
	require.NoError(t, err, "Slack can render the updated message")
	return msg
}

func actionIDs(m *notify.Message) []string {
	var ids []string
	for _, a := range m.Actions {
		ids = append(ids, a.ID)
	}
	return ids
}

func TestHandleAction(t *testing.T) {
	t.Parallel()

	t.Run("DoneCountsTheRestFromNow", func(t *testing.T) {
		t.Parallel()
		b, id := sentFirst(t)
		b.clock.Set(at(t, b.tokyo, "2026-03-11 10:00")) // pressed a day later
		msg := b.press(t, reminder.ActionDone, id)
		require.Equal(t, "Marked done. Thanks for following up.", msg.Summary)
		require.Equal(t, []string{reminder.ActionStop}, actionIDs(msg), "Done and Snooze are gone, Stop stays")
		require.Contains(t, msg.Facts, notify.Fact{Label: "Next follow-up", Value: "Mon 16 Mar 09:00 JST"})
		require.Equal(t, []string{"Mon 2026-03-16 09:00", "Fri 2026-03-20 09:00", "Fri 2026-03-27 09:00", "Tue 2026-04-07 09:00"},
			b.scheduled(t, b.deal), "+3, +7, +12 and +19 business days after Wednesday")
		var action, by string
		require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT action, action_by FROM reminders WHERE id = $1`, id).Scan(&action, &by))
		require.Equal(t, "done", action)
		require.Equal(t, "U0ANA", by)

		b.clock.Set(at(t, b.tokyo, "2026-03-12 10:00"))
		again := b.press(t, reminder.ActionDone, id)
		require.Equal(t, "Marked done on Wed 11 Mar 10:00 JST.", again.Summary)
		require.Equal(t, []string{"Mon 2026-03-16 09:00", "Fri 2026-03-20 09:00", "Fri 2026-03-27 09:00", "Tue 2026-04-07 09:00"},
			b.scheduled(t, b.deal), "a second press changes nothing")
	})

	t.Run("SnoozeSendsTheStepAgainNextBusinessDay", func(t *testing.T) {
		t.Parallel()
		b, id := sentFirst(t)
		b.clock.Set(at(t, b.tokyo, "2026-03-10 09:05"))
		msg := b.press(t, reminder.ActionSnooze, id)
		require.Equal(t, "Snoozed: this follow-up comes again on Wed 11 Mar 09:00 JST.", msg.Summary)
		require.Equal(t, []string{reminder.ActionStop}, actionIDs(msg))
		rows := b.reminders(t, b.deal)
		require.Equal(t, 1, rows[1].Step, "a new reminder for the same step")
		require.Equal(t, "scheduled", rows[1].State)
		require.Equal(t, []string{"Wed 2026-03-11 09:00", "Mon 2026-03-16 09:00", "Fri 2026-03-20 09:00", "Fri 2026-03-27 09:00",
			"Tue 2026-04-07 09:00"}, b.scheduled(t, b.deal), "the later steps shift with it")

		// It comes again as a new message.
		b.clock.Set(at(t, b.tokyo, "2026-03-11 09:00"))
		out, err := b.cadences.Fire(b.ctx, b.tx, rows[1].ID, rows[1].JobID)
		require.NoError(t, err)
		require.Equal(t, reminder.ResultSent, out.Result)
		require.Len(t, b.notifications(t), 2)
	})

	t.Run("StopEndsTheCadence", func(t *testing.T) {
		t.Parallel()
		b, id := sentFirst(t)
		msg := b.press(t, reminder.ActionStop, id)
		require.Equal(t, "Reminders stopped for this deal: you will get no more follow-ups about it.", msg.Summary)
		require.Empty(t, msg.Actions)
		for _, f := range msg.Facts {
			require.NotEqual(t, "Next follow-up", f.Label)
		}
		state, reason := b.cadence(t, b.deal)
		require.Equal(t, "stopped", state)
		require.Equal(t, "stopped from Slack on Tue 10 Mar 09:00 JST", reason)
		for _, r := range b.reminders(t, b.deal)[1:] {
			require.Equal(t, "cancelled", r.State)
			require.Equal(t, "cancelled", r.JobState)
		}
		require.Equal(t, reminder.PlanSummary{}, b.plan(t), "planning does not restart a stopped cadence")
		again := b.press(t, reminder.ActionStop, id)
		require.Equal(t, "Reminders stopped for this deal on Tue 10 Mar 09:00 JST.", again.Summary)
	})

	t.Run("AfterTheDealWasWon", func(t *testing.T) {
		t.Parallel()
		b, id := sentFirst(t)
		b.move(t, b.deal, pipeline.StageClosedWon, at(t, b.tokyo, "2026-03-10 11:00"))
		b.plan(t)
		msg := b.press(t, reminder.ActionDone, id)
		require.Equal(t, "No more follow-ups for this deal: the deal was won.", msg.Summary)
		require.Empty(t, msg.Actions)
	})

	t.Run("DoneOnAnOlderStepMovesNothing", func(t *testing.T) {
		t.Parallel()
		b, id := sentFirst(t)
		b.clock.Set(at(t, b.tokyo, "2026-03-13 09:00"))
		require.Equal(t, reminder.ResultSent, b.fire(t, b.deal, 2).Result)
		before := b.scheduled(t, b.deal)
		b.clock.Set(at(t, b.tokyo, "2026-03-13 12:00"))
		msg := b.press(t, reminder.ActionDone, id)
		require.Equal(t, "Marked done. Thanks for following up.", msg.Summary)
		require.Equal(t, before, b.scheduled(t, b.deal))
	})

	t.Run("BadButtonValue", func(t *testing.T) {
		t.Parallel()
		b, _ := sentFirst(t)
		_, err := b.cadences.HandleAction(b.ctx, b.tx, notify.Press{ActionID: reminder.ActionDone, Value: "abc"})
		require.EqualError(t, err, `button reminder.done carries "abc", not a reminder id`)
		_, err = b.cadences.HandleAction(b.ctx, b.tx, notify.Press{ActionID: "reminder.explode", Value: "1"})
		require.EqualError(t, err, `unknown reminder button "reminder.explode"`)
	})
}

func TestList(t *testing.T) {
	t.Parallel()

	b, _ := sentFirst(t)
	bo := b.addOwner(t, "o-bo", "bo@example.com", "America/New_York")
	b.addDeal(t, "d-bolt", "Bolt Inc", bo, at(t, b.tokyo, "2026-03-09 23:00"))
	b.plan(t)

	var got []reminder.Listed
	require.NoError(t, reminder.List(b.ctx, b.tx, reminder.ListFilter{OwnerEmail: "ANA@example.com"}, func(l reminder.Listed) error {
		got = append(got, l)
		return nil
	}))
	require.Len(t, got, 5)
	require.Equal(t, "Acme renewal", got[0].DealName)
	require.Equal(t, "sent", got[0].State)
	require.Equal(t, "Tue 10 Mar 09:00 JST", got[0].DueLocal())
	require.Equal(t, "scheduled", got[1].State)
	require.Equal(t, "5 business days after entering proposal on Fri 6 Mar 15:30 JST", got[1].Reason)
	require.Equal(t, reminder.ZoneCRM, got[1].ZoneSource)
	require.Equal(t, "pending", got[0].Delivery, "the DM waits for its delivery job")
	require.Empty(t, got[1].Delivery)

	got = nil
	require.NoError(t, reminder.List(b.ctx, b.tx, reminder.ListFilter{}, func(l reminder.Listed) error {
		got = append(got, l)
		return nil
	}))
	require.Len(t, got, 10)
	require.Equal(t, "bo@example.com", got[5].OwnerEmail, "by rep")
	require.Equal(t, "Wed 11 Mar 09:00 EDT", got[5].DueLocal(), "in Bo's own zone")

	b.exec(t, `UPDATE notifications SET state = 'failed', error = 'no Slack user has the email ana@example.com'`)
	require.NoError(t, reminder.List(b.ctx, b.tx, reminder.ListFilter{OwnerEmail: "ana@example.com"}, func(l reminder.Listed) error {
		if l.Step == 1 {
			require.Equal(t, "failed", l.Delivery)
			require.Equal(t, "no Slack user has the email ana@example.com", l.DeliveryError)
		}
		return nil
	}))
}
