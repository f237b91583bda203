package analytics

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Coverage statuses.
const (
	CoverageMet     = "target_met" // won so far ≥ target (a zero target is always met)
	CoverageCovered = "covered"    // coverage ≥ required coverage
	CoverageShort   = "short"      // coverage < required coverage
)

// Required coverage bounds: the ratio 1 ÷ trailing win rate is kept within them.
var (
	minRequiredCoverage = decimal.NewFromInt(2)
	maxRequiredCoverage = decimal.NewFromInt(5)
)

// Coverage is pipeline coverage of one target: an owner's (targets.owner_email, matched
// case-insensitively against owners.email in every connection), a team's (owners.team) or
// the whole org's (neither set), for a target whose period is exactly the report's period,
// in the target's currency.
//
//   - Won: amount of the subject's deals in that currency won in the period (closed_at).
//   - OpenPipeline: amount of its open deals in that currency whose close_date is in the
//     period, forecast category other than "omitted".
//   - Remaining = Target − Won, or the full Target when the period starts after today.
//   - Coverage = OpenPipeline ÷ Remaining; null with status target_met when Remaining ≤ 0.
//   - TrailingWinRate: won ÷ (won + lost) by count over the subject's deals (all
//     currencies) closed in the four calendar quarters before the quarter the period
//     starts in; RequiredCoverage = 1 ÷ TrailingWinRate kept within 2× and 5× (5× when the
//     trailing window has no win).
//   - PipelineNeeded = RequiredCoverage × Remaining; Shortfall = what OpenPipeline lacks of it.
//
// In a team scope the rows are the team's target and its members' targets; in an owner
// scope that owner's target; in a pipeline or connection scope every target, counting
// only that pipeline's or connection's deals. Deals without an owner count toward org
// targets only.
type Coverage struct {
	Subject          string              `json:"subject"` // org, team or owner
	Name             string              `json:"name"`    // "", the team, or the owner's email
	Currency         string              `json:"currency"`
	Target           decimal.Decimal     `json:"target"`
	Won              decimal.Decimal     `json:"won"`
	Remaining        decimal.Decimal     `json:"remaining"`
	OpenPipeline     decimal.Decimal     `json:"open_pipeline"`
	Coverage         decimal.NullDecimal `json:"coverage"`
	TrailingWinRate  decimal.NullDecimal `json:"trailing_win_rate"`
	RequiredCoverage decimal.Decimal     `json:"required_coverage"`
	PipelineNeeded   decimal.Decimal     `json:"pipeline_needed"`
	Shortfall        decimal.Decimal     `json:"shortfall"`
	Status           string              `json:"status"`
}

// coverageSQL reads the period's targets, the won and open amounts of the period per
// owner email, team and currency, and the trailing year's closed and won counts per
// owner email and team (the deals from the covering indexes deals_open_report_idx and
// deals_closed_report_idx alone).
const coverageSQL = `
WITH t AS (
    SELECT CASE WHEN owner_email IS NOT NULL THEN 'owner' WHEN team IS NOT NULL THEN 'team' ELSE 'org' END AS subject,
           coalesce(lower(owner_email), team, '') AS name,
           currency,
           sum(amount) AS target
    FROM targets
    WHERE period_start = @ps::date AND period_end = @pe::date AND %[1]s
    GROUP BY 1, 2, 3
), in_period AS (
    SELECT lower(o.email) AS email, o.team, p.currency, sum(p.open) AS open, sum(p.won) AS won
    FROM (SELECT d.owner_id, coalesce(d.currency, '') AS currency,
                 sum(d.amount) FILTER (WHERE lower(coalesce(d.forecast_category, '')) <> 'omitted') AS open,
                 NULL::numeric AS won
          FROM deals d
          WHERE d.deleted_at IS NULL AND NOT d.is_closed AND d.close_date BETWEEN @ps::date AND @pe::date AND %[2]s
          GROUP BY 1, 2
          UNION ALL
          SELECT d.owner_id, coalesce(d.currency, ''), NULL, sum(d.amount) FILTER (WHERE d.is_won)
          FROM deals d
          WHERE d.deleted_at IS NULL AND d.is_closed AND d.closed_at >= @from AND d.closed_at < @until AND %[2]s
          GROUP BY 1, 2) p
    LEFT JOIN owners o ON o.id = p.owner_id
    GROUP BY 1, 2, 3
), trail AS (
    SELECT lower(o.email) AS email, o.team, sum(c.won) AS won, sum(c.closed) AS closed
    FROM (SELECT d.owner_id, count(*) FILTER (WHERE d.is_won) AS won, count(*) AS closed
          FROM deals d
          WHERE d.is_closed AND d.deleted_at IS NULL AND d.closed_at >= @tfrom AND d.closed_at < @tuntil AND %[2]s
          GROUP BY 1) c
    LEFT JOIN owners o ON o.id = c.owner_id
    GROUP BY 1, 2
)
SELECT t.subject, t.name, t.currency, t.target,
       (SELECT coalesce(sum(x.won), 0) FROM in_period x WHERE x.currency = t.currency AND %[3]s),
       (SELECT coalesce(sum(x.open), 0) FROM in_period x WHERE x.currency = t.currency AND %[3]s),
       (SELECT coalesce(sum(tr.won), 0) FROM trail tr WHERE %[4]s),
       (SELECT coalesce(sum(tr.closed), 0) FROM trail tr WHERE %[4]s)
FROM t
ORDER BY array_position(ARRAY['org', 'team', 'owner'], t.subject), t.name COLLATE "C", t.currency COLLATE "C"`

