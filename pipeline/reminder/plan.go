package reminder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

// planPageSize is how many deals one planning transaction handles.
const planPageSize = 200

// dealLockSQL serializes the planning of one deal ($1) by concurrent runs (after a sync
// and periodic), so two runs never race to start or end the same cadence.
const dealLockSQL = `SELECT pg_advisory_xact_lock(hashtextextended('pipewatch.reminders.' || current_schema() || '.' || $1::bigint, 0))`

// Scope limits a planning run.
type Scope struct {
	// ConnectionID limits the run to one connection's deals (0 = all).
	ConnectionID int64
}

// PlanSummary says what a planning run did.
type PlanSummary struct {
	// Started cadences, Rescheduled cadences (time zone, owner or settings changed),
	// Ended cadences (the deal stopped qualifying, or the settings turned them off).
	Started, Rescheduled, Ended int
	// Failed deals could not be planned (each logged with its error); the others were.
	Failed int
}

func (s *PlanSummary) add(o PlanSummary) {
	s.Started += o.Started
	s.Rescheduled += o.Rescheduled
	s.Ended += o.Ended
	s.Failed += o.Failed
}

// cadenceRef is what planning needs of a deal's cadence.
type cadenceRef struct {
	ID        int64
	State     string
	EndedBy   string
	Trigger   pipeline.CanonicalStage
	EnteredAt time.Time
	PlanKey   string
}

// candidate is one deal a planning run looks at.
type candidate struct {
	deal
	Entry Entry
	// Active is the deal's active cadence (any trigger), Latest its latest cadence for
	// the configured trigger (any state); nil = none.
	Active, Latest *cadenceRef
}

// decision is what planning does with a candidate.
type decision struct {
	// End ends the active cadence with this reason, EndedBy saying what ended it.
	End, EndedBy string
	// Start starts a cadence for the episode that began at EnteredAt.
	Start     bool
	EnteredAt time.Time
	// Maintain reschedules the active cadence when its plan changed.
	Maintain bool
}

// decide applies the planning rules to one deal. A deal gets one cadence per entry into
// the trigger stage: a new one only when the history shows it left the stage after the
// latest cadence began, or when that cadence ended because the deal stopped qualifying
// (closed, deleted, moved away) and it qualifies again. An active cadence goes on while
// the deal qualifies, and is rescheduled when its plan changed.
func decide(c candidate, r config.Reminders, now time.Time) decision {
	var out decision
	active := c.Active
	switch {
	case active == nil:
	case !r.Enabled:
		return decision{End: "reminders are turned off in the config", EndedBy: endedByConfig}
	case active.Trigger != r.Trigger:
		out = decision{End: fmt.Sprintf("the reminder trigger changed to %s", stageLabel(r.Trigger)), EndedBy: endedByConfig}
		active = nil
	default:
		if reason := Ending(c.DealState, r.Trigger, r.StopWhen); reason != "" {
			return decision{End: reason, EndedBy: endedByDeal}
		}
		if !c.Starts(r.Trigger) || !c.Entry.LeftAt.After(active.EnteredAt) {
			return decision{Maintain: true}
		}
		out = decision{End: fmt.Sprintf("the deal left %s and entered it again", stageLabel(r.Trigger)), EndedBy: endedByDeal}
	}
	if !r.Enabled || !c.Starts(r.Trigger) {
		return out
	}
	entered := c.Entry.EnteredAt()
	if entered.IsZero() {
		entered = now
	}
	if prev := c.Latest; prev != nil && (active == nil || prev.ID != active.ID) && prev.State != cadenceActive {
		if !c.Entry.LeftAt.After(prev.EnteredAt) && prev.EndedBy != endedByDeal {
			return out // this episode had its cadence
		}
	}
	if prev := c.Latest; prev != nil && !entered.After(prev.EnteredAt) {
		entered = now // qualifies again without a recorded new entry: count from now
	}
	out.Start, out.EnteredAt = true, entered
	return out
}

