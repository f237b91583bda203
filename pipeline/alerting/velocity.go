package alerting

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipewatch/pipewatch/internal/config"
)

// LeadVelocityEvidence compares qualified leads in the last window with the window before.
type LeadVelocityEvidence struct {
	// Stage is what counted as qualified: "sql" or "mql".
	Stage         string    `json:"stage"`
	Window        string    `json:"window"`
	CurrentFrom   time.Time `json:"current_from"`
	PreviousFrom  time.Time `json:"previous_from"`
	Until         time.Time `json:"until"`
	CurrentCount  int       `json:"current_count"`
	PreviousCount int       `json:"previous_count"`
	// Change is (current − previous) ÷ previous, e.g. -0.35 for a 35 % drop.
	Change float64 `json:"change"`
}

// EvaluateLeadVelocity decides whether current against previous qualified leads is a
// drop worth an alert: at least MinBase leads before, and a fall of Drop or more
// (CriticalDrop makes it critical).
func EvaluateLeadVelocity(current, previous int, r config.LeadVelocityDropRule) (float64, Severity, bool) {
	if previous < r.MinBase || previous == 0 {
		return 0, "", false
	}
	change := float64(current-previous) / float64(previous)
	change = math.Round(change*10000) / 10000
	switch {
	case -change >= r.CriticalDrop:
		return change, SeverityCritical, true
	case -change >= r.Drop:
		return change, SeverityWarning, true
	}
	return change, "", false
}

// evaluateLeadVelocity writes a finding when qualified leads fell.
func evaluateLeadVelocity(ctx context.Context, tx pgx.Tx, r config.LeadVelocityDropRule, cal *Calendar, now, dataAsOf time.Time) error {
	column := "sql_at"
	if r.Stage == "mql" {
		column = "mql_at"
	}
	currentFrom := cal.Before(now, r.Window)
	previousFrom := now.Add(-2 * now.Sub(currentFrom))
	var current, previous int
	err := tx.QueryRow(ctx, fmt.Sprintf(`
		SELECT count(*) FILTER (WHERE %[1]s >= $2)::int, count(*) FILTER (WHERE %[1]s < $2)::int
		FROM leads WHERE deleted_at IS NULL AND %[1]s >= $1 AND %[1]s < $3`, column),
		previousFrom, currentFrom, now).Scan(&current, &previous)
	if err != nil {
		return fmt.Errorf("counting qualified leads: %w", err)
	}
	change, sev, ok := EvaluateLeadVelocity(current, previous, r)
	if !ok {
		return nil
	}
	return insertFinding(ctx, tx, finding{
		rule: RuleLeadVelocityDrop, subject: "lead_velocity_drop:org:" + r.Stage, severity: sev,
		details: Details{DataAsOf: dataAsOf, LeadVelocity: &LeadVelocityEvidence{
			Stage: r.Stage, Window: r.Window.String(), CurrentFrom: currentFrom, PreviousFrom: previousFrom, Until: now,
			CurrentCount: current, PreviousCount: previous, Change: change,
		}},
	})
}
