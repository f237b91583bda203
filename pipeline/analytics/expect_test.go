package analytics_test

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

// expect computes the report the code under test must produce, in plain Go over the
// generated records, following the definitions in the package documentation.

func mustPeriod(t testing.TB, s string) analytics.Period {
	t.Helper()
	p, err := analytics.ParsePeriod(s)
	require.NoError(t, err)
	return p
}

func eRatio(n, d decimal.Decimal) decimal.NullDecimal {
	if d.IsZero() {
		return decimal.NullDecimal{}
	}
	return decimal.NewNullDecimal(n.DivRound(d, 20).Round(4))
}

func eCount(n, d int) decimal.NullDecimal {
	return eRatio(decimal.NewFromInt(int64(n)), decimal.NewFromInt(int64(d)))
}

type expecter struct {
	ds     *dataSet
	period analytics.Period
	scope  analytics.Scope
	today  time.Time
}

func (e *expecter) inPeriod(t time.Time) bool {
	return !t.IsZero() && !t.Before(e.period.Start) && t.Before(e.period.End.AddDate(0, 0, 1))
}

func (e *expecter) dayInPeriod(t time.Time) bool {
	return !t.IsZero() && !t.Before(e.period.Start) && !t.After(e.period.End)
}

func (e *expecter) owner(i int) genOwner {
	if i < 0 {
		return genOwner{}
	}
	return e.ds.owners[i]
}

func (e *expecter) dealIn(d genDeal) bool {
	if d.deleted {
		return false
	}
	o := e.owner(d.owner)
	switch e.scope.Kind {
	case analytics.ScopeTeam:
		return d.owner >= 0 && o.team == e.scope.Value
	case analytics.ScopeOwner:
		return d.owner >= 0 && strings.ToLower(o.email) == e.scope.Value
	case analytics.ScopePipeline:
		return e.scope.Value == decimal.NewFromInt(e.ds.pipelines[d.pipeline].id).String()
	case analytics.ScopeConnection:
		return e.ds.connections[e.ds.pipelines[d.pipeline].conn].name == e.scope.Value
	}
	return true
}

func (e *expecter) leadIn(l genLead) bool {
	if l.deleted {
		return false
	}
	o := e.owner(l.owner)
	switch e.scope.Kind {
	case analytics.ScopeTeam:
		return l.owner >= 0 && o.team == e.scope.Value
	case analytics.ScopeOwner:
		return l.owner >= 0 && strings.ToLower(o.email) == e.scope.Value
	case analytics.ScopePipeline:
		return false
	case analytics.ScopeConnection:
		return e.ds.connections[l.conn].name == e.scope.Value
	}
	return true
}

func (e *expecter) stageProb(d genDeal) decimal.Decimal {
	if d.probability.Valid {
		return d.probability.Decimal
	}
	if p := e.ds.stages[d.stage].probability; p.Valid {
		return p.Decimal
	}
	return decimal.Zero
}

var openRank = map[string]int{"lead_generation": 1, "qualification": 2, "needs_assessment": 3, "proposal": 4, "negotiation": 5, "closing": 6}

func (e *expecter) report() *analytics.Report {
	r := &analytics.Report{
		SchemaVersion: analytics.SchemaVersion,
		GeneratedAt:   testNow,
		AsOf:          e.today.Format(time.DateOnly),
		Period:        analytics.PeriodInfo{Label: e.period.Label, Start: e.period.Start.Format(time.DateOnly), End: e.period.End.Format(time.DateOnly)},
		Scope:         analytics.ScopeInfo{Kind: e.scope.Kind, Value: e.scope.Value},
	}
	if e.scope.Kind != analytics.ScopePipeline {
		r.LeadVelocity = e.leadVelocity()
		r.LeadFunnel = e.leadFunnel()
	}
	r.StageFunnel = e.stageFunnel()
	r.WinRate, r.SalesCycle, r.Velocity = e.closed()
	r.OpenPipeline, r.PastCloseDate = e.open()
	r.Coverage = e.coverage()
	r.Slipped = e.slipped()
	r.Owners = e.owners()
	r.UnmappedStages = e.unmapped()
	return r
}

