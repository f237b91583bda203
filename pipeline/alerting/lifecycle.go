package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The alert lifecycle, set-based over detect_findings. An alert's subject is its rule and
// what it is about (a deal, in a stage for stage-bound rules; a target scope; the org);
// its fingerprint adds the episode (the run that opened it), so a condition that clears
// and comes back is a new alert. In scope are the alerts of the evaluated connections'
// deal rules and of the evaluated org rules; alerts of skipped (stale) connections are
// left exactly as they are.

const severityRank = `array_position(ARRAY['info', 'warning', 'critical'], %s)`

// resolveSQL closes the in-scope alerts whose condition no longer holds, and every alert
// of a disabled rule, saying why.
var resolveSQL = `
UPDATE alerts a
SET state = 'resolved', resolved_at = @now, last_seen_at = @now,
    resolution = CASE WHEN a.rule = ANY(@disabled::text[]) THEN 'rule_disabled'
                      WHEN a.deal_id IS NULL THEN 'cleared'
                      WHEN d.id IS NULL OR d.deleted_at IS NOT NULL THEN 'deal_deleted'
                      WHEN d.is_won THEN 'deal_won'
                      WHEN d.is_closed THEN 'deal_lost'
                      WHEN a.stage_id IS DISTINCT FROM d.stage_id THEN 'stage_changed'
                      ELSE 'cleared' END
FROM alerts a2
LEFT JOIN deals d ON d.id = a2.deal_id
WHERE a2.id = a.id AND a.state <> 'resolved'
  AND ((a.connection_id = ANY(@conns::bigint[]) AND a.rule = ANY(@deal_rules::text[]))
       OR (a.connection_id IS NULL AND a.rule = ANY(@org_rules::text[]))
       OR a.rule = ANY(@disabled::text[]))
  AND NOT EXISTS (SELECT 1 FROM detect_findings f WHERE f.subject_key = a.subject_key)`

// markChangedSQL flags the findings that are new, or whose facts (signature), severity,
// stage, owner or team differ from their active alert: only those are written.
const markChangedSQL = `
UPDATE detect_findings f SET changed = true
WHERE NOT EXISTS (
    SELECT 1 FROM alerts a
    WHERE a.subject_key = f.subject_key AND a.state <> 'resolved'
      AND a.evidence_sig = f.sig AND a.severity = f.severity
      AND a.stage_id IS NOT DISTINCT FROM f.stage_id AND a.owner_id IS NOT DISTINCT FROM f.owner_id
      AND a.team IS NOT DISTINCT FROM f.team)`

// updateSQL rewrites the active alerts whose findings changed. A severity rise reopens an
// acknowledged alert; a snoozed one stays quiet until its snooze ends.
var updateSQL = fmt.Sprintf(`
UPDATE alerts a
SET severity = f.severity, details = f.details, evidence_sig = f.sig, stage_id = f.stage_id, owner_id = f.owner_id,
    team = f.team, last_seen_at = @now,
    state = CASE WHEN a.state = 'acknowledged' AND %s > %s THEN 'open' ELSE a.state END
FROM detect_findings f
WHERE f.changed AND a.subject_key = f.subject_key AND a.state <> 'resolved'`,
	fmt.Sprintf(severityRank, "f.severity"), fmt.Sprintf(severityRank, "a.severity"))

// insertSQL opens an alert for every changed finding without an active alert (those with
// one conflict on alerts_subject_active_idx and were updated). It must not read alerts
// itself: an anti-join against the table being filled rescans, per row, every page
// inserted so far.
const insertSQL = `
INSERT INTO alerts (rule, fingerprint, subject_key, connection_id, deal_id, owner_id, team, stage_id, severity,
                    state, details, evidence_sig, first_seen_at, last_seen_at, opened_run_id)
SELECT f.rule, f.subject_key || '#' || @run::bigint, f.subject_key, f.connection_id, f.deal_id, f.owner_id, f.team,
       f.stage_id, f.severity, 'open', f.details, f.sig, @now, @now, @run::bigint
FROM detect_findings f
WHERE f.changed
ON CONFLICT (subject_key) WHERE state <> 'resolved' DO NOTHING`

