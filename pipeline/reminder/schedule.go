package reminder

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// missedPolicy says what happens to a step whose due time has passed when it is
// (re)scheduled.
type missedPolicy int

const (
	// shiftMissed moves it to its gap after the step that just happened (sent late, or
	// skipped for a touch long ago) and shifts the later steps with it.
	shiftMissed missedPolicy = iota
	// skipMissed records it as skipped, except the latest one when it is less than
	// lateGrace overdue, which is sent now: a cadence planned late (pipewatch installed on
	// an old pipeline, syncs paused for days) does not flood the rep with old reminders.
	skipMissed
)

// lateGrace is how overdue a step planned late may be and still be sent.
const lateGrace = 24 * time.Hour

// slot is one step to have scheduled.
type slot struct {
	step   int
	row    *reminderRow // nil = no row yet
	due    time.Time
	reason string
	skip   bool
}

// schedule brings the scheduled reminders of cadence c in line with its anchor and the
// rep's cadence cad: the steps after the last sent or skipped one get a row each (a
// scheduled River job), rows whose due time changed are rescheduled (the old job
// cancelled, a new one enqueued), steps beyond the cadence's length are cancelled, and a
// cadence left without a scheduled step is finished.
func (s *Cadences) schedule(ctx context.Context, tx pgx.Tx, c cadenceRow, cad Cadence, policy missedPolicy, now time.Time) error {
	rows, err := loadReminders(ctx, tx, c.ID)
	if err != nil {
		return err
	}
	lastPast := 0
	scheduled := map[int]*reminderRow{}
	var last *reminderRow
	for i := range rows {
		r := &rows[i]
		switch r.State {
		case stateSent, stateSkipped:
			lastPast = max(lastPast, r.Step)
			last = r
		case stateScheduled:
			scheduled[r.Step] = r
		}
	}
	var slots []slot
	for step, r := range scheduled {
		if step > cad.Steps() {
			if err := s.cancel(ctx, tx, *r, fmt.Sprintf("the cadence now has %d steps", cad.Steps()), now, 0); err != nil {
				return err
			}
			continue
		}
		slots = append(slots, slot{step: step, row: r})
	}
	for step := lastPast + 1; step <= cad.Steps(); step++ {
		if scheduled[step] == nil {
			slots = append(slots, slot{step: step})
		}
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].step < slots[j].step })

	lastMissed := -1
	for i := range slots {
		sl := &slots[i]
		sl.due = cad.Due(c.AnchorAt, c.AnchorStep, sl.step)
		sl.reason = c.AnchorReason
		if gap := cad.Gap(c.AnchorStep, sl.step); gap > 0 {
			sl.reason = fmt.Sprintf("%s after %s", businessDays(gap), c.AnchorReason)
		}
		if sl.due.Before(now) {
			lastMissed = i
		}
	}
	switch {
	case lastMissed < 0:
	case policy == shiftMissed:
		// An overdue step keeps its gap after the step that just happened (now), and the
		// steps after it shift with it: no catching up.
		for i := range slots {
			sl := &slots[i]
			floor := now
			if i > 0 {
				floor = slots[i-1].due
			}
			if !sl.due.After(floor) {
				from, fromStep := now, lastPast
				if i > 0 {
					from, fromStep = slots[i-1].due, slots[i-1].step
				}
				gap := cad.Gap(fromStep, sl.step)
				sl.reason = fmt.Sprintf("%s after follow-up %d; it was due %s", businessDays(gap), fromStep, cad.Local(sl.due))
				sl.due = cad.Due(from, fromStep, sl.step)
			}
		}
	default:
		for i := 0; i <= lastMissed; i++ {
			sl := &slots[i]
			if i == lastMissed && now.Sub(sl.due) <= lateGrace {
				sl.reason += fmt.Sprintf("; due %s, before pipewatch planned it, so it is sent late", cad.Local(sl.due))
				sl.due = now
				continue
			}
			sl.skip = true
			sl.reason = fmt.Sprintf("was due %s, before pipewatch planned it (%s)", cad.Local(sl.due), sl.reason)
		}
	}

	left := 0
	for _, sl := range slots {
		switch {
		case sl.skip && sl.row != nil:
			if err := s.cancelJob(ctx, tx, *sl.row, 0); err != nil {
				return err
			}
			if err := setState(ctx, tx, sl.row.ID, stateSkipped, sl.reason, now); err != nil {
				return err
			}
		case sl.skip:
			if _, err := insertReminder(ctx, tx, c, sl, stateSkipped, now); err != nil {
				return err
			}
		case sl.row == nil:
			id, err := insertReminder(ctx, tx, c, sl, stateScheduled, now)
			if err != nil {
				return err
			}
			if err := s.enqueue(ctx, tx, id, sl.due, now); err != nil {
				return err
			}
			left++
		case !sl.row.DueAt.Equal(sl.due):
			if err := s.cancelJob(ctx, tx, *sl.row, 0); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE reminders SET due_at = $2, reason = $3, owner_id = $4, updated_at = $5 WHERE id = $1`,
				sl.row.ID, sl.due, sl.reason, c.OwnerID, now); err != nil {
				return fmt.Errorf("rescheduling reminder %d: %w", sl.row.ID, err)
			}
			if err := s.enqueue(ctx, tx, sl.row.ID, sl.due, now); err != nil {
				return err
			}
			left++
		default:
			if _, err := tx.Exec(ctx, `UPDATE reminders SET reason = $2, owner_id = $3, updated_at = $4
				WHERE id = $1 AND (reason IS DISTINCT FROM $2 OR owner_id IS DISTINCT FROM $3)`,
				sl.row.ID, sl.reason, c.OwnerID, now); err != nil {
				return fmt.Errorf("updating reminder %d: %w", sl.row.ID, err)
			}
			left++
		}
	}
	if left == 0 {
		reason := "every follow-up was due before pipewatch planned it"
		if last != nil && len(slots) == 0 {
			reason = fmt.Sprintf("the last follow-up (%d of %d) was %s", last.Step, cad.Steps(), last.State)
		}
		return finish(ctx, tx, c.ID, cadenceFinished, endedByLastStep, reason, now)
	}
	return nil
}

// insertReminder writes the row of a slot.
func insertReminder(ctx context.Context, tx pgx.Tx, c cadenceRow, sl slot, state string, now time.Time) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO reminders (deal_id, owner_id, cadence_id, step, due_at, state, reason, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id`,
		c.DealID, c.OwnerID, c.ID, sl.step, sl.due, state, sl.reason, now,
	).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("inserting step %d of reminder cadence %d: %w", sl.step, c.ID, err)
	}
	return id, nil
}

