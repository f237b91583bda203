package alerting

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// Outbox takes the notifications a run produces, in the run's transaction, so that a
// notification exists exactly when the alert change behind it commits.
type Outbox interface {
	// Enqueue writes n and returns its id, or 0 when n.DedupeKey matched an earlier one.
	Enqueue(ctx context.Context, tx pgx.Tx, n Notification) (int64, error)
}

// Notification is one message for the outbox.
type Notification struct {
	Kind notify.Kind
	// AlertID is the alert a single-alert message is about (0 for digests).
	AlertID   int64
	Recipient Recipient
	Message   notify.Message
	// DedupeKey makes enqueueing idempotent.
	DedupeKey string
}

// digestItemsPerRule caps the lines of one rule in a digest; the rest are counted.
const digestItemsPerRule = 10

// Delivery says how an alert was (or would be) told, as stored in alerts.notified_via.
const (
	DeliveryDM       = "dm"       // its own message to a person
	DeliveryChannel  = "channel"  // its own message in a Slack channel
	DeliveryDigest   = "digest"   // a line in a digest (flood control)
	DeliveryBaseline = "baseline" // a line in the summary after a connection's first sync
	DeliveryUnrouted = "unrouted" // nobody to tell: no owner, manager or channel
)

// dueAlert is an alert to tell now, as dueSQL lists it.
type dueAlert struct {
	id, connID, dealID, ownerID int64
	rule                        Rule
	severity                    Severity
	team                        string
	firstSeen                   time.Time
	notifyCount                 int
	reason                      string
	amount                      decimal.Decimal
	toOwner                     bool     // told to the deal's owner (so it may escalate)
	details                     *Details // loaded only for alerts that are rendered
}

// bucketKind says how a bucket is told.
type bucketKind int

const (
	// bucketTell: one message per alert, or one digest from DigestThreshold alerts on.
	bucketTell bucketKind = iota
	// bucketBaseline: one summary of what a first evaluation found.
	bucketBaseline
	// bucketManager: a manager's daily digest.
	bucketManager
)

// bucket collects the alerts for one recipient in one run.
type bucket struct {
	to     Recipient
	kind   bucketKind
	first  []*dueAlert // the first alerts, sent one by one while the bucket stays small
	top    map[Rule][]*dueAlert
	counts map[Rule]int
	total  int
	// members are every alert of the bucket (but a baseline's, already recorded), in the
	// few fields marking them needs.
	members []member
}

// member is an alert of a bucket.
type member struct {
	id, ownerID int64
	severity    Severity
	toOwner     bool
}

func (b *bucket) add(a *dueAlert, keepFirst int) {
	b.total++
	if b.kind != bucketBaseline {
		b.members = append(b.members, member{id: a.id, ownerID: a.ownerID, severity: a.severity, toOwner: a.toOwner})
	}
	if len(b.first) < keepFirst {
		b.first = append(b.first, a)
	}
	b.counts[a.rule]++
	top := append(b.top[a.rule], a)
	slices.SortStableFunc(top, func(x, y *dueAlert) int {
		if c := y.amount.Cmp(x.amount); c != 0 {
			return c
		}
		return cmp.Compare(x.id, y.id)
	})
	if len(top) > digestItemsPerRule {
		top = top[:digestItemsPerRule]
	}
	b.top[a.rule] = top
}

// rendered are the alerts whose details must be loaded.
func (b *bucket) rendered(threshold int) []*dueAlert {
	if b.kind == bucketTell && b.total < threshold {
		return b.first
	}
	var out []*dueAlert
	for _, r := range slices.Collect(maps.Values(b.top)) {
		out = append(out, r...)
	}
	return out
}

// dispatcher turns due alerts into notifications.
type dispatcher struct {
	run       *run
	buckets   map[string]*bucket
	unrouted  []int64
	reported  []*dueAlert
	marks     marks
	deliverTo map[int64]string
	// baselined counts the alerts a baseline recorded (already marked when opened).
	baselined int
}

// marks are what markNotifiedSQL records.
type marks struct {
	ids, nids       []int64
	via, recipients []string
	escalate        []*time.Time
}

func (m *marks) add(id, nid int64, via, recipient string, escalate time.Time) {
	m.ids, m.nids = append(m.ids, id), append(m.nids, nid)
	m.via, m.recipients = append(m.via, via), append(m.recipients, recipient)
	m.escalate = append(m.escalate, timePtr(escalate))
}

