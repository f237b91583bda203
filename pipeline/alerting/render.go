package alerting

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/internal/notify"
)

// Button action ids of alert messages. They share ActionPrefix, under which Actions is
// registered with notify.Actions.
const (
	ActionPrefix = "alert."

	ActionSnooze3Days = "alert.snooze_3d"
	ActionSnooze7Days = "alert.snooze_7d"
	ActionAcknowledge = "alert.acknowledge"
)

// Alert is an alert as messages show it.
type Alert struct {
	ID       int64
	Rule     Rule
	Severity Severity
	State    string
	Details  Details
	// Reason is why it is being sent now: new, severity_rose, stage_changed,
	// snooze_ended or cooldown_ended.
	Reason         string
	SnoozedUntil   time.Time
	SnoozedBy      string
	AcknowledgedBy string
	Resolution     string
	// Conn is the deal's connection (nil for org rules); Owner the deal's owner (nil when unknown).
	Conn  *Connection
	Owner *Person
}

// view is what rendering needs besides the alert: the clock, the reader's zone and the
// owner's calendar (business days in the evidence).
type view struct {
	now time.Time
	loc *time.Location
	cal *Calendar
}

// message renders one alert as a message with its evidence, CRM link and buttons.
func (v view) message(a Alert) notify.Message {
	m := notify.Message{Title: v.title(a), Summary: v.summary(a), Facts: v.facts(a), Context: v.context(a)}
	if a.Conn != nil {
		if u := a.Conn.DealURL(a.Details.DealExternalID); u != "" {
			m.Link = &notify.Link{Text: "Open in " + a.Conn.vendorName(), URL: u}
		}
	}
	id := strconv.FormatInt(a.ID, 10)
	switch a.State {
	case "open":
		m.Actions = []notify.Action{
			{ID: ActionSnooze3Days, Label: "Snooze 3d", Value: id},
			{ID: ActionSnooze7Days, Label: "Snooze 7d", Value: id},
			{ID: ActionAcknowledge, Label: "Acknowledge", Value: id, Style: "primary"},
		}
	case "snoozed":
		m.Actions = []notify.Action{{ID: ActionAcknowledge, Label: "Acknowledge", Value: id, Style: "primary"}}
	}
	return m
}

func (v view) title(a Alert) string {
	subject := a.Details.DealName
	switch {
	case a.Details.Coverage != nil:
		subject = coverageSubject(a.Details.Coverage)
	case a.Details.LeadVelocity != nil:
		subject = strings.ToUpper(a.Details.LeadVelocity.Stage) + "s"
	case subject == "":
		subject = "deal " + a.Details.DealExternalID
	}
	t := a.Rule.Title() + ": " + subject
	if a.Severity == SeverityCritical {
		t = "Critical · " + t
	}
	return t
}

func coverageSubject(c *CoverageEvidence) string {
	switch c.Scope {
	case "owner":
		return c.Name
	case "team":
		return "team " + c.Name
	}
	return "whole org"
}

// summary says what is wrong and what to do, in a sentence or two.
func (v view) summary(a Alert) string {
	d := a.Details
	var s string
	switch a.Rule {
	case RuleIdle:
		s = fmt.Sprintf("No touch for %s%s (threshold %s).", v.idleSpan(d), v.inStage(d), idleThresholdLabel(d))
		if d.SuggestCloseLost {
			s += " It has been idle long enough that closing it as lost may be the honest update."
		} else {
			s += " Log a touch or schedule the next step."
		}
	case RuleStuckInStage:
		s = fmt.Sprintf("In %s for %s; %s.", stageLabel(d), plural(v.daysInStage(d), "day"), stuckBenchmark(d))
		s += " Move it forward, or update the stage."
	case RulePastCloseDate:
		s = fmt.Sprintf("The expected close date %s passed %s ago. Update the close date or close the deal.",
			d.CloseDate, plural(v.daysOverdue(d), "day"))
	case RuleCloseDateSlipped:
		s = fmt.Sprintf("The close date was pushed %s", plural(d.PushCount, "time"))
		if n := len(d.CloseDateHistory); n > 0 {
			last := d.CloseDateHistory[n-1]
			s += fmt.Sprintf(" (latest %s → %s)", dateOnly(last.From), dateOnly(last.To))
		}
		if d.PushedOutOfPeriod {
			s += fmt.Sprintf(", out of the period ending %s", d.PeriodEnd)
		}
		s += ". Check whether the date is still real."
	case RuleNoNextStep:
		switch d.Reason {
		case "overdue":
			s = fmt.Sprintf("The next activity (%s) is overdue.", v.day(d.NextActivityAt))
		case "too_far":
			s = fmt.Sprintf("The next activity is only on %s, more than %s away.", v.day(d.NextActivityAt), thresholdLabel(d.Horizon))
		default:
			s = "No next activity is scheduled."
		}
		s += " Schedule the next step."
	case RuleCoverageShortfall:
		c := d.Coverage
		s = fmt.Sprintf("Open pipeline for %s..%s covers %s× of the remaining target; %s× is needed (%s). "+
			"Pipeline needed: %s; missing %s.", c.PeriodStart, c.PeriodEnd, ratioText(c.Coverage),
			ratioText(c.RequiredCoverage), winRateText(c), money(c.PipelineNeeded, c.Currency), money(c.Shortfall, c.Currency))
	case RuleLeadVelocityDrop:
		l := d.LeadVelocity
		s = fmt.Sprintf("%d %ss in the last %s, down %.0f%% from %d in the %s before.", l.CurrentCount,
			strings.ToUpper(l.Stage), thresholdLabel(l.Window), -l.Change*100, l.PreviousCount, thresholdLabel(l.Window))
	}
	return s
}

