package reminder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Result is what Fire did with a reminder.
type Result string

// Results of Fire.
const (
	// ResultSent: the message was enqueued for delivery.
	ResultSent Result = "sent"
	// ResultSkipped: the deal was touched since the previous step (the cadence goes on from
	// the touch), or the rep cannot be messaged.
	ResultSkipped Result = "skipped"
	// ResultEnded: the deal stopped qualifying (or the settings turned reminders off) and
	// the cadence ended.
	ResultEnded Result = "ended"
	// ResultStale: nothing to do; the reminder was sent, skipped, cancelled, deleted or
	// rescheduled to another job already.
	ResultStale Result = "stale"
	// ResultNotYet: the reminder is due later, or held while its deal's connection is not
	// active (its touches would be missing); look again at Outcome.Until.
	ResultNotYet Result = "not_yet"
)

// Outcome is what Fire did and why.
type Outcome struct {
	Result Result
	Reason string
	// Until is when the reminder is due, for ResultNotYet.
	Until time.Time
}

// holdRetry is how often a reminder held for a connection that is not active (paused,
// needs_reauth, error) is looked at again.
const holdRetry = time.Hour

// Fire handles reminder id falling due, fired by job jobID (0 = not by a job), in tx. A
// reminder finished already or belonging to another job is left alone. A deal that
// stopped qualifying ends the cadence. While the deal's connection is paused or failing
// the reminder is held, since a touch could be missing. A touch since the previous step
// (or the trigger) skips the reminder and re-anchors the later steps on the touch.
// Otherwise the message is enqueued for the rep (deduplicated by reminder) and the
// reminder is marked sent. The caller commits, together with the job's completion.
func (s *Cadences) Fire(ctx context.Context, tx pgx.Tx, id, jobID int64) (Outcome, error) {
	now := s.now()
	c, r, err := lockReminder(ctx, tx, id)
	if errors.Is(err, errReminderGone) {
		return Outcome{Result: ResultStale, Reason: "the reminder no longer exists (its deal was removed)"}, nil
	}
	if err != nil {
		return Outcome{}, err
	}
	switch {
	case r.State != stateScheduled:
		return Outcome{Result: ResultStale, Reason: "the reminder is " + r.State + " already"}, nil
	case jobID != 0 && (r.JobID == nil || *r.JobID != jobID):
		return Outcome{Result: ResultStale, Reason: "the reminder was rescheduled to another job"}, nil
	case r.DueAt.After(now):
		return Outcome{Result: ResultNotYet, Until: r.DueAt, Reason: "the reminder is due later"}, nil
	case c.State != cadenceActive:
		reason := "its cadence ended: " + c.Reason
		return Outcome{Result: ResultEnded, Reason: reason}, setState(ctx, tx, r.ID, stateCancelled, reason, now)
	}

	settings, err := LoadSettings(ctx, tx)
	if err != nil {
		return Outcome{}, err
	}
	d, err := loadDeal(ctx, tx, c.DealID)
	if err != nil {
		return Outcome{}, err
	}
	reason, endedBy := Ending(d.DealState, c.Trigger, settings.Reminders.StopWhen), endedByDeal
	switch {
	case !settings.Reminders.Enabled:
		reason, endedBy = "reminders are turned off in the config", endedByConfig
	case c.Trigger != settings.Reminders.Trigger:
		reason, endedBy = fmt.Sprintf("the reminder trigger changed to %s", stageLabel(settings.Reminders.Trigger)), endedByConfig
	}
	if reason != "" {
		if err := s.end(ctx, tx, c, cadenceCancelled, endedBy, reason, now, jobID); err != nil {
			return Outcome{}, err
		}
		return Outcome{Result: ResultEnded, Reason: reason}, nil
	}

	if d.ConnectionStatus != "active" {
		// Without fresh CRM data a touch may be missing: hold the reminder, do not guess.
		why := fmt.Sprintf("waiting for CRM data: connection %s is %s", d.Connection, d.ConnectionStatus)
		if d.StatusReason != "" {
			why += " (" + d.StatusReason + ")"
		}
		return Outcome{Result: ResultNotYet, Until: now.Add(holdRetry), Reason: why}, nil
	}
	cad, _ := settings.CadenceFor(d.Rep)
	if r.Step > cad.Steps() {
		reason := fmt.Sprintf("the cadence now has %d steps", cad.Steps())
		return Outcome{Result: ResultStale, Reason: reason}, setState(ctx, tx, r.ID, stateCancelled, reason, now)
	}
	touches, err := loadTouches(ctx, tx, d, c.SinceAt, now)
	if err != nil {
		return Outcome{}, err
	}
	if len(touches) > 0 {
		reason := skipReason(r.Step, touches, cad.Calendar.Location)
		if err := setState(ctx, tx, r.ID, stateSkipped, reason, now); err != nil {
			return Outcome{}, err
		}
		latest := touches[0]
		c.AnchorAt, c.AnchorStep, c.SinceAt = latest.At, r.Step, latest.At
		c.AnchorReason = "the " + latest.Describe(cad.Calendar.Location)
		if err := saveSchedule(ctx, tx, c, now); err != nil {
			return Outcome{}, err
		}
		if err := s.schedule(ctx, tx, c, cad, shiftMissed, now); err != nil {
			return Outcome{}, err
		}
		return Outcome{Result: ResultSkipped, Reason: reason}, nil
	}

	if why := unreachable(d.Rep); why != "" {
		if err := setState(ctx, tx, r.ID, stateSkipped, why, now); err != nil {
			return Outcome{}, err
		}
		if err := s.schedule(ctx, tx, c, cad, shiftMissed, now); err != nil {
			return Outcome{}, err
		}
		return Outcome{Result: ResultSkipped, Reason: why}, nil
	}

	if _, err := tx.Exec(ctx, `UPDATE reminders SET state = 'sent', sent_at = $2, owner_id = $3, reason = $4, updated_at = $2
		WHERE id = $1`, r.ID, now, ownerRef(d.Rep), "sent to "+d.Rep.Email); err != nil {
		return Outcome{}, fmt.Errorf("marking reminder %d sent: %w", r.ID, err)
	}
	c.SinceAt = now
	if err := saveSchedule(ctx, tx, c, now); err != nil {
		return Outcome{}, err
	}
	if err := s.schedule(ctx, tx, c, cad, shiftMissed, now); err != nil {
		return Outcome{}, err
	}
	if d.Facts.LastTouch, err = loadLastTouch(ctx, tx, d.Facts.ID, now); err != nil {
		return Outcome{}, err
	}
	next, err := nextDue(ctx, tx, c.ID, r.Step)
	if err != nil {
		return Outcome{}, err
	}
	msg := message{
		ReminderID: r.ID, Step: r.Step, Steps: cad.Steps(), Deal: d.Facts, Trigger: c.Trigger, EnteredAt: c.EnteredAt,
		Location: cad.Calendar.Location, Next: next, Buttons: []string{ActionDone, ActionSnooze, ActionStop},
	}
	notificationID, err := s.queue.Notify(ctx, tx, Notice{
		ReminderID: r.ID, Recipient: d.Rep.Email, Message: msg.render(), At: now,
		DedupeKey: fmt.Sprintf("reminder:%d", r.ID),
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("enqueueing reminder %d: %w", r.ID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE reminders SET notification_id = NULLIF($2, 0) WHERE id = $1`, r.ID, notificationID); err != nil {
		return Outcome{}, fmt.Errorf("recording the notification of reminder %d: %w", r.ID, err)
	}
	return Outcome{Result: ResultSent, Reason: "sent to " + d.Rep.Email}, nil
}

// unreachable says why the rep cannot get a reminder ("" = they can).
func unreachable(r Rep) string {
	switch {
	case r.OwnerID == 0:
		return "the deal has no owner in the CRM"
	case r.Email == "":
		return fmt.Sprintf("the deal's owner %s has no email address in the CRM", r.Label())
	case !r.Active:
		return fmt.Sprintf("the deal's owner %s is deactivated in the CRM", r.Label())
	}
	return ""
}

// nextDue is the due time of the first scheduled step after step (zero = none).
func nextDue(ctx context.Context, tx pgx.Tx, cadenceID int64, step int) (time.Time, error) {
	var due *time.Time
	err := tx.QueryRow(ctx, `SELECT min(due_at) FROM reminders WHERE cadence_id = $1 AND state = 'scheduled' AND step > $2`,
		cadenceID, step).Scan(&due)
	if err != nil {
		return time.Time{}, fmt.Errorf("finding the next reminder of cadence %d: %w", cadenceID, err)
	}
	return deref(due), nil
}
