package alerting

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/internal/config"
)

// Target is a targets row: an owner's (by email), a team's or the org's amount for a period.
type Target struct {
	ID                     int64
	OwnerEmail, Team       string
	PeriodStart, PeriodEnd time.Time
	Amount                 decimal.Decimal
	Currency               string
}

// scope names who the target is for: "owner", "team" or "org", and the email or team.
func (t Target) scope() (string, string) {
	switch {
	case t.OwnerEmail != "":
		return "owner", strings.ToLower(t.OwnerEmail)
	case t.Team != "":
		return "team", t.Team
	}
	return "org", ""
}

// OwnerTotals are one owner's deals in one currency measured against one period (OwnerID
// 0 = deals without an owner).
type OwnerTotals struct {
	OwnerID  int64
	Currency string
	// Open is the amount of open deals closing in the period (forecast category other
	// than omitted); Won the amount won in the period.
	Open      decimal.Decimal
	OpenDeals int
	Won       decimal.Decimal
	// TrailingWon and TrailingClosed count deals (any currency) closed in the four
	// quarters before the period's quarter.
	TrailingWon, TrailingClosed int
}

// CoverageEvidence is the arithmetic behind a coverage shortfall, with the definitions of
// `pipewatch report`: Coverage = OpenPipeline ÷ (Target − Won); the required coverage is
// 1 ÷ the trailing win rate (won ÷ closed), kept between the rule's floor and cap.
type CoverageEvidence struct {
	Scope            string              `json:"scope"`
	Name             string              `json:"name,omitempty"`
	PeriodStart      string              `json:"period_start"`
	PeriodEnd        string              `json:"period_end"`
	Currency         string              `json:"currency"`
	Target           decimal.Decimal     `json:"target"`
	Won              decimal.Decimal     `json:"won"`
	Remaining        decimal.Decimal     `json:"remaining"`
	OpenPipeline     decimal.Decimal     `json:"open_pipeline"`
	OpenDeals        int                 `json:"open_deals"`
	Coverage         decimal.Decimal     `json:"coverage"`
	TrailingWon      int                 `json:"trailing_won"`
	TrailingClosed   int                 `json:"trailing_closed"`
	TrailingWinRate  decimal.NullDecimal `json:"trailing_win_rate"`
	RequiredCoverage decimal.Decimal     `json:"required_coverage"`
	PipelineNeeded   decimal.Decimal     `json:"pipeline_needed"`
	Shortfall        decimal.Decimal     `json:"shortfall"`
}

// EvaluateCoverage measures target t against the totals of the owners in its scope
// (inScope says whether an owner belongs to it) and returns the evidence and severity of
// a shortfall; ok is false when coverage is enough or the target is already met.
func EvaluateCoverage(t Target, totals []OwnerTotals, inScope func(ownerID int64) bool, r config.CoverageShortfallRule) (CoverageEvidence, Severity, bool) {
	scope, name := t.scope()
	e := CoverageEvidence{
		Scope: scope, Name: name, Currency: t.Currency, Target: t.Amount,
		PeriodStart: t.PeriodStart.Format(time.DateOnly), PeriodEnd: t.PeriodEnd.Format(time.DateOnly),
	}
	for _, o := range totals {
		if !inScope(o.OwnerID) {
			continue
		}
		e.TrailingWon += o.TrailingWon
		e.TrailingClosed += o.TrailingClosed
		if o.Currency == t.Currency {
			e.OpenPipeline = e.OpenPipeline.Add(o.Open)
			e.OpenDeals += o.OpenDeals
			e.Won = e.Won.Add(o.Won)
		}
	}
	e.Remaining = t.Amount.Sub(e.Won)
	if !e.Remaining.IsPositive() {
		return CoverageEvidence{}, "", false
	}
	floor, ceiling := decimal.NewFromFloat(r.Floor), decimal.NewFromFloat(r.Cap)
	e.RequiredCoverage = ceiling
	if e.TrailingClosed > 0 {
		rate := decimal.NewFromInt(int64(e.TrailingWon)).DivRound(decimal.NewFromInt(int64(e.TrailingClosed)), 4)
		e.TrailingWinRate = decimal.NewNullDecimal(rate)
		if rate.IsPositive() {
			e.RequiredCoverage = decimal.Min(ceiling, decimal.Max(floor, decimal.NewFromInt(1).DivRound(rate, 4)))
		}
	}
	e.Coverage = e.OpenPipeline.DivRound(e.Remaining, 4)
	e.PipelineNeeded = e.RequiredCoverage.Mul(e.Remaining).Round(2)
	e.Shortfall = decimal.Max(decimal.Zero, e.PipelineNeeded.Sub(e.OpenPipeline))
	if !e.Coverage.LessThan(e.RequiredCoverage) {
		return CoverageEvidence{}, "", false
	}
	sev := SeverityWarning
	if e.Coverage.LessThan(e.RequiredCoverage.Mul(decimal.NewFromFloat(r.CriticalBelow))) {
		sev = SeverityCritical
	}
	return e, sev, true
}

