package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

// The deal rules run set-based in one scan of the open deals of the evaluated
// connections (dealFindingsSQL): every threshold is joined in (computed in Go: business
// days, learned stage times), logged activities are looked up only for deals already
// idle or without a next step on their own columns, and each rule whose condition holds
// yields a compact finding: the facts behind it in generic columns (at1, at2, num1, int1,
// txt1, txt2; see the VALUES list for what each rule puts where) and a signature of them.
// The scan is compared with the open alerts in the same statement (dealDiffSQL), so only
// what changed is written; evidence (details) is built for new and changed findings only
// (detailsSQL).

// dealInputsSQL are the CTEs the deal findings join: the thresholds of every open stage
// per calendar (stage 0 stands for deals without a stage), owners' teams and calendars,
// and close-date pushes.
const dealInputsSQL = `
stage_t AS (
    SELECT * FROM unnest(@st_calendar::int[], @st_stage::bigint[], @st_canonical::text[], @st_hubspot::bool[],
                         @st_idle_threshold::text[], @st_idle_warn::timestamptz[], @st_idle_stalled::timestamptz[],
                         @st_idle_lost::timestamptz[], @st_stuck_days::float8[], @st_stuck_label::text[],
                         @st_stuck_source::text[], @st_stuck_won::int[], @st_stuck_cutoff::timestamptz[],
                         @st_stuck_critical::timestamptz[])
        AS t(calendar, stage_id, canonical, hubspot, idle_threshold, warn_cutoff, stalled_cutoff, close_lost_cutoff,
             stuck_days, stuck_label, stuck_source, stuck_won, stuck_cutoff, stuck_critical)
), owner_t AS (
    SELECT * FROM unnest(@ot_owner::bigint[], @ot_team::text[], @ot_calendar::int[]) AS t(owner_id, team, calendar)
), slips AS (
    SELECT ch.deal_id,
           count(*) FILTER (WHERE ch.new_date > ch.old_date)::int AS push_count,
           bool_or(ch.changed_at >= @period_start::date AND ch.old_date BETWEEN @period_start::date AND @period_end::date
                   AND ch.new_date > @period_end::date) AS pushed_out
    FROM (SELECT deal_id, changed_at,
                 CASE WHEN old_value ~ '^\d{4}-\d{2}-\d{2}' THEN left(old_value, 10)::date END AS old_date,
                 CASE WHEN new_value ~ '^\d{4}-\d{2}-\d{2}' THEN left(new_value, 10)::date END AS new_date
          FROM deal_changes WHERE field = 'close_date') ch
    GROUP BY ch.deal_id
)`

