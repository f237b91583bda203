package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

// The deal rules run set-based in one scan of the open deals of the evaluated
// connections (findingsSQL): every threshold is joined in (computed in Go: business days,
// learned stage times), logged activities are looked up only for deals that are idle or
// without a next step on their own columns, and each rule whose condition holds yields a
// compact finding with the facts behind it and a signature of them. Evidence (details)
// is built only for findings that are new or whose facts changed (detailsSQL), so a run
// over a pipeline that did not change writes almost nothing.
const findingsSQL = `
INSERT INTO detect_findings (rule, subject_key, connection_id, deal_id, owner_id, team, stage_id, severity,
                             at1, at2, num1, int1, txt1, txt2, sig)
WITH idle_t AS (
    SELECT * FROM unnest(@it_calendar::text[], @it_stage::text[], @it_threshold::text[],
                         @it_warn::timestamptz[], @it_stalled::timestamptz[], @it_close_lost::timestamptz[])
        AS t(calendar, stage, threshold, warn_cutoff, stalled_cutoff, close_lost_cutoff)
), owner_t AS (
    SELECT * FROM unnest(@ot_owner::bigint[], @ot_team::text[], @ot_calendar::text[]) AS t(owner_id, team, calendar)
), stuck_t AS (
    SELECT * FROM unnest(@st_stage::bigint[], @st_days::float8[], @st_label::text[], @st_source::text[],
                         @st_won::int[], @st_cutoff::timestamptz[], @st_critical::timestamptz[])
        AS t(stage_id, days, label, source, won_deals, cutoff, critical_cutoff)
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
)
SELECT r.rule,
       r.rule || ':deal:' || d.id
           || CASE WHEN r.rule IN ('idle', 'stuck_in_stage') THEN ':stage:' || coalesce(d.stage_id::text, 'none') ELSE '' END,
       d.connection_id, d.id, d.owner_id, ot.team, d.stage_id, r.severity,
       r.at1, r.at2, r.num1, r.int1, r.txt1, r.txt2,
       concat_ws('|', r.severity, d.name, d.amount, d.currency, d.close_date, extract(epoch FROM se.entered_at)::bigint,
                 extract(epoch FROM r.at1)::bigint, extract(epoch FROM r.at2)::bigint, r.num1, r.int1, r.txt1, r.txt2)
FROM deals d
JOIN connections c ON c.id = d.connection_id
LEFT JOIN stages s ON s.id = d.stage_id
LEFT JOIN owner_t ot ON ot.owner_id = d.owner_id
LEFT JOIN idle_t it ON it.calendar = coalesce(ot.calendar, '') AND it.stage = coalesce(s.canonical_stage, '')
LEFT JOIN stuck_t st ON st.stage_id = d.stage_id
LEFT JOIN slips sl ON sl.deal_id = d.id
CROSS JOIN LATERAL (
    SELECT coalesce(d.stage_entered_at,
                    (SELECT max(h.entered_at) FROM deal_stage_history h
                     WHERE h.deal_id = d.id AND h.stage_id = d.stage_id AND h.exited_at IS NULL)) AS entered_at
) se
CROSS JOIN LATERAL (SELECT greatest(d.last_activity_at, se.entered_at, d.remote_created_at) AS touch_at) t0
CROSS JOIN LATERAL (
    SELECT @idle_on AND t0.touch_at < it.warn_cutoff AND NOT (@idle_exclude_zero AND coalesce(d.amount, 0) = 0)
               AND NOT (@idle_suppress AND coalesce(d.next_activity_at >= @now, false)) AS idle,
           @nns_on AND s.canonical_stage = ANY(@nns_stages::text[])
               AND (d.next_activity_at IS NULL OR d.next_activity_at < @now OR d.next_activity_at > @horizon)
               AND coalesce(se.entered_at, d.remote_created_at) < @grace_cutoff AS nns
) p
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.idle THEN (SELECT max(a.occurred_at) FROM activities a
                                  WHERE a.deal_id = d.id AND a.done AND a.deleted_at IS NULL AND a.occurred_at <= @now)
           END AS done_at,
           CASE WHEN p.idle OR p.nns THEN (SELECT min(a.occurred_at) FROM activities a
                                           WHERE a.deal_id = d.id AND NOT a.done AND a.deleted_at IS NULL AND a.occurred_at >= @now)
           END AS planned_at
) act
CROSS JOIN LATERAL (
    SELECT greatest(t0.touch_at, act.done_at) AS touch_at,
           least(CASE WHEN d.next_activity_at >= @now THEN d.next_activity_at END, act.planned_at) AS next_at
) t
CROSS JOIN LATERAL (VALUES
    ('idle', p.idle AND t.touch_at < it.warn_cutoff AND NOT (@idle_suppress AND act.planned_at IS NOT NULL),
     CASE WHEN t.touch_at < it.stalled_cutoff THEN 'critical' ELSE 'warning' END,
     t.touch_at, d.next_activity_at, NULL::float8, CASE WHEN t.touch_at < it.close_lost_cutoff THEN 1 ELSE 0 END,
     CASE WHEN act.done_at IS NOT NULL AND act.done_at >= t0.touch_at THEN 'activity'
          WHEN t.touch_at = d.last_activity_at THEN 'crm_last_activity'
          WHEN t.touch_at = se.entered_at THEN 'stage_entered' ELSE 'created' END,
     it.threshold),
    ('stuck_in_stage', @stuck_on AND se.entered_at < st.cutoff AND NOT (@stuck_exclude_zero AND coalesce(d.amount, 0) = 0),
     CASE WHEN se.entered_at < st.critical_cutoff THEN 'critical' ELSE 'warning' END,
     se.entered_at, NULL::timestamptz, st.days, st.won_deals, st.source, st.label),
    ('past_close_date', @past_on AND d.close_date < @today::date
         AND NOT (@past_ignore_default AND c.kind = 'hubspot' AND sl.deal_id IS NULL
                  AND coalesce(d.close_date = (date_trunc('month', d.remote_created_at AT TIME ZONE @tz)
                                               + interval '1 month - 1 day')::date, false)),
     CASE WHEN d.close_date < @past_critical::date THEN 'critical' ELSE 'warning' END,
     NULL::timestamptz, NULL::timestamptz, NULL::float8, NULL::int, NULL::text, NULL::text),
    ('close_date_slipped', @slip_on AND ((sl.pushed_out AND d.close_date > @period_end::date) OR sl.push_count >= @escalate_at),
     CASE WHEN sl.push_count >= @escalate_at THEN 'critical' ELSE 'warning' END,
     NULL::timestamptz, NULL::timestamptz, NULL::float8, sl.push_count,
     (coalesce(sl.pushed_out, false) AND d.close_date > @period_end::date)::text, NULL::text),
    ('no_next_step', p.nns AND coalesce(t.next_at > @horizon, true), 'warning',
     NULL::timestamptz, coalesce(t.next_at, d.next_activity_at), NULL::float8, NULL::int,
     CASE WHEN t.next_at IS NOT NULL THEN 'too_far' WHEN d.next_activity_at < @now THEN 'overdue' ELSE 'none' END,
     NULL::text)
) r(rule, fires, severity, at1, at2, num1, int1, txt1, txt2)
WHERE d.connection_id = ANY(@conns::bigint[]) AND NOT d.is_closed AND d.deleted_at IS NULL AND r.fires`

