package analytics

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/pipeline"
)

// StageFunnel is stage-to-stage conversion from deal_stage_history, by canonical stage,
// for the cohort of deals created in the period (deals.remote_created_at).
//
// A deal reached an open canonical stage k when its furthest stage (over its stage history
// and its current stage; stages without a canonical stage are ignored) is k or later in
// funnel order: a skipped stage counts as passed. A deal reached closed_won when it is won
// now, and a won deal has reached every stage. ToNext = reached(next) ÷ reached(k);
// FromFirst = reached(k) ÷ reached(lead_generation). ConversionRate is the cohort
// conversion rate: won ÷ all cohort deals (open ones included).
type StageFunnel struct {
	CohortDeals    int64               `json:"cohort_deals"`
	Won            int64               `json:"won"`
	ConversionRate decimal.NullDecimal `json:"conversion_rate"`
	Stages         []StageStep         `json:"stages"`
}

// StageStep is one canonical stage of the stage funnel.
type StageStep struct {
	Stage     pipeline.CanonicalStage `json:"stage"`
	Reached   int64                   `json:"reached"`
	ToNext    decimal.NullDecimal     `json:"to_next"`
	FromFirst decimal.NullDecimal     `json:"from_first"`
}

// funnelStages are the stages of the stage funnel in order; the open ones are ranked 1..6.
var funnelStages = []pipeline.CanonicalStage{
	pipeline.StageLeadGeneration, pipeline.StageQualification, pipeline.StageNeedsAssessment,
	pipeline.StageProposal, pipeline.StageNegotiation, pipeline.StageClosing, pipeline.StageClosedWon,
}

// stageFunnelSQL ranks each cohort deal by the furthest open canonical stage of its
// history and its current stage (1 = lead_generation … 6 = closing), in one pass: the
// cohort from deals_created_report_idx, the history from its unique index (deal_id,
// stage_external_id, entered_at), the stage by external id (so a stay whose stage_id is
// not resolved yet still counts).
const stageFunnelSQL = `
WITH ranked AS (
    SELECT d.is_won,
           greatest(max(array_position(@open_stages::text[], hs.canonical_stage)),
                    max(array_position(@open_stages::text[], cs.canonical_stage))) AS rank
    FROM deals d
    LEFT JOIN stages cs ON cs.id = d.stage_id
    LEFT JOIN deal_stage_history h ON h.deal_id = d.id
    LEFT JOIN stages hs ON hs.connection_id = d.connection_id AND hs.external_id = h.stage_external_id
    WHERE d.deleted_at IS NULL AND d.remote_created_at >= @from AND d.remote_created_at < @until AND %s
    GROUP BY d.id, d.is_won
)
SELECT count(*),
       count(*) FILTER (WHERE is_won OR rank >= 1),
       count(*) FILTER (WHERE is_won OR rank >= 2),
       count(*) FILTER (WHERE is_won OR rank >= 3),
       count(*) FILTER (WHERE is_won OR rank >= 4),
       count(*) FILTER (WHERE is_won OR rank >= 5),
       count(*) FILTER (WHERE is_won OR rank >= 6),
       count(*) FILTER (WHERE is_won)
FROM ranked`

func (b *builder) stageFunnel(ctx context.Context) error {
	args := b.args()
	open := make([]string, 0, 6)
	for _, s := range funnelStages[:6] {
		open = append(open, string(s))
	}
	args["open_stages"] = open
	reached := make([]int64, len(funnelStages))
	f := &b.report.StageFunnel
	dest := []any{&f.CohortDeals}
	for i := range reached {
		dest = append(dest, &reached[i])
	}
	if err := b.tx.QueryRow(ctx, fmt.Sprintf(stageFunnelSQL, b.req.Scope.dealFilter()), args).Scan(dest...); err != nil {
		return err
	}
	f.Won = reached[len(reached)-1]
	f.ConversionRate = countRatio(f.Won, f.CohortDeals)
	f.Stages = make([]StageStep, len(funnelStages))
	for i, s := range funnelStages {
		f.Stages[i] = StageStep{Stage: s, Reached: reached[i], FromFirst: countRatio(reached[i], reached[0])}
		if i+1 < len(funnelStages) {
			f.Stages[i].ToNext = countRatio(reached[i+1], reached[i])
		}
	}
	return nil
}

