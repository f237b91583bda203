package alerting

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// updateSQL refreshes alerts whose condition still holds when something about them
// changed: severity, stage, owner, evidence (data_as_of aside), or a snooze that ended.
// An ended snooze reopens the alert; so does a severity rise on an acknowledged one.
var updateSQL = fmt.Sprintf(`
UPDATE alerts a
SET severity = f.severity, details = f.details, stage_id = f.stage_id, owner_id = f.owner_id, team = f.team,
    last_seen_at = @now,
    state = CASE WHEN a.state = 'snoozed' AND a.snoozed_until <= @now THEN 'open'
                 WHEN a.state = 'acknowledged' AND %s > %s THEN 'open'
                 ELSE a.state END
FROM detect_findings f
WHERE a.subject_key = f.subject_key AND a.state <> 'resolved'
  AND (a.severity <> f.severity OR a.stage_id IS DISTINCT FROM f.stage_id OR a.owner_id IS DISTINCT FROM f.owner_id
       OR a.team IS DISTINCT FROM f.team OR (a.details - 'data_as_of') <> (f.details - 'data_as_of')
       OR (a.state = 'snoozed' AND a.snoozed_until <= @now))`,
	fmt.Sprintf(severityRank, "f.severity"), fmt.Sprintf(severityRank, "a.severity"))

// insertSQL opens an alert for every finding without an active alert.
const insertSQL = `
INSERT INTO alerts (rule, fingerprint, subject_key, connection_id, deal_id, owner_id, team, stage_id, severity,
                    state, details, first_seen_at, last_seen_at, opened_run_id)
SELECT f.rule, f.subject_key || '#' || @run::bigint, f.subject_key, f.connection_id, f.deal_id, f.owner_id, f.team,
       f.stage_id, f.severity, 'open', f.details, @now, @now, @run::bigint
FROM detect_findings f
WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.subject_key = f.subject_key AND a.state <> 'resolved')
ON CONFLICT DO NOTHING`

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

// applyLifecycle resolves, refreshes and opens alerts from this run's findings.
func applyLifecycle(ctx context.Context, tx pgx.Tx, s lifecycleScope) (lifecycleCounts, error) {
	var c lifecycleCounts
	args := s.args()
	if _, err := tx.Exec(ctx, `ANALYZE detect_findings`); err != nil {
		return c, fmt.Errorf("analyzing findings: %w", err)
	}
	tag, err := tx.Exec(ctx, resolveSQL, args)
	if err != nil {
		return c, fmt.Errorf("resolving cleared alerts: %w", err)
	}
	c.Resolved = int(tag.RowsAffected())
	if tag, err = tx.Exec(ctx, updateSQL, args); err != nil {
		return c, fmt.Errorf("updating open alerts: %w", err)
	}
	c.Updated = int(tag.RowsAffected())
	if tag, err = tx.Exec(ctx, insertSQL, args); err != nil {
		return c, fmt.Errorf("opening new alerts: %w", err)
	}
	c.Opened = int(tag.RowsAffected())
	return c, nil
}
