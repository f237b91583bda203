package alerting

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

// The deal rules run in two set-based steps. candidatesSQL scans the open deals of the
// evaluated connections once and keeps those for which some rule's condition holds on the
// deal's own columns, with every threshold joined in. The per-rule statements then refine
// the few candidates (logged activities, close-date history) and write findings with
// their evidence.
const candidatesSQL = `
CREATE TEMP TABLE detect_deals ON COMMIT DROP AS
WITH idle_t AS (
    SELECT * FROM unnest(@it_calendar::text[], @it_stage::text[], @it_threshold::text[],
                         @it_warn::timestamptz[], @it_stalled::timestamptz[], @it_close_lost::timestamptz[])
        AS t(calendar, stage, threshold, warn_cutoff, stalled_cutoff, close_lost_cutoff)
), owner_cal AS (
    SELECT * FROM unnest(@oc_owner::bigint[], @oc_calendar::text[]) AS t(owner_id, calendar)
), stuck_t AS (
    SELECT * FROM unnest(@st_stage::bigint[], @st_days::float8[], @st_label::text[], @st_source::text[],
                         @st_won::int[], @st_cutoff::timestamptz[], @st_critical::timestamptz[])
        AS t(stage_id, days, label, source, won_deals, cutoff, critical_cutoff)
), slips AS (
    SELECT ch.deal_id,
           count(*) FILTER (WHERE ch.new_date > ch.old_date) AS push_count,
           bool_or(ch.changed_at >= @period_start AND ch.old_date BETWEEN @period_start::date AND @period_end::date
                   AND ch.new_date > @period_end::date) AS pushed_out
    FROM (SELECT deal_id, changed_at,
                 CASE WHEN old_value ~ '^\d{4}-\d{2}-\d{2}' THEN left(old_value, 10)::date END AS old_date,
                 CASE WHEN new_value ~ '^\d{4}-\d{2}-\d{2}' THEN left(new_value, 10)::date END AS new_date
          FROM deal_changes WHERE field = 'close_date') ch
    GROUP BY ch.deal_id
)
SELECT d.id, d.connection_id, d.external_id, d.name, d.amount, d.currency, d.stage_id, d.owner_id,
       d.close_date, d.last_activity_at, d.next_activity_at, d.remote_created_at,
       se.entered_at AS stage_entered_at, s.name AS stage_name, s.canonical_stage, t.touch_at,
       it.threshold AS idle_threshold, it.stalled_cutoff, it.close_lost_cutoff, it.warn_cutoff,
       st.days AS stuck_days, st.label AS stuck_label, st.source AS stuck_source, st.won_deals AS stuck_won_deals,
       st.critical_cutoff AS stuck_critical_cutoff,
       coalesce(sl.push_count, 0) AS push_count, coalesce(sl.pushed_out, false) AS pushed_out,
       f.is_idle, f.is_stuck, f.is_past, f.is_slipped, f.is_nns
FROM deals d
JOIN connections c ON c.id = d.connection_id
LEFT JOIN stages s ON s.id = d.stage_id
LEFT JOIN owner_cal oc ON oc.owner_id = d.owner_id
LEFT JOIN idle_t it ON it.calendar = coalesce(oc.calendar, '') AND it.stage = coalesce(s.canonical_stage, '')
LEFT JOIN stuck_t st ON st.stage_id = d.stage_id
LEFT JOIN slips sl ON sl.deal_id = d.id
CROSS JOIN LATERAL (
    SELECT coalesce(d.stage_entered_at,
                    (SELECT max(h.entered_at) FROM deal_stage_history h
                     WHERE h.deal_id = d.id AND h.stage_id = d.stage_id AND h.exited_at IS NULL)) AS entered_at
) se
CROSS JOIN LATERAL (SELECT greatest(d.last_activity_at, se.entered_at, d.remote_created_at) AS touch_at) t
CROSS JOIN LATERAL (
    SELECT @idle_on AND it.warn_cutoff IS NOT NULL AND t.touch_at < it.warn_cutoff
               AND NOT (@idle_exclude_zero AND coalesce(d.amount, 0) = 0)
               AND NOT (@idle_suppress AND coalesce(d.next_activity_at >= @now, false)) AS is_idle,
           @stuck_on AND st.cutoff IS NOT NULL AND se.entered_at < st.cutoff
               AND NOT (@stuck_exclude_zero AND coalesce(d.amount, 0) = 0) AS is_stuck,
           @past_on AND d.close_date < @today::date
               AND NOT (@past_ignore_default AND c.kind = 'hubspot' AND sl.deal_id IS NULL
                        AND coalesce(d.close_date = (date_trunc('month', d.remote_created_at AT TIME ZONE @tz)
                                                     + interval '1 month - 1 day')::date, false)) AS is_past,
           @slip_on AND ((coalesce(sl.pushed_out, false) AND d.close_date > @period_end::date)
                         OR coalesce(sl.push_count, 0) >= @escalate_at) AS is_slipped,
           @nns_on AND s.canonical_stage = ANY(@nns_stages::text[])
               AND (d.next_activity_at IS NULL OR d.next_activity_at < @now OR d.next_activity_at > @horizon)
               AND coalesce(se.entered_at, d.remote_created_at) < @grace_cutoff AS is_nns
) f
WHERE d.connection_id = ANY(@conns::bigint[]) AND NOT d.is_closed AND d.deleted_at IS NULL
  AND (f.is_idle OR f.is_stuck OR f.is_past OR f.is_slipped OR f.is_nns)`