// WinRate is won ÷ (won + lost) over the deals closed in the period (closed_at in it;
// closed deals without closed_at are not placed in any period). Rate is by count over all
// currencies; ByCurrency has the counts and the value win rate per currency: won amount ÷
// (won + lost amount). Lost deals keep their amount; deals without an amount count only in
// the counts. Null when nothing closed.
type WinRate struct {
	Won        int64               `json:"won"`
	Lost       int64               `json:"lost"`
	Rate       decimal.NullDecimal `json:"rate"`
	ByCurrency []CurrencyWinRate   `json:"by_currency"`
}

// CurrencyWinRate is the win rate of the deals of one currency closed in the period.
type CurrencyWinRate struct {
	Currency           string              `json:"currency"`
	Won                int64               `json:"won"`
	Lost               int64               `json:"lost"`
	DealsWithoutAmount int64               `json:"deals_without_amount"`
	WonAmount          decimal.Decimal     `json:"won_amount"`
	LostAmount         decimal.Decimal     `json:"lost_amount"`
	Rate               decimal.NullDecimal `json:"rate"`
	ValueRate          decimal.NullDecimal `json:"value_rate"`
}

// SalesCycle is the length in days of the won deals closed in the period, from creation
// at the vendor (remote_created_at) to closed_at: median and p90 (continuous percentiles)
// and mean. Won deals without a creation time, or created after they closed, are left out
// and counted in Excluded. Null when no won deal is measured.
type SalesCycle struct {
	WonDeals   int64               `json:"won_deals"`
	Excluded   int64               `json:"excluded"`
	MedianDays decimal.NullDecimal `json:"median_days"`
	MeanDays   decimal.NullDecimal `json:"mean_days"`
	P90Days    decimal.NullDecimal `json:"p90_days"`
}

// Velocity is pipeline velocity per currency, money per day:
// open qualified deals × win rate × average won amount ÷ median cycle days.
// Open qualified deals are the open deals (now) in a canonical stage from qualification to
// closing; win rate (by count), average won amount (won deals with an amount) and median
// cycle are those of the currency's deals closed in the period. Null when a factor is
// unknown or the median cycle is 0.
type Velocity struct {
	Currency           string              `json:"currency"`
	OpenQualifiedDeals int64               `json:"open_qualified_deals"`
	WinRate            decimal.NullDecimal `json:"win_rate"`
	AvgWonAmount       decimal.NullDecimal `json:"avg_won_amount"`
	MedianCycleDays    decimal.NullDecimal `json:"median_cycle_days"`
	PerDay             decimal.NullDecimal `json:"per_day"`
}

const closedDealsSQL = `
SELECT grouping(currency) = 1 AS total,
       grouping(owner) = 0 AS by_owner,
       coalesce(owner, ''),
       coalesce(currency, ''),
       coalesce(max(owner_name), ''), coalesce(max(owner_team), ''),
       count(*) FILTER (WHERE is_won),
       count(*) FILTER (WHERE NOT is_won),
       count(*) FILTER (WHERE amount IS NULL),
       coalesce(sum(amount) FILTER (WHERE is_won), 0),
       coalesce(sum(amount) FILTER (WHERE NOT is_won), 0),
       avg(amount) FILTER (WHERE is_won),
       count(days) FILTER (WHERE is_won),
       count(*) FILTER (WHERE is_won AND days IS NULL),
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FILTER (WHERE is_won))::numeric, 2),
       round(avg(days) FILTER (WHERE is_won), 2),
       round((percentile_cont(0.9) WITHIN GROUP (ORDER BY days) FILTER (WHERE is_won))::numeric, 2)
FROM (
    SELECT coalesce(d.currency, '') AS currency, d.is_won, d.amount,
           ` + ownerKeySQL + ` AS owner, o.name AS owner_name, o.team AS owner_team,
           CASE WHEN d.remote_created_at <= d.closed_at
                THEN extract(epoch FROM d.closed_at - d.remote_created_at) / 86400 END AS days
    FROM deals d
    LEFT JOIN owners o ON o.id = d.owner_id
    WHERE d.deleted_at IS NULL AND d.is_closed AND d.closed_at >= @from AND d.closed_at < @until AND %s
) closed
GROUP BY GROUPING SETS ((currency), (), (owner, currency))
ORDER BY 1, 2, currency COLLATE "C"`

