package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The alert lifecycle, set-based. An alert's subject is its rule and what it is about (a
// deal, in a stage for stage-bound rules; a target scope; the org); its fingerprint adds
// the episode (the run that opened it), so a condition that clears and comes back is a
// new alert. Each run compares what holds now (findings) with the open alerts in scope:
// the alerts of the evaluated connections' deal rules and of the evaluated org rules.
// Alerts of skipped (stale) connections are left exactly as they are.
//
// When to tell is kept in due_at: now for a new alert, a severity rise or a stage change;
// the end of the cooldown after it was told; the end of a snooze; never while acknowledged.

const severityRank = `array_position(ARRAY['info', 'warning', 'critical'], %s)`

// The differences between a run's findings and the open alerts land in detect_diff: one
// row per subject that is new, changed, cleared (resolve) or whose snooze ended (reopen).

// dealDiffSQL compares the deal findings (f) with the open deal alerts in scope (a) in
// one full join on (deal, rule, stage for stage-bound rules) and keeps the differences.
// It creates detect_diff, so the scan may run in parallel.
var dealDiffSQL = `
CREATE TEMP TABLE detect_diff ON COMMIT DROP AS
WITH ` + dealInputsSQL + `, ` + dealCandidatesSQL + `,
f AS (` + dealFindingsSQL + `),
a AS (
    SELECT id, deal_id, rule, CASE WHEN rule IN ('idle', 'stuck_in_stage') THEN coalesce(stage_id, 0) ELSE 0 END AS stage_key,
           evidence_hash, state, snoozed_until
    FROM alerts
    WHERE state <> 'resolved' AND connection_id = ANY(@conns::bigint[]) AND rule = ANY(@deal_rules::text[])
)
SELECT a.id AS alert_id, a.id IS NULL AS is_new, a.id IS NOT NULL AND f.deal_id IS NOT NULL AND c.changed AS changed,
       f.deal_id IS NULL AS resolve, a.id IS NOT NULL AND f.deal_id IS NOT NULL AND c.reopen AS reopen,
       f.rule, (f.rule || ':deal:' || f.deal_id
                || CASE WHEN f.rule IN ('idle', 'stuck_in_stage') THEN ':stage:' || coalesce(f.stage_id::text, 'none') ELSE '' END
               ) AS subject_key,
       f.connection_id, f.deal_id, f.owner_id, f.team, f.stage_id, f.severity,
       f.at1, f.at2, f.num1, f.int1, f.txt1, f.txt2, f.sig, NULL::jsonb AS details
FROM f
FULL JOIN a ON a.deal_id = f.deal_id AND a.rule = f.rule AND a.stage_key = f.stage_key
CROSS JOIN LATERAL (
    SELECT a.evidence_hash IS DISTINCT FROM f.sig AS changed,
           a.state = 'snoozed' AND a.snoozed_until <= @now AS reopen
) c
WHERE a.id IS NULL OR f.deal_id IS NULL OR c.changed OR c.reopen`

// diffTableSQL creates an empty detect_diff when no deal rule runs.
const diffTableSQL = `
CREATE TEMP TABLE detect_diff (
    alert_id      bigint,
    is_new        boolean,
    changed       boolean,
    resolve       boolean,
    reopen        boolean,
    rule          text,
    subject_key   text,
    connection_id bigint,
    deal_id       bigint,
    owner_id      bigint,
    team          text,
    stage_id      bigint,
    severity      text,
    at1           timestamptz,
    at2           timestamptz,
    num1          float8,
    int1          int,
    txt1          text,
    txt2          text,
    sig           bigint,
    details       jsonb
) ON COMMIT DROP`

// orgFindingsTableSQL holds the findings computed in Go (coverage, lead velocity).
const orgFindingsTableSQL = `
CREATE TEMP TABLE detect_org_findings (
    rule        text   NOT NULL,
    subject_key text   NOT NULL,
    owner_id    bigint,
    team        text,
    severity    text   NOT NULL,
    sig         bigint NOT NULL,
    details     jsonb  NOT NULL
) ON COMMIT DROP`

// orgDiffSQL is dealDiffSQL for the org rules' findings, by subject.
const orgDiffSQL = `
INSERT INTO detect_diff (alert_id, is_new, changed, resolve, reopen, rule, subject_key, owner_id, team, severity, sig, details)
WITH a AS (
    SELECT id, subject_key, evidence_hash, severity, owner_id, team, state, snoozed_until
    FROM alerts WHERE state <> 'resolved' AND connection_id IS NULL AND rule = ANY(@org_rules::text[])
)
SELECT a.id, a.id IS NULL, a.id IS NOT NULL AND f.subject_key IS NOT NULL AND c.changed, f.subject_key IS NULL,
       a.id IS NOT NULL AND f.subject_key IS NOT NULL AND c.reopen,
       f.rule, f.subject_key, f.owner_id, f.team, f.severity, f.sig, f.details
FROM detect_org_findings f
FULL JOIN a ON a.subject_key = f.subject_key
CROSS JOIN LATERAL (
    SELECT a.evidence_hash IS DISTINCT FROM f.sig OR a.severity IS DISTINCT FROM f.severity
               OR a.owner_id IS DISTINCT FROM f.owner_id OR a.team IS DISTINCT FROM f.team AS changed,
           a.state = 'snoozed' AND a.snoozed_until <= @now AS reopen
) c
WHERE a.id IS NULL OR f.subject_key IS NULL OR c.changed OR c.reopen`