// dealFindingsSQL selects the deal findings (see the comment above): one pass keeps the
// deals for which some rule's condition holds on their own columns and reads, for those
// only, the activities that can change idle and no next step (d); every rule that fires
// then becomes a row (r) whose columns are computed only then (e). The OFFSET 0
// subqueries are evaluated once per deal instead of being inlined wherever they are used.
const dealFindingsSQL = `
SELECT r.rule, CASE WHEN r.rule IN ('idle', 'stuck_in_stage') THEN coalesce(d.stage_id, 0) ELSE 0 END AS stage_key,
       d.connection_id, d.id AS deal_id, d.owner_id, d.team, d.stage_id, e.severity,
       e.at1, e.at2, e.num1, e.int1, e.txt1, e.txt2,
       hash_record_extended(ROW(e.severity, d.name, d.amount, d.currency, d.close_date, d.entered_at,
                                e.at1, e.at2, e.num1, e.int1, e.txt1, e.txt2), 0) AS sig
FROM (
    SELECT d.id, d.connection_id, d.owner_id, d.stage_id, d.name, d.amount, d.currency, d.close_date,
           d.last_activity_at, d.next_activity_at, ot.team, st.canonical, st.idle_threshold, st.warn_cutoff,
           st.stalled_cutoff, st.close_lost_cutoff, st.stuck_days, st.stuck_label, st.stuck_source, st.stuck_won,
           st.stuck_critical, sl.push_count, sl.pushed_out,
           ` + idleExpr + ` AS idle, ` + nnsExpr + ` AS nns, ` + stuckExpr + ` AS stuck,
           ` + pastExpr + ` AS past, ` + slippedExpr + ` AS slipped,
           ` + enteredExpr + ` AS entered_at, ` + touchExpr + ` AS touch_at,
           CASE WHEN ` + idleExpr + ` THEN (
               SELECT max(a.occurred_at) FROM activities a
               WHERE a.deal_id = d.id AND a.done AND a.deleted_at IS NULL AND a.occurred_at <= @now) END AS done_at,
           CASE WHEN ` + idleExpr + ` OR ` + nnsExpr + ` THEN (
               SELECT min(a.occurred_at) FROM activities a
               WHERE a.deal_id = d.id AND NOT a.done AND a.deleted_at IS NULL AND a.occurred_at >= @now) END AS planned_at
    FROM deals d
    LEFT JOIN owner_t ot ON ot.owner_id = d.owner_id
    LEFT JOIN stage_t st ON st.calendar = coalesce(ot.calendar, 0) AND st.stage_id = coalesce(d.stage_id, 0)
    LEFT JOIN slips sl ON sl.deal_id = d.id
    WHERE d.connection_id = ANY(@conns::bigint[]) AND NOT d.is_closed AND d.deleted_at IS NULL
      AND (` + idleExpr + ` OR ` + nnsExpr + ` OR ` + stuckExpr + ` OR ` + pastExpr + ` OR ` + slippedExpr + `)
    OFFSET 0
) d
CROSS JOIN LATERAL (
    SELECT greatest(d.touch_at, d.done_at) AS touch_at,
           least(CASE WHEN d.next_activity_at >= @now THEN d.next_activity_at END, d.planned_at) AS next_at
) t
CROSS JOIN LATERAL (VALUES
    ('idle', d.idle AND t.touch_at < d.warn_cutoff AND NOT (@idle_suppress AND d.planned_at IS NOT NULL)),
    ('stuck_in_stage', d.stuck),
    ('past_close_date', d.past),
    ('close_date_slipped', d.slipped),
    ('no_next_step', d.nns AND coalesce(t.next_at > @horizon, true))
) r(rule, fires)
CROSS JOIN LATERAL (
    SELECT CASE r.rule
               WHEN 'idle' THEN CASE WHEN t.touch_at < d.stalled_cutoff THEN 'critical' ELSE 'warning' END
               WHEN 'stuck_in_stage' THEN CASE WHEN d.entered_at < d.stuck_critical THEN 'critical' ELSE 'warning' END
               WHEN 'past_close_date' THEN CASE WHEN d.close_date < @past_critical::date THEN 'critical' ELSE 'warning' END
               WHEN 'close_date_slipped' THEN CASE WHEN d.push_count >= @escalate_at THEN 'critical' ELSE 'warning' END
               ELSE 'warning' END AS severity,
           -- idle: last touch; stuck_in_stage: entered the stage
           CASE r.rule WHEN 'idle' THEN t.touch_at WHEN 'stuck_in_stage' THEN d.entered_at END AS at1,
           -- idle: the CRM's next activity; no_next_step: the next activity, if any
           CASE r.rule WHEN 'idle' THEN d.next_activity_at
                       WHEN 'no_next_step' THEN coalesce(t.next_at, d.next_activity_at) END AS at2,
           -- stuck_in_stage: threshold days
           CASE r.rule WHEN 'stuck_in_stage' THEN d.stuck_days END AS num1,
           -- idle: 1 = suggest closing as lost; stuck: won deals learned from; slipped: pushes
           CASE r.rule WHEN 'idle' THEN CASE WHEN t.touch_at < d.close_lost_cutoff THEN 1 ELSE 0 END
                       WHEN 'stuck_in_stage' THEN d.stuck_won
                       WHEN 'close_date_slipped' THEN d.push_count END AS int1,
           -- idle: touch source; stuck: threshold source; slipped: pushed out of the period; no_next_step: why
           CASE r.rule
               WHEN 'idle' THEN CASE WHEN d.done_at IS NOT NULL AND d.done_at >= d.touch_at THEN 'activity'
                                     WHEN t.touch_at = d.last_activity_at THEN 'crm_last_activity'
                                     WHEN t.touch_at = d.entered_at THEN 'stage_entered' ELSE 'created' END
               WHEN 'stuck_in_stage' THEN d.stuck_source
               WHEN 'close_date_slipped' THEN (d.pushed_out AND d.close_date > @period_end::date)::text
               WHEN 'no_next_step' THEN CASE WHEN t.next_at IS NOT NULL THEN 'too_far'
                                             WHEN d.next_activity_at < @now THEN 'overdue' ELSE 'none' END
           END AS txt1,
           -- idle and stuck: the threshold
           CASE r.rule WHEN 'idle' THEN d.idle_threshold WHEN 'stuck_in_stage' THEN d.stuck_label END AS txt2
) e
WHERE r.fires`