// findingsTableSQL holds this run's findings: one row per (rule, subject) whose condition holds.
const findingsTableSQL = `
CREATE TEMP TABLE detect_findings (
    rule          text   NOT NULL,
    subject_key   text   NOT NULL,
    connection_id bigint,
    deal_id       bigint,
    owner_id      bigint,
    team          text,
    stage_id      bigint,
    severity      text   NOT NULL,
    details       jsonb  NOT NULL
) ON COMMIT DROP`

// dealBaseSQL is the evidence every deal alert carries.
const dealBaseSQL = `jsonb_build_object(
    'deal_id', dd.id, 'deal_external_id', dd.external_id, 'deal_name', dd.name, 'amount', dd.amount,
    'currency', dd.currency, 'stage_id', dd.stage_id, 'stage_name', dd.stage_name,
    'canonical_stage', dd.canonical_stage, 'owner_id', dd.owner_id, 'close_date', dd.close_date,
    'stage_entered_at', dd.stage_entered_at, 'connection_id', dd.connection_id, 'data_as_of', c.last_synced_at)`

const dealFindingColumns = `INSERT INTO detect_findings (rule, subject_key, connection_id, deal_id, owner_id, stage_id, severity, details)`

// idleSQL refines idle candidates with logged activities (a later done activity is a
// touch; a planned one ahead suppresses the alert) and records the evidence.
const idleSQL = dealFindingColumns + `
SELECT 'idle', 'idle:deal:' || dd.id || ':stage:' || coalesce(dd.stage_id::text, 'none'),
       dd.connection_id, dd.id, dd.owner_id, dd.stage_id,
       CASE WHEN t.touch_at < dd.stalled_cutoff THEN 'critical' ELSE 'warning' END,
       ` + dealBaseSQL + ` || jsonb_build_object(
           'last_touch_at', t.touch_at,
           'last_touch_source', CASE WHEN la.occurred_at IS NOT NULL AND la.occurred_at >= dd.touch_at THEN 'activity'
                                     WHEN t.touch_at = dd.last_activity_at THEN 'crm_last_activity'
                                     WHEN t.touch_at = dd.stage_entered_at THEN 'stage_entered'
                                     ELSE 'created' END,
           'last_activity_kind', CASE WHEN la.occurred_at IS NOT NULL AND la.occurred_at >= dd.touch_at
                                      THEN la.kind || coalesce(' (' || la.direction || ')', '') END,
           'days_idle', floor(extract(epoch FROM @now - t.touch_at) / 86400)::int,
           'threshold', dd.idle_threshold,
           'next_activity_at', dd.next_activity_at,
           'stalled', t.touch_at < dd.stalled_cutoff,
           'suggest_close_lost', coalesce(t.touch_at < dd.close_lost_cutoff, false))
FROM detect_deals dd
JOIN connections c ON c.id = dd.connection_id
LEFT JOIN LATERAL (
    SELECT a.occurred_at, a.kind, a.direction FROM activities a
    WHERE a.deal_id = dd.id AND a.done AND a.deleted_at IS NULL AND a.occurred_at <= @now
    ORDER BY a.occurred_at DESC LIMIT 1
) la ON true
LEFT JOIN LATERAL (
    SELECT min(a.occurred_at) AS at FROM activities a
    WHERE @idle_suppress AND a.deal_id = dd.id AND NOT a.done AND a.deleted_at IS NULL AND a.occurred_at >= @now
) na ON true
CROSS JOIN LATERAL (SELECT greatest(dd.touch_at, la.occurred_at) AS touch_at) t
WHERE dd.is_idle AND t.touch_at < dd.warn_cutoff AND na.at IS NULL`

