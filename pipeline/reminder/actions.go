package reminder

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// HandleAction applies a button of a reminder message in tx and returns the message that
// replaces it (it is a notify.ActionHandler for the prefix ActionPrefix):
//
//   - Done: the rep followed up. The reminder is marked done and, when it is the cadence's
//     latest step, the later steps count from now.
//   - Snooze 1 business day: the same step comes again at the send time of the next
//     business day (a new reminder), and the later steps shift with it.
//   - Stop reminders for this deal: the cadence ends and its scheduled reminders are
//     cancelled with their jobs.
//
// A second press, or a press after the cadence ended, changes nothing and shows how
// things stand.
func (s *Cadences) HandleAction(ctx context.Context, tx pgx.Tx, press notify.Press) (*notify.Message, error) {
	id, err := strconv.ParseInt(press.Value, 10, 64)
	if err != nil || id <= 0 {
		return nil, fmt.Errorf("button %s carries %q, not a reminder id", press.ActionID, press.Value)
	}
	if press.ActionID != ActionDone && press.ActionID != ActionSnooze && press.ActionID != ActionStop {
		return nil, fmt.Errorf("unknown reminder button %q", press.ActionID)
	}
	now := s.now()
	c, r, err := lockReminder(ctx, tx, id)
	if errors.Is(err, errReminderGone) {
		s.logger.WarnContext(ctx, "reminders: button pressed on a reminder that no longer exists", "reminder_id", id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	settings, err := LoadSettings(ctx, tx)
	if err != nil {
		return nil, err
	}
	d, err := loadDeal(ctx, tx, c.DealID)
	if err != nil {
		return nil, err
	}
	cad, _ := settings.CadenceFor(d.Rep)
	by := press.SlackUserID

	var status string
	switch {
	case press.ActionID == ActionStop && c.State == cadenceActive:
		reason := fmt.Sprintf("stopped from Slack on %s", cad.Local(now))
		if err := s.end(ctx, tx, c, cadenceStopped, endedByRep, reason, now, 0); err != nil {
			return nil, err
		}
		if err := setAction(ctx, tx, r.ID, "stopped", by, now); err != nil {
			return nil, err
		}
		c.State = cadenceStopped
		status = "Reminders stopped for this deal: you will get no more follow-ups about it."
	case press.ActionID == ActionStop && r.Action == "stopped":
		status = s.actedStatus(r, cad)
	case c.State != cadenceActive:
		status = fmt.Sprintf("No more follow-ups for this deal: %s.", c.Reason)
	case r.Action != "":
		status = s.actedStatus(r, cad)
	case r.State != stateSent:
		status = fmt.Sprintf("This follow-up is %s.", r.State)
	case press.ActionID == ActionDone:
		latest, err := isLatestStep(ctx, tx, c.ID, r.Step)
		if err != nil {
			return nil, err
		}
		if latest {
			c.AnchorAt, c.AnchorStep, c.SinceAt = now, r.Step, now
			c.AnchorReason = fmt.Sprintf("follow-up %d marked done on %s", r.Step, cad.Local(now))
			if err := saveSchedule(ctx, tx, c, now); err != nil {
				return nil, err
			}
			if err := s.schedule(ctx, tx, c, cad, shiftMissed, now); err != nil {
				return nil, err
			}
		}
		if err := setAction(ctx, tx, r.ID, "done", by, now); err != nil {
			return nil, err
		}
		status = "Marked done. Thanks for following up."
	case press.ActionID == ActionSnooze:
		latest, err := isLatestStep(ctx, tx, c.ID, r.Step)
		if err != nil {
			return nil, err
		}
		if !latest {
			status = "A later follow-up is already out; this one cannot be snoozed."
			break
		}
		due := cad.Snoozed(now)
		c.AnchorAt, c.AnchorStep = due, r.Step
		c.AnchorReason = fmt.Sprintf("follow-up %d snoozed on %s for 1 business day", r.Step, cad.Local(now))
		if err := saveSchedule(ctx, tx, c, now); err != nil {
			return nil, err
		}
		again, err := insertReminder(ctx, tx, c, slot{step: r.Step, due: due, reason: c.AnchorReason}, stateScheduled, now)
		if err != nil {
			return nil, err
		}
		if err := s.enqueue(ctx, tx, again, due, now); err != nil {
			return nil, err
		}
		if err := s.schedule(ctx, tx, c, cad, shiftMissed, now); err != nil {
			return nil, err
		}
		if err := setAction(ctx, tx, r.ID, "snoozed", by, now); err != nil {
			return nil, err
		}
		status = fmt.Sprintf("Snoozed: this follow-up comes again on %s.", cad.Local(due))
	}
	s.logger.InfoContext(ctx, "reminders: button pressed", "reminder_id", r.ID, "action_id", press.ActionID,
		"slack_user_id", by, "status", status)

	if d.Facts.LastTouch, err = loadLastTouch(ctx, tx, d.Facts.ID, now); err != nil {
		return nil, err
	}
	var next time.Time
	var buttons []string
	if c.State == cadenceActive {
		if next, err = nextDue(ctx, tx, c.ID, 0); err != nil {
			return nil, err
		}
		buttons = []string{ActionStop}
	}
	msg := message{
		ReminderID: r.ID, Step: r.Step, Steps: cad.Steps(), Deal: d.Facts, Trigger: c.Trigger, EnteredAt: c.EnteredAt,
		Location: cad.Calendar.Location, Next: next, Status: status, Buttons: buttons,
	}
	out := msg.render()
	return &out, nil
}

// actedStatus describes what was done with a reminder already.
func (s *Cadences) actedStatus(r reminderRow, cad Cadence) string {
	when := ""
	if r.ActionAt != nil {
		when = " on " + cad.Local(*r.ActionAt)
	}
	switch r.Action {
	case "done":
		return "Marked done" + when + "."
	case "snoozed":
		return "Snoozed" + when + " for 1 business day."
	}
	return "Reminders stopped for this deal" + when + "."
}

// isLatestStep reports whether no step after step was sent or skipped and step has no
// scheduled reminder (a snooze) of its own: only then may a button move the schedule.
func isLatestStep(ctx context.Context, tx pgx.Tx, cadenceID int64, step int) (bool, error) {
	var later bool
	err := tx.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM reminders WHERE cadence_id = $1
		               AND (step > $2 AND state IN ('sent', 'skipped') OR step = $2 AND state = 'scheduled'))`,
		cadenceID, step).Scan(&later)
	if err != nil {
		return false, fmt.Errorf("checking the later steps of cadence %d: %w", cadenceID, err)
	}
	return !later, nil
}

func setAction(ctx context.Context, tx pgx.Tx, id int64, action, by string, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE reminders SET action = $2, action_by = NULLIF($3, ''), action_at = $4, updated_at = $4 WHERE id = $1`,
		id, action, strings.TrimSpace(by), now); err != nil {
		return fmt.Errorf("recording %s on reminder %d: %w", action, id, err)
	}
	return nil
}