// Plan starts the cadences of deals that entered the trigger stage, reschedules the ones
// whose rep's time zone, owner or settings changed, and ends the ones whose deal stopped
// qualifying. Each page of deals is one transaction (cadence rows, reminder rows and
// their jobs commit together) and each deal a savepoint in it: a deal that cannot be
// planned is logged, counted in Failed and left as it was. Concurrent runs take turns
// per deal. Planning twice changes nothing.
func (s *Cadences) Plan(ctx context.Context, db Beginner, scope Scope) (PlanSummary, error) {
	var sum PlanSummary
	var after int64
	for {
		var n int
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			settings, err := LoadSettings(ctx, tx)
			if err != nil {
				return err
			}
			page, err := loadCandidates(ctx, tx, settings.Reminders.Trigger, scope, after)
			if err != nil {
				return err
			}
			n = len(page)
			for _, c := range page {
				after = c.Facts.ID
				done, err := s.planDeal(ctx, tx, settings, c)
				if err != nil && ctx.Err() != nil {
					return err
				}
				if err != nil {
					// One deal's failure must not hold every other rep's reminders.
					s.logger.ErrorContext(ctx, "reminders: planning a deal failed", "deal_id", c.Facts.ID, "error", err)
					done = PlanSummary{Failed: 1}
				}
				sum.add(done)
			}
			return nil
		})
		if err != nil {
			return sum, err
		}
		if n < planPageSize {
			return sum, nil
		}
	}
}

// planDeal carries out the decision about one deal, in a savepoint of tx.
func (s *Cadences) planDeal(ctx context.Context, tx pgx.Tx, settings Settings, c candidate) (PlanSummary, error) {
	now := s.now()
	d := decide(c, settings.Reminders, now)
	if d.Maintain {
		cad, _ := settings.CadenceFor(c.Rep)
		d.Maintain = planKey(settings, cad, c.Rep.OwnerID) != c.Active.PlanKey
	}
	if d == (decision{}) {
		return PlanSummary{}, nil
	}
	var sum PlanSummary
	err := pgx.BeginFunc(ctx, tx, func(tx pgx.Tx) error {
		sum = PlanSummary{}
		if _, err := tx.Exec(ctx, dealLockSQL, c.Facts.ID); err != nil {
			return fmt.Errorf("locking the reminders of deal %d: %w", c.Facts.ID, err)
		}
		var active *int64
		if err := tx.QueryRow(ctx, `SELECT max(id) FROM reminder_cadences WHERE deal_id = $1 AND state = 'active'`, c.Facts.ID).
			Scan(&active); err != nil {
			return fmt.Errorf("checking the active cadence of deal %d: %w", c.Facts.ID, err)
		}
		if (active == nil) != (c.Active == nil) || active != nil && *active != c.Active.ID {
			return nil // another run changed it since this page was read; the next run looks again
		}
		if d.End != "" {
			cad, err := lockCadence(ctx, tx, c.Active.ID)
			if err != nil {
				return err
			}
			if cad.State == cadenceActive {
				if err := s.end(ctx, tx, cad, cadenceCancelled, d.EndedBy, d.End, now, 0); err != nil {
					return err
				}
				sum.Ended++
				s.logger.InfoContext(ctx, "reminders: cadence ended", "deal_id", c.Facts.ID, "cadence_id", cad.ID, "reason", d.End)
			}
		}
		if d.Maintain {
			rescheduled, err := s.maintain(ctx, tx, settings, c, now)
			if err != nil {
				return err
			}
			if rescheduled {
				sum.Rescheduled++
			}
		}
		if d.Start {
			started, err := s.start(ctx, tx, settings, c.deal, d.EnteredAt, now)
			if err != nil {
				return err
			}
			if started {
				sum.Started++
			}
		}
		return nil
	})
	if err != nil {
		return PlanSummary{}, fmt.Errorf("planning the reminders of deal %d: %w", c.Facts.ID, err)
	}
	return sum, nil
}