// subjectMatch is the condition matching a period or trailing row x to target t.
func subjectMatch(x string) string {
	return fmt.Sprintf("(t.subject = 'org' OR (t.subject = 'team' AND %[1]s.team = t.name) OR (t.subject = 'owner' AND %[1]s.email = t.name))", x)
}

// targetFilter selects the targets shown in the scope (see Coverage).
func (s Scope) targetFilter() string {
	switch s.Kind {
	case ScopeTeam:
		return "(team = @scope OR lower(owner_email) IN (SELECT lower(email) FROM owners WHERE team = @scope))"
	case ScopeOwner:
		return "lower(owner_email) = @scope"
	}
	return "true"
}

func (b *builder) coverage(ctx context.Context) error {
	q := fmt.Sprintf(coverageSQL, b.req.Scope.targetFilter(), b.req.Scope.dealFilter(), subjectMatch("x"), subjectMatch("tr"))
	rows, err := b.tx.Query(ctx, q, b.args())
	if err != nil {
		return err
	}
	future := b.req.Period.Start.After(b.today)
	b.report.Coverage = []Coverage{}
	var (
		c                           Coverage
		trailingWon, trailingClosed int64
	)
	_, err = pgx.ForEachRow(rows, []any{&c.Subject, &c.Name, &c.Currency, &c.Target, &c.Won, &c.OpenPipeline,
		&trailingWon, &trailingClosed}, func() error {
		c.Remaining = c.Target.Sub(c.Won)
		if future {
			c.Remaining = c.Target
		}
		c.TrailingWinRate = countRatio(trailingWon, trailingClosed)
		c.RequiredCoverage = requiredCoverage(c.TrailingWinRate)
		c.Coverage = decimal.NullDecimal{}
		c.PipelineNeeded, c.Shortfall = decimal.Zero, decimal.Zero
		if !c.Remaining.IsPositive() {
			c.Remaining = decimal.Zero
			c.Status = CoverageMet
		} else {
			c.Coverage = ratio(c.OpenPipeline, c.Remaining)
			c.PipelineNeeded = c.RequiredCoverage.Mul(c.Remaining).Round(moneyPlaces)
			c.Shortfall = decimal.Max(decimal.Zero, c.PipelineNeeded.Sub(c.OpenPipeline))
			c.Status = CoverageCovered
			if c.Coverage.Decimal.LessThan(c.RequiredCoverage) {
				c.Status = CoverageShort
			}
		}
		b.report.Coverage = append(b.report.Coverage, c)
		return nil
	})
	return err
}

// requiredCoverage is 1 ÷ win rate, within 2× and 5×; 5× when the win rate is unknown or 0.
func requiredCoverage(winRate decimal.NullDecimal) decimal.Decimal {
	if !winRate.Valid || !winRate.Decimal.IsPositive() {
		return maxRequiredCoverage
	}
	r := decimal.NewFromInt(1).DivRound(winRate.Decimal, ratioPlaces)
	return decimal.Min(maxRequiredCoverage, decimal.Max(minRequiredCoverage, r))
}