// escalateAt is when an alert just told goes into the manager's digest if left open: a
// day on for critical alerts, routing.escalate_after (on the owner's calendar) for the
// rest; never for alerts not told to the deal's owner.
func (r *run) escalateAt(m member) time.Time {
	if !m.toOwner {
		return time.Time{}
	}
	if m.severity == SeverityCritical {
		return r.now.Add(day)
	}
	return r.cals.of(r.dir.Team(m.ownerID)).After(r.now, r.settings.Routing.EscalateAfter)
}

func (r *run) dispatch(ctx context.Context) error {
	d := &dispatcher{run: r, buckets: map[string]*bucket{}, deliverTo: map[int64]string{}}
	if err := d.collect(ctx, dueSQL, pgx.NamedArgs{
		"now": r.now, "conns": r.scope.conns, "deal_rules": r.scope.dealRules, "org_rules": r.scope.orgRules,
	}, false); err != nil {
		return err
	}
	if len(r.scope.baselineConns) > 0 || r.scope.baselineOrg {
		if err := d.collect(ctx, baselineSQL, pgx.NamedArgs{"run": r.id}, true); err != nil {
			return err
		}
	}
	if err := d.loadDetails(ctx); err != nil {
		return err
	}
	keys := slices.Sorted(maps.Keys(d.buckets))
	for _, k := range keys {
		if err := d.send(ctx, d.buckets[k]); err != nil {
			return err
		}
	}
	for _, id := range d.unrouted {
		d.marks.add(id, 0, DeliveryUnrouted, "", time.Time{})
	}
	if len(d.unrouted) > 0 {
		r.logger.WarnContext(ctx, "detect: alerts with nobody to tell (no active owner, manager, default_manager_email or channel)",
			"alerts", len(d.unrouted))
	}
	if len(d.marks.ids) > 0 {
		if _, err := r.tx.Exec(ctx, markNotifiedSQL, pgx.NamedArgs{
			"now": r.now, "next_due": r.scope.nextDue,
			"ids": d.marks.ids, "nids": nullZero(d.marks.nids), "via": d.marks.via, "recipients": d.marks.recipients,
			"escalate": d.marks.escalate,
		}); err != nil {
			return fmt.Errorf("recording notified alerts: %w", err)
		}
	}
	r.report.Told = len(d.marks.ids) + d.baselined
	for _, a := range d.reported {
		r.report.Alerts = append(r.report.Alerts, r.outcome(a, d.deliverTo[a.id]))
	}
	return nil
}

// baselineSQL lists the alerts a baseline run recorded, for the managers' summaries.
const baselineSQL = `
SELECT a.id, a.rule, a.severity, a.connection_id, coalesce(a.deal_id, 0), coalesce(a.owner_id, 0),
       coalesce(a.team, ''),
       coalesce((a.details->>'amount')::numeric, (a.details->'coverage'->>'shortfall')::numeric, 0),
       a.first_seen_at, a.notify_count, 'new'
FROM alerts a
WHERE a.opened_run_id = @run AND a.notified_via = 'baseline'
ORDER BY a.owner_id NULLS LAST, a.id`

// delivered remembers how alert id was told, for the report.
func (d *dispatcher) delivered(id int64, via string) {
	if d.run.opts.ReportLimit > 0 {
		d.deliverTo[id] = via
	}
}

