package analytics

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// OpenPipeline is the deals open now (not closed, not deleted), whatever the period:
// totals per currency, and per canonical stage ("unmapped" for a stage without one) and
// per forecast category (the vendor's value as stored, "none" when empty) within each
// currency. Weighted = amount × probability, where probability is the deal's own, else
// its stage's, else 0. ClosingInPeriod is the amount of the open deals whose close date
// is in the period. Reopened counts the open deals whose history shows a stay in a closed
// stage that ended (exited_at set): closed, then reopened. WithoutOwner counts the open
// deals without a (resolved) owner.
type OpenPipeline struct {
	Deals              int64            `json:"deals"`
	WithoutOwner       int64            `json:"deals_without_owner"`
	Reopened           int64            `json:"reopened_deals"`
	ByCurrency         []PipelineTotal  `json:"by_currency"`
	ByStage            []StageAmount    `json:"by_stage"`
	ByForecastCategory []ForecastAmount `json:"by_forecast_category"`
}

// Amounts are the counts and sums of a set of open deals in one currency.
type Amounts struct {
	Currency           string          `json:"currency"`
	Deals              int64           `json:"deals"`
	DealsWithoutAmount int64           `json:"deals_without_amount"`
	Amount             decimal.Decimal `json:"amount"`
	Weighted           decimal.Decimal `json:"weighted"`
}

// PipelineTotal is the open pipeline of one currency.
type PipelineTotal struct {
	Amounts
	ClosingInPeriod decimal.Decimal `json:"closing_in_period"`
}

// StageAmount is the open pipeline of one canonical stage and currency.
type StageAmount struct {
	Stage string `json:"stage"`
	Amounts
}

// ForecastAmount is the open pipeline of one forecast category and currency.
type ForecastAmount struct {
	ForecastCategory string `json:"forecast_category"`
	Amounts
}

// DealSet is a count of deals with their amounts per currency.
type DealSet struct {
	Deals      int64            `json:"deals"`
	ByCurrency []CurrencyAmount `json:"by_currency"`
}

// CurrencyAmount is the deals of one currency in a DealSet.
type CurrencyAmount struct {
	Currency           string          `json:"currency"`
	Deals              int64           `json:"deals"`
	DealsWithoutAmount int64           `json:"deals_without_amount"`
	Amount             decimal.Decimal `json:"amount"`
}

// ownerKeySQL is OwnerRow.Owner for a deal d with owner o.
const ownerKeySQL = `CASE WHEN d.owner_id IS NULL THEN ''
            WHEN coalesce(o.email, '') = '' THEN 'id:' || o.id
            ELSE lower(o.email) END`

// openPipelineSQL aggregates the open deals in one pass: first per stage, forecast
// category, owner and currency straight from deals_open_report_idx (no join per deal;
// the weighted amount is split into the deals with their own probability and those
// weighted by their stage's), then per stage, forecast category, owner and currency, each
// within currency, over those groups.
const openPipelineSQL = `
WITH g AS (
    SELECT d.stage_id, d.forecast_category, d.owner_id, d.currency,
           count(*)                                                         AS deals,
           count(*) FILTER (WHERE d.amount IS NULL)                         AS no_amount,
           sum(d.amount)                                                    AS amount,
           sum(d.amount * d.probability)                                    AS weighted_own,
           sum(d.amount) FILTER (WHERE d.probability IS NULL)               AS amount_by_stage,
           sum(d.amount) FILTER (WHERE d.close_date BETWEEN @ps::date AND @pe::date) AS closing,
           count(*) FILTER (WHERE d.close_date < @today::date)              AS past,
           count(*) FILTER (WHERE d.close_date < @today::date AND d.amount IS NULL) AS past_no_amount,
           sum(d.amount) FILTER (WHERE d.close_date < @today::date)         AS past_amount
    FROM deals d
    WHERE d.deleted_at IS NULL AND NOT d.is_closed AND %s
    GROUP BY 1, 2, 3, 4
), open AS (
    SELECT coalesce(s.canonical_stage, 'unmapped')            AS stage,
           coalesce(nullif(g.forecast_category, ''), 'none')  AS category,
           coalesce(g.currency, '')                           AS currency,
           CASE WHEN g.owner_id IS NULL THEN ''
                WHEN coalesce(o.email, '') = '' THEN 'id:' || o.id
                ELSE lower(o.email) END                       AS owner,
           o.name                                             AS owner_name,
           o.team                                             AS owner_team,
           coalesce(g.weighted_own, 0) + coalesce(g.amount_by_stage * s.probability, 0) AS weighted,
           g.owner_id, g.deals, g.no_amount, g.amount, g.closing, g.past, g.past_no_amount, g.past_amount
    FROM g
    LEFT JOIN stages s ON s.id = g.stage_id
    LEFT JOIN owners o ON o.id = g.owner_id
)
SELECT grouping(stage), grouping(category), grouping(owner),
       coalesce(stage, ''), coalesce(category, ''), coalesce(owner, ''), currency,
       coalesce(max(owner_name), ''), coalesce(max(owner_team), ''),
       sum(deals),
       sum(no_amount),
       coalesce(sum(amount), 0),
       round(sum(weighted), 2),
       coalesce(sum(closing), 0),
       coalesce(sum(deals) FILTER (WHERE owner_id IS NULL), 0),
       sum(past),
       sum(past_no_amount),
       coalesce(sum(past_amount), 0),
       coalesce(sum(deals) FILTER (WHERE stage IN ('qualification', 'needs_assessment', 'proposal', 'negotiation', 'closing')), 0)
FROM open
GROUP BY GROUPING SETS ((stage, currency), (category, currency), (owner, currency), (currency))
ORDER BY 1, 2, 3, stage COLLATE "C", category COLLATE "C", currency COLLATE "C"`

