package analytics

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shopspring/decimal"
)

// WriteTable renders the report as aligned plain-text tables: the open pipeline totals,
// win rate, cycle, leads, funnels, coverage, velocity, slipped and overdue deals, one row
// per owner and currency, and the unmapped stages.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	scope := Scope{Kind: r.Scope.Kind, Value: r.Scope.Value}.String()
	p("Pipeline report %s (%s to %s), scope %s, as of %s\n", r.Period.Label, r.Period.Start, r.Period.End, scope, r.AsOf)

	p("\nOPEN PIPELINE (now)\nCURRENCY\tDEALS\tNO AMOUNT\tAMOUNT\tWEIGHTED\tCLOSING IN PERIOD\n")
	for _, c := range r.OpenPipeline.ByCurrency {
		p("%s\t%d\t%d\t%s\t%s\t%s\n", currency(c.Currency), c.Deals, c.DealsWithoutAmount, money(c.Amount), money(c.Weighted), money(c.ClosingInPeriod))
	}
	p("total\t%d\t\t\t\t\n", r.OpenPipeline.Deals)
	p("without owner: %d, reopened: %d\n", r.OpenPipeline.WithoutOwner, r.OpenPipeline.Reopened)

	p("\nOPEN PIPELINE BY STAGE\nSTAGE\tCURRENCY\tDEALS\tAMOUNT\tWEIGHTED\n")
	for _, s := range r.OpenPipeline.ByStage {
		p("%s\t%s\t%d\t%s\t%s\n", s.Stage, currency(s.Currency), s.Deals, money(s.Amount), money(s.Weighted))
	}
	p("\nOPEN PIPELINE BY FORECAST CATEGORY\nCATEGORY\tCURRENCY\tDEALS\tAMOUNT\tWEIGHTED\n")
	for _, s := range r.OpenPipeline.ByForecastCategory {
		p("%s\t%s\t%d\t%s\t%s\n", s.ForecastCategory, currency(s.Currency), s.Deals, money(s.Amount), money(s.Weighted))
	}

	p("\nWIN RATE (closed in period): %d won, %d lost, %s\n", r.WinRate.Won, r.WinRate.Lost, percent(r.WinRate.Rate))
	p("CURRENCY\tWON\tLOST\tWON AMOUNT\tLOST AMOUNT\tRATE\tVALUE RATE\n")
	for _, c := range r.WinRate.ByCurrency {
		p("%s\t%d\t%d\t%s\t%s\t%s\t%s\n", currency(c.Currency), c.Won, c.Lost, money(c.WonAmount), money(c.LostAmount), percent(c.Rate), percent(c.ValueRate))
	}
	sc := r.SalesCycle
	p("\nSALES CYCLE (won in period, days): median %s, mean %s, p90 %s (%d deals, %d without a usable creation date)\n",
		number(sc.MedianDays), number(sc.MeanDays), number(sc.P90Days), sc.WonDeals, sc.Excluded)

	if lv := r.LeadVelocity; lv != nil {
		p("\nLEAD VELOCITY (SQL-qualified leads per month)\nMONTH\tLEADS\tRATE\n")
		for _, m := range lv.Series {
			p("%s\t%d\t%s\n", m.Month, m.QualifiedLeads, percent(m.Rate))
		}
		if lv.Partial {
			p("(%s is in progress: counted to date)\n", lv.Month)
		}
	}
	if f := r.LeadFunnel; f != nil {
		p("\nLEAD FUNNEL (leads created in period): %d leads → %d MQL (%s) → %d SQL (%s) → %d won (%s); lead to won %s\n",
			f.Leads, f.MQL, percent(f.LeadToMQL), f.SQL, percent(f.MQLToSQL), f.Won, percent(f.SQLToWon), percent(f.LeadToWon))
	}
	sf := r.StageFunnel
	p("\nSTAGE FUNNEL (%d deals created in period, %d won, conversion %s)\nSTAGE\tREACHED\tTO NEXT\tFROM FIRST\n",
		sf.CohortDeals, sf.Won, percent(sf.ConversionRate))
	for _, s := range sf.Stages {
		p("%s\t%d\t%s\t%s\n", s.Stage, s.Reached, percent(s.ToNext), percent(s.FromFirst))
	}

	p("\nCOVERAGE (targets of the period)\nSUBJECT\tNAME\tCURRENCY\tTARGET\tWON\tREMAINING\tOPEN PIPELINE\tCOVERAGE\tREQUIRED\tSHORTFALL\tSTATUS\n")
	for _, c := range r.Coverage {
		p("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s×\t%s\t%s\n", c.Subject, c.Name, currency(c.Currency), money(c.Target), money(c.Won),
			money(c.Remaining), money(c.OpenPipeline), times(c.Coverage), c.RequiredCoverage.StringFixed(2), money(c.Shortfall), c.Status)
	}

	p("\nPIPELINE VELOCITY (per day)\nCURRENCY\tOPEN QUALIFIED\tWIN RATE\tAVG WON\tMEDIAN CYCLE\tPER DAY\n")
	for _, v := range r.Velocity {
		p("%s\t%d\t%s\t%s\t%s\t%s\n", currency(v.Currency), v.OpenQualifiedDeals, percent(v.WinRate), nullMoney(v.AvgWonAmount),
			number(v.MedianCycleDays), nullMoney(v.PerDay))
	}

	for _, set := range []struct {
		title string
		s     DealSet
	}{{"SLIPPED DEALS (close date pushed out of the period)", r.Slipped}, {"DEALS PAST CLOSE DATE (open, now)", r.PastCloseDate}} {
		p("\n%s: %d\n", set.title, set.s.Deals)
		if len(set.s.ByCurrency) > 0 {
			p("CURRENCY\tDEALS\tNO AMOUNT\tAMOUNT\n")
			for _, c := range set.s.ByCurrency {
				p("%s\t%d\t%d\t%s\n", currency(c.Currency), c.Deals, c.DealsWithoutAmount, money(c.Amount))
			}
		}
	}

	p("\nOWNERS\nOWNER\tNAME\tTEAM\tCURRENCY\tOPEN\tOPEN AMOUNT\tWEIGHTED\tWON\tWON AMOUNT\tLOST\tWIN RATE\n")
	for _, o := range r.Owners {
		owner := o.Owner
		if owner == "" {
			owner = "(no owner)"
		}
		p("%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%d\t%s\n", owner, o.Name, o.Team, currency(o.Currency), o.OpenDeals,
			money(o.OpenAmount), money(o.Weighted), o.WonDeals, money(o.WonAmount), o.LostDeals, percent(o.WinRate))
	}

	if len(r.UnmappedStages) > 0 {
		p("\nUNMAPPED STAGES (map them with stage_map in the config file)\nCONNECTION\tPIPELINE\tSTAGE\tEXTERNAL ID\tOPEN DEALS\n")
		for _, u := range r.UnmappedStages {
			p("%s\t%s\t%s\t%s\t%d\n", u.Connection, u.Pipeline, u.Name, u.ExternalID, u.OpenDeals)
		}
	}
	return tw.Flush()
}

func currency(c string) string {
	if c == "" {
		return "(none)"
	}
	return c
}

func money(d decimal.Decimal) string {
	s := d.StringFixed(2)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String() + "." + frac
	if neg {
		out = "-" + out
	}
	return out
}

func nullMoney(d decimal.NullDecimal) string {
	if !d.Valid {
		return "–"
	}
	return money(d.Decimal)
}

func percent(d decimal.NullDecimal) string {
	if !d.Valid {
		return "–"
	}
	return d.Decimal.Shift(2).StringFixed(1) + "%"
}

func times(d decimal.NullDecimal) string {
	if !d.Valid {
		return "–"
	}
	return d.Decimal.StringFixed(2) + "×"
}

func number(d decimal.NullDecimal) string {
	if !d.Valid {
		return "–"
	}
	return d.Decimal.StringFixed(2)
}