func (e *expecter) leadVelocity() *analytics.LeadVelocity {
	month := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC) }
	base := month(e.period.Start).AddDate(0, -1, 0)
	last := month(e.period.End)
	if month(e.today).Before(last) {
		last = month(e.today)
	}
	lv := &analytics.LeadVelocity{Series: []analytics.LeadMonth{}}
	for m := base; !m.After(last); m = m.AddDate(0, 1, 0) {
		n := 0
		for _, l := range e.ds.leads {
			if e.leadIn(l) && !l.sqlAt.IsZero() && month(l.sqlAt).Equal(m) {
				n++
			}
		}
		lm := analytics.LeadMonth{Month: m.Format("2006-01"), QualifiedLeads: int64(n)}
		if m.After(base) {
			prev := lv.Series[len(lv.Series)-1].QualifiedLeads
			lm.Rate = eCount(n-int(prev), int(prev))
			lv.Month, lv.QualifiedLeads, lv.PreviousMonthLeads, lv.Rate = lm.Month, lm.QualifiedLeads, prev, lm.Rate
			lv.Partial = m.Equal(month(e.today))
		}
		lv.Series = append(lv.Series, lm)
	}
	return lv
}

func (e *expecter) leadFunnel() *analytics.LeadFunnel {
	var leads, mql, sql, won int
	for _, l := range e.ds.leads {
		if !e.leadIn(l) || !e.inPeriod(l.created) {
			continue
		}
		w := false
		if l.convertedDeal >= 0 {
			d := e.ds.deals[l.convertedDeal]
			w = d.isWon && !d.deleted
		}
		leads++
		if w {
			won++
		}
		if w || !l.sqlAt.IsZero() {
			sql++
		}
		if w || !l.sqlAt.IsZero() || !l.mqlAt.IsZero() {
			mql++
		}
	}
	return &analytics.LeadFunnel{
		Leads: int64(leads), MQL: int64(mql), SQL: int64(sql), Won: int64(won),
		LeadToMQL: eCount(mql, leads), MQLToSQL: eCount(sql, mql), SQLToWon: eCount(won, sql), LeadToWon: eCount(won, leads),
	}
}

func (e *expecter) stageFunnel() analytics.StageFunnel {
	reached := make([]int, 7)
	cohort := 0
	for _, d := range e.ds.deals {
		if !e.dealIn(d) || !e.inPeriod(d.created) {
			continue
		}
		cohort++
		rank := openRank[e.ds.stages[d.stage].canonical]
		for _, h := range d.history {
			rank = max(rank, openRank[e.ds.stages[h.stage].canonical])
		}
		if d.isWon {
			rank = 7
		}
		for k := 1; k <= rank; k++ {
			reached[k-1]++
		}
	}
	names := []string{"lead_generation", "qualification", "needs_assessment", "proposal", "negotiation", "closing", "closed_won"}
	f := analytics.StageFunnel{CohortDeals: int64(cohort), Won: int64(reached[6]), ConversionRate: eCount(reached[6], cohort)}
	for i, n := range names {
		s := analytics.StageStep{Reached: int64(reached[i]), FromFirst: eCount(reached[i], reached[0])}
		s.Stage = analyticsStage(n)
		if i < 6 {
			s.ToNext = eCount(reached[i+1], reached[i])
		}
		f.Stages = append(f.Stages, s)
	}
	return f
}

// percentileCont is Postgres's percentile_cont: linear interpolation between ranks.
func percentileCont(sorted []float64, p float64) float64 {
	pos := p * float64(len(sorted)-1)
	lo := math.Floor(pos)
	hi := math.Ceil(pos)
	return sorted[int(lo)] + (pos-lo)*(sorted[int(hi)]-sorted[int(lo)])
}

type cycleStats struct {
	secs []int64
}

func (c *cycleStats) median() decimal.NullDecimal { return c.pct(0.5) }