func (v view) facts(a Alert) []notify.Fact {
	d := a.Details
	var f []notify.Fact
	add := func(label, value string) {
		if value != "" {
			f = append(f, notify.Fact{Label: label, Value: value})
		}
	}
	if a.Details.DealID != 0 {
		add("Amount", amountText(d.Amount, d.Currency))
		add("Stage", stageLabel(d))
		if a.Owner != nil {
			add("Owner", personLabel(a.Owner))
		}
		add("Close date", d.CloseDate)
	}
	switch a.Rule {
	case RuleIdle:
		add("Idle", v.idleSpan(d)+" (threshold "+idleThresholdLabel(d)+")")
		add("Last touch", v.touchLabel(d))
		add("Next activity", v.day(d.NextActivityAt))
	case RuleStuckInStage:
		add("In stage since", v.day(d.StageEnteredAt))
		add("Days in stage", fmt.Sprintf("%d (threshold %s, %s)", v.daysInStage(d), thresholdLabel(d.Threshold), sourceLabel(d)))
	case RulePastCloseDate:
		add("Overdue", plural(v.daysOverdue(d), "day"))
	case RuleCloseDateSlipped:
		add("Pushes", strconv.Itoa(d.PushCount))
		var hist []string
		for _, h := range d.CloseDateHistory {
			hist = append(hist, fmt.Sprintf("%s: %s → %s", v.day(&h.ChangedAt), dateOnly(h.From), dateOnly(h.To)))
		}
		add("Close-date history", strings.Join(hist, "\n"))
	case RuleNoNextStep:
		add("Next activity", v.day(d.NextActivityAt))
		add("In stage since", v.day(d.StageEnteredAt))
	case RuleCoverageShortfall:
		c := d.Coverage
		add("Target", money(c.Target, c.Currency))
		add("Won so far", money(c.Won, c.Currency))
		add("Open pipeline", fmt.Sprintf("%s (%s)", money(c.OpenPipeline, c.Currency), plural(c.OpenDeals, "deal")))
		add("Coverage", ratioText(c.Coverage)+"× (needed "+ratioText(c.RequiredCoverage)+"×)")
		add("Trailing win rate", winRateText(c))
	case RuleLeadVelocityDrop:
		l := d.LeadVelocity
		add("Last "+thresholdLabel(l.Window), strconv.Itoa(l.CurrentCount))
		add("The "+thresholdLabel(l.Window)+" before", strconv.Itoa(l.PreviousCount))
		add("Change", fmt.Sprintf("%+.0f%%", l.Change*100))
	}
	return f
}

func (v view) context(a Alert) string {
	parts := []string{"Rule " + string(a.Rule), string(a.Severity)}
	switch a.Reason {
	case "severity_rose":
		parts = append(parts, "sent again: severity rose")
	case "stage_changed":
		parts = append(parts, "sent again: the stage changed")
	case "snooze_ended":
		parts = append(parts, "sent again: the snooze ended")
	case "cooldown_ended":
		parts = append(parts, "still open")
	}
	switch a.State {
	case "snoozed":
		parts = append(parts, "snoozed until "+v.stamp(a.SnoozedUntil)+byUser(a.SnoozedBy))
	case "acknowledged":
		parts = append(parts, "acknowledged"+byUser(a.AcknowledgedBy))
	case "resolved":
		parts = append(parts, "resolved ("+strings.ReplaceAll(a.Resolution, "_", " ")+")")
	}
	asOf := a.Details.DataAsOf
	if a.Conn != nil && a.Conn.LastSyncedAt.After(asOf) {
		asOf = a.Conn.LastSyncedAt
	}
	if !asOf.IsZero() {
		as := "data as of " + v.stamp(asOf)
		if a.Conn != nil {
			as += " (" + a.Conn.Name + ")"
		}
		parts = append(parts, as)
	}
	return strings.Join(parts, " · ")
}