// reopenSQL ends the snoozes that ran out while the condition still holds.
const reopenSQL = `
UPDATE alerts a SET state = 'open', last_seen_at = @now
FROM detect_findings f
WHERE a.state = 'snoozed' AND a.snoozed_until <= @now AND a.subject_key = f.subject_key`

// dueSQL lists the open in-scope alerts that should be told now, with why: never told,
// snooze ended, severity rose, stage changed, or the cooldown passed. Deal alerts come
// ordered by owner so that one owner's alerts arrive together.
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
FROM alerts a
WHERE a.state = 'open'
  AND ((a.connection_id = ANY(@conns::bigint[]) AND a.rule = ANY(@deal_rules::text[]))
       OR (a.connection_id IS NULL AND a.rule = ANY(@org_rules::text[])))
  AND (a.notified_at IS NULL
       OR (a.snoozed_until IS NOT NULL AND a.snoozed_until <= @now)
       OR %s > coalesce(%s, 0)
       OR a.stage_id IS DISTINCT FROM a.notified_stage_id
       OR a.notified_at <= @cooldown_cutoff)
ORDER BY a.owner_id NULLS LAST, a.id`,
	fmt.Sprintf(severityRank, "a.severity"), fmt.Sprintf(severityRank, "a.notified_severity"),
	fmt.Sprintf(severityRank, "a.severity"), fmt.Sprintf(severityRank, "a.notified_severity"))

// markNotifiedSQL records what was said, to whom, and in which notification.
const markNotifiedSQL = `
UPDATE alerts a
SET notified_at = @now, notified_severity = a.severity, notified_stage_id = a.stage_id,
    notified_via = u.via, notified_recipient = nullif(u.recipient, ''), notification_id = u.nid,
    notify_count = a.notify_count + 1, snoozed_until = NULL
FROM unnest(@ids::bigint[], @nids::bigint[], @via::text[], @recipients::text[]) AS u(id, nid, via, recipient)
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
}

func (s lifecycleScope) args() pgx.NamedArgs {
	return pgx.NamedArgs{
		"now": s.now, "run": s.run, "conns": s.conns, "deal_rules": s.dealRules, "org_rules": s.orgRules,
		"disabled": s.disabled,
	}
}

// applyLifecycle resolves, rewrites and opens alerts from this run's findings, building
// the evidence of new and changed deal findings with detailsArgs (nil when no deal rule
// ran).
func applyLifecycle(ctx context.Context, tx pgx.Tx, s lifecycleScope, detailsArgs pgx.NamedArgs, logger *slog.Logger) (lifecycleCounts, error) {
	var c lifecycleCounts
	args := s.args()
	steps := []struct {
		what string
		sql  string
		args pgx.NamedArgs
		n    *int
	}{
		{"analyzing findings", `ANALYZE detect_findings`, nil, nil},
		{"resolving cleared alerts", resolveSQL, args, &c.Resolved},
		{"comparing findings with open alerts", markChangedSQL, nil, nil},
		{"building evidence", detailsSQL, detailsArgs, nil},
		{"updating open alerts", updateSQL, args, &c.Updated},
		{"opening new alerts", insertSQL, args, &c.Opened},
		{"ending snoozes", reopenSQL, args, nil},
	}
	for _, st := range steps {
		if st.sql == detailsSQL && detailsArgs == nil {
			continue
		}
		start := time.Now()
		var tag pgconn.CommandTag
		var err error
		if st.args != nil {
			tag, err = tx.Exec(ctx, st.sql, st.args)
		} else {
			tag, err = tx.Exec(ctx, st.sql)
		}
		if err != nil {
			return c, fmt.Errorf("%s: %w", st.what, err)
		}
		if st.n != nil {
			*st.n = int(tag.RowsAffected())
		}
		logger.DebugContext(ctx, "detect: "+st.what, "rows", tag.RowsAffected(), "took", time.Since(start))
	}
	return c, nil
}