func (c *cycleStats) pct(p float64) decimal.NullDecimal {
	if len(c.secs) == 0 {
		return decimal.NullDecimal{}
	}
	days := make([]float64, len(c.secs))
	for i, s := range c.secs {
		days[i] = float64(s) / 86400
	}
	sort.Float64s(days)
	return decimal.NewNullDecimal(decimal.NewFromFloat(percentileCont(days, p)).Round(2))
}

func (c *cycleStats) mean() decimal.NullDecimal {
	if len(c.secs) == 0 {
		return decimal.NullDecimal{}
	}
	var sum int64
	for _, s := range c.secs {
		sum += s
	}
	return decimal.NewNullDecimal(decimal.NewFromInt(sum).DivRound(decimal.NewFromInt(int64(len(c.secs))*86400), 20).Round(2))
}

func (e *expecter) closed() (analytics.WinRate, analytics.SalesCycle, []analytics.Velocity) {
	type cur struct {
		won, lost, noAmount int
		wonAmount, lostAmt  decimal.Decimal
		wonWithAmount       int
		cycle               cycleStats
	}
	byCur := map[string]*cur{}
	var all cycleStats
	wr := analytics.WinRate{ByCurrency: []analytics.CurrencyWinRate{}}
	excluded := 0
	for _, d := range e.ds.deals {
		if !e.dealIn(d) || !d.isClosed || !e.inPeriod(d.closedAt) {
			continue
		}
		c := byCur[d.currency]
		if c == nil {
			c = &cur{}
			byCur[d.currency] = c
		}
		if !d.amount.Valid {
			c.noAmount++
		}
		if d.isWon {
			wr.Won++
			c.won++
			if d.amount.Valid {
				c.wonAmount = c.wonAmount.Add(d.amount.Decimal)
				c.wonWithAmount++
			}
			if !d.created.IsZero() && !d.created.After(d.closedAt) {
				s := int64(d.closedAt.Sub(d.created) / time.Second)
				all.secs = append(all.secs, s)
				c.cycle.secs = append(c.cycle.secs, s)
			} else {
				excluded++
			}
		} else {
			wr.Lost++
			c.lost++
			if d.amount.Valid {
				c.lostAmt = c.lostAmt.Add(d.amount.Decimal)
			}
		}
	}
	wr.Rate = eCount(int(wr.Won), int(wr.Won+wr.Lost))
	for _, k := range sortedMapKeys(byCur) {
		c := byCur[k]
		wr.ByCurrency = append(wr.ByCurrency, analytics.CurrencyWinRate{
			Currency: k, Won: int64(c.won), Lost: int64(c.lost), DealsWithoutAmount: int64(c.noAmount),
			WonAmount: c.wonAmount, LostAmount: c.lostAmt,
			Rate: eCount(c.won, c.won+c.lost), ValueRate: eRatio(c.wonAmount, c.wonAmount.Add(c.lostAmt)),
		})
	}
	cycle := analytics.SalesCycle{WonDeals: int64(len(all.secs)), Excluded: int64(excluded),
		MedianDays: all.median(), MeanDays: all.mean(), P90Days: all.pct(0.9)}

	qualified := map[string]int{}
	for _, d := range e.ds.deals {
		if e.dealIn(d) && !d.isClosed && openRank[e.ds.stages[d.stage].canonical] >= 2 {
			qualified[d.currency]++
		}
	}
	keys := sortedMapKeys(qualified)
	for k := range byCur {
		if _, ok := qualified[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	velocity := []analytics.Velocity{}
	for _, k := range keys {
		c := byCur[k]
		if c == nil {
			c = &cur{}
		}
		v := analytics.Velocity{Currency: k, OpenQualifiedDeals: int64(qualified[k]),
			WinRate: eCount(c.won, c.won+c.lost), MedianCycleDays: c.cycle.median()}
		if c.wonWithAmount > 0 {
			v.AvgWonAmount = decimal.NewNullDecimal(c.wonAmount.DivRound(decimal.NewFromInt(int64(c.wonWithAmount)), 20).Round(2))
		}
		if v.WinRate.Valid && v.AvgWonAmount.Valid && v.MedianCycleDays.Valid && !v.MedianCycleDays.Decimal.IsZero() {
			v.PerDay = decimal.NewNullDecimal(decimal.NewFromInt(int64(qualified[k])).Mul(v.WinRate.Decimal).
				Mul(v.AvgWonAmount.Decimal).DivRound(v.MedianCycleDays.Decimal, 20).Round(2))
		}
		velocity = append(velocity, v)
	}
	return wr, cycle, velocity
}

func (e *expecter) open() (analytics.OpenPipeline, analytics.DealSet) {
	type key struct{ group, name, currency string }
	amounts := map[key]*analytics.Amounts{}
	closing := map[string]decimal.Decimal{}
	past := map[string]*analytics.CurrencyAmount{}
	op := analytics.OpenPipeline{}
	add := func(k key, d genDeal, weighted decimal.Decimal) {
		a := amounts[k]
		if a == nil {
			a = &analytics.Amounts{Currency: k.currency}
			amounts[k] = a
		}
		a.Deals++
		if d.amount.Valid {
			a.Amount = a.Amount.Add(d.amount.Decimal)
			a.Weighted = a.Weighted.Add(weighted)
		} else {
			a.DealsWithoutAmount++
		}
	}
	for _, d := range e.ds.deals {
		if !e.dealIn(d) || d.isClosed {
			continue
		}
		op.Deals++
		if d.owner < 0 {
			op.WithoutOwner++
		}
		for j, h := range d.history {
			if e.ds.stages[h.stage].isClosed && j+1 < len(d.history) { // a closed stay that ended
				op.Reopened++
				break
			}
		}
		weighted := decimal.Zero
		if d.amount.Valid {
			weighted = d.amount.Decimal.Mul(e.stageProb(d))
		}
		stage := cmp.Or(e.ds.stages[d.stage].canonical, "unmapped")
		add(key{"stage", stage, d.currency}, d, weighted)
		add(key{"category", cmp.Or(d.forecast, "none"), d.currency}, d, weighted)
		add(key{"total", "", d.currency}, d, weighted)
		if d.amount.Valid && e.dayInPeriod(d.closeDate) {
			closing[d.currency] = closing[d.currency].Add(d.amount.Decimal)
		}
		if !d.closeDate.IsZero() && d.closeDate.Before(e.today) {
			p := past[d.currency]
			if p == nil {
				p = &analytics.CurrencyAmount{Currency: d.currency}
				past[d.currency] = p
			}
			p.Deals++
			if d.amount.Valid {
				p.Amount = p.Amount.Add(d.amount.Decimal)
			} else {
				p.DealsWithoutAmount++
			}
		}
	}
	op.ByCurrency, op.ByStage, op.ByForecastCategory = []analytics.PipelineTotal{}, []analytics.StageAmount{}, []analytics.ForecastAmount{}
	keys := make([]key, 0, len(amounts))
	for k := range amounts {
		keys = append(keys, k)
	}
	stageIndex := func(s string) int {
		if r, ok := openRank[s]; ok {
			return r
		}
		return 10
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(stageIndex(a.name), stageIndex(b.name)),
			cmp.Compare(a.name, b.name), cmp.Compare(a.currency, b.currency))
	})
	for _, k := range keys {
		a := *amounts[k]
		a.Weighted = a.Weighted.Round(2)
		switch k.group {
		case "stage":
			op.ByStage = append(op.ByStage, analytics.StageAmount{Stage: k.name, Amounts: a})
		case "category":
			op.ByForecastCategory = append(op.ByForecastCategory, analytics.ForecastAmount{ForecastCategory: k.name, Amounts: a})
		default:
			op.ByCurrency = append(op.ByCurrency, analytics.PipelineTotal{Amounts: a, ClosingInPeriod: closing[k.currency]})
		}
	}
	ps := analytics.DealSet{ByCurrency: []analytics.CurrencyAmount{}}
	for _, k := range sortedMapKeys(past) {
		ps.Deals += past[k].Deals
		ps.ByCurrency = append(ps.ByCurrency, *past[k])
	}
	return op, ps
}

