// Package alerting decides which deals, owners and teams need attention and who hears
// about it: the alert rules of docs/pipeline-analytics.md, the alert lifecycle in the
// alerts table, the data-quality gate, routing, and flood control. Delivery (Slack, quiet
// hours) is internal/notify's; this package only writes the notifications outbox.
//
// Deal rules (idle, stuck in stage, past close date, close date slipped, no next step)
// are evaluated set-based in Postgres with thresholds computed here (business days,
// learned stage times); coverage shortfall and lead velocity drop are pure functions over
// aggregates loaded from Postgres. Every alert keeps its rule, its evidence and the
// freshness of the data in alerts.details.
package alerting

// Rule names an alert rule. The values are stored in alerts.rule.
type Rule string

// The rules.
const (
	RuleIdle              Rule = "idle"
	RuleStuckInStage      Rule = "stuck_in_stage"
	RulePastCloseDate     Rule = "past_close_date"
	RuleCloseDateSlipped  Rule = "close_date_slipped"
	RuleNoNextStep        Rule = "no_next_step"
	RuleCoverageShortfall Rule = "coverage_shortfall"
	RuleLeadVelocityDrop  Rule = "lead_velocity_drop"
)

// DealRules are the rules about one deal; they are evaluated per connection.
var DealRules = []Rule{RuleIdle, RuleStuckInStage, RulePastCloseDate, RuleCloseDateSlipped, RuleNoNextStep}

// OrgRules are the rules about owners, teams and the org; they need every connection fresh.
var OrgRules = []Rule{RuleCoverageShortfall, RuleLeadVelocityDrop}

// Title is the rule's name for people.
func (r Rule) Title() string {
	switch r {
	case RuleIdle:
		return "Idle deal"
	case RuleStuckInStage:
		return "Stuck in stage"
	case RulePastCloseDate:
		return "Past close date"
	case RuleCloseDateSlipped:
		return "Close date slipped"
	case RuleNoNextStep:
		return "No next step"
	case RuleCoverageShortfall:
		return "Coverage shortfall"
	case RuleLeadVelocityDrop:
		return "Lead velocity drop"
	}
	return string(r)
}

// order ranks rules in digests: the most urgent first.
func (r Rule) order() int {
	switch r {
	case RuleCoverageShortfall:
		return 0
	case RuleLeadVelocityDrop:
		return 1
	case RulePastCloseDate:
		return 2
	case RuleCloseDateSlipped:
		return 3
	case RuleStuckInStage:
		return 4
	case RuleIdle:
		return 5
	case RuleNoNextStep:
		return 6
	}
	return 7
}

// Severity is how urgent an alert is. Values are stored in alerts.severity.
type Severity string

// Severities, least urgent first.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Rank orders severities: info < warning < critical.
func (s Severity) Rank() int {
	switch s {
	case SeverityWarning:
		return 1
	case SeverityCritical:
		return 2
	}
	return 0
}