// start creates the cadence of the episode that began at entered, with its reminders.
func (s *Cadences) start(ctx context.Context, tx pgx.Tx, settings Settings, d deal, entered, now time.Time) (bool, error) {
	cad, zone := settings.CadenceFor(d.Rep)
	c := cadenceRow{
		DealID:     d.Facts.ID,
		OwnerID:    ownerRef(d.Rep),
		Trigger:    settings.Reminders.Trigger,
		EnteredAt:  entered,
		Timezone:   zone.Name(),
		ZoneSource: zone.Source,
		PlanKey:    planKey(settings, cad, d.Rep.OwnerID),
		AnchorAt:   entered,
		AnchorReason: fmt.Sprintf("entering %s on %s", stageLabel(settings.Reminders.Trigger),
			cad.Local(entered)),
		SinceAt: entered,
	}
	err := tx.QueryRow(ctx, `
		INSERT INTO reminder_cadences (deal_id, owner_id, trigger_stage, entered_at, timezone, zone_source, plan_key,
		                               anchor_at, anchor_step, anchor_reason, since_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $11)
		ON CONFLICT (deal_id, trigger_stage, entered_at) DO NOTHING
		RETURNING id`,
		c.DealID, c.OwnerID, c.Trigger, c.EnteredAt, c.Timezone, c.ZoneSource, c.PlanKey, c.AnchorAt, c.AnchorReason,
		c.SinceAt, now,
	).Scan(&c.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // this episode has its cadence already
	}
	if err != nil {
		return false, fmt.Errorf("inserting the reminder cadence of deal %d: %w", d.Facts.ID, err)
	}
	if err := s.schedule(ctx, tx, c, cad, skipMissed, now); err != nil {
		return false, err
	}
	s.logger.InfoContext(ctx, "reminders: cadence started", "deal_id", d.Facts.ID, "cadence_id", c.ID,
		"entered_at", entered, "time_zone", c.Timezone, "zone_source", c.ZoneSource)
	return true, nil
}

// maintain reschedules the active cadence of c when the rep's calendar, the owner or the
// settings changed since it was planned.
func (s *Cadences) maintain(ctx context.Context, tx pgx.Tx, settings Settings, c candidate, now time.Time) (bool, error) {
	cad, zone := settings.CadenceFor(c.Rep)
	key := planKey(settings, cad, c.Rep.OwnerID)
	row, err := lockCadence(ctx, tx, c.Active.ID)
	if err != nil {
		return false, err
	}
	if row.State != cadenceActive || row.PlanKey == key {
		return false, nil
	}
	row.OwnerID, row.Timezone, row.ZoneSource, row.PlanKey = ownerRef(c.Rep), zone.Name(), zone.Source, key
	if err := saveSchedule(ctx, tx, row, now); err != nil {
		return false, err
	}
	if err := s.schedule(ctx, tx, row, cad, skipMissed, now); err != nil {
		return false, err
	}
	s.logger.InfoContext(ctx, "reminders: cadence rescheduled", "deal_id", c.Facts.ID, "cadence_id", row.ID,
		"time_zone", row.Timezone, "zone_source", row.ZoneSource)
	return true, nil
}

func ownerRef(r Rep) *int64 {
	if r.OwnerID == 0 {
		return nil
	}
	return &r.OwnerID
}