// collect streams alerts to tell (or, with baseline, the baseline's alerts to summarise)
// into buckets per recipient.
func (d *dispatcher) collect(ctx context.Context, sql string, args pgx.NamedArgs, baseline bool) error {
	r := d.run
	threshold := r.settings.Routing.DigestThreshold
	rows, err := r.tx.Query(ctx, sql, args)
	if err != nil {
		return fmt.Errorf("listing alerts to tell: %w", err)
	}
	var (
		a         dueAlert
		connID    *int64
		rule, sev string
	)
	_, err = pgx.ForEachRow(rows, []any{&a.id, &rule, &sev, &connID, &a.dealID, &a.ownerID, &a.team, &a.amount,
		&a.firstSeen, &a.notifyCount, &a.reason}, func() error {
		x := a
		x.rule, x.severity = Rule(rule), Severity(sev)
		if connID != nil {
			x.connID = *connID
		}
		to, ok := d.route(&x, baseline)
		if len(d.reported) < r.opts.ReportLimit {
			d.reported = append(d.reported, &x)
		}
		if baseline {
			d.baselined++
			d.delivered(x.id, DeliveryBaseline)
		}
		if !ok {
			if !baseline {
				d.unrouted = append(d.unrouted, x.id)
				d.delivered(x.id, DeliveryUnrouted)
			}
			return nil
		}
		key := to.key()
		if baseline {
			key = "baseline|" + key
		}
		b, exists := d.buckets[key]
		if !exists {
			kind := bucketTell
			if baseline {
				kind = bucketBaseline
			}
			b = &bucket{to: to, kind: kind, top: map[Rule][]*dueAlert{}, counts: map[Rule]int{}}
			d.buckets[key] = b
		}
		b.add(&x, threshold-1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing alerts to tell: %w", err)
	}
	return nil
}

// route decides who hears about a: the deal owner (their manager when the owner is gone;
// the manager during a baseline), or the team or org recipient for coverage and lead velocity.
func (d *dispatcher) route(a *dueAlert, baseline bool) (Recipient, bool) {
	dir := d.run.dir
	switch a.rule {
	case RuleCoverageShortfall, RuleLeadVelocityDrop:
		email := ""
		if a.ownerID != 0 {
			if p, ok := dir.Person(a.ownerID); ok {
				email = p.Email
			}
		}
		return dir.GroupRecipient(email, a.team)
	}
	if baseline {
		return dir.ManagerOf(a.ownerID)
	}
	to, owner, ok := dir.OwnerRecipient(a.ownerID)
	a.toOwner = owner
	return to, ok
}

// loadDetails reads the evidence of the alerts that will be rendered.
func (d *dispatcher) loadDetails(ctx context.Context) error {
	threshold := d.run.settings.Routing.DigestThreshold
	byID := map[int64][]*dueAlert{}
	for _, b := range d.buckets {
		for _, a := range b.rendered(threshold) {
			byID[a.id] = append(byID[a.id], a)
		}
	}
	for _, a := range d.reported {
		byID[a.id] = append(byID[a.id], a)
	}
	if len(byID) == 0 {
		return nil
	}
	rows, err := d.run.tx.Query(ctx, `SELECT id, details FROM alerts WHERE id = ANY($1)`, slices.Collect(maps.Keys(byID)))
	if err != nil {
		return fmt.Errorf("reading alert evidence: %w", err)
	}
	var id int64
	var doc []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &doc}, func() error {
		det := &Details{}
		if err := json.Unmarshal(doc, det); err != nil {
			return fmt.Errorf("decoding the evidence of alert %d: %w", id, err)
		}
		for _, a := range byID[id] {
			a.details = det
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading alert evidence: %w", err)
	}
	return nil
}

// send enqueues a bucket: its alerts one by one, or one digest when there are
// DigestThreshold or more (always one summary during a baseline).
func (d *dispatcher) send(ctx context.Context, b *bucket) error {
	r := d.run
	threshold := r.settings.Routing.DigestThreshold
	if b.kind == bucketTell && b.total < threshold {
		via := DeliveryDM
		if b.to.Channel == notify.ChannelSlack {
			via = DeliveryChannel
		}
		for _, a := range b.first {
			msg := r.view(b.to, a.ownerID).message(r.alert(a, "open"))
			nid, err := r.enqueue(ctx, Notification{
				Kind: notify.KindAlert, AlertID: a.id, Recipient: b.to, Message: msg,
				DedupeKey: fmt.Sprintf("alert:%d:%d", a.id, a.notifyCount+1),
			})
			if err != nil {
				return err
			}
			d.marks.add(a.id, nid, via, b.to.Address, r.escalateAt(member{id: a.id, ownerID: a.ownerID, severity: a.severity, toOwner: a.toOwner}))
			d.delivered(a.id, via)
		}
		return nil
	}
	msg := r.digestMessage(b)
	kind, via, key := notify.KindDigest, DeliveryDigest, fmt.Sprintf("digest:run:%d:%s", r.id, b.to.key())
	if b.kind == bucketBaseline {
		via, key = DeliveryBaseline, fmt.Sprintf("baseline:run:%d:%s", r.id, b.to.key())
	}
	nid, err := r.enqueue(ctx, Notification{Kind: kind, Recipient: b.to, Message: msg, DedupeKey: key})
	if err != nil {
		return err
	}
	if b.kind == bucketBaseline {
		return nil
	}
	for _, m := range b.members {
		at := time.Time{}
		if b.kind == bucketTell {
			at = r.escalateAt(m)
		}
		d.marks.add(m.id, nid, via, b.to.Address, at)
		d.delivered(m.id, via)
	}
	return nil
}

// digestMessage lists a bucket's alerts grouped by rule, largest amount first.
func (r *run) digestMessage(b *bucket) notify.Message {
	total := b.total
	var m notify.Message
	switch {
	case b.kind == bucketBaseline:
		m.Title = fmt.Sprintf("pipewatch is now watching: %s attention", pluralNeed(total, "alert", "already"))
		m.Summary = "These conditions existed before pipewatch started watching, so nobody was pinged about them one by one. " +
			"From now on, new ones reach the deal owner directly."
	default:
		m.Title = pluralNeed(total, "alert", "") + " attention"
		m.Summary = "Several alerts came up at once, so here they are together instead of one message each."
	}
	r.fillDigest(&m, b)
	m.Context = r.freshnessNote()
	return m
}

// fillDigest adds a bucket's alerts to m grouped by rule (most urgent rule first), the
// largest amounts first, at most digestItemsPerRule lines per rule, and the counts.
func (r *run) fillDigest(m *notify.Message, b *bucket) {
	rules := slices.SortedFunc(maps.Keys(b.counts), func(x, y Rule) int { return cmp.Compare(x.order(), y.order()) })
	var counts []string
	for _, rule := range rules {
		counts = append(counts, fmt.Sprintf("%s: %d", rule.Title(), b.counts[rule]))
		for _, a := range b.top[rule] {
			m.Items = append(m.Items, r.view(b.to, a.ownerID).line(r.alert(a, "open")))
		}
		if more := b.counts[rule] - len(b.top[rule]); more > 0 {
			m.Items = append(m.Items, notify.Item{Group: rule.Title(), Text: fmt.Sprintf("…and %d more", more)})
		}
	}
	m.Facts = []notify.Fact{{Label: "By rule", Value: strings.Join(counts, "\n")}}
}

// alert assembles the rendering input of a due alert.
func (r *run) alert(a *dueAlert, state string) Alert {
	out := Alert{ID: a.id, Rule: a.rule, Severity: a.severity, State: state, Details: a.evidence(), Reason: a.reason}
	if c, ok := r.conns[a.connID]; ok {
		out.Conn = c
	}
	if p, ok := r.dir.Person(a.ownerID); ok {
		out.Owner = p
	}
	return out
}

// view renders for recipient to, with the business-day calendar of the owner's team.
func (r *run) view(to Recipient, ownerID int64) view {
	loc := r.cals.of("").Location()
	if to.Timezone != "" {
		if l, err := time.LoadLocation(to.Timezone); err == nil {
			loc = l
		}
	}
	return view{now: r.now, loc: loc, cal: r.cals.of(r.dir.Team(ownerID))}
}

// freshnessNote names the data a digest was computed from.
func (r *run) freshnessNote() string {
	var parts []string
	for _, s := range r.report.Scopes {
		if s.Evaluated {
			parts = append(parts, s.Name+" synced "+s.DataAsOf.In(r.cals.of("").Location()).Format("2006-01-02 15:04 MST"))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Data as of: " + strings.Join(parts, ", ")
}

func (r *run) enqueue(ctx context.Context, n Notification) (int64, error) {
	id, err := r.outbox.Enqueue(ctx, r.tx, n)
	if err != nil {
		return 0, fmt.Errorf("enqueueing %s for %s: %w", n.Kind, n.Recipient.Address, err)
	}
	if id != 0 {
		r.report.Notifications = append(r.report.Notifications, Sent{
			ID: id, Kind: n.Kind, Channel: n.Recipient.Channel, Recipient: n.Recipient.Address, Title: n.Message.Title,
			AlertID: n.AlertID, Items: len(n.Message.Items),
		})
	}
	return id, nil
}

// nullZero turns 0 into NULL for an array parameter.
func nullZero(ids []int64) []*int64 {
	out := make([]*int64, len(ids))
	for i := range ids {
		if ids[i] != 0 {
			out[i] = &ids[i]
		}
	}
	return out
}

// evidence is the alert's details (empty until loaded).
func (a *dueAlert) evidence() Details {
	if a.details == nil {
		return Details{}
	}
	return *a.details
}

// label identifies an alert's subject for people.
func (a *dueAlert) label() string {
	d := a.evidence()
	switch {
	case d.Coverage != nil:
		return coverageSubject(d.Coverage)
	case d.LeadVelocity != nil:
		return "org " + strings.ToUpper(d.LeadVelocity.Stage) + "s"
	case d.DealName != "":
		return d.DealName
	case a.dealID != 0:
		return "deal " + strconv.FormatInt(a.dealID, 10)
	}
	return ""
}