// The deal-level conditions of dealFindingsSQL, over deals d, owner_t ot, stage_t st and
// slips sl. A deal passes when any holds; activities then refine idle and no next step.
const (
	enteredExpr = `coalesce(d.stage_entered_at,
        (SELECT max(h.entered_at) FROM deal_stage_history h
         WHERE h.deal_id = d.id AND h.stage_id = d.stage_id AND h.exited_at IS NULL))`
	touchExpr = `greatest(d.last_activity_at, ` + enteredExpr + `, d.remote_created_at)`
	idleExpr  = `(@idle_on AND ` + touchExpr + ` < st.warn_cutoff
        AND NOT (@idle_exclude_zero AND coalesce(d.amount, 0) = 0)
        AND NOT (@idle_suppress AND coalesce(d.next_activity_at >= @now, false)))`
	nnsExpr = `(@nns_on AND st.canonical = ANY(@nns_stages::text[])
        AND (d.next_activity_at IS NULL OR d.next_activity_at < @now OR d.next_activity_at > @horizon)
        AND coalesce(` + enteredExpr + `, d.remote_created_at) < @grace_cutoff)`
	stuckExpr = `(@stuck_on AND ` + enteredExpr + ` < st.stuck_cutoff
        AND NOT (@stuck_exclude_zero AND coalesce(d.amount, 0) = 0))`
	pastExpr = `(@past_on AND d.close_date < @today::date
        AND NOT (@past_ignore_default AND coalesce(st.hubspot, false) AND sl.deal_id IS NULL
                 AND coalesce(d.close_date = (date_trunc('month', d.remote_created_at AT TIME ZONE @tz)
                                              + interval '1 month - 1 day')::date, false)))`
	slippedExpr = `(@slip_on AND ((sl.pushed_out AND d.close_date > @period_end::date) OR sl.push_count >= @escalate_at))`
)

