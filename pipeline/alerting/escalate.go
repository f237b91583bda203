package alerting

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// escalationSQL lists owner alerts the manager's daily digest may take: told to the
// owner, still open (not snoozed, acknowledged or resolved), not yet escalated, and told
// before the latest escalation cutoff of any calendar — or, when critical, a day ago.
const escalationSQL = `
SELECT a.id, a.rule, a.severity, coalesce(a.connection_id, 0), a.deal_id, a.owner_id, a.notified_at,
       coalesce((a.details->>'amount')::numeric, 0), a.first_seen_at
FROM alerts a
JOIN owners o ON o.id = a.owner_id
WHERE a.state = 'open' AND a.escalated_at IS NULL AND a.deal_id IS NOT NULL
  AND a.connection_id = ANY(@conns::bigint[])
  AND a.notified_via IN ('dm', 'digest') AND a.notified_recipient = lower(o.email)
  AND ((a.severity = 'critical' AND a.notified_at <= @critical_cutoff) OR a.notified_at <= @cutoff)
ORDER BY a.owner_id, a.id`

// escalate builds each manager's daily digest once their local clock passes
// routing.digest_time: the owner alerts left open for routing.escalate_after, and the
// critical ones told a day ago or more, grouped by rule, largest amount first. A manager gets at most
// one per local day; what comes up after it waits for the next day's.
func (r *run) escalate(ctx context.Context) error {
	if len(r.scope.conns) == 0 {
		return nil
	}
	after := r.settings.Routing.EscalateAfter
	latest := time.Time{}
	for _, c := range r.cals {
		if t := c.Before(r.now, after); t.After(latest) {
			latest = t
		}
	}
	criticalCutoff := r.now.Add(-day)
	rows, err := r.tx.Query(ctx, escalationSQL, pgx.NamedArgs{"conns": r.scope.conns, "cutoff": latest, "critical_cutoff": criticalCutoff})
	if err != nil {
		return fmt.Errorf("listing alerts to escalate: %w", err)
	}
	hour, minute, _ := digestClock(r.settings.Routing.DigestTime)
	buckets := map[string]*bucket{}
	var (
		a          dueAlert
		rule, sev  string
		notifiedAt time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&a.id, &rule, &sev, &a.connID, &a.dealID, &a.ownerID, &notifiedAt, &a.amount, &a.firstSeen}, func() error {
		x := a
		x.rule, x.severity, x.reason = Rule(rule), Severity(sev), "escalated"
		critical := x.severity == SeverityCritical && !notifiedAt.After(criticalCutoff)
		if !critical && notifiedAt.After(r.cals.of(r.dir.Team(x.ownerID)).Before(r.now, after)) {
			return nil
		}
		to, ok := r.dir.ManagerOf(x.ownerID)
		if !ok || !digestDue(to, r.now, hour, minute, r.cals.of("").Location()) {
			return nil
		}
		b, exists := buckets[to.key()]
		if !exists {
			b = &bucket{to: to, kind: bucketManager, top: map[Rule][]*dueAlert{}, counts: map[Rule]int{}}
			buckets[to.key()] = b
		}
		b.add(&x, 0)
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing alerts to escalate: %w", err)
	}
	d := &dispatcher{run: r, buckets: buckets}
	if err := d.loadDetails(ctx); err != nil {
		return err
	}
	var escalated []int64
	for _, k := range slices.Sorted(maps.Keys(buckets)) {
		b := buckets[k]
		local := r.now.In(locationOf(b.to, r.cals.of("").Location()))
		nid, err := r.enqueue(ctx, Notification{
			Kind: notify.KindDigest, Recipient: b.to, Message: r.managerDigest(b, local),
			DedupeKey: "manager-digest:" + b.to.Address + ":" + local.Format(time.DateOnly),
		})
		if err != nil {
			return err
		}
		if nid != 0 {
			escalated = append(escalated, b.ids...)
		}
	}
	if len(escalated) > 0 {
		if _, err := r.tx.Exec(ctx, `UPDATE alerts SET escalated_at = $2 WHERE id = ANY($1)`, escalated, r.now); err != nil {
			return fmt.Errorf("recording escalated alerts: %w", err)
		}
	}
	r.report.Escalated = len(escalated)
	return nil
}

// digestDue says whether the recipient's local clock has passed the digest time today.
func digestDue(to Recipient, now time.Time, hour, minute int, fallback *time.Location) bool {
	local := now.In(locationOf(to, fallback))
	return local.Hour() > hour || (local.Hour() == hour && local.Minute() >= minute)
}

func locationOf(to Recipient, fallback *time.Location) *time.Location {
	if to.Timezone != "" {
		if l, err := time.LoadLocation(to.Timezone); err == nil {
			return l
		}
	}
	return fallback
}

// managerDigest renders a manager's daily digest.
func (r *run) managerDigest(b *bucket, local time.Time) notify.Message {
	m := notify.Message{
		Title: fmt.Sprintf("Daily pipeline digest, %s: %s need a manager's look", local.Format("Mon 2 Jan"), plural(len(b.ids), "alert")),
		Summary: "Critical alerts of your team, and alerts their owners have not acted on for " +
			r.settings.Routing.EscalateAfter.Label() + ".",
	}
	r.fillDigest(&m, b)
	m.Context = r.freshnessNote()
	return m
}