// coverageTotalsSQL totals every owner's deals against one period: open pipeline closing
// in it, won in it, and the trailing year's closed deals. The open and the closed deals
// are read apart, each from its covering index (deals_open_report_idx,
// deals_closed_report_idx), the closed ones over the span of both windows.
const coverageTotalsSQL = `
SELECT coalesce(x.owner_id, 0), coalesce(x.currency, ''),
       coalesce(sum(x.amount) FILTER (WHERE x.open), 0),
       count(*) FILTER (WHERE x.open)::int,
       coalesce(sum(x.amount) FILTER (WHERE x.is_won AND x.closed_at >= @from AND x.closed_at < @until), 0),
       count(*) FILTER (WHERE x.is_won AND x.closed_at >= @tfrom AND x.closed_at < @tuntil)::int,
       count(*) FILTER (WHERE x.closed_at >= @tfrom AND x.closed_at < @tuntil)::int
FROM (
    SELECT d.owner_id, d.currency, d.amount, lower(coalesce(d.forecast_category, '')) <> 'omitted' AS open,
           false AS is_won, NULL::timestamptz AS closed_at
    FROM deals d
    WHERE NOT d.is_closed AND d.deleted_at IS NULL AND d.close_date BETWEEN @ps::date AND @pe::date
    UNION ALL
    SELECT d.owner_id, d.currency, d.amount, false, d.is_won, d.closed_at
    FROM deals d
    WHERE d.is_closed AND d.deleted_at IS NULL AND d.closed_at >= @span_from AND d.closed_at < @span_until
      AND ((d.closed_at >= @from AND d.closed_at < @until) OR (d.closed_at >= @tfrom AND d.closed_at < @tuntil))
) x
GROUP BY 1, 2`

// evaluateCoverage writes a finding for every current target short of coverage.
func evaluateCoverage(ctx context.Context, tx pgx.Tx, r config.CoverageShortfallRule, dir *Directory, today time.Time, dataAsOf time.Time) error {
	rows, err := tx.Query(ctx, `
		SELECT id, coalesce(lower(owner_email), ''), coalesce(team, ''), period_start, period_end, amount, currency
		FROM targets WHERE period_start <= $1::date AND period_end >= $1::date
		ORDER BY period_start, period_end, id`, today.Format(time.DateOnly))
	if err != nil {
		return fmt.Errorf("reading current targets: %w", err)
	}
	var targets []Target
	var t Target
	if _, err := pgx.ForEachRow(rows, []any{&t.ID, &t.OwnerEmail, &t.Team, &t.PeriodStart, &t.PeriodEnd, &t.Amount, &t.Currency}, func() error {
		targets = append(targets, t)
		return nil
	}); err != nil {
		return fmt.Errorf("reading current targets: %w", err)
	}
	totals := map[[2]time.Time][]OwnerTotals{}
	for _, t := range targets {
		key := [2]time.Time{t.PeriodStart, t.PeriodEnd}
		if _, ok := totals[key]; ok {
			continue
		}
		if totals[key], err = loadOwnerTotals(ctx, tx, t.PeriodStart, t.PeriodEnd); err != nil {
			return err
		}
	}
	for _, t := range targets {
		scope, name := t.scope()
		inScope := func(ownerID int64) bool {
			switch scope {
			case "owner":
				p, ok := dir.Person(ownerID)
				return ok && p.Email == name
			case "team":
				return dir.Team(ownerID) == name
			}
			return true
		}
		e, sev, ok := EvaluateCoverage(t, totals[[2]time.Time{t.PeriodStart, t.PeriodEnd}], inScope, r)
		if !ok {
			continue
		}
		subject := fmt.Sprintf("coverage_shortfall:%s:%s:%s..%s:%s", scope, name, e.PeriodStart, e.PeriodEnd, t.Currency)
		team := t.Team
		if scope == "owner" {
			team = dir.teamOfEmail(name)
		}
		d := Details{DataAsOf: dataAsOf, Coverage: &e}
		if err := insertFinding(ctx, tx, finding{
			rule: RuleCoverageShortfall, subject: subject, team: team, severity: sev, details: d,
			ownerID: dir.ownerIDByEmail(name),
		}); err != nil {
			return err
		}
	}
	return nil
}

func loadOwnerTotals(ctx context.Context, tx pgx.Tx, start, end time.Time) ([]OwnerTotals, error) {
	quarterStart := time.Date(start.Year(), (start.Month()-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC)
	from, until := start, end.AddDate(0, 0, 1)
	tfrom, tuntil := quarterStart.AddDate(-1, 0, 0), quarterStart
	rows, err := tx.Query(ctx, coverageTotalsSQL, pgx.NamedArgs{
		"ps": start.Format(time.DateOnly), "pe": end.Format(time.DateOnly),
		"from": from, "until": until, "tfrom": tfrom, "tuntil": tuntil,
		"span_from": minTime(from, tfrom), "span_until": maxTime(until, tuntil),
	})
	if err != nil {
		return nil, fmt.Errorf("totalling pipeline for coverage: %w", err)
	}
	var out []OwnerTotals
	var o OwnerTotals
	if _, err := pgx.ForEachRow(rows, []any{&o.OwnerID, &o.Currency, &o.Open, &o.OpenDeals, &o.Won, &o.TrailingWon, &o.TrailingClosed}, func() error {
		out = append(out, o)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("totalling pipeline for coverage: %w", err)
	}
	return out, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