// detailsSQL builds the evidence of the deal findings that are new or changed.
const detailsSQL = `
UPDATE detect_diff f
SET details = jsonb_build_object(
        'deal_id', d.id, 'deal_external_id', d.external_id, 'deal_name', d.name, 'amount', d.amount,
        'currency', d.currency, 'stage_id', d.stage_id, 'stage_name', s.name, 'canonical_stage', s.canonical_stage,
        'owner_id', d.owner_id, 'close_date', d.close_date,
        'stage_entered_at', coalesce(d.stage_entered_at,
                                     (SELECT max(h.entered_at) FROM deal_stage_history h
                                      WHERE h.deal_id = d.id AND h.stage_id = d.stage_id AND h.exited_at IS NULL)),
        'connection_id', d.connection_id, 'data_as_of', c.last_synced_at)
    || CASE f.rule
        WHEN 'idle' THEN jsonb_build_object(
            'last_touch_at', f.at1, 'last_touch_source', f.txt1, 'threshold', f.txt2, 'next_activity_at', f.at2,
            'days_idle', floor(extract(epoch FROM @now - f.at1) / 86400)::int,
            'stalled', f.severity = 'critical', 'suggest_close_lost', f.int1 = 1,
            'last_activity_kind', CASE WHEN f.txt1 = 'activity' THEN (
                SELECT a.kind || coalesce(' (' || a.direction || ')', '') FROM activities a
                WHERE a.deal_id = d.id AND a.done AND a.deleted_at IS NULL AND a.occurred_at = f.at1 LIMIT 1) END)
        WHEN 'stuck_in_stage' THEN jsonb_build_object(
            'days_in_stage', floor(extract(epoch FROM @now - f.at1) / 86400)::int,
            'threshold_days', f.num1, 'threshold', f.txt2, 'threshold_source', f.txt1,
            'won_deals_learned_from', f.int1, 'critical_factor', @critical_factor::float8)
        WHEN 'past_close_date' THEN jsonb_build_object(
            'days_overdue', @today::date - d.close_date, 'critical_after', @past_critical_after::text)
        WHEN 'close_date_slipped' THEN jsonb_build_object(
            'push_count', f.int1, 'pushed_out_of_period', f.txt1 = 'true',
            'period_start', @period_start::date, 'period_end', @period_end::date, 'escalate_at', @escalate_at::int,
            'close_date_history', (
                SELECT jsonb_agg(jsonb_build_object('changed_at', h.changed_at, 'from', h.old_value, 'to', h.new_value)
                                 ORDER BY h.changed_at)
                FROM (SELECT changed_at, old_value, new_value FROM deal_changes
                      WHERE deal_id = d.id AND field = 'close_date' ORDER BY changed_at DESC LIMIT 5) h))
        WHEN 'no_next_step' THEN jsonb_build_object(
            'next_activity_at', f.at2, 'reason', f.txt1, 'horizon', @horizon_days::text)
    END
FROM deals d
JOIN connections c ON c.id = d.connection_id
LEFT JOIN stages s ON s.id = d.stage_id
WHERE (f.is_new OR f.changed) AND f.details IS NULL AND d.id = f.deal_id`

// learnStageTimesSQL learns, per open stage of the evaluated connections, how long the
// won deals closed within the learning window stayed in it, and caches it for a day.
const learnStageTimesSQL = `
INSERT INTO stage_learned_times (stage_id, percentile, window_days, won_deals, percentile_days, learned_at)
SELECT s.id, @pct, @window_days, coalesce(l.won_deals, 0), l.pct, @now
FROM stages s
LEFT JOIN (
    SELECT h.stage_id, count(DISTINCT h.deal_id)::int AS won_deals,
           percentile_cont(@pct::float8) WITHIN GROUP (ORDER BY extract(epoch FROM h.exited_at - h.entered_at) / 86400) AS pct
    FROM deals d
    JOIN deal_stage_history h ON h.deal_id = d.id
    WHERE d.is_closed AND d.deleted_at IS NULL AND d.closed_at >= @since AND d.is_won
      AND d.connection_id = ANY(@conns::bigint[]) AND h.exited_at > h.entered_at AND h.stage_id IS NOT NULL
    GROUP BY h.stage_id
) l ON l.stage_id = s.id
WHERE s.connection_id = ANY(@conns::bigint[]) AND NOT s.is_closed
ON CONFLICT (stage_id) DO UPDATE SET percentile = EXCLUDED.percentile, window_days = EXCLUDED.window_days,
    won_deals = EXCLUDED.won_deals, percentile_days = EXCLUDED.percentile_days, learned_at = EXCLUDED.learned_at`

// stageTimesSQL reads the open stages with what was learned about them.
const stageTimesSQL = `
SELECT s.id, coalesce(s.canonical_stage, ''), coalesce(s.rot_days, 0), c.kind = 'hubspot', coalesce(l.won_deals, 0),
       coalesce(l.percentile_days, 'NaN'::float8),
       l.stage_id IS NOT NULL AND l.learned_at > @stale_before AND l.percentile = @pct AND l.window_days = @window_days
FROM stages s
JOIN connections c ON c.id = s.connection_id
LEFT JOIN stage_learned_times l ON l.stage_id = s.id
WHERE s.connection_id = ANY(@conns::bigint[]) AND NOT s.is_closed`

