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
// is in the period. Reopened counts the open deals whose history shows an earlier stay
// in a closed stage; WithoutOwner the open deals without a (resolved) owner.
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

const openPipelineSQL = `
WITH open AS (
    SELECT coalesce(s.canonical_stage, 'unmapped')            AS stage,
           coalesce(nullif(d.forecast_category, ''), 'none')  AS category,
           coalesce(d.currency, '')                           AS currency,
           d.amount,
           d.amount * coalesce(d.probability, s.probability, 0) AS weighted,
           d.close_date,
           d.owner_id
    FROM deals d
    LEFT JOIN owners o ON o.id = d.owner_id
    LEFT JOIN stages s ON s.id = d.stage_id
    WHERE d.deleted_at IS NULL AND NOT d.is_closed AND %s
)
SELECT grouping(stage), grouping(category), coalesce(stage, ''), coalesce(category, ''), currency,
       count(*),
       count(*) FILTER (WHERE amount IS NULL),
       coalesce(sum(amount), 0),
       round(coalesce(sum(weighted), 0), 2),
       coalesce(sum(amount) FILTER (WHERE close_date BETWEEN @ps::date AND @pe::date), 0),
       count(*) FILTER (WHERE owner_id IS NULL),
       count(*) FILTER (WHERE close_date < @today::date),
       count(*) FILTER (WHERE close_date < @today::date AND amount IS NULL),
       coalesce(sum(amount) FILTER (WHERE close_date < @today::date), 0)
FROM open
GROUP BY GROUPING SETS ((stage, currency), (category, currency), (currency))
ORDER BY 1, 2, stage COLLATE "C", category COLLATE "C", currency COLLATE "C"`

const reopenedSQL = `
SELECT count(*)
FROM deals d
LEFT JOIN owners o ON o.id = d.owner_id
WHERE d.deleted_at IS NULL AND NOT d.is_closed AND %s
  AND EXISTS (SELECT 1 FROM deal_stage_history h JOIN stages s ON s.id = h.stage_id
              WHERE h.deal_id = d.id AND s.is_closed)`

// openPipeline fills the open pipeline and the deals past their close date.
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
		gStage, gCategory                 int
		stage, category                   string
		a                                 Amounts
		closing, pastAmount               decimal.Decimal
		withoutOwner, pastDeals, pastNoAm int64
	)
	_, err = pgx.ForEachRow(rows, []any{&gStage, &gCategory, &stage, &category, &a.Currency, &a.Deals,
		&a.DealsWithoutAmount, &a.Amount, &a.Weighted, &closing, &withoutOwner, &pastDeals, &pastNoAm, &pastAmount}, func() error {
		switch {
		case gStage == 0:
			op.ByStage = append(op.ByStage, StageAmount{Stage: stage, Amounts: a})
		case gCategory == 0:
			op.ByForecastCategory = append(op.ByForecastCategory, ForecastAmount{ForecastCategory: category, Amounts: a})
		default:
			op.ByCurrency = append(op.ByCurrency, PipelineTotal{Amounts: a, ClosingInPeriod: closing})
			op.Deals += a.Deals
			op.WithoutOwner += withoutOwner
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
LEFT JOIN owners o ON o.id = d.owner_id
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

const ownersSQL = `
SELECT * FROM (
SELECT CASE WHEN d.owner_id IS NULL THEN ''
            WHEN coalesce(o.email, '') = '' THEN 'id:' || o.id
            ELSE lower(o.email) END AS owner,
       coalesce(max(o.name), ''), coalesce(max(o.team), ''), coalesce(d.currency, '') AS currency,
       count(*) FILTER (WHERE NOT d.is_closed),
       coalesce(sum(d.amount) FILTER (WHERE NOT d.is_closed), 0),
       round(coalesce(sum(d.amount * coalesce(d.probability, s.probability, 0)) FILTER (WHERE NOT d.is_closed), 0), 2),
       count(*) FILTER (WHERE d.is_won),
       coalesce(sum(d.amount) FILTER (WHERE d.is_won), 0),
       count(*) FILTER (WHERE d.is_closed AND NOT d.is_won)
FROM deals d
LEFT JOIN owners o ON o.id = d.owner_id
LEFT JOIN stages s ON s.id = d.stage_id
WHERE d.deleted_at IS NULL AND %s
  AND (NOT d.is_closed OR (d.closed_at >= @from AND d.closed_at < @until))
GROUP BY 1, 4
) rows
ORDER BY owner = '', owner COLLATE "C", currency COLLATE "C"`

func (b *builder) owners(ctx context.Context) error {
	rows, err := b.tx.Query(ctx, fmt.Sprintf(ownersSQL, b.req.Scope.dealFilter()), b.args())
	if err != nil {
		return err
	}
	b.report.Owners = []OwnerRow{}
	var o OwnerRow
	_, err = pgx.ForEachRow(rows, []any{&o.Owner, &o.Name, &o.Team, &o.Currency, &o.OpenDeals, &o.OpenAmount,
		&o.Weighted, &o.WonDeals, &o.WonAmount, &o.LostDeals}, func() error {
		o.WinRate = countRatio(o.WonDeals, o.WonDeals+o.LostDeals)
		b.report.Owners = append(b.report.Owners, o)
		return nil
	})
	return err
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
