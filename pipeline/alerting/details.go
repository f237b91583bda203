package alerting

import (
	"time"

	"github.com/shopspring/decimal"
)

// Details is the evidence an alert carries in alerts.details. Deal rules fill the deal
// fields and their own; coverage and lead velocity fill theirs. DataAsOf is the last
// successful sync of the data the alert was computed from (the oldest, for org rules).
type Details struct {
	DataAsOf time.Time `json:"data_as_of"`

	// Every deal rule.
	DealID         int64               `json:"deal_id,omitempty"`
	DealExternalID string              `json:"deal_external_id,omitempty"`
	DealName       string              `json:"deal_name,omitempty"`
	Amount         decimal.NullDecimal `json:"amount"`
	Currency       string              `json:"currency,omitempty"`
	StageName      string              `json:"stage_name,omitempty"`
	CanonicalStage string              `json:"canonical_stage,omitempty"`
	CloseDate      string              `json:"close_date,omitempty"`

	// idle
	LastTouchAt      *time.Time `json:"last_touch_at,omitempty"`
	LastTouchSource  string     `json:"last_touch_source,omitempty"`
	LastActivityKind string     `json:"last_activity_kind,omitempty"`
	DaysIdle         int        `json:"days_idle,omitempty"`
	NextActivityAt   *time.Time `json:"next_activity_at,omitempty"`
	Stalled          bool       `json:"stalled,omitempty"`
	SuggestCloseLost bool       `json:"suggest_close_lost,omitempty"`

	// stuck_in_stage (Threshold is shared with idle)
	Threshold           string     `json:"threshold,omitempty"`
	StageEnteredAt      *time.Time `json:"stage_entered_at,omitempty"`
	DaysInStage         int        `json:"days_in_stage,omitempty"`
	ThresholdDays       float64    `json:"threshold_days,omitempty"`
	ThresholdSource     string     `json:"threshold_source,omitempty"`
	WonDealsLearnedFrom int        `json:"won_deals_learned_from,omitempty"`
	CriticalFactor      float64    `json:"critical_factor,omitempty"`

	// past_close_date
	DaysOverdue   int    `json:"days_overdue,omitempty"`
	CriticalAfter string `json:"critical_after,omitempty"`

	// close_date_slipped
	PushCount         int               `json:"push_count,omitempty"`
	PushedOutOfPeriod bool              `json:"pushed_out_of_period,omitempty"`
	PeriodStart       string            `json:"period_start,omitempty"`
	PeriodEnd         string            `json:"period_end,omitempty"`
	EscalateAt        int               `json:"escalate_at,omitempty"`
	CloseDateHistory  []CloseDateChange `json:"close_date_history,omitempty"`

	// no_next_step
	Reason  string `json:"reason,omitempty"`
	Horizon string `json:"horizon,omitempty"`

	// coverage_shortfall
	Coverage *CoverageEvidence `json:"coverage,omitempty"`
	// lead_velocity_drop
	LeadVelocity *LeadVelocityEvidence `json:"lead_velocity,omitempty"`
}

// CloseDateChange is one recorded change of a deal's close date.
type CloseDateChange struct {
	ChangedAt time.Time `json:"changed_at"`
	From      string    `json:"from"`
	To        string    `json:"to"`
}