// learnEvery is how long learned stage times are reused.
const learnEvery = 24 * time.Hour

// dealRuleInput is what evaluateDealRules needs besides the transaction.
type dealRuleInput struct {
	rules  config.Rules
	now    time.Time
	conns  []int64
	cals   calendars
	dir    *Directory
	logger *slog.Logger
}

// dealRuleArgs computes the parameters of dealFindingsSQL and detailsSQL: thresholds as
// cutoffs for every calendar, stage and owner.
func dealRuleArgs(ctx context.Context, tx pgx.Tx, in dealRuleInput) (pgx.NamedArgs, error) {
	r := in.rules
	org := in.cals.of("")
	stages, err := stageThresholds(ctx, tx, in)
	if err != nil {
		return nil, err
	}
	// One row per calendar and stage: the idle cutoffs of the stage's standard stage on
	// that calendar, and the stage's stuck threshold.
	idle := map[string]idleThreshold{}
	for _, t := range idleThresholds(r.Idle, in.cals, in.now) {
		idle[t.Calendar+"/"+string(t.Stage)] = t
	}
	// Calendars are numbered for the join: 0 is the org's.
	calNo := map[string]int32{"": 0}
	for _, k := range slices.Sorted(maps.Keys(in.cals)) {
		if k != "" {
			calNo[k] = int32(len(calNo))
		}
	}
	var (
		stCanonical, stIdleTh, stStuckLabel, stStuckSource []string
		stCal                                              []int32
		stStage                                            []int64
		stHubspot                                          []bool
		stWarn, stStalled, stLost, stStuckCut, stStuckCrit []*time.Time
		stStuckDays                                        []*float64
		stStuckWon                                         []int32
	)
	for cal := range in.cals {
		for _, h := range stages {
			it := idle[cal+"/"+string(h.Canonical)]
			stCal, stStage, stCanonical = append(stCal, calNo[cal]), append(stStage, h.StageID), append(stCanonical, string(h.Canonical))
			stHubspot = append(stHubspot, h.Hubspot)
			stIdleTh, stWarn = append(stIdleTh, it.Threshold.String()), append(stWarn, timePtr(it.Warn))
			stStalled, stLost = append(stStalled, timePtr(it.Stalled)), append(stLost, timePtr(it.CloseLost))
			var days *float64
			if h.stuck.Source != "" {
				d := h.stuck.Days
				days = &d
			}
			stStuckDays, stStuckLabel, stStuckSource = append(stStuckDays, days), append(stStuckLabel, h.stuck.Label), append(stStuckSource, h.stuck.Source)
			stStuckWon = append(stStuckWon, int32(min(h.stuck.WonDeals, math.MaxInt32)))
			stStuckCut, stStuckCrit = append(stStuckCut, timePtr(h.stuck.Cutoff)), append(stStuckCrit, timePtr(h.stuck.Critical))
		}
	}
	var (
		otOwner []int64
		otTeam  []string
		otCal   []int32
	)
	for id, p := range in.dir.people {
		if p.Team != "" {
			otOwner, otTeam, otCal = append(otOwner, id), append(otTeam, p.Team), append(otCal, calNo[p.Team])
		}
	}
	today := org.Today(in.now)
	periodStart, periodEnd := periodBounds(today, r.CloseDateSlipped.Period)
	nnsStages := make([]string, len(r.NoNextStep.Stages))
	for i, s := range r.NoNextStep.Stages {
		nnsStages[i] = string(s)
	}
	pastCritical := org.Before(today, r.PastCloseDate.CriticalAfter)
	if !r.PastCloseDate.CriticalAfter.Business {
		pastCritical = today.AddDate(0, 0, -r.PastCloseDate.CriticalAfter.N)
	}
	return pgx.NamedArgs{
		"conns": in.conns, "now": in.now, "today": today.Format(time.DateOnly), "tz": org.Location().String(),
		"st_calendar": stCal, "st_stage": stStage, "st_canonical": stCanonical, "st_hubspot": stHubspot,
		"st_idle_threshold": stIdleTh, "st_idle_warn": stWarn, "st_idle_stalled": stStalled, "st_idle_lost": stLost,
		"st_stuck_days": stStuckDays, "st_stuck_label": stStuckLabel, "st_stuck_source": stStuckSource,
		"st_stuck_won": stStuckWon, "st_stuck_cutoff": stStuckCut, "st_stuck_critical": stStuckCrit,
		"ot_owner": otOwner, "ot_team": otTeam, "ot_calendar": otCal,
		"idle_on": r.Idle.Enabled, "idle_exclude_zero": r.Idle.ExcludeZeroAmount, "idle_suppress": r.Idle.NextActivitySuppresses,
		"stuck_on": r.StuckInStage.Enabled, "stuck_exclude_zero": r.StuckInStage.ExcludeZeroAmount,
		"critical_factor": r.StuckInStage.CriticalFactor,
		"past_on":         r.PastCloseDate.Enabled, "past_ignore_default": r.PastCloseDate.IgnoreDefaultCloseDates,
		"past_critical": pastCritical.Format(time.DateOnly), "past_critical_after": r.PastCloseDate.CriticalAfter.String(),
		"slip_on": r.CloseDateSlipped.Enabled, "escalate_at": r.CloseDateSlipped.EscalateAt,
		"period_start": periodStart.Format(time.DateOnly), "period_end": periodEnd.Format(time.DateOnly),
		"nns_on": r.NoNextStep.Enabled && len(nnsStages) > 0, "nns_stages": nnsStages,
		"horizon": org.After(in.now, r.NoNextStep.Horizon), "horizon_days": r.NoNextStep.Horizon.String(),
		"grace_cutoff": org.Before(in.now, r.NoNextStep.Grace),
	}, nil
}