// resolveSQL closes the alerts whose condition no longer holds, saying why.
const resolveSQL = `
UPDATE alerts a
SET state = 'resolved', resolved_at = @now, last_seen_at = @now, due_at = NULL,
    resolution = CASE WHEN a.deal_id IS NULL THEN 'cleared' ELSE coalesce((
        SELECT CASE WHEN d.deleted_at IS NOT NULL THEN 'deal_deleted'
                    WHEN d.is_won THEN 'deal_won'
                    WHEN d.is_closed THEN 'deal_lost'
                    WHEN a.stage_id IS DISTINCT FROM d.stage_id THEN 'stage_changed'
                    ELSE 'cleared' END
        FROM deals d WHERE d.id = a.deal_id), 'deal_deleted') END
FROM detect_diff x
WHERE x.resolve AND a.id = x.alert_id`

// disabledSQL closes every open alert of a disabled rule.
const disabledSQL = `
UPDATE alerts SET state = 'resolved', resolved_at = @now, last_seen_at = @now, due_at = NULL, resolution = 'rule_disabled'
WHERE state <> 'resolved' AND rule = ANY(@disabled::text[])`

// updateSQL rewrites the alerts whose findings changed. A severity rise (or a new stage)
// makes an open alert due now and reopens an acknowledged one; a snoozed alert stays
// quiet until its snooze ends.
var updateSQL = fmt.Sprintf(`
UPDATE alerts a
SET severity = x.severity, details = x.details, evidence_hash = x.sig, stage_id = x.stage_id, owner_id = x.owner_id,
    team = x.team, last_seen_at = @now,
    state = CASE WHEN a.state = 'acknowledged' AND %[1]s > %[2]s THEN 'open' ELSE a.state END,
    due_at = CASE WHEN a.state = 'acknowledged' AND %[1]s > %[2]s THEN @now
                  WHEN a.state = 'open' AND a.notified_at IS NOT NULL
                       AND (%[1]s > coalesce(%[3]s, 0) OR x.stage_id IS DISTINCT FROM a.notified_stage_id)
                  THEN least(a.due_at, @now)
                  ELSE a.due_at END
FROM detect_diff x
WHERE x.changed AND a.id = x.alert_id`,
	fmt.Sprintf(severityRank, "x.severity"), fmt.Sprintf(severityRank, "a.severity"),
	fmt.Sprintf(severityRank, "a.notified_severity"))

// insertSQL opens the new alerts, due now. In a scope's first evaluation (baseline) they
// are recorded as already told (in the baseline summary) and next due after the
// cooldown. It must not read alerts itself: an anti-join against the table being filled
// rescans, per row, every page inserted so far.
const insertSQL = `
INSERT INTO alerts (rule, fingerprint, subject_key, connection_id, deal_id, owner_id, team, stage_id, severity,
                    state, details, evidence_hash, first_seen_at, last_seen_at, opened_run_id, due_at,
                    notified_at, notified_severity, notified_stage_id, notified_via, notify_count)
SELECT x.rule, x.subject_key || '#' || @run::bigint, x.subject_key, x.connection_id, x.deal_id, x.owner_id, x.team,
       x.stage_id, x.severity, 'open', x.details, x.sig, @now::timestamptz, @now::timestamptz, @run::bigint,
       CASE WHEN b.baseline THEN @next_due::timestamptz ELSE @now::timestamptz END,
       CASE WHEN b.baseline THEN @now::timestamptz END, CASE WHEN b.baseline THEN x.severity END,
       CASE WHEN b.baseline THEN x.stage_id END, CASE WHEN b.baseline THEN 'baseline' END,
       CASE WHEN b.baseline THEN 1 ELSE 0 END
FROM detect_diff x
CROSS JOIN LATERAL (
    SELECT x.connection_id = ANY(@baseline_conns::bigint[]) OR (x.connection_id IS NULL AND @baseline_org) AS baseline
) b
WHERE x.is_new
ON CONFLICT (subject_key) WHERE state <> 'resolved' DO NOTHING`

// reopenSQL ends the snoozes that ran out while the condition still holds (due_at is the
// snooze's end, so the alert is told again).
const reopenSQL = `
UPDATE alerts a SET state = 'open', last_seen_at = @now
FROM detect_diff x
WHERE x.reopen AND a.id = x.alert_id AND a.state = 'snoozed'`