const stuckSQL = dealFindingColumns + `
SELECT 'stuck_in_stage', 'stuck_in_stage:deal:' || dd.id || ':stage:' || dd.stage_id,
       dd.connection_id, dd.id, dd.owner_id, dd.stage_id,
       CASE WHEN dd.stage_entered_at < dd.stuck_critical_cutoff THEN 'critical' ELSE 'warning' END,
       ` + dealBaseSQL + ` || jsonb_build_object(
           'days_in_stage', floor(extract(epoch FROM @now - dd.stage_entered_at) / 86400)::int,
           'threshold_days', dd.stuck_days,
           'threshold', dd.stuck_label,
           'threshold_source', dd.stuck_source,
           'won_deals_learned_from', dd.stuck_won_deals,
           'critical_factor', @critical_factor::float8)
FROM detect_deals dd
JOIN connections c ON c.id = dd.connection_id
WHERE dd.is_stuck`

const pastCloseDateSQL = dealFindingColumns + `
SELECT 'past_close_date', 'past_close_date:deal:' || dd.id,
       dd.connection_id, dd.id, dd.owner_id, dd.stage_id,
       CASE WHEN dd.close_date < @past_critical::date THEN 'critical' ELSE 'warning' END,
       ` + dealBaseSQL + ` || jsonb_build_object(
           'days_overdue', @today::date - dd.close_date,
           'critical_after', @past_critical_after::text)
FROM detect_deals dd
JOIN connections c ON c.id = dd.connection_id
WHERE dd.is_past`

const slippedSQL = dealFindingColumns + `
SELECT 'close_date_slipped', 'close_date_slipped:deal:' || dd.id,
       dd.connection_id, dd.id, dd.owner_id, dd.stage_id,
       CASE WHEN dd.push_count >= @escalate_at THEN 'critical' ELSE 'warning' END,
       ` + dealBaseSQL + ` || jsonb_build_object(
           'push_count', dd.push_count,
           'pushed_out_of_period', dd.pushed_out AND dd.close_date > @period_end::date,
           'period_start', @period_start::date, 'period_end', @period_end::date,
           'escalate_at', @escalate_at::int,
           'close_date_history', (
               SELECT jsonb_agg(jsonb_build_object('changed_at', h.changed_at, 'from', h.old_value, 'to', h.new_value)
                                ORDER BY h.changed_at)
               FROM (SELECT changed_at, old_value, new_value FROM deal_changes
                     WHERE deal_id = dd.id AND field = 'close_date' ORDER BY changed_at DESC LIMIT 5) h))
FROM detect_deals dd
JOIN connections c ON c.id = dd.connection_id
WHERE dd.is_slipped`

// noNextStepSQL refines candidates with planned activities within the horizon.
const noNextStepSQL = dealFindingColumns + `
SELECT 'no_next_step', 'no_next_step:deal:' || dd.id,
       dd.connection_id, dd.id, dd.owner_id, dd.stage_id, 'warning',
       ` + dealBaseSQL + ` || jsonb_build_object(
           'next_activity_at', dd.next_activity_at,
           'reason', CASE WHEN dd.next_activity_at IS NULL THEN 'none'
                          WHEN dd.next_activity_at < @now THEN 'overdue' ELSE 'too_far' END,
           'horizon', @horizon_days::text)
FROM detect_deals dd
JOIN connections c ON c.id = dd.connection_id
WHERE dd.is_nns AND NOT EXISTS (
    SELECT 1 FROM activities a
    WHERE a.deal_id = dd.id AND NOT a.done AND a.deleted_at IS NULL AND a.occurred_at BETWEEN @now AND @horizon)`

// stageHistorySQL learns, per open stage of the evaluated connections, how long won deals
// (closed within the learning window) stayed in it.
const stageHistorySQL = `
SELECT s.id, coalesce(s.canonical_stage, ''), coalesce(s.rot_days, 0), coalesce(l.won_deals, 0),
       coalesce(l.pct, 'NaN'::float8)
FROM stages s
LEFT JOIN (
    SELECT h.stage_id, count(DISTINCT h.deal_id)::int AS won_deals,
           percentile_cont(@pct::float8) WITHIN GROUP (ORDER BY extract(epoch FROM h.exited_at - h.entered_at) / 86400) AS pct
    FROM deal_stage_history h
    JOIN deals d ON d.id = h.deal_id
    WHERE @learn AND d.is_won AND d.deleted_at IS NULL AND d.closed_at >= @since
      AND h.exited_at > h.entered_at AND h.stage_id IS NOT NULL
      AND d.connection_id = ANY(@conns::bigint[])
    GROUP BY h.stage_id
) l ON l.stage_id = s.id
WHERE s.connection_id = ANY(@conns::bigint[]) AND NOT s.is_closed AND s.deleted_at IS NULL`

