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

// escalationSQL lists owner alerts whose escalation time passed: told to the owner,
// still open (not snoozed, acknowledged or resolved) and not yet escalated.
const escalationSQL = `
SELECT a.id, a.rule, a.severity, coalesce(a.connection_id, 0), a.deal_id, a.owner_id,
       coalesce((a.details->>'amount')::numeric, 0), a.first_seen_at
FROM alerts a
WHERE a.state = 'open' AND a.escalated_at IS NULL AND a.escalate_at <= @now
  AND a.connection_id = ANY(@conns::bigint[])
ORDER BY a.owner_id, a.id`

// escalate builds each manager's daily digest once their local clock passes
// routing.digest_time: the owner alerts left open for routing.escalate_after, and the
// critical ones told a day ago or more, grouped by rule, largest amount first. A manager gets at most
// one per local day; what comes up after it waits for the next day's.
func (r *run) escalate(ctx context.Context) error {
	if len(r.scope.conns) == 0 {
		return nil
	}
	rows, err := r.tx.Query(ctx, escalationSQL, pgx.NamedArgs{"conns": r.scope.conns, "now": r.now})
	if err != nil {
		return fmt.Errorf("listing alerts to escalate: %w", err)
	}
	hour, minute, _ := digestClock(r.settings.Routing.DigestTime)
	buckets := map[string]*bucket{}
	var (
		a         dueAlert
		rule, sev string
	)
	_, err = pgx.ForEachRow(rows, []any{&a.id, &rule, &sev, &a.connID, &a.dealID, &a.ownerID, &a.amount, &a.firstSeen}, func() error {
		x := a
		x.rule, x.severity, x.reason = Rule(rule), Severity(sev), "escalated"
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
			for _, m := range b.members {
				escalated = append(escalated, m.id)
			}
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
		Title: fmt.Sprintf("Daily pipeline digest, %s: %s a manager's look", local.Format("Mon 2 Jan"), pluralNeed(b.total, "alert", "")),
		Summary: "Critical alerts of your team, and alerts their owners have not acted on for " +
			r.settings.Routing.EscalateAfter.Label() + ".",
	}
	r.fillDigest(&m, b)
	m.Context = r.freshnessNote()
	return m
}