// reopenedSQL counts open deals with a stay in a closed stage that ended: closed, then
// reopened. The partial index deal_stage_history_left_closed_idx finds those stays.
const reopenedSQL = `
SELECT count(*)
FROM deals d
WHERE d.deleted_at IS NULL AND NOT d.is_closed AND %s
  AND EXISTS (SELECT 1 FROM deal_stage_history h
              WHERE h.deal_id = d.id AND h.exited_at IS NOT NULL
                AND h.stage_id IN (SELECT id FROM stages WHERE is_closed))`

// openPipeline fills the open pipeline, the deals past their close date, the open part
// of the owner rows and the open qualified deals of the pipeline velocity.
func (b *builder) openPipeline(ctx context.Context) error {
	rows, err := b.tx.Query(ctx, fmt.Sprintf(openPipelineSQL, b.req.Scope.dealFilter()), b.args())
	if err != nil {
		return err
	}
	op := &b.report.OpenPipeline
	op.ByCurrency, op.ByStage, op.ByForecastCategory = []PipelineTotal{}, []StageAmount{}, []ForecastAmount{}
	past := &b.report.PastCloseDate
	past.ByCurrency = []CurrencyAmount{}
	var (
		gStage, gCategory, gOwner         int
		stage, category, owner            string
		name, team                        string
		a                                 Amounts
		closing, pastAmount               decimal.Decimal
		withoutOwner, pastDeals, pastNoAm int64
		qualified                         int64
	)
	_, err = pgx.ForEachRow(rows, []any{&gStage, &gCategory, &gOwner, &stage, &category, &owner, &a.Currency, &name, &team,
		&a.Deals, &a.DealsWithoutAmount, &a.Amount, &a.Weighted, &closing, &withoutOwner, &pastDeals, &pastNoAm, &pastAmount,
		&qualified}, func() error {
		switch {
		case gStage == 0:
			op.ByStage = append(op.ByStage, StageAmount{Stage: stage, Amounts: a})
		case gCategory == 0:
			op.ByForecastCategory = append(op.ByForecastCategory, ForecastAmount{ForecastCategory: category, Amounts: a})
		case gOwner == 0:
			o := b.ownerRow(owner, a.Currency, name, team)
			o.OpenDeals, o.OpenAmount, o.Weighted = a.Deals, a.Amount, a.Weighted
		default:
			op.ByCurrency = append(op.ByCurrency, PipelineTotal{Amounts: a, ClosingInPeriod: closing})
			op.Deals += a.Deals
			op.WithoutOwner += withoutOwner
			if qualified > 0 {
				b.openQualified[a.Currency] = qualified
			}
			if pastDeals > 0 {
				past.Deals += pastDeals
				past.ByCurrency = append(past.ByCurrency, CurrencyAmount{
					Currency: a.Currency, Deals: pastDeals, DealsWithoutAmount: pastNoAm, Amount: pastAmount})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortStableFunc(op.ByStage, func(x, y StageAmount) int {
		return cmp.Or(cmp.Compare(stageOrder(x.Stage), stageOrder(y.Stage)), cmp.Compare(x.Currency, y.Currency))
	})
	return b.tx.QueryRow(ctx, fmt.Sprintf(reopenedSQL, b.req.Scope.dealFilter()), b.args()).Scan(&op.Reopened)
}

// stageOrder sorts canonical stages in funnel order, "unmapped" last.
func stageOrder(s string) int {
	for i, c := range funnelStages {
		if string(c) == s {
			return i
		}
	}
	if s == "closed_lost" {
		return len(funnelStages)
	}
	return len(funnelStages) + 1
}

const slippedSQL = `
WITH pushed AS (
    SELECT DISTINCT ch.deal_id
    FROM deal_changes ch
    WHERE ch.field = 'close_date' AND ch.changed_at >= @from
      AND (CASE WHEN ch.old_value ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])'
                THEN left(ch.old_value, 10)::date END) BETWEEN @ps::date AND @pe::date
      AND (CASE WHEN ch.new_value ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])'
                THEN left(ch.new_value, 10)::date END) > @pe::date
)
SELECT coalesce(d.currency, ''), count(*), count(*) FILTER (WHERE d.amount IS NULL), coalesce(sum(d.amount), 0)
FROM pushed p
JOIN deals d ON d.id = p.deal_id
WHERE d.deleted_at IS NULL AND %s
GROUP BY 1
ORDER BY coalesce(d.currency, '') COLLATE "C"`

// slipped fills the deals whose close date was pushed out of the period: a close_date
// change recorded since the period began (deal_changes.changed_at ≥ start) moved it from
// a day in the period to a day after it. Each deal counts once, whatever its state now;
// amounts are current.
func (b *builder) slipped(ctx context.Context) error {
	rows, err := b.tx.Query(ctx, fmt.Sprintf(slippedSQL, b.req.Scope.dealFilter()), b.args())
	if err != nil {
		return err
	}
	s := &b.report.Slipped
	s.ByCurrency = []CurrencyAmount{}
	var c CurrencyAmount
	_, err = pgx.ForEachRow(rows, []any{&c.Currency, &c.Deals, &c.DealsWithoutAmount, &c.Amount}, func() error {
		s.Deals += c.Deals
		s.ByCurrency = append(s.ByCurrency, c)
		return nil
	})
	return err
}

// OwnerRow is one owner's pipeline in one currency: open deals now (count, amount,
// weighted) and deals closed in the period (won count and amount, lost count, win rate by
// count). Owner is the owner's email (lower case; one row for the same person in several
// CRMs), "id:<owners.id>" for an owner without an email, or "" for deals without an owner.
type OwnerRow struct {
	Owner      string              `json:"owner"`
	Name       string              `json:"name"`
	Team       string              `json:"team"`
	Currency   string              `json:"currency"`
	OpenDeals  int64               `json:"open_deals"`
	OpenAmount decimal.Decimal     `json:"open_amount"`
	Weighted   decimal.Decimal     `json:"weighted"`
	WonDeals   int64               `json:"won_deals"`
	WonAmount  decimal.Decimal     `json:"won_amount"`
	LostDeals  int64               `json:"lost_deals"`
	WinRate    decimal.NullDecimal `json:"win_rate"`
}

// ownerRow returns the row of owner and currency, creating it; name and team are kept
// when set (the greatest, as SQL's max, when one email has several).
func (b *builder) ownerRow(owner, currency, name, team string) *OwnerRow {
	key := [2]string{owner, currency}
	o := b.ownerRows[key]
	if o == nil {
		o = &OwnerRow{Owner: owner, Currency: currency}
		b.ownerRows[key] = o
	}
	o.Name, o.Team = max(o.Name, name), max(o.Team, team)
	return o
}

// owners orders the owner rows (deals without an owner last) and computes their win rates.
func (b *builder) owners(context.Context) error {
	rows := slices.Collect(maps.Values(b.ownerRows))
	slices.SortFunc(rows, func(x, y *OwnerRow) int {
		return cmp.Or(cmp.Compare(boolRank(x.Owner == ""), boolRank(y.Owner == "")),
			cmp.Compare(x.Owner, y.Owner), cmp.Compare(x.Currency, y.Currency))
	})
	b.report.Owners = make([]OwnerRow, 0, len(rows))
	for _, o := range rows {
		o.WinRate = countRatio(o.WonDeals, o.WonDeals+o.LostDeals)
		b.report.Owners = append(b.report.Owners, *o)
	}
	return nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortedKeys returns the keys of both maps, sorted and without duplicates.
func sortedKeys[A, B any](a map[string]A, b map[string]B) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