// dealRuleInput is what evaluateDealRules needs besides the transaction.
type dealRuleInput struct {
	rules config.Rules
	now   time.Time
	conns []int64
	cals  calendars
	dir   *Directory
}

// evaluateDealRules writes the deal findings of the evaluated connections into detect_findings.
func evaluateDealRules(ctx context.Context, tx pgx.Tx, in dealRuleInput) error {
	r := in.rules
	org := in.cals.of("")
	args, err := stuckArgs(ctx, tx, in)
	if err != nil {
		return err
	}

	idle := IdleThresholds(r.Idle, in.cals, in.now)
	var (
		itCal, itStage, itThreshold []string
		itWarn, itStalled, itLost   []*time.Time
	)
	for _, t := range idle {
		itCal = append(itCal, t.Calendar)
		itStage = append(itStage, string(t.Stage))
		itThreshold = append(itThreshold, t.Threshold.String())
		itWarn = append(itWarn, timePtr(t.Warn))
		itStalled = append(itStalled, timePtr(t.Stalled))
		itLost = append(itLost, timePtr(t.CloseLost))
	}
	var ocOwner []int64
	var ocCal []string
	for id, p := range in.dir.people {
		if _, ok := in.cals[p.Team]; ok && p.Team != "" {
			ocOwner = append(ocOwner, id)
			ocCal = append(ocCal, p.Team)
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
	for k, v := range (pgx.NamedArgs{
		"conns": in.conns, "now": in.now, "today": today.Format(time.DateOnly), "tz": org.Location().String(),
		"it_calendar": itCal, "it_stage": itStage, "it_threshold": itThreshold,
		"it_warn": itWarn, "it_stalled": itStalled, "it_close_lost": itLost,
		"oc_owner": ocOwner, "oc_calendar": ocCal,
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
	}) {
		args[k] = v
	}
	steps := []struct {
		what, sql string
	}{
		{"selecting candidate deals", candidatesSQL},
		{"analyzing candidate deals", `ANALYZE detect_deals`},
		{"evaluating idle deals", idleSQL},
		{"evaluating deals stuck in stage", stuckSQL},
		{"evaluating deals past their close date", pastCloseDateSQL},
		{"evaluating slipped close dates", slippedSQL},
		{"evaluating deals without a next step", noNextStepSQL},
		{"dropping candidate deals", `DROP TABLE detect_deals`},
	}
	for _, s := range steps {
		if _, err := tx.Exec(ctx, s.sql, args); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// stuckArgs learns the stuck-in-stage thresholds of the evaluated connections' stages.
func stuckArgs(ctx context.Context, tx pgx.Tx, in dealRuleInput) (pgx.NamedArgs, error) {
	r := in.rules.StuckInStage
	org := in.cals.of("")
	rows, err := tx.Query(ctx, stageHistorySQL, pgx.NamedArgs{
		"conns": in.conns, "pct": r.Percentile, "learn": r.Enabled && r.Mode == "learned",
		"since": org.Before(in.now, r.LearnWindow),
	})
	if err != nil {
		return nil, fmt.Errorf("learning time in stage of won deals: %w", err)
	}
	var (
		ids                []int64
		days               []float64
		labels, sources    []string
		won                []int32
		cutoffs, criticals []time.Time
		h                  StageHistory
		canonical          string
	)
	_, err = pgx.ForEachRow(rows, []any{&h.StageID, &canonical, &h.RotDays, &h.WonDeals, &h.PercentileDays}, func() error {
		h.Canonical = pipeline.CanonicalStage(canonical)
		t, ok := StuckThresholdFor(r, h, org, in.now)
		if !ok {
			return nil
		}
		ids, days, labels, sources = append(ids, t.StageID), append(days, t.Days), append(labels, t.Label), append(sources, t.Source)
		won = append(won, int32(min(t.WonDeals, math.MaxInt32)))
		cutoffs, criticals = append(cutoffs, t.Cutoff), append(criticals, t.Critical)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("learning time in stage of won deals: %w", err)
	}
	return pgx.NamedArgs{
		"st_stage": ids, "st_days": days, "st_label": labels, "st_source": sources, "st_won": won,
		"st_cutoff": cutoffs, "st_critical": criticals,
	}, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