// dueSQL lists the open alerts in scope that are due, with why (found through
// alerts_due_idx). Deal alerts come ordered by owner so that one owner's alerts arrive
// together.
var dueSQL = fmt.Sprintf(`
SELECT a.id, a.rule, a.severity, a.connection_id, coalesce(a.deal_id, 0), coalesce(a.owner_id, 0),
       coalesce(a.team, ''),
       coalesce((a.details->>'amount')::numeric, (a.details->'coverage'->>'shortfall')::numeric, 0),
       a.first_seen_at, a.notify_count,
       CASE WHEN a.notified_at IS NULL THEN 'new'
            WHEN a.snoozed_until IS NOT NULL AND a.snoozed_until <= @now THEN 'snooze_ended'
            WHEN %s > coalesce(%s, 0) THEN 'severity_rose'
            WHEN a.stage_id IS DISTINCT FROM a.notified_stage_id THEN 'stage_changed'
            ELSE 'cooldown_ended' END
FROM (SELECT * FROM alerts WHERE state = 'open' AND due_at <= @now OFFSET 0) a
WHERE ((a.connection_id = ANY(@conns::bigint[]) AND a.rule = ANY(@deal_rules::text[]))
       OR (a.connection_id IS NULL AND a.rule = ANY(@org_rules::text[])))
ORDER BY a.owner_id NULLS LAST, a.id`,
	fmt.Sprintf(severityRank, "a.severity"), fmt.Sprintf(severityRank, "a.notified_severity"))

// markNotifiedSQL records what was said, to whom, in which notification, when it is due
// again (the cooldown) and when it goes to the manager if left open.
const markNotifiedSQL = `
UPDATE alerts a
SET notified_at = @now, notified_severity = a.severity, notified_stage_id = a.stage_id,
    notified_via = u.via, notified_recipient = nullif(u.recipient, ''), notification_id = u.nid,
    notify_count = a.notify_count + 1, snoozed_until = NULL, due_at = @next_due, escalate_at = u.escalate_at
FROM unnest(@ids::bigint[], @nids::bigint[], @via::text[], @recipients::text[], @escalate::timestamptz[])
    AS u(id, nid, via, recipient, escalate_at)
WHERE a.id = u.id`

// lifecycleCounts are what a run did to alerts.
type lifecycleCounts struct {
	Opened, Updated, Resolved int
}

type lifecycleScope struct {
	now       time.Time
	run       int64
	conns     []int64
	dealRules []string
	orgRules  []string
	disabled  []string
	// baselineConns and baselineOrg are the scopes in their first evaluation.
	baselineConns []int64
	baselineOrg   bool
	// nextDue is when an alert told now is due again (the end of the cooldown).
	nextDue time.Time
}

func (s lifecycleScope) args() pgx.NamedArgs {
	return pgx.NamedArgs{
		"now": s.now, "run": s.run, "conns": s.conns, "deal_rules": s.dealRules, "org_rules": s.orgRules,
		"disabled": s.disabled, "baseline_conns": s.baselineConns, "baseline_org": s.baselineOrg, "next_due": s.nextDue,
	}
}

// applyLifecycle compares the findings with the open alerts (the deal rules' with
// dealArgs, nil when none ran; the org rules' from detect_org_findings) and resolves,
// rewrites, opens and reopens alerts accordingly.
func applyLifecycle(ctx context.Context, tx pgx.Tx, s lifecycleScope, dealArgs pgx.NamedArgs, logger *slog.Logger) (lifecycleCounts, error) {
	var c lifecycleCounts
	args := s.args()
	type step struct {
		what string
		sql  string
		args pgx.NamedArgs
		n    *int
	}
	var steps []step
	if dealArgs != nil {
		for k, v := range args {
			dealArgs[k] = v
		}
		steps = append(steps, step{"comparing deal findings with open alerts", dealDiffSQL, dealArgs, nil})
	} else {
		steps = append(steps, step{"preparing differences", diffTableSQL, nil, nil})
	}
	if len(s.orgRules) > 0 {
		steps = append(steps, step{"comparing org findings with open alerts", orgDiffSQL, args, nil})
	}
	if dealArgs != nil {
		steps = append(steps, step{"building evidence", detailsSQL, dealArgs, nil})
	}
	var disabled int
	steps = append(steps,
		step{"resolving cleared alerts", resolveSQL, args, &c.Resolved},
		step{"resolving alerts of disabled rules", disabledSQL, args, &disabled},
		step{"updating changed alerts", updateSQL, args, &c.Updated},
		step{"opening new alerts", insertSQL, args, &c.Opened},
		step{"ending snoozes", reopenSQL, args, nil},
	)
	for _, st := range steps {
		start := time.Now()
		var tag pgconn.CommandTag
		var err error
		if st.args == nil {
			tag, err = tx.Exec(ctx, st.sql)
		} else {
			tag, err = tx.Exec(ctx, st.sql, st.args)
		}
		if err != nil {
			return c, fmt.Errorf("%s: %w", st.what, err)
		}
		if st.n != nil {
			*st.n = int(tag.RowsAffected())
		}
		logger.DebugContext(ctx, "detect: "+st.what, "rows", tag.RowsAffected(), "took", time.Since(start))
	}
	c.Resolved += disabled
	return c, nil
}