func byUser(u string) string {
	if u == "" {
		return ""
	}
	return " by <@" + u + ">"
}

// line is the one-line form of an alert in a digest.
func (v view) line(a Alert) notify.Item {
	d := a.Details
	it := notify.Item{Group: a.Rule.Title()}
	if a.Conn != nil {
		it.URL = a.Conn.DealURL(d.DealExternalID)
	}
	var parts []string
	switch {
	case d.Coverage != nil:
		c := d.Coverage
		parts = append(parts, coverageSubject(c), fmt.Sprintf("coverage %s× of %s× needed, missing %s",
			ratioText(c.Coverage), ratioText(c.RequiredCoverage), money(c.Shortfall, c.Currency)))
	case d.LeadVelocity != nil:
		parts = append(parts, v.summary(a))
	default:
		name := d.DealName
		if name == "" {
			name = "deal " + d.DealExternalID
		}
		parts = append(parts, name, amountText(d.Amount, d.Currency))
		if a.Owner != nil {
			parts = append(parts, personLabel(a.Owner))
		}
		parts = append(parts, v.evidence(a))
	}
	if a.Severity == SeverityCritical {
		parts = append(parts, "critical")
	}
	it.Text = strings.Join(nonEmpty(parts), " · ")
	return it
}

// evidence is the short why of a deal alert.
func (v view) evidence(a Alert) string {
	d := a.Details
	switch a.Rule {
	case RuleIdle:
		return "no touch for " + v.idleSpan(d) + " (threshold " + thresholdLabel(d.Threshold) + ")"
	case RuleStuckInStage:
		return fmt.Sprintf("%s in %s (threshold %s)", plural(v.daysInStage(d), "day"), stageLabel(d), thresholdLabel(d.Threshold))
	case RulePastCloseDate:
		return fmt.Sprintf("close date %s passed %s ago", d.CloseDate, plural(v.daysOverdue(d), "day"))
	case RuleCloseDateSlipped:
		s := "pushed " + plural(d.PushCount, "time")
		if d.PushedOutOfPeriod {
			s += ", out of the period"
		}
		return s
	case RuleNoNextStep:
		switch d.Reason {
		case "overdue":
			return "next activity overdue since " + v.day(d.NextActivityAt)
		case "too_far":
			return "next activity only on " + v.day(d.NextActivityAt)
		}
		return "no next activity scheduled"
	}
	return v.summary(a)
}

// idleSpan is "12 days", or "4.5 business days" for business-day thresholds.
func (v view) idleSpan(d Details) string {
	if strings.HasSuffix(d.Threshold, "bd") && d.LastTouchAt != nil && v.cal != nil {
		bd := math.Floor(v.cal.Elapsed(*d.LastTouchAt, v.now, true)*10) / 10
		return strconv.FormatFloat(bd, 'f', -1, 64) + " business days"
	}
	return plural(v.daysSince(d.LastTouchAt, d.DaysIdle), "day")
}

// daysSince counts whole days from t to now (stored when t is unknown): evidence is
// stored when its facts change, and the days are counted when the message is written.
func (v view) daysSince(t *time.Time, stored int) int {
	if t == nil || t.IsZero() {
		return stored
	}
	return int(v.now.Sub(*t) / day)
}

func (v view) daysInStage(d Details) int { return v.daysSince(d.StageEnteredAt, d.DaysInStage) }

func (v view) daysOverdue(d Details) int {
	close, err := time.Parse(time.DateOnly, dateOnly(d.CloseDate))
	if err != nil {
		return d.DaysOverdue
	}
	y, m, dd := v.now.In(v.loc).Date()
	return int(time.Date(y, m, dd, 0, 0, 0, 0, time.UTC).Sub(close) / day)
}

func (v view) inStage(d Details) string {
	if s := stageLabel(d); s != "" {
		return " in " + s
	}
	return ""
}