// findingsTableSQL holds this run's findings: one row per (rule, subject) whose condition
// holds, with its facts in generic columns (see findingsSQL), their signature, and the
// details once built.
const findingsTableSQL = `
CREATE TEMP TABLE detect_findings (
    rule          text    NOT NULL,
    subject_key   text    NOT NULL,
    connection_id bigint,
    deal_id       bigint,
    owner_id      bigint,
    team          text,
    stage_id      bigint,
    severity      text    NOT NULL,
    at1           timestamptz,
    at2           timestamptz,
    num1          float8,
    int1          int,
    txt1          text,
    txt2          text,
    sig           text    NOT NULL,
    changed       boolean NOT NULL DEFAULT false,
    details       jsonb
) ON COMMIT DROP`

// detailsSQL builds the evidence of the deal findings that are new or changed.
const detailsSQL = `
UPDATE detect_findings f
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
WHERE f.changed AND f.details IS NULL AND d.id = f.deal_id`

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
	rules  config.Rules
	now    time.Time
	conns  []int64
	cals   calendars
	dir    *Directory
	logger *slog.Logger
}

// evaluateDealRules writes the deal findings of the evaluated connections into
// detect_findings and returns the parameters detailsSQL needs later.
func evaluateDealRules(ctx context.Context, tx pgx.Tx, in dealRuleInput) (pgx.NamedArgs, error) {
	r := in.rules
	org := in.cals.of("")
	args, err := stuckArgs(ctx, tx, in)
	if err != nil {
		return nil, err
	}
	var (
		itCal, itStage, itThreshold []string
		itWarn, itStalled, itLost   []*time.Time
	)
	for _, t := range idleThresholds(r.Idle, in.cals, in.now) {
		itCal = append(itCal, t.Calendar)
		itStage = append(itStage, string(t.Stage))
		itThreshold = append(itThreshold, t.Threshold.String())
		itWarn = append(itWarn, timePtr(t.Warn))
		itStalled = append(itStalled, timePtr(t.Stalled))
		itLost = append(itLost, timePtr(t.CloseLost))
	}
	var (
		otOwner       []int64
		otTeam, otCal []string
	)
	for id, p := range in.dir.people {
		if p.Team == "" {
			continue
		}
		cal := ""
		if _, ok := in.cals[p.Team]; ok {
			cal = p.Team
		}
		otOwner, otTeam, otCal = append(otOwner, id), append(otTeam, p.Team), append(otCal, cal)
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
	}) {
		args[k] = v
	}
	start := time.Now()
	tag, err := tx.Exec(ctx, findingsSQL, args)
	if err != nil {
		return nil, fmt.Errorf("evaluating the deal rules: %w", err)
	}
	in.logger.DebugContext(ctx, "detect: evaluated the deal rules", "findings", tag.RowsAffected(), "took", time.Since(start))
	return args, nil
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
		h                  stageHistory
		canonical          string
	)
	_, err = pgx.ForEachRow(rows, []any{&h.StageID, &canonical, &h.RotDays, &h.WonDeals, &h.PercentileDays}, func() error {
		h.Canonical = pipeline.CanonicalStage(canonical)
		t, ok := stuckThresholdFor(r, h, org, in.now)
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
