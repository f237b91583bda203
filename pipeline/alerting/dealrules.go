package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
	"github.com/pipewatch/pipewatch/pipeline"
)

// The deal rules run set-based over the open deals of the evaluated connections, in
// stages that each keep only what can still fire (dealCandidatesSQL): the scan keeps the
// deals past the most lenient threshold of some rule on their own columns (no lookup);
// those are joined with their thresholds (computed in Go: business days, learned stage
// times), owner and close-date pushes and judged exactly; logged activities are looked up
// only for the deals still idle or without a next step; and each rule whose condition
// holds yields a compact finding (dealFindingsSQL): the facts behind it in generic columns
// (at1, at2, num1, int1, txt1, txt2; see dealFindings for what each rule puts where) and a
// signature of them with the severity, stage, owner and team (alerts.evidence_hash). The
// findings are compared with the open alerts in the same statement (dealDiffSQL), by that
// one value, so only what changed is written; evidence (details) is built for new and
// changed findings only (detailsSQL).
//
// Each stage is a subquery ending in LIMIT ALL, so that what it computes is computed once
// per row, not again wherever the next stage refers to it. (OFFSET 0 would do the same but
// also keep the planner from running the stages in parallel workers, and nothing but the
// activity lookups keeps them from running there.)

// dealInputsSQL are the CTEs the deal findings join: the thresholds of every open stage
// per calendar (stage 0 stands for deals without a stage), owners' teams and calendars,
// and close-date pushes. They are not materialized (a CTE scan cannot run in a parallel
// worker): each use computes them again, which costs little.
const dealInputsSQL = `
stage_t AS NOT MATERIALIZED (
    SELECT * FROM unnest(@st_calendar::int[], @st_stage::bigint[], @st_canonical::text[], @st_hubspot::bool[],
                         @st_idle_threshold::text[], @st_idle_rot::bool[], @st_idle_warn::timestamptz[], @st_idle_stalled::timestamptz[],
                         @st_idle_lost::timestamptz[], @st_stuck_days::float8[], @st_stuck_label::text[],
                         @st_stuck_source::text[], @st_stuck_won::int[], @st_stuck_cutoff::timestamptz[],
                         @st_stuck_critical::timestamptz[])
        AS t(calendar, stage_id, canonical, hubspot, idle_threshold, idle_rot, warn_cutoff, stalled_cutoff, close_lost_cutoff,
             stuck_days, stuck_label, stuck_source, stuck_won, stuck_cutoff, stuck_critical)
), owner_t AS NOT MATERIALIZED (
    SELECT * FROM unnest(@ot_owner::bigint[], @ot_team::text[], @ot_calendar::int[]) AS t(owner_id, team, calendar)
), slips AS NOT MATERIALIZED (
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

// dealCandidatesSQL are the CTEs of the deals for which some rule fires, each with every
// rule's verdict (idle, stuck, past, slipped, nns) and the facts the findings are made
// of: deal_c for the deals whose stage entry time the CRM gives, deal_h for the others
// (few: HubSpot and Pipedrive give it), which take it from the deal's open stay in the
// stage history. deal_h looks it up deal by deal, which keeps it from running in
// parallel workers; apart, it does not keep deal_c from doing so. Each runs in three
// stages:
//
//   - c: the open deals that may fire on their own columns, with the time they entered
//     their stage. A deal can only be idle when its last touch, as far as its own columns
//     tell, is before the latest idle cutoff of any stage (@idle_bound), and only be stuck
//     when it entered its stage before the latest stuck cutoff (@stuck_bound); a deal
//     whose stage entry comes from the history is kept for the next stage to judge.
//   - k: each rule's condition, exactly, with the deal's stage thresholds (per the owner's
//     calendar), team and close-date pushes.
//   - d: the deals where one holds, with the activities that can change idle (the last
//     one done) and no next step (the next one planned), read only for those.
var dealCandidatesSQL = dealCandidates("deal_c", "d.stage_entered_at IS NOT NULL", "d.stage_entered_at") + `,
` + dealCandidates("deal_h", "d.stage_entered_at IS NULL", `(
                           SELECT max(h.entered_at) FROM deal_stage_history h
                           WHERE h.deal_id = d.id AND h.stage_id = d.stage_id AND h.exited_at IS NULL)`)

// dealCandidates is a CTE of dealCandidatesSQL named name, over the open deals for which
// which holds, with entered as their stage entry time.
func dealCandidates(name, which, entered string) string {
	return name + ` AS (
    SELECT d.id, d.connection_id, d.owner_id, d.team, d.stage_id, d.name, d.amount, d.currency, d.close_date,
           d.entered_at, d.last_activity_at, d.next_activity_at, d.remote_updated_at, d.idle_threshold, d.stalled_cutoff,
           d.idle_rot, d.close_lost_cutoff, d.stuck_days, d.stuck_label, d.stuck_source, d.stuck_won, d.stuck_critical,
           d.push_count, d.pushed_out, d.done_at, d.touch_at AS own_touch_at, t.touch_at, t.next_at,
           d.idle AND t.touch_at < d.warn_cutoff AND NOT (@idle_suppress AND d.planned_at IS NOT NULL) AS idle,
           d.stuck, d.past, d.slipped, d.nns AND coalesce(t.next_at > @horizon, true) AS nns
    FROM (
        SELECT k.*,
               CASE WHEN k.idle AND @has_activities THEN (
                   SELECT max(a.occurred_at) FROM activities a
                   WHERE a.deal_id = k.id AND a.done AND a.deleted_at IS NULL AND a.occurred_at <= @now) END AS done_at,
               CASE WHEN (k.idle OR k.nns) AND @has_activities THEN (
                   SELECT min(a.occurred_at) FROM activities a
                   WHERE a.deal_id = k.id AND NOT a.done AND a.deleted_at IS NULL AND a.occurred_at >= @now) END AS planned_at
        FROM (
            SELECT c.*, ot.team, st.canonical, st.idle_threshold, st.idle_rot, st.warn_cutoff, st.stalled_cutoff,
                   st.close_lost_cutoff, st.stuck_days, st.stuck_label, st.stuck_source, st.stuck_won,
                   st.stuck_critical, sl.push_count, sl.pushed_out, t.touch_at,
                   ` + idleExpr + ` AS idle, ` + nnsExpr + ` AS nns, ` + stuckExpr + ` AS stuck,
                   ` + pastExpr + ` AS past, ` + slippedExpr + ` AS slipped
            FROM (
                SELECT d.id, d.connection_id, d.owner_id, d.stage_id, d.name, d.amount, d.currency, d.close_date,
                       d.remote_created_at, d.remote_updated_at, d.last_activity_at, d.next_activity_at,
                       ` + entered + ` AS entered_at
                FROM deals d
                WHERE d.connection_id = ANY(@conns::bigint[]) AND NOT d.is_closed AND d.deleted_at IS NULL AND ` + which + `
                  AND (` + maybeIdleExpr + ` OR ` + maybeNNSExpr + ` OR ` + maybeStuckExpr + `
                       OR ` + maybePastExpr + ` OR ` + maybeSlippedExpr + `)
                LIMIT ALL
            ) c
            LEFT JOIN owner_t ot ON ot.owner_id = c.owner_id
            LEFT JOIN stage_t st ON st.calendar = coalesce(ot.calendar, 0) AND st.stage_id = coalesce(c.stage_id, 0)
            LEFT JOIN slips sl ON sl.deal_id = c.id
            CROSS JOIN LATERAL (
                SELECT greatest(c.last_activity_at, c.entered_at, c.remote_created_at,
                                CASE WHEN st.idle_rot THEN c.remote_updated_at END) AS touch_at
            ) t
            LIMIT ALL
        ) k
        WHERE k.idle OR k.nns OR k.stuck OR k.past OR k.slipped
        LIMIT ALL
    ) d
    CROSS JOIN LATERAL (
        SELECT greatest(d.touch_at, d.done_at) AS touch_at,
               least(CASE WHEN d.next_activity_at >= @now THEN d.next_activity_at END, d.planned_at) AS next_at
    ) t
)`
}

// dealFinding is how one deal rule turns a candidate deal d of dealCandidatesSQL into a
// finding: the column with the rule's verdict, and SQL expressions over d for the
// severity and the facts in the generic columns.
type dealFinding struct {
	rule    Rule
	verdict string
	// stageBound rules have a subject per stage: a deal that moves on starts a new one.
	stageBound bool
	severity   string
	// at1, at2: timestamptz; num1: float8; int1: int; txt1, txt2: text (NULL when unused).
	at1, at2, num1, int1, txt1, txt2 string
}

// dealFindings are the deal rules' findings.
var dealFindings = []dealFinding{{
	rule: RuleIdle, verdict: "idle", stageBound: true,
	severity: `CASE WHEN d.touch_at < d.stalled_cutoff THEN 'critical' ELSE 'warning' END`,
	at1:      `d.touch_at`,         // the last touch
	at2:      `d.next_activity_at`, // the CRM's next activity
	num1:     `NULL::float8`,
	int1:     `CASE WHEN d.touch_at < d.close_lost_cutoff THEN 1 ELSE 0 END`, // 1 = suggest closing as lost
	// the source of the last touch
	txt1: `CASE WHEN d.done_at IS NOT NULL AND d.done_at >= d.own_touch_at THEN 'activity'
                     WHEN d.touch_at = d.last_activity_at THEN 'crm_last_activity'
                     WHEN d.touch_at = d.entered_at THEN 'stage_entered'
                     WHEN d.idle_rot AND d.touch_at = d.remote_updated_at THEN 'crm_updated' ELSE 'created' END`,
	txt2: `d.idle_threshold`,
}, {
	rule: RuleStuckInStage, verdict: "stuck", stageBound: true,
	severity: `CASE WHEN d.entered_at < d.stuck_critical THEN 'critical' ELSE 'warning' END`,
	at1:      `d.entered_at`, // entered the stage
	at2:      `NULL::timestamptz`,
	num1:     `d.stuck_days`,   // the threshold in days
	int1:     `d.stuck_won`,    // won deals learned from
	txt1:     `d.stuck_source`, // where the threshold comes from
	txt2:     `d.stuck_label`,  // the threshold
}, {
	rule: RulePastCloseDate, verdict: "past",
	severity: `CASE WHEN d.close_date < @past_critical::date THEN 'critical' ELSE 'warning' END`,
	at1:      `NULL::timestamptz`, at2: `NULL::timestamptz`, num1: `NULL::float8`, int1: `NULL::int`,
	txt1: `NULL::text`, txt2: `NULL::text`,
}, {
	rule: RuleCloseDateSlipped, verdict: "slipped",
	severity: `CASE WHEN d.push_count >= @escalate_at THEN 'critical' ELSE 'warning' END`,
	at1:      `NULL::timestamptz`, at2: `NULL::timestamptz`, num1: `NULL::float8`,
	int1: `d.push_count`,                                              // pushes
	txt1: `(d.pushed_out AND d.close_date > @period_end::date)::text`, // pushed out of the period
	txt2: `NULL::text`,
}, {
	rule: RuleNoNextStep, verdict: "nns",
	severity: `'warning'`,
	at1:      `NULL::timestamptz`,
	at2:      `coalesce(d.next_at, d.next_activity_at)`, // the next activity, if any
	num1:     `NULL::float8`, int1: `NULL::int`,
	// why: the next step is too far, overdue or missing
	txt1: `CASE WHEN d.next_at IS NOT NULL THEN 'too_far' WHEN d.next_activity_at < @now THEN 'overdue' ELSE 'none' END`,
	txt2: `NULL::text`,
}}

// dealFindingsSQL selects the deal findings from dealCandidatesSQL: a row for each rule
// whose verdict holds (the join with the numbered rules r), with the facts and their
// signature.
var dealFindingsSQL = "(" + dealFindingsFrom("deal_c") + ")\nUNION ALL (" + dealFindingsFrom("deal_h") + ")"

// dealFindingsFrom selects the findings of the candidates in the CTE named candidates.
func dealFindingsFrom(candidates string) string {
	var rules, verdicts, stageBound []string
	cases := make([]string, 7) // severity, at1, at2, num1, int1, txt1, txt2
	for i, f := range dealFindings {
		n := i + 1
		rules = append(rules, fmt.Sprintf("(%d, '%s')", n, f.rule))
		verdicts = append(verdicts, fmt.Sprintf("WHEN %d THEN d.%s", n, f.verdict))
		if f.stageBound {
			stageBound = append(stageBound, strconv.Itoa(n))
		}
		for j, expr := range []string{f.severity, f.at1, f.at2, f.num1, f.int1, f.txt1, f.txt2} {
			cases[j] += fmt.Sprintf("\n                WHEN %d THEN %s", n, expr)
		}
	}
	named := make([]string, len(cases))
	for i, name := range []string{"severity", "at1", "at2", "num1", "int1", "txt1", "txt2"} {
		named[i] = "CASE r.n" + cases[i] + "\n           END AS " + name
	}
	return `