func (e *expecter) coverage() []analytics.Coverage {
	tuntil := analytics.QuarterOf(e.period.Start).Start
	tfrom := tuntil.AddDate(-1, 0, 0)
	teamEmails := map[string]bool{}
	for _, o := range e.ds.owners {
		if e.scope.Kind == analytics.ScopeTeam && o.team == e.scope.Value && o.email != "" {
			teamEmails[strings.ToLower(o.email)] = true
		}
	}
	out := []analytics.Coverage{}
	for _, tg := range e.ds.targets {
		tp, _ := analytics.ParsePeriod(tg.period)
		if !tp.Start.Equal(e.period.Start) || !tp.End.Equal(e.period.End) {
			continue
		}
		email := strings.ToLower(tg.ownerEmail)
		switch e.scope.Kind {
		case analytics.ScopeTeam:
			if tg.team != e.scope.Value && !teamEmails[email] {
				continue
			}
		case analytics.ScopeOwner:
			if email != e.scope.Value {
				continue
			}
		}
		c := analytics.Coverage{Subject: "org", Currency: tg.currency, Target: tg.amount}
		switch {
		case tg.ownerEmail != "":
			c.Subject, c.Name = "owner", email
		case tg.team != "":
			c.Subject, c.Name = "team", tg.team
		}
		var trailingWon, trailingClosed int
		for _, d := range e.ds.deals {
			if !e.dealIn(d) {
				continue
			}
			o := e.owner(d.owner)
			switch c.Subject {
			case "team":
				if d.owner < 0 || o.team != c.Name {
					continue
				}
			case "owner":
				if d.owner < 0 || strings.ToLower(o.email) != c.Name {
					continue
				}
			}
			if d.isClosed && !d.closedAt.Before(tfrom) && d.closedAt.Before(tuntil) {
				trailingClosed++
				if d.isWon {
					trailingWon++
				}
			}
			if d.currency != c.Currency || !d.amount.Valid {
				continue
			}
			if d.isWon && e.inPeriod(d.closedAt) {
				c.Won = c.Won.Add(d.amount.Decimal)
			}
			if !d.isClosed && e.dayInPeriod(d.closeDate) && strings.ToLower(d.forecast) != "omitted" {
				c.OpenPipeline = c.OpenPipeline.Add(d.amount.Decimal)
			}
		}
		c.Remaining = c.Target.Sub(c.Won)
		if e.period.Start.After(e.today) {
			c.Remaining = c.Target
		}
		c.TrailingWinRate = eCount(trailingWon, trailingClosed)
		c.RequiredCoverage = decimal.NewFromInt(5)
		if trailingWon > 0 {
			inv := decimal.NewFromInt(int64(trailingClosed)).DivRound(decimal.NewFromInt(int64(trailingWon)), 20)
			_ = inv
			inv = decimal.NewFromInt(1).DivRound(c.TrailingWinRate.Decimal, 4)
			c.RequiredCoverage = decimal.Min(decimal.NewFromInt(5), decimal.Max(decimal.NewFromInt(2), inv))
		}
		if !c.Remaining.IsPositive() {
			c.Remaining, c.Status = decimal.Zero, analytics.CoverageMet
		} else {
			c.Coverage = eRatio(c.OpenPipeline, c.Remaining)
			c.PipelineNeeded = c.RequiredCoverage.Mul(c.Remaining).Round(2)
			c.Shortfall = decimal.Max(decimal.Zero, c.PipelineNeeded.Sub(c.OpenPipeline))
			c.Status = analytics.CoverageCovered
			if c.Coverage.Decimal.LessThan(c.RequiredCoverage) {
				c.Status = analytics.CoverageShort
			}
		}
		out = append(out, c)
	}
	order := map[string]int{"org": 0, "team": 1, "owner": 2}
	slices.SortFunc(out, func(a, b analytics.Coverage) int {
		return cmp.Or(cmp.Compare(order[a.Subject], order[b.Subject]), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Currency, b.Currency))
	})
	return out
}

