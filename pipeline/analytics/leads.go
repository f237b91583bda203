package analytics

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// LeadVelocity is the lead velocity rate: SQL-qualified leads (leads.sql_at set) per UTC
// calendar month, and rate = (this month − last month) ÷ last month.
//
// The series has the month before the period (the base, without a rate) and every month
// of the period that has begun by the report's day; Month, QualifiedLeads and Rate are its
// last entry, Partial when that month is still in progress (counted to date). Rate is null
// when the previous month had no qualified leads. A period that has not begun has only
// the base month (if that has begun) and no rate. Whole months count even when a custom
// period starts or ends inside one.
type LeadVelocity struct {
	Month              string              `json:"month"`
	Partial            bool                `json:"partial"`
	QualifiedLeads     int64               `json:"qualified_leads"`
	PreviousMonthLeads int64               `json:"previous_month_leads"`
	Rate               decimal.NullDecimal `json:"rate"`
	Series             []LeadMonth         `json:"series"`
}

// LeadMonth is one month of the lead velocity series.
type LeadMonth struct {
	Month          string              `json:"month"`
	QualifiedLeads int64               `json:"qualified_leads"`
	Rate           decimal.NullDecimal `json:"rate"`
}

// LeadFunnel is the lead → MQL → SQL → won conversion of the cohort of leads created in
// the period (leads.remote_created_at). A lead reached MQL when mql_at is set, SQL when
// sql_at is set, won when the deal it converted into (leads.converted_deal_id) is live and
// won. Later steps imply earlier ones (a won lead counts as SQL and MQL, an SQL lead as
// MQL) so skipped steps never make a rate exceed 1. Rates are step over previous step,
// and LeadToWon is won ÷ leads; null when the divisor is 0.
type LeadFunnel struct {
	Leads     int64               `json:"leads"`
	MQL       int64               `json:"mql"`
	SQL       int64               `json:"sql"`
	Won       int64               `json:"won"`
	LeadToMQL decimal.NullDecimal `json:"lead_to_mql"`
	MQLToSQL  decimal.NullDecimal `json:"mql_to_sql"`
	SQLToWon  decimal.NullDecimal `json:"sql_to_won"`
	LeadToWon decimal.NullDecimal `json:"lead_to_won"`
}

const leadMonthsSQL = `
SELECT to_char(l.sql_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, count(*)
FROM leads l
WHERE l.deleted_at IS NULL AND l.sql_at >= @lv_from AND l.sql_at < @lv_until AND %s
GROUP BY 1`

func (b *builder) leadVelocity(ctx context.Context) error {
	if !b.req.Scope.hasLeads() {
		return nil
	}
	p := b.req.Period
	base := time.Date(p.Start.Year(), p.Start.Month()-1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(p.End.Year(), p.End.Month(), 1, 0, 0, 0, 0, time.UTC)
	if current := time.Date(b.today.Year(), b.today.Month(), 1, 0, 0, 0, 0, time.UTC); last.After(current) {
		last = current
	}
	lv := &LeadVelocity{Series: []LeadMonth{}}
	b.report.LeadVelocity = lv
	if last.Before(base) {
		return nil
	}
	args := b.args()
	args["lv_from"], args["lv_until"] = base, last.AddDate(0, 1, 0)
	rows, err := b.tx.Query(ctx, fmt.Sprintf(leadMonthsSQL, b.req.Scope.leadFilter()), args)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	var month string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&month, &n}, func() error { counts[month] = n; return nil }); err != nil {
		return err
	}
	for m := base; !m.After(last); m = m.AddDate(0, 1, 0) {
		e := LeadMonth{Month: m.Format("2006-01"), QualifiedLeads: counts[m.Format("2006-01")]}
		if m.After(base) {
			prev := lv.Series[len(lv.Series)-1].QualifiedLeads
			e.Rate = countRatio(e.QualifiedLeads-prev, prev)
			lv.Month, lv.QualifiedLeads, lv.PreviousMonthLeads, lv.Rate = e.Month, e.QualifiedLeads, prev, e.Rate
			lv.Partial = !b.today.Before(m) && b.today.Before(m.AddDate(0, 1, 0))
		}
		lv.Series = append(lv.Series, e)
	}
	return nil
}

const leadFunnelSQL = `
SELECT count(*),
       count(*) FILTER (WHERE l.mql_at IS NOT NULL OR l.sql_at IS NOT NULL OR w.id IS NOT NULL),
       count(*) FILTER (WHERE l.sql_at IS NOT NULL OR w.id IS NOT NULL),
       count(w.id)
FROM leads l
LEFT JOIN deals w ON w.id = l.converted_deal_id AND w.is_won AND w.deleted_at IS NULL
WHERE l.deleted_at IS NULL AND l.remote_created_at >= @from AND l.remote_created_at < @until AND %s`

func (b *builder) leadFunnel(ctx context.Context) error {
	if !b.req.Scope.hasLeads() {
		return nil
	}
	f := &LeadFunnel{}
	err := b.tx.QueryRow(ctx, fmt.Sprintf(leadFunnelSQL, b.req.Scope.leadFilter()), b.args()).
		Scan(&f.Leads, &f.MQL, &f.SQL, &f.Won)
	if err != nil {
		return err
	}
	f.LeadToMQL = countRatio(f.MQL, f.Leads)
	f.MQLToSQL = countRatio(f.SQL, f.MQL)
	f.SQLToWon = countRatio(f.Won, f.SQL)
	f.LeadToWon = countRatio(f.Won, f.Leads)
	b.report.LeadFunnel = f
	return nil
}