// closedDeals fills the win rate, the sales cycle, the closed part of the owner rows and
// the pipeline velocity (after openPipeline).
func (b *builder) closedDeals(ctx context.Context) error {
	type closedRow struct {
		total, byOwner        bool
		owner, currency       string
		name, team            string
		won, lost, noAmount   int64
		wonAmount, lostAmount decimal.Decimal
		avgWon                decimal.NullDecimal
		measured, excluded    int64
		median, mean, p90     decimal.NullDecimal
	}
	rows, err := b.tx.Query(ctx, fmt.Sprintf(closedDealsSQL, b.req.Scope.dealFilter()), b.args())
	if err != nil {
		return err
	}
	var c closedRow
	byCurrency := map[string]closedRow{}
	r := b.report
	r.WinRate.ByCurrency = []CurrencyWinRate{}
	_, err = pgx.ForEachRow(rows, []any{&c.total, &c.byOwner, &c.owner, &c.currency, &c.name, &c.team, &c.won, &c.lost,
		&c.noAmount, &c.wonAmount, &c.lostAmount, &c.avgWon, &c.measured, &c.excluded, &c.median, &c.mean, &c.p90}, func() error {
		switch {
		case c.total:
			r.WinRate.Won, r.WinRate.Lost = c.won, c.lost
			r.SalesCycle = SalesCycle{WonDeals: c.measured, Excluded: c.excluded, MedianDays: c.median, MeanDays: c.mean, P90Days: c.p90}
		case c.byOwner:
			o := b.ownerRow(c.owner, c.currency, c.name, c.team)
			o.WonDeals, o.WonAmount, o.LostDeals = c.won, c.wonAmount, c.lost
		default:
			byCurrency[c.currency] = c
			r.WinRate.ByCurrency = append(r.WinRate.ByCurrency, CurrencyWinRate{
				Currency: c.currency, Won: c.won, Lost: c.lost, DealsWithoutAmount: c.noAmount,
				WonAmount: c.wonAmount, LostAmount: c.lostAmount,
				Rate:      countRatio(c.won, c.won+c.lost),
				ValueRate: ratio(c.wonAmount, c.wonAmount.Add(c.lostAmount)),
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.WinRate.Rate = countRatio(r.WinRate.Won, r.WinRate.Won+r.WinRate.Lost)

	r.Velocity = []Velocity{}
	for _, cur := range sortedKeys(b.openQualified, byCurrency) {
		c := byCurrency[cur]
		v := Velocity{
			Currency:           cur,
			OpenQualifiedDeals: b.openQualified[cur],
			WinRate:            countRatio(c.won, c.won+c.lost),
			AvgWonAmount:       roundNull(c.avgWon, moneyPlaces),
			MedianCycleDays:    c.median,
		}
		if v.WinRate.Valid && v.AvgWonAmount.Valid && v.MedianCycleDays.Valid && !v.MedianCycleDays.Decimal.IsZero() {
			v.PerDay = decimal.NewNullDecimal(decimal.NewFromInt(v.OpenQualifiedDeals).
				Mul(v.WinRate.Decimal).Mul(v.AvgWonAmount.Decimal).
				DivRound(v.MedianCycleDays.Decimal, 16).Round(moneyPlaces))
		}
		r.Velocity = append(r.Velocity, v)
	}
	return nil
}

func roundNull(d decimal.NullDecimal, places int32) decimal.NullDecimal {
	if d.Valid {
		d.Decimal = d.Decimal.Round(places)
	}
	return d
}