// stageRow is an open stage with its stuck threshold (Source "" when off).
type stageRow struct {
	stageHistory
	Hubspot bool
	stuck   stuckThreshold
}

// stageThresholds lists the open stages of the evaluated connections (and stage 0 for
// deals without one) with their stuck-in-stage thresholds, learning won deals' time in
// stage again when the cached figures are older than learnEvery or were learned with
// other settings.
func stageThresholds(ctx context.Context, tx pgx.Tx, in dealRuleInput) ([]stageRow, error) {
	r := in.rules.StuckInStage
	org := in.cals.of("")
	learn := pgx.NamedArgs{
		"conns": in.conns, "pct": r.Percentile, "window_days": r.LearnWindow.N, "now": in.now,
		"since": org.Before(in.now, r.LearnWindow), "stale_before": in.now.Add(-learnEvery),
	}
	var out []stageRow
	for attempt := 0; ; attempt++ {
		rows, err := tx.Query(ctx, stageTimesSQL, learn)
		if err != nil {
			return nil, fmt.Errorf("reading learned time in stage: %w", err)
		}
		out = out[:0]
		fresh := true
		var (
			s         stageRow
			canonical string
			current   bool
		)
		_, err = pgx.ForEachRow(rows, []any{&s.StageID, &canonical, &s.RotDays, &s.Hubspot, &s.WonDeals, &s.PercentileDays, &current}, func() error {
			s.Canonical = pipeline.CanonicalStage(canonical)
			out = append(out, s)
			fresh = fresh && current
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading learned time in stage: %w", err)
		}
		if fresh || !r.Enabled || r.Mode != "learned" || attempt > 0 {
			break
		}
		start := time.Now()
		if _, err := tx.Exec(ctx, learnStageTimesSQL, learn); err != nil {
			return nil, fmt.Errorf("learning time in stage of won deals: %w", err)
		}
		in.logger.DebugContext(ctx, "detect: learned time in stage of won deals", "took", time.Since(start))
	}
	for i := range out {
		out[i].stuck, _ = stuckThresholdFor(r, out[i].stageHistory, org, in.now)
	}
	return append(out, stageRow{stageHistory: stageHistory{PercentileDays: math.NaN()}}), nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