func parseDay(s string) (time.Time, bool) {
	t, err := time.Parse(time.DateOnly, s)
	return t, err == nil
}

func (e *expecter) slipped() analytics.DealSet {
	by := map[string]*analytics.CurrencyAmount{}
	for _, d := range e.ds.deals {
		if !e.dealIn(d) {
			continue
		}
		slipped := false
		for _, c := range d.changes {
			old, ok1 := parseDay(c.old)
			nw, ok2 := parseDay(c.new)
			if c.field == "close_date" && ok1 && ok2 && !c.at.Before(e.period.Start) && e.dayInPeriod(old) && nw.After(e.period.End) {
				slipped = true
			}
		}
		if !slipped {
			continue
		}
		a := by[d.currency]
		if a == nil {
			a = &analytics.CurrencyAmount{Currency: d.currency}
			by[d.currency] = a
		}
		a.Deals++
		if d.amount.Valid {
			a.Amount = a.Amount.Add(d.amount.Decimal)
		} else {
			a.DealsWithoutAmount++
		}
	}
	s := analytics.DealSet{ByCurrency: []analytics.CurrencyAmount{}}
	for _, k := range sortedMapKeys(by) {
		s.Deals += by[k].Deals
		s.ByCurrency = append(s.ByCurrency, *by[k])
	}
	return s
}