SELECT r.rule, CASE WHEN r.n IN (` + strings.Join(stageBound, ", ") + `) THEN coalesce(d.stage_id, 0) ELSE 0 END AS stage_key,
       d.connection_id, d.id AS deal_id, d.owner_id, d.team, d.stage_id, e.severity, e.at1, e.at2, e.num1, e.int1,
       e.txt1, e.txt2,
       hash_record_extended(ROW(e.severity, d.stage_id, d.owner_id, d.team, d.name, d.amount, d.currency,
                                d.close_date, d.entered_at, e.at1, e.at2, e.num1, e.int1, e.txt1, e.txt2), 0) AS sig
FROM ` + candidates + ` d
JOIN (VALUES ` + strings.Join(rules, ", ") + `) r(n, rule) ON CASE r.n ` + strings.Join(verdicts, " ") + ` END
CROSS JOIN LATERAL (
    SELECT ` + strings.Join(named, ",\n           ") + `
) e
LIMIT ALL`
}

// The exact conditions of the deal rules (stage k of dealFindingsSQL), over the deal c
// (with entered_at), its touch t, owner ot, stage thresholds st and close-date pushes sl.
// Activities then refine idle and no next step.
const (
	idleExpr = `(@idle_on AND t.touch_at < st.warn_cutoff
        AND NOT (@idle_exclude_zero AND coalesce(c.amount, 0) = 0)
        AND NOT (@idle_suppress AND coalesce(c.next_activity_at >= @now, false)))`
	nnsExpr = `(@nns_on AND st.canonical = ANY(@nns_stages::text[])
        AND (c.next_activity_at IS NULL OR c.next_activity_at < @now OR c.next_activity_at > @horizon)
        AND coalesce(c.entered_at, c.remote_created_at) < @grace_cutoff)`
	stuckExpr = `(@stuck_on AND c.entered_at < st.stuck_cutoff
        AND NOT (@stuck_exclude_zero AND coalesce(c.amount, 0) = 0))`
	pastExpr = `(@past_on AND c.close_date < @today::date
        AND NOT (@past_ignore_default AND coalesce(st.hubspot, false) AND sl.deal_id IS NULL
                 AND coalesce(c.close_date = (date_trunc('month', c.remote_created_at AT TIME ZONE @tz)
                                              + interval '1 month - 1 day')::date, false)))`
	slippedExpr = `(@slip_on AND ((sl.pushed_out AND c.close_date > @period_end::date) OR sl.push_count >= @escalate_at))`
)

// The conditions a deal must meet on its own columns for a rule to possibly fire (stage
// c of dealFindingsSQL): each is implied by the rule's exact condition above, so the
// deals they drop could not fire. The stage entry is only known when the deal has it;
// a deal whose entry must come from the stage history passes. Idle's last touch can only
// be later than the deal's own columns say (the history and logged activities add to it).
const (
	maybeIdleExpr = `(@idle_maybe
        AND coalesce(greatest(d.last_activity_at, d.stage_entered_at, d.remote_created_at) < @idle_bound, true)
        AND NOT (@idle_exclude_zero AND coalesce(d.amount, 0) = 0)
        AND NOT (@idle_suppress AND coalesce(d.next_activity_at >= @now, false)))`
	maybeNNSExpr = `(@nns_on AND coalesce(d.stage_id, 0) = ANY(@nns_stage_ids::bigint[])
        AND (d.next_activity_at IS NULL OR d.next_activity_at < @now OR d.next_activity_at > @horizon)
        AND (d.stage_entered_at IS NULL OR d.stage_entered_at < @grace_cutoff))`
	maybeStuckExpr = `(@stuck_maybe AND (d.stage_entered_at IS NULL OR d.stage_entered_at < @stuck_bound)
        AND NOT (@stuck_exclude_zero AND coalesce(d.amount, 0) = 0))`
	maybePastExpr    = `(@past_on AND d.close_date < @today::date)`
	maybeSlippedExpr = `(@slip_on AND d.id IN (SELECT deal_id FROM deal_changes WHERE field = 'close_date'))`
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
            'threshold_source', CASE WHEN @idle_rot_on AND s.rot_days > 0 THEN 'rot_days' END,
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
	var stIdleRot []bool
	for cal := range in.cals {
		for _, h := range stages {
			it := idle[cal+"/"+string(h.Canonical)]
			rot := r.Idle.HonorRotDays && h.RotDays > 0
			if rot {
				it = it.rotting(h.RotDays, in.cals[cal], in.now)
			}
			stIdleRot = append(stIdleRot, rot)
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
	// The most lenient cutoffs of any calendar and stage, and the stages no next step
	// watches, for the first stage of dealFindingsSQL.
	var idleBound, stuckBound *time.Time
	for i := range stStage {
		idleBound, stuckBound = latest(idleBound, stWarn[i]), latest(stuckBound, stStuckCut[i])
	}
	var nnsStageIDs []int64
	for _, h := range stages {
		if slices.Contains(r.NoNextStep.Stages, h.Canonical) {
			nnsStageIDs = append(nnsStageIDs, h.StageID)
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
	// Without a logged activity on any deal, looking them up deal by deal finds nothing.
	var hasActivities bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM activities WHERE deal_id IS NOT NULL)`).Scan(&hasActivities); err != nil {
		return nil, fmt.Errorf("looking for logged activities: %w", err)
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
		"st_idle_threshold": stIdleTh, "st_idle_rot": stIdleRot, "st_idle_warn": stWarn, "st_idle_stalled": stStalled, "st_idle_lost": stLost,
		"st_stuck_days": stStuckDays, "st_stuck_label": stStuckLabel, "st_stuck_source": stStuckSource,
		"st_stuck_won": stStuckWon, "st_stuck_cutoff": stStuckCut, "st_stuck_critical": stStuckCrit,
		"ot_owner": otOwner, "ot_team": otTeam, "ot_calendar": otCal,
		"idle_on": r.Idle.Enabled, "idle_rot_on": r.Idle.HonorRotDays, "idle_exclude_zero": r.Idle.ExcludeZeroAmount, "idle_suppress": r.Idle.NextActivitySuppresses,
		"stuck_on": r.StuckInStage.Enabled, "stuck_exclude_zero": r.StuckInStage.ExcludeZeroAmount,
		"critical_factor": r.StuckInStage.CriticalFactor,
		"past_on":         r.PastCloseDate.Enabled, "past_ignore_default": r.PastCloseDate.IgnoreDefaultCloseDates,
		"past_critical": pastCritical.Format(time.DateOnly), "past_critical_after": r.PastCloseDate.CriticalAfter.String(),
		"slip_on": r.CloseDateSlipped.Enabled, "escalate_at": r.CloseDateSlipped.EscalateAt,
		"period_start": periodStart.Format(time.DateOnly), "period_end": periodEnd.Format(time.DateOnly),
		"nns_on": r.NoNextStep.Enabled && len(nnsStages) > 0, "nns_stages": nnsStages,
		"horizon": org.After(in.now, r.NoNextStep.Horizon), "horizon_days": r.NoNextStep.Horizon.String(),
		"grace_cutoff": org.Before(in.now, r.NoNextStep.Grace),
		"idle_maybe":   r.Idle.Enabled && idleBound != nil, "idle_bound": idleBound,
		"stuck_maybe": r.StuckInStage.Enabled && stuckBound != nil, "stuck_bound": stuckBound,
		"nns_stage_ids": nnsStageIDs, "has_activities": hasActivities,
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

// latest is the later of a and b, either of which may be nil.
func latest(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