func (v view) touchLabel(d Details) string {
	if d.LastTouchAt == nil {
		return ""
	}
	var src string
	switch d.LastTouchSource {
	case "activity":
		src = d.LastActivityKind
		if src == "" {
			src = "activity"
		}
	case "crm_last_activity":
		src = "last activity in the CRM"
	case "stage_entered":
		src = "entered the stage"
	case "crm_updated":
		src = "deal last updated in the CRM"
	case "created":
		src = "deal created"
	}
	return v.day(d.LastTouchAt) + " (" + src + ")"
}

func (v view) day(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.In(v.loc).Format("Mon 2006-01-02")
}

func (v view) stamp(t time.Time) string {
	return t.In(v.loc).Format("2006-01-02 15:04 MST")
}

func stageLabel(d Details) string {
	switch {
	case d.StageName != "":
		return d.StageName
	case d.CanonicalStage != "":
		return strings.ReplaceAll(d.CanonicalStage, "_", " ")
	}
	return ""
}

// idleThresholdLabel is the idle threshold, and where it comes from when the CRM set it.
func idleThresholdLabel(d Details) string {
	if d.ThresholdSource == SourceRotDays {
		return thresholdLabel(d.Threshold) + ", the CRM's rotting days"
	}
	return thresholdLabel(d.Threshold)
}

func stuckBenchmark(d Details) string {
	switch d.ThresholdSource {
	case SourceLearned:
		return fmt.Sprintf("won deals of your team left this stage within %s (learned from %s)",
			thresholdLabel(d.Threshold), plural(d.WonDealsLearnedFrom, "won deal"))
	case SourceRotDays:
		return "the CRM's rotting threshold for this stage is " + thresholdLabel(d.Threshold)
	}
	return "the threshold is " + thresholdLabel(d.Threshold)
}

func sourceLabel(d Details) string {
	switch d.ThresholdSource {
	case SourceLearned:
		return fmt.Sprintf("learned from %s", plural(d.WonDealsLearnedFrom, "won deal"))
	case SourceRotDays:
		return "the CRM's rotting days"
	case SourceStageSetting:
		return "set for this stage"
	case SourceFallback:
		return fmt.Sprintf("default while fewer than enough won deals exist to learn from (%d)", d.WonDealsLearnedFrom)
	}
	return "fixed"
}

// thresholdLabel turns "5bd" into "5 business days" (other text is returned as is).
func thresholdLabel(s string) string {
	n, business := strings.CutSuffix(s, "bd")
	if !business {
		n, _ = strings.CutSuffix(s, "d")
	}
	i, err := strconv.Atoi(n)
	if err != nil {
		return s
	}
	if business {
		return plural(i, "business day")
	}
	return plural(i, "day")
}

func winRateText(c *CoverageEvidence) string {
	if !c.TrailingWinRate.Valid {
		return "no deals closed in the trailing year, so the cap applies"
	}
	return fmt.Sprintf("trailing win rate %s%% of %s", c.TrailingWinRate.Decimal.Mul(decimal.NewFromInt(100)).Round(1),
		plural(c.TrailingClosed, "closed deal"))
}

func ratioText(d decimal.Decimal) string { return d.Round(1).String() }

func personLabel(p *Person) string {
	if p.Name != "" {
		return p.Name
	}
	return p.Email
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// pluralNeed is "1 alert needs" or "5 alerts need", with adverb (if any) before the verb.
func pluralNeed(n int, unit, adverb string) string {
	verb := "need"
	if n == 1 {
		verb = "needs"
	}
	if adverb != "" {
		verb = adverb + " " + verb
	}
	return plural(n, unit) + " " + verb
}

func dateOnly(s string) string {
	if len(s) >= 10 {
		return s[:10]
	}
	return s
}

func nonEmpty(ss []string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// amountText is money(amount) or "no amount".
func amountText(a decimal.NullDecimal, currency string) string {
	if !a.Valid {
		return "no amount"
	}
	return money(a.Decimal, currency)
}

// money writes 1234567.5 USD as "$1,234,568" (other currencies as "1,234,568 EUR").
func money(a decimal.Decimal, currency string) string {
	whole := a.Round(0)
	s := whole.Abs().String()
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	sign := ""
	if whole.IsNegative() {
		sign = "-"
	}
	switch strings.ToUpper(currency) {
	case "":
		return sign + b.String()
	case "USD":
		return sign + "$" + b.String()
	case "EUR":
		return sign + "€" + b.String()
	case "GBP":
		return sign + "£" + b.String()
	}
	return sign + b.String() + " " + strings.ToUpper(currency)
}