func (e *expecter) owners() []analytics.OwnerRow {
	type key struct{ owner, currency string }
	rows := map[key]*analytics.OwnerRow{}
	for _, d := range e.ds.deals {
		if !e.dealIn(d) || (d.isClosed && !e.inPeriod(d.closedAt)) {
			continue
		}
		k := key{currency: d.currency}
		o := e.owner(d.owner)
		switch {
		case d.owner < 0:
		case o.email == "":
			k.owner = "id:" + decimal.NewFromInt(o.id).String()
		default:
			k.owner = strings.ToLower(o.email)
		}
		r := rows[k]
		if r == nil {
			r = &analytics.OwnerRow{Owner: k.owner, Currency: d.currency}
			rows[k] = r
		}
		if d.owner >= 0 {
			r.Name, r.Team = max(r.Name, o.name), max(r.Team, o.team)
		}
		amount := d.amount.Decimal // zero when NULL
		switch {
		case !d.isClosed:
			r.OpenDeals++
			r.OpenAmount = r.OpenAmount.Add(amount)
			r.Weighted = r.Weighted.Add(amount.Mul(e.stageProb(d)))
		case d.isWon:
			r.WonDeals++
			r.WonAmount = r.WonAmount.Add(amount)
		default:
			r.LostDeals++
		}
	}
	out := []analytics.OwnerRow{}
	for _, r := range rows {
		r.Weighted = r.Weighted.Round(2)
		r.WinRate = eCount(int(r.WonDeals), int(r.WonDeals+r.LostDeals))
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b analytics.OwnerRow) int {
		return cmp.Or(cmp.Compare(boolInt(a.Owner == ""), boolInt(b.Owner == "")), cmp.Compare(a.Owner, b.Owner),
			cmp.Compare(a.Currency, b.Currency))
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (e *expecter) unmapped() []analytics.UnmappedStage {
	out := []analytics.UnmappedStage{}
	for i, s := range e.ds.stages {
		p := e.ds.pipelines[s.pipeline]
		conn := e.ds.connections[p.conn].name
		if s.canonical != "" || s.deleted || (e.scope.Kind == analytics.ScopeConnection && conn != e.scope.Value) {
			continue
		}
		u := analytics.UnmappedStage{StageID: s.id, Connection: conn, Pipeline: p.name, ExternalID: s.ext, Name: s.name,
			Probability: s.probability, IsClosed: s.isClosed, IsWon: s.isWon}
		for _, d := range e.ds.deals {
			if d.stage == i && !d.isClosed && !d.deleted {
				u.OpenDeals++
			}
		}
		out = append(out, u)
	}
	return out // generated in connection, pipeline and position order
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
