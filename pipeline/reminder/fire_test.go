package reminder_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/notify"
	"github.com/pipewatch/pipewatch/pipeline"
	"github.com/pipewatch/pipewatch/pipeline/reminder"
)

// notification is a reminder row of the notifications outbox.
type notification struct {
	ID        int64
	Recipient string
	DedupeKey string
	Message   notify.Message
}

func (b *testBundle) notifications(t *testing.T) []notification {
	t.Helper()
	rows, err := b.tx.Query(b.ctx, `SELECT id, recipient, coalesce(dedupe_key, ''), payload FROM notifications
		WHERE kind = 'reminder' AND channel = 'dm' ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []notification
	for rows.Next() {
		var n notification
		var payload []byte
		require.NoError(t, rows.Scan(&n.ID, &n.Recipient, &n.DedupeKey, &payload))
		require.NoError(t, json.Unmarshal(payload, &n.Message))
		out = append(out, n)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestFire(t *testing.T) {
	t.Parallel()

	t.Run("SendsTheFollowUp", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.addActivity(t, b.deal, &b.owner, pipeline.ActivityEmail, pipeline.Outbound, at(t, b.tokyo, "2026-03-06 15:00")) // the proposal itself
		b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
		out := b.fire(t, b.deal, 1)
		require.Equal(t, reminder.Outcome{Result: reminder.ResultSent, Reason: "sent to ana@example.com"}, out)

		sent := b.notifications(t)
		require.Len(t, sent, 1)
		rows := b.reminders(t, b.deal)
		require.Equal(t, "sent", rows[0].State)
		require.Equal(t, "ana@example.com", sent[0].Recipient)
		require.Equal(t, "reminder:"+itoa(rows[0].ID), sent[0].DedupeKey)
		value := itoa(rows[0].ID)
		require.Equal(t, notify.Message{
			Title: "Follow up: Acme renewal",
			Summary: "Acme renewal entered proposal on Fri 6 Mar 15:30 JST and has had no touch since then. " +
				"Time for follow-up 1 of 5.",
			Facts: []notify.Fact{
				{Label: "Amount", Value: "12,500 USD"},
				{Label: "Stage", Value: "Proposal sent (proposal)"},
				{Label: "Last touch", Value: `outbound email "Re: proposal" on Fri 6 Mar 15:00 JST`},
				{Label: "Reminder", Value: "Follow-up 1 of 5"},
				{Label: "Next follow-up", Value: "Fri 13 Mar 09:00 JST"},
			},
			Link: &notify.Link{Text: "Open in HubSpot", URL: "https://app.hubspot.com/contacts/4711/record/0-3/d-acme"},
			Actions: []notify.Action{
				{ID: reminder.ActionDone, Label: "Done", Value: value, Style: "primary"},
				{ID: reminder.ActionSnooze, Label: "Snooze 1 business day", Value: value},
				{ID: reminder.ActionStop, Label: "Stop reminders for this deal", Value: value, Style: "danger"},
			},
			Context: "pipewatch follow-up reminders after proposal. A reminder is skipped when the deal was touched " +
				"(your outbound email or call, a reply, a meeting) since the previous one.",
		}, sent[0].Message)
		_, err := notify.Render(sent[0].ID, sent[0].Message)
		require.NoError(t, err, "Slack can render it")
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'deliver_notification' AND args->>'notification_id' = $1`,
			itoa(sent[0].ID)), "its delivery is enqueued in the same transaction")

		again, err := b.cadences.Fire(b.ctx, b.tx, rows[0].ID, rows[0].JobID)
		require.NoError(t, err)
		require.Equal(t, reminder.ResultStale, again.Result)
		require.Len(t, b.notifications(t), 1, "firing twice sends once")
	})

	t.Run("EarlyJobWaits", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.clock.Set(at(t, b.tokyo, "2026-03-10 08:59"))
		out := b.fire(t, b.deal, 1)
		require.Equal(t, reminder.ResultNotYet, out.Result)
		require.True(t, out.Until.Equal(at(t, b.tokyo, "2026-03-10 09:00")))
		require.Empty(t, b.notifications(t))
	})

	t.Run("SupersededJobDoesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
		rows := b.reminders(t, b.deal)
		out, err := b.cadences.Fire(b.ctx, b.tx, rows[0].ID, rows[0].JobID+1000)
		require.NoError(t, err)
		require.Equal(t, reminder.Outcome{Result: reminder.ResultStale, Reason: "the reminder was rescheduled to another job"}, out)
		require.Empty(t, b.notifications(t))
	})

	t.Run("OutboundEmailSkipsTheNextReminder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
		require.Equal(t, reminder.ResultSent, b.fire(t, b.deal, 1).Result)
		before := b.reminders(t, b.deal)

		b.addActivity(t, b.deal, &b.owner, pipeline.ActivityEmail, pipeline.Outbound, at(t, b.tokyo, "2026-03-11 10:15"))
		b.clock.Set(at(t, b.tokyo, "2026-03-13 09:00"))
		out := b.fire(t, b.deal, 2)
		require.Equal(t, reminder.ResultSkipped, out.Result)
		require.Equal(t, `touched since follow-up 1: outbound email "Re: proposal" on Wed 11 Mar 10:15 JST`, out.Reason)
		require.Len(t, b.notifications(t), 1, "no message for the skipped step")

		rows := b.reminders(t, b.deal)
		require.Equal(t, "skipped", rows[1].State)
		require.Equal(t, out.Reason, rows[1].Reason)
		// Steps 3 to 5 count from the email (it stands for step 2): +4, +9 and +16 business days.
		require.Equal(t, []string{"Tue 2026-03-17 09:00", "Tue 2026-03-24 09:00", "Thu 2026-04-02 09:00"}, b.scheduled(t, b.deal))
		require.Equal(t, `4 business days after the outbound email "Re: proposal" on Wed 11 Mar 10:15 JST`, rows[2].Reason)
		for _, r := range before[2:] {
			var state string
			require.NoError(t, b.tx.QueryRow(b.ctx, `SELECT state FROM river_job WHERE id = $1`, r.JobID).Scan(&state))
			require.Equal(t, "cancelled", state, "the job of the old due time is cancelled")
		}

		// The touch counted once: step 3 goes out.
		b.clock.Set(at(t, b.tokyo, "2026-03-17 09:00"))
		require.Equal(t, reminder.ResultSent, b.fire(t, b.deal, 3).Result)
	})

	t.Run("WhatCountsAsATouch", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name      string
			kind      pipeline.ActivityKind
			direction pipeline.Direction
			byOther   bool
			noOwner   bool
			skips     bool
		}{
			{"InboundReply", pipeline.ActivityEmail, pipeline.Inbound, true, false, true},
			{"OutboundCall", pipeline.ActivityCall, pipeline.Outbound, false, false, true},
			{"OutboundEmailWithoutRecordedOwner", pipeline.ActivityEmail, pipeline.Outbound, false, true, true},
			{"Meeting", pipeline.ActivityMeeting, "", true, false, true},
			{"OutboundEmailByAnotherRep", pipeline.ActivityEmail, pipeline.Outbound, true, false, false},
			{"Note", pipeline.ActivityNote, "", false, false, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				b.plan(t)
				owner := &b.owner
				if tt.byOther {
					other := b.addOwner(t, "o-bo", "bo@example.com", "")
					owner = &other
				}
				if tt.noOwner {
					owner = nil
				}
				b.addActivity(t, b.deal, owner, tt.kind, tt.direction, at(t, b.tokyo, "2026-03-09 11:00"))
				b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
				want := reminder.ResultSent
				if tt.skips {
					want = reminder.ResultSkipped
				}
				require.Equal(t, want, b.fire(t, b.deal, 1).Result)
			})
		}
	})

	t.Run("BookedMeetingSkipsAndTheCadenceGoesOnAfterIt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.exec(t, `INSERT INTO activities (connection_id, external_id, kind, subject, occurred_at, done, deal_id, remote_created_at)
			VALUES ($1, 'm1', 'meeting', 'Pricing review', $2, false, $3, $4)`,
			b.conn, at(t, b.tokyo, "2026-03-12 14:00"), b.deal, at(t, b.tokyo, "2026-03-09 17:00"))
		b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
		out := b.fire(t, b.deal, 1)
		require.Equal(t, reminder.ResultSkipped, out.Result)
		require.Equal(t, `touched since entering the stage: meeting "Pricing review" booked for Thu 12 Mar 14:00 JST`, out.Reason)
		require.Equal(t, []string{"Tue 2026-03-17 09:00", "Mon 2026-03-23 09:00", "Mon 2026-03-30 09:00", "Wed 2026-04-08 09:00"},
			b.scheduled(t, b.deal))
	})

	t.Run("WonDealEndsTheRestAtDueTime", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.move(t, b.deal, pipeline.StageClosedWon, at(t, b.tokyo, "2026-03-09 11:00"))
		b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
		require.Equal(t, reminder.Outcome{Result: reminder.ResultEnded, Reason: "the deal was won"}, b.fire(t, b.deal, 1))
		for _, r := range b.reminders(t, b.deal) {
			require.Equal(t, "cancelled", r.State)
		}
		require.Empty(t, b.notifications(t))
	})

	t.Run("RepWithoutEmailIsSkipped", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.exec(t, `UPDATE owners SET email = NULL WHERE id = $1`, b.owner)
		b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
		out := b.fire(t, b.deal, 1)
		require.Equal(t, reminder.Outcome{Result: reminder.ResultSkipped,
			Reason: "the deal's owner o-ana has no email address in the CRM"}, out)
		require.Equal(t, acmeSchedule[1:], b.scheduled(t, b.deal), "the cadence goes on")
	})

	t.Run("HeldWhileTheConnectionNeedsReauth", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		b.exec(t, `UPDATE connections SET status = 'needs_reauth', status_reason = 'HubSpot answered 401 after a token refresh' WHERE id = $1`, b.conn)
		b.clock.Set(at(t, b.tokyo, "2026-03-10 09:00"))
		out := b.fire(t, b.deal, 1)
		require.Equal(t, reminder.Outcome{Result: reminder.ResultNotYet, Until: at(t, b.tokyo, "2026-03-10 10:00"),
			Reason: "waiting for CRM data: connection hubspot-main is needs_reauth (HubSpot answered 401 after a token refresh)"}, out)
		require.Empty(t, b.notifications(t))

		// Reconnected the next day, with the rep's email synced: the held step is skipped.
		b.exec(t, `UPDATE connections SET status = 'active', status_reason = NULL WHERE id = $1`, b.conn)
		b.addActivity(t, b.deal, &b.owner, pipeline.ActivityEmail, pipeline.Outbound, at(t, b.tokyo, "2026-03-09 18:00"))
		b.clock.Set(at(t, b.tokyo, "2026-03-11 10:00"))
		require.Equal(t, reminder.ResultSkipped, b.fire(t, b.deal, 1).Result)
	})

	t.Run("DeletedReminderIsStale", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.plan(t)
		rows := b.reminders(t, b.deal)
		b.exec(t, `DELETE FROM deals WHERE id = $1`, b.deal)
		out, err := b.cadences.Fire(b.ctx, b.tx, rows[0].ID, rows[0].JobID)
		require.NoError(t, err)
		require.Equal(t, reminder.ResultStale, out.Result)
	})
}