// loadCandidates reads a page of deals after id after: the open, live deals in the
// trigger stage and the deals with an active cadence, with their stage history facts and
// cadences.
func loadCandidates(ctx context.Context, tx pgx.Tx, trigger pipeline.CanonicalStage, scope Scope, after int64) ([]candidate, error) {
	rows, err := tx.Query(ctx, `
		WITH k AS (
			(SELECT d.id FROM deals d JOIN stages s ON s.id = d.stage_id
			 WHERE s.canonical_stage = $1 AND d.deleted_at IS NULL AND NOT d.is_closed AND d.id > $2
			   AND ($3::bigint = 0 OR d.connection_id = $3)
			 ORDER BY d.id LIMIT $4)
			UNION
			(SELECT c.deal_id FROM reminder_cadences c JOIN deals d ON d.id = c.deal_id
			 WHERE c.state = 'active' AND c.deal_id > $2 AND ($3::bigint = 0 OR d.connection_id = $3)
			 ORDER BY c.deal_id LIMIT $4)
			ORDER BY 1 LIMIT $4
		)
		SELECT `+dealColumns+`, d.stage_entered_at, l.entered_at, l.exited_at, r.run_start,
		       coalesce(d.remote_updated_at, d.synced_at),
		       a.id, a.state, a.trigger_stage, a.entered_at, a.plan_key, p.id, p.state, coalesce(p.ended_by, ''), p.trigger_stage, p.entered_at
		FROM k JOIN deals d ON d.id = k.id
		`+dealJoins+`
		LEFT JOIN LATERAL (
			SELECT h.entered_at, h.exited_at FROM deal_stage_history h JOIN stages hs ON hs.id = h.stage_id
			WHERE h.deal_id = d.id AND hs.canonical_stage IS NOT NULL AND hs.canonical_stage <> $1
			ORDER BY h.entered_at DESC LIMIT 1
		) l ON true
		LEFT JOIN LATERAL (
			SELECT min(h.entered_at) AS run_start FROM deal_stage_history h JOIN stages hs ON hs.id = h.stage_id
			WHERE h.deal_id = d.id AND hs.canonical_stage = $1 AND h.entered_at > coalesce(l.entered_at, '-infinity')
		) r ON true
		LEFT JOIN reminder_cadences a ON a.deal_id = d.id AND a.state = 'active'
		LEFT JOIN LATERAL (
			SELECT c.id, c.state, c.ended_by, c.trigger_stage, c.entered_at FROM reminder_cadences c
			WHERE c.deal_id = d.id AND c.trigger_stage = $1 ORDER BY c.id DESC LIMIT 1
		) p ON true
		ORDER BY d.id`, trigger, after, scope.ConnectionID, planPageSize)
	if err != nil {
		return nil, fmt.Errorf("loading deals to plan reminders for: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (candidate, error) {
		var s dealScan
		var stageEntered, leftAt, leftUntil, runStart *time.Time
		var fallback time.Time
		var aID, pID *int64
		var aState, aTrigger, aKey, pState, pTrigger *string
		var pEndedBy string
		var aEntered, pEntered *time.Time
		targets := append(s.targets(), &stageEntered, &leftAt, &leftUntil, &runStart, &fallback,
			&aID, &aState, &aTrigger, &aEntered, &aKey, &pID, &pState, &pEndedBy, &pTrigger, &pEntered)
		if err := row.Scan(targets...); err != nil {
			return candidate{}, err
		}
		d, err := s.finish()
		if err != nil {
			return candidate{}, err
		}
		c := candidate{deal: d, Entry: Entry{
			StageEnteredAt: deref(stageEntered), LeftAt: deref(leftAt), LeftUntil: deref(leftUntil),
			RunStart: deref(runStart), Fallback: fallback,
		}}
		if aID != nil {
			c.Active = &cadenceRef{ID: *aID, State: *aState, Trigger: pipeline.CanonicalStage(*aTrigger), EnteredAt: *aEntered,
				PlanKey: *aKey}
		}
		if pID != nil {
			c.Latest = &cadenceRef{ID: *pID, State: *pState, EndedBy: pEndedBy, Trigger: pipeline.CanonicalStage(*pTrigger), EnteredAt: *pEntered}
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading deals to plan reminders for: %w", err)
	}
	return out, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