// enqueue schedules the job of reminder id and records its id on the row.
func (s *Cadences) enqueue(ctx context.Context, tx pgx.Tx, id int64, due, now time.Time) error {
	jobID, err := s.queue.ScheduleReminder(ctx, tx, id, due)
	if err != nil {
		return fmt.Errorf("scheduling the job of reminder %d: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE reminders SET river_job_id = $2, updated_at = $3 WHERE id = $1`, id, jobID, now); err != nil {
		return fmt.Errorf("recording the job of reminder %d: %w", id, err)
	}
	return nil
}

// cancelJob cancels the job of a scheduled reminder, unless it is exceptJobID (the job
// running now, which completes by itself).
func (s *Cadences) cancelJob(ctx context.Context, tx pgx.Tx, r reminderRow, exceptJobID int64) error {
	if r.JobID == nil || *r.JobID == exceptJobID {
		return nil
	}
	if err := s.queue.CancelJob(ctx, tx, *r.JobID); err != nil {
		return fmt.Errorf("cancelling the job of reminder %d: %w", r.ID, err)
	}
	return nil
}

// cancel cancels a scheduled reminder and its job.
func (s *Cadences) cancel(ctx context.Context, tx pgx.Tx, r reminderRow, reason string, now time.Time, exceptJobID int64) error {
	if err := s.cancelJob(ctx, tx, r, exceptJobID); err != nil {
		return err
	}
	return setState(ctx, tx, r.ID, stateCancelled, reason, now)
}

// end ends cadence c: its scheduled reminders are cancelled with their jobs (but for
// exceptJobID, the job running now) and it takes state with reason.
func (s *Cadences) end(ctx context.Context, tx pgx.Tx, c cadenceRow, state, endedBy, reason string, now time.Time, exceptJobID int64) error {
	rows, err := loadReminders(ctx, tx, c.ID)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.State != stateScheduled {
			continue
		}
		if err := s.cancel(ctx, tx, r, reason, now, exceptJobID); err != nil {
			return err
		}
	}
	return finish(ctx, tx, c.ID, state, endedBy, reason, now)
}

func finish(ctx context.Context, tx pgx.Tx, id int64, state, endedBy, reason string, now time.Time) error {
	if _, err := tx.Exec(ctx, `
		UPDATE reminder_cadences SET state = $2, ended_by = $3, reason = $4, ended_at = $5, updated_at = $5
		WHERE id = $1`, id, state, endedBy, reason, now); err != nil {
		return fmt.Errorf("ending reminder cadence %d: %w", id, err)
	}
	return nil
}
