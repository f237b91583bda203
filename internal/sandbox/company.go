// Package sandbox is pipewatch's sandbox company: a deterministic generator of a realistic
// sales organisation — three teams of reps and managers in different time zones, 18 months
// of deals through the standard stages with their activities, leads with MQL and SQL
// dates, and this quarter's targets — and the driver that seeds the in-process fake CRMs
// with it (hubspottest for the HubSpot teams, pipedrivetest for the Pipedrive team) and
// keeps changing them the way a sales floor does. `pipewatch demo` runs on it.
//
// The same Options (seed and end of history) give the same company.
package sandbox

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // the teams' zones load on machines without a tz database

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/pipeline"
)

// CRM is the system a team keeps its pipeline in.
type CRM string

// The CRMs of the sandbox.
const (
	HubSpot   CRM = "hubspot"
	Pipedrive CRM = "pipedrive"
)

// Options shape a generated company. Zero fields take the defaults.
type Options struct {
	// Seed makes the company reproducible (0 is a seed like any other).
	Seed uint64
	// Now is when the generated history ends (default time.Now).
	Now time.Time
	// Months of history (default 18).
	Months int
	// RepsPerTeam is the number of reps in each team (default 4).
	RepsPerTeam int
	// DealsPerRepWeek is how many deals a rep opens in an average week (default 1.3).
	DealsPerRepWeek float64
}

func (o Options) withDefaults() Options {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Now = o.Now.UTC().Truncate(time.Second)
	if o.Months <= 0 {
		o.Months = 18
	}
	if o.RepsPerTeam <= 0 {
		o.RepsPerTeam = 4
	}
	if o.DealsPerRepWeek <= 0 {
		o.DealsPerRepWeek = 1.3
	}
	return o
}

// Company is a generated sales organisation and its history up to Now.
type Company struct {
	Name   string
	Domain string
	Seed   uint64
	// Now is when the history ends.
	Now time.Time
	// Timezone is the org's time zone (the Americas headquarters).
	Timezone string
	Currency string
	Teams    []*Team
	Accounts []*Account
	// Leads are people who came in through marketing; some became a deal's contact.
	Leads   []*Lead
	Deals   []*Deal
	Targets []Target
}

// Team is a sales team: a manager, reps, a home time zone and the CRM it works in.
type Team struct {
	Name     string
	Timezone string
	CRM      CRM
	// Currency is the team's target currency; deals may also be in OtherCurrency.
	Currency      string
	OtherCurrency string
	SlackChannel  string
	Manager       *Person
	Reps          []*Person
	// coverage is the pipeline coverage the team's targets are tuned to.
	coverage float64
}

// Location is the team's time zone.
func (t *Team) Location() *time.Location { return mustLocation(t.Timezone) }

// People are the team's manager and reps.
func (t *Team) People() []*Person { return append([]*Person{t.Manager}, t.Reps...) }

// Person is a rep or a manager: a user of the team's CRM.
type Person struct {
	First, Last string
	Email       string
	// Timezone is the person's own zone (a rep working away from the team's home).
	Timezone string
	Team     *Team
	Manager  bool
	// Currency is what the person's deals are usually in.
	Currency string
}

// Name is the person's full name.
func (p *Person) Name() string { return p.First + " " + p.Last }

// Account is a customer company.
type Account struct {
	Name    string
	Domain  string
	Team    *Team
	Owner   *Person
	Created time.Time
}

// Lead is a person who came in through marketing. Leads that reached SQL may have become
// a deal's contact.
type Lead struct {
	First, Last string
	Email       string
	Team        *Team
	Owner       *Person
	Account     *Account
	Source      string
	Created     time.Time
	// MQLAt and SQLAt are when the lead became marketing- and sales-qualified (zero: not).
	MQLAt, SQLAt time.Time
	// ConvertedAt is when the lead's deal was opened (zero: no deal).
	ConvertedAt  time.Time
	Disqualified bool
}

// Name is the lead's full name.
func (l *Lead) Name() string { return l.First + " " + l.Last }

// StageVisit is a deal entering a stage.
type StageVisit struct {
	Stage   pipeline.CanonicalStage
	Entered time.Time
}

// Activity is a touch on a deal.
type Activity struct {
	Kind      pipeline.ActivityKind
	Direction pipeline.Direction
	At        time.Time
	Subject   string
	// Done is false for a scheduled activity (a next step).
	Done bool
}

// Deal is an opportunity and its history.
type Deal struct {
	// Seq numbers the deals in creation order, from 1.
	Seq      int
	Name     string
	Team     *Team
	Owner    *Person
	Account  *Account
	Contact  *Lead
	Amount   decimal.Decimal
	Currency string
	Created  time.Time
	// Stages are the stages entered, in order; the last is the current one (closed_won or
	// closed_lost for a closed deal).
	Stages []StageVisit
	// CloseDate is the expected close date (the actual one once closed), a UTC midnight.
	CloseDate time.Time
	ClosedAt  time.Time
	// Activities are the touches, oldest first; a scheduled next step is not Done.
	Activities []Activity
	// Story says why the deal is worth a look in the demo ("" for an ordinary deal).
	Story string
}

// Stage is the deal's current stage.
func (d *Deal) Stage() pipeline.CanonicalStage { return d.Stages[len(d.Stages)-1].Stage }

// StageEntered is when the deal entered its current stage.
func (d *Deal) StageEntered() time.Time { return d.Stages[len(d.Stages)-1].Entered }

// Open reports whether the deal is still being worked.
func (d *Deal) Open() bool { return d.Stage().Open() }

// Won reports whether the deal was won.
func (d *Deal) Won() bool { return d.Stage() == pipeline.StageClosedWon }

// LastTouch is the latest done activity (zero when none).
func (d *Deal) LastTouch() time.Time {
	var t time.Time
	for _, a := range d.Activities {
		if a.Done && a.At.After(t) {
			t = a.At
		}
	}
	return t
}

// NextStep is the earliest scheduled activity (zero when none).
func (d *Deal) NextStep() time.Time {
	var t time.Time
	for _, a := range d.Activities {
		if !a.Done && (t.IsZero() || a.At.Before(t)) {
			t = a.At
		}
	}
	return t
}

// Updated is the deal's last change up to now: its last stage move or done activity.
func (d *Deal) Updated(now time.Time) time.Time {
	t := d.StageEntered()
	for _, a := range d.Activities {
		if a.Done && a.At.After(t) && !a.At.After(now) {
			t = a.At
		}
	}
	return t
}

// Target is a quota for the current quarter.
type Target struct {
	// OwnerEmail or Team names the subject.
	OwnerEmail string
	Team       string
	// Period is the quarter, like 2026-Q4.
	Period   string
	Amount   decimal.Decimal
	Currency string
}

// Quarter returns the quarter t falls in (in loc) as 2026-Q4, with its first and last day.
func Quarter(t time.Time, loc *time.Location) (name string, start, end time.Time) {
	t = t.In(loc)
	q := (int(t.Month()) - 1) / 3
	start = time.Date(t.Year(), time.Month(q*3+1), 1, 0, 0, 0, 0, time.UTC)
	end = start.AddDate(0, 3, -1)
	return fmt.Sprintf("%d-Q%d", t.Year(), q+1), start, end
}

// teamSpec describes one of the three teams.
type teamSpec struct {
	name, zone    string
	crm           CRM
	currency      string
	other         string
	otherShare    float64
	median        float64 // median deal amount in currency
	repZones      []string
	channel       string
	coverage      float64 // target coverage the quarter's targets are tuned to
	leadsPerMonth int
	leadDip       float64 // share of the usual inflow in the last 30 days
}

var teamSpecs = []teamSpec{
	{name: "Americas", zone: "America/New_York", crm: HubSpot, currency: "USD", median: 24000,
		repZones: []string{"America/New_York", "America/Chicago"}, channel: "#sales-americas",
		coverage: 3.4, leadsPerMonth: 34, leadDip: 0.75},
	{name: "EMEA", zone: "Europe/London", crm: HubSpot, currency: "EUR", other: "GBP", otherShare: 0.4, median: 19000,
		repZones: []string{"Europe/London", "Europe/Berlin"}, channel: "#sales-emea",
		coverage: 1.4, leadsPerMonth: 30, leadDip: 0.35},
	{name: "APAC", zone: "Asia/Tokyo", crm: Pipedrive, currency: "JPY", other: "AUD", median: 2_600_000,
		repZones: []string{"Asia/Tokyo", "Asia/Tokyo", "Asia/Tokyo", "Australia/Sydney"}, channel: "#sales-apac",
		coverage: 3.0, leadsPerMonth: 16, leadDip: 1},
}

// funnelStage is an open stage with the usual days a deal spends in it and the share of
// deals lost when they leave it.
type funnelStage struct {
	stage pipeline.CanonicalStage
	days  float64
	loss  float64
}

// funnel are the open stages in order.
var funnel = []funnelStage{
	{pipeline.StageQualification, 8, 0.28},
	{pipeline.StageNeedsAssessment, 14, 0.22},
	{pipeline.StageProposal, 12, 0.2},
	{pipeline.StageNegotiation, 12, 0.15},
	{pipeline.StageClosing, 7, 0.08},
}

// generator holds the state of one Generate call.
type generator struct {
	rng  *rand.Rand
	opts Options
	c    *Company
	// names are the people's and accounts' names, emails the leads' addresses: both unique.
	names  map[string]bool
	emails map[string]bool
	// accounts by team, for repeat business.
	accounts map[*Team][]*Account
}

// Generate builds a company from opts. It is deterministic: the same options give the same
// company.
func Generate(opts Options) *Company {
	return newGenerator(opts.withDefaults()).generate()
}

func newGenerator(opts Options) *generator {
	return &generator{
		rng:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5eed5a4db0c5)),
		opts:     opts,
		names:    map[string]bool{},
		emails:   map[string]bool{},
		accounts: map[*Team][]*Account{},
		c: &Company{Name: "Northwind Analytics", Domain: "northwind.example.com", Seed: opts.Seed, Now: opts.Now,
			Timezone: teamSpecs[0].zone, Currency: teamSpecs[0].currency},
	}
}

func (g *generator) generate() *Company {
	for _, spec := range teamSpecs {
		g.team(spec)
	}
	start := g.opts.Now.AddDate(0, -g.opts.Months, 0)
	for i, t := range g.c.Teams {
		for _, rep := range t.Reps {
			g.repDeals(rep, start, teamSpecs[i])
		}
		g.leads(t, start, teamSpecs[i])
	}
	g.plantStories()
	g.qualifiedLeadsDip()
	slices.SortStableFunc(g.c.Deals, func(a, b *Deal) int { return a.Created.Compare(b.Created) })
	for i, d := range g.c.Deals {
		d.Seq = i + 1
	}
	slices.SortStableFunc(g.c.Leads, func(a, b *Lead) int { return a.Created.Compare(b.Created) })
	slices.SortStableFunc(g.c.Accounts, func(a, b *Account) int { return a.Created.Compare(b.Created) })
	g.targets()
	return g.c
}

var (
	firstNames = []string{"Ana", "Ben", "Carmen", "Dev", "Elena", "Felix", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam",
		"Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Viktor", "Wen", "Yuki", "Zoe",
		"Aiko", "Bruno", "Chloe", "Diego", "Emma", "Farah", "Gus", "Haruto", "Isla", "Jack", "Kenji", "Lena", "Marco"}
	lastNames = []string{"Silva", "Okafor", "Muller", "Nguyen", "Rossi", "Kowalski", "Haddad", "Sato", "Berg", "Diaz",
		"Tanaka", "Walsh", "Novak", "Patel", "Larsen", "Moreau", "Kim", "Costa", "Fischer", "Ito", "Brennan", "Shah",
		"Yamamoto", "Lindqvist", "Oduya", "Romano", "Schmidt", "Watanabe", "Hughes", "Dubois"}
	companyHeads = []string{"Acme", "Blue Harbor", "Cobalt", "Delta Grid", "Evergreen", "Fjord", "Granite", "Helix",
		"Ironwood", "Juniper", "Kestrel", "Lumen", "Meridian", "Northstar", "Orbital", "Pinecrest", "Quanta",
		"Redwood", "Summit", "Tidewater", "Umbra", "Vantage", "Westfield", "Zenith", "Aurora", "Beacon", "Copperleaf",
		"Driftwood", "Ember", "Falcon", "Glacier", "Harbor", "Indigo", "Jade", "Keystone", "Larkspur"}
	companyTails = []string{"Logistics", "Health", "Foods", "Energy", "Retail", "Bank", "Insurance", "Media",
		"Robotics", "Labs", "Telecom", "Motors", "Pharma", "Airlines", "Hotels", "Software", "Capital", "Freight"}
	leadSources = []string{"organic_search", "paid_search", "referrals", "social_media", "direct_traffic", "email_marketing"}
)

// leadEmail returns an address at domain for the name that no other lead has.
func (g *generator) leadEmail(first, last, domain string) string {
	local := strings.ToLower(first + "." + last)
	email := local + "@" + domain
	for i := 2; g.emails[email]; i++ {
		email = fmt.Sprintf("%s%d@%s", local, i, domain)
	}
	g.emails[email] = true
	return email
}

// uniqueName returns a name no other person of the company has.
func (g *generator) uniqueName() (first, last string) {
	for {
		first, last = pick(g.rng, firstNames), pick(g.rng, lastNames)
		if !g.names[first+" "+last] {
			g.names[first+" "+last] = true
			return first, last
		}
	}
}

func (g *generator) person(t *Team, zone string, manager bool, currency string) *Person {
	first, last := g.uniqueName()
	return &Person{
		First: first, Last: last, Timezone: zone, Team: t, Manager: manager, Currency: currency,
		Email: strings.ToLower(first+"."+last) + "@" + g.c.Domain,
	}
}

func (g *generator) team(spec teamSpec) {
	t := &Team{Name: spec.name, Timezone: spec.zone, CRM: spec.crm, Currency: spec.currency, OtherCurrency: spec.other,
		SlackChannel: spec.channel, coverage: spec.coverage}
	t.Manager = g.person(t, spec.zone, true, spec.currency)
	for i := range g.opts.RepsPerTeam {
		zone := spec.repZones[i%len(spec.repZones)]
		currency := spec.currency
		if zone == "Australia/Sydney" {
			currency = spec.other
		}
		t.Reps = append(t.Reps, g.person(t, zone, false, currency))
	}
	g.c.Teams = append(g.c.Teams, t)
}

// workTime returns a moment in working hours (09:00–17:30) of day in loc, moved to the
// next weekday when day falls on a weekend.
func (g *generator) workTime(day time.Time, loc *time.Location) time.Time {
	d := day.In(loc)
	for d.Weekday() == time.Saturday || d.Weekday() == time.Sunday {
		d = d.AddDate(0, 0, 1)
	}
	minutes := 9*60 + g.rng.IntN(8*60+30)
	return time.Date(d.Year(), d.Month(), d.Day(), minutes/60, minutes%60, g.rng.IntN(60), 0, loc).UTC()
}

// lognormal draws around median with spread sigma.
func (g *generator) lognormal(median, sigma float64) float64 {
	return median * math.Exp(sigma*g.rng.NormFloat64())
}

func (g *generator) days(d float64) time.Duration { return time.Duration(d * 24 * float64(time.Hour)) }

func (g *generator) account(t *Team, owner *Person, at time.Time) *Account {
	existing := g.accounts[t]
	if len(existing) > 8 && g.rng.Float64() < 0.3 {
		return existing[g.rng.IntN(len(existing))]
	}
	name := pick(g.rng, companyHeads) + " " + pick(g.rng, companyTails)
	if g.names[name] {
		if len(existing) > 0 { // the name is taken: more business with an existing customer
			return existing[g.rng.IntN(len(existing))]
		}
		name += " " + t.Name
	}
	g.names[name] = true
	domain := strings.ToLower(strings.ReplaceAll(name, " ", "")) + ".example.com"
	a := &Account{Name: name, Domain: domain, Team: t, Owner: owner, Created: at.Add(-g.days(g.rng.Float64() * 20))}
	g.accounts[t] = append(g.accounts[t], a)
	g.c.Accounts = append(g.c.Accounts, a)
	return a
}

// repDeals opens a rep's deals from start to now and plays each through the funnel.
func (g *generator) repDeals(rep *Person, start time.Time, spec teamSpec) {
	loc := mustLocation(rep.Timezone)
	perDay := g.opts.DealsPerRepWeek / 5
	for day := start; day.Before(g.opts.Now); day = day.AddDate(0, 0, 1) {
		local := day.In(loc)
		if local.Weekday() == time.Saturday || local.Weekday() == time.Sunday {
			continue
		}
		rate := perDay
		if g.opts.Now.Sub(day) < 30*24*time.Hour {
			rate *= spec.leadDip // deals follow the qualified leads
		}
		for g.rng.Float64() < rate {
			rate -= 1
			created := g.workTime(day, loc)
			if created.After(g.opts.Now) {
				continue
			}
			g.deal(rep, created, spec)
		}
	}
}

func (g *generator) amount(median float64, currency string) decimal.Decimal {
	v := g.lognormal(median, 0.7)
	switch currency {
	case "JPY":
		return decimal.NewFromInt(int64(math.Round(v/10000)) * 10000).Add(decimal.NewFromInt(10000))
	default:
		if g.rng.Float64() < 0.2 { // some amounts carry cents (a price × seats)
			return decimal.New(int64(math.Round(v*100)), -2).Add(decimal.NewFromInt(500))
		}
		return decimal.NewFromInt(int64(math.Round(v/100))*100 + 500)
	}
}

// deal plays one deal through the funnel from created: stage stays of usual length, a loss
// or a win at the end, and now and then a stall — the deal goes quiet and is closed lost
// weeks later, or is still open and quiet now.
func (g *generator) deal(rep *Person, created time.Time, spec teamSpec) {
	t := rep.Team
	loc := mustLocation(rep.Timezone)
	currency := rep.Currency
	median := spec.median
	if rep.Currency == spec.currency && spec.other != "" && spec.otherShare > 0 && g.rng.Float64() < spec.otherShare {
		currency = spec.other
	}
	if currency != spec.currency {
		median = spec.median * rate(spec.currency, currency)
	}
	acct := g.account(t, rep, created)
	d := &Deal{
		Team: t, Owner: rep, Account: acct, Currency: currency, Created: created,
		Amount: g.amount(median, currency),
	}
	d.Name = g.dealName(acct, pick(g.rng, []string{"Platform", "Expansion", "Pilot", "Renewal", "Analytics seats", "Enterprise plan", "Team plan", "Data add-on"}))
	d.Contact = g.contactFor(d)

	now := g.opts.Now
	stallAt := -1
	if g.rng.Float64() < 0.14 {
		stallAt = g.rng.IntN(len(funnel))
	}
	expected := 0.0
	for _, f := range funnel {
		expected += f.days
	}
	d.CloseDate = midnight(created.Add(g.days(expected * (0.8 + 0.6*g.rng.Float64()))))

	at := created
	var quietFrom time.Time // activity stops here (a stalled deal)
	for i, f := range funnel {
		d.Stages = append(d.Stages, StageVisit{Stage: f.stage, Entered: at})
		stay := g.lognormal(f.days, 0.45)
		lost := g.rng.Float64() < f.loss
		if i == stallAt {
			quietFrom = at.Add(g.days(stay * 0.5))
			stay = 30 + g.rng.Float64()*60
			lost = true
		}
		leave := g.workTime(at.Add(g.days(stay)), loc)
		if leave.After(now) {
			break // still in this stage
		}
		at = leave
		if lost {
			d.Stages = append(d.Stages, StageVisit{Stage: pipeline.StageClosedLost, Entered: at})
			break
		}
		if i == len(funnel)-1 {
			d.Stages = append(d.Stages, StageVisit{Stage: pipeline.StageClosedWon, Entered: at})
		}
	}
	if !d.Open() {
		d.ClosedAt = d.StageEntered()
		d.CloseDate = midnight(d.ClosedAt)
	} else if d.CloseDate.Before(midnight(now)) && g.rng.Float64() < 0.55 {
		// Reps push most overdue close dates out; the rest stay in the past.
		d.CloseDate = midnight(now.Add(g.days(5 + g.rng.Float64()*40)))
	}
	g.activities(d, loc, quietFrom)
	g.c.Deals = append(g.c.Deals, d)
}

// dealName names a deal after its account and product, numbered when the account bought
// the product before, so names are unique.
func (g *generator) dealName(a *Account, product string) string {
	name := a.Name + " – " + product
	for i := 2; g.names[name]; i++ {
		name = fmt.Sprintf("%s – %s %d", a.Name, product, i)
	}
	g.names[name] = true
	return name
}

// rate converts amounts of the team's currency to other, roughly.
func rate(from, to string) float64 {
	usd := map[string]float64{"USD": 1, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "AUD": 0.66}
	return usd[from] / usd[to]
}

// contactFor creates the lead that became the deal's contact: qualified days before the
// deal was opened.
func (g *generator) contactFor(d *Deal) *Lead {
	first, last := pick(g.rng, firstNames), pick(g.rng, lastNames)
	sqlAt := d.Created.Add(-g.days(1 + g.rng.Float64()*5))
	mqlAt := sqlAt.Add(-g.days(2 + g.rng.Float64()*12))
	l := &Lead{
		First: first, Last: last, Team: d.Team, Owner: d.Owner, Account: d.Account,
		Email:   g.leadEmail(first, last, d.Account.Domain),
		Source:  pick(g.rng, leadSources),
		Created: mqlAt.Add(-g.days(g.rng.Float64() * 20)), MQLAt: mqlAt, SQLAt: sqlAt, ConvertedAt: d.Created,
	}
	g.c.Leads = append(g.c.Leads, l)
	return l
}

// leads adds the team's marketing leads that did not (yet) become deals: most stay at MQL,
// some reach SQL, some are disqualified. The last 30 days bring leadDip of the usual flow.
func (g *generator) leads(t *Team, start time.Time, spec teamSpec) {
	now := g.opts.Now
	loc := t.Location()
	perDay := float64(spec.leadsPerMonth) / 30
	for day := start; day.Before(now); day = day.AddDate(0, 0, 1) {
		rate := perDay
		if now.Sub(day) < 30*24*time.Hour {
			rate *= spec.leadDip
		}
		for r := g.rng.Float64(); r < rate; rate-- {
			created := day.In(loc).Add(time.Duration(g.rng.IntN(24*60)) * time.Minute).UTC()
			if created.After(now) {
				continue
			}
			first, last := pick(g.rng, firstNames), pick(g.rng, lastNames)
			owner := pick(g.rng, t.Reps)
			acct := g.account(t, owner, created)
			l := &Lead{
				First: first, Last: last, Team: t, Owner: owner, Account: acct, Source: pick(g.rng, leadSources),
				Email: g.leadEmail(first, last, acct.Domain), Created: created,
			}
			if p := g.rng.Float64(); p < 0.7 {
				l.MQLAt = created.Add(g.days(g.rng.Float64() * 8))
				if g.rng.Float64() < 0.3 {
					l.SQLAt = l.MQLAt.Add(g.days(2 + g.rng.Float64()*10))
				}
			} else if p < 0.8 {
				l.Disqualified = true
			}
			if l.MQLAt.After(now) {
				l.MQLAt = time.Time{}
			}
			if l.SQLAt.After(now) {
				l.SQLAt = time.Time{}
			}
			g.c.Leads = append(g.c.Leads, l)
		}
	}
}

// qualifiedDip is the share of the previous 30 days' SQLs that the last 30 days bring at
// most: a drop the lead velocity rule reports (20 % by default) whatever the seed.
const qualifiedDip = 0.6

// qualifiedLeadsDip makes sure the SQLs of the last 30 days fell against the 30 days
// before, in the CRM that records qualification (HubSpot's lifecycle stages): the flow
// of leads dips (leadDip) but qualifying lags creation, so by chance the SQLs may not.
// Marketing leads that stayed at MQL become SQL in the earlier window, then SQLs of the
// last 30 days go back to MQL, until the last 30 days hold at most qualifiedDip of the
// 30 days before. Leads that became deals keep their dates.
func (g *generator) qualifiedLeadsDip() {
	now := g.opts.Now
	split, from := now.AddDate(0, 0, -30), now.AddDate(0, 0, -60)
	var current, previous int
	var promote, demote []*Lead
	for _, l := range g.c.Leads {
		if l.Team.CRM != HubSpot {
			continue
		}
		switch {
		case !l.SQLAt.IsZero() && !l.SQLAt.Before(split):
			current++
			if l.ConvertedAt.IsZero() {
				demote = append(demote, l)
			}
		case !l.SQLAt.IsZero() && !l.SQLAt.Before(from):
			previous++
		case l.SQLAt.IsZero() && !l.MQLAt.IsZero() && !l.Disqualified && !l.MQLAt.Before(from) && l.MQLAt.Before(split.AddDate(0, 0, -2)):
			promote = append(promote, l)
		}
	}
	for _, l := range promote {
		if float64(current) <= qualifiedDip*float64(previous) {
			break
		}
		l.SQLAt = l.MQLAt.Add(g.days(1 + g.rng.Float64()*float64(split.Sub(l.MQLAt)/(24*time.Hour)-1)))
		previous++
	}
	for _, l := range demote {
		if float64(current) <= qualifiedDip*float64(previous) {
			break
		}
		l.SQLAt = time.Time{}
		current--
	}
}

var subjects = map[pipeline.ActivityKind][]string{
	pipeline.ActivityCall:    {"Intro call", "Check-in call", "Pricing call", "Follow-up call", "Call with the champion"},
	pipeline.ActivityEmail:   {"Re: next steps", "Proposal attached", "Re: security questionnaire", "Follow-up", "Re: pricing", "Case studies you asked for"},
	pipeline.ActivityMeeting: {"Discovery meeting", "Demo", "Technical deep-dive", "Proposal review", "Negotiation meeting", "Executive sponsor meeting"},
	pipeline.ActivityNote:    {"Budget confirmed for this quarter", "Champion is moving teams", "Competitor in the deal", "Legal review started"},
	pipeline.ActivityTask:    {"Send the proposal", "Prepare the order form", "Book the security review", "Follow up on the trial"},
}

// activities adds the deal's touches from its creation until it closed (or went quiet),
// a meeting at each stage entry, and for an open deal its next step.
func (g *generator) activities(d *Deal, loc *time.Location, quietFrom time.Time) {
	now := g.opts.Now
	end := now
	if !d.Open() {
		end = d.ClosedAt
	}
	if !quietFrom.IsZero() && quietFrom.Before(end) {
		end = quietFrom
	}
	add := func(kind pipeline.ActivityKind, dir pipeline.Direction, at time.Time) {
		if at.After(end) {
			return
		}
		d.Activities = append(d.Activities, Activity{Kind: kind, Direction: dir, At: at, Subject: pick(g.rng, subjects[kind]), Done: true})
	}
	add(pipeline.ActivityEmail, pipeline.Inbound, d.Created.Add(-time.Minute*time.Duration(5+g.rng.IntN(120))))
	for _, v := range d.Stages[1:] {
		if v.Stage.Open() {
			add(pipeline.ActivityMeeting, "", v.Entered.Add(time.Duration(g.rng.IntN(90))*time.Minute))
		}
	}
	for at := d.Created; ; {
		at = g.workTime(at.Add(g.days(1+g.rng.ExpFloat64()*3.5)), loc)
		if at.After(end) {
			break
		}
		switch p := g.rng.Float64(); {
		case p < 0.4:
			add(pipeline.ActivityEmail, pipeline.Outbound, at)
		case p < 0.6:
			add(pipeline.ActivityCall, pipeline.Outbound, at)
		case p < 0.72:
			add(pipeline.ActivityEmail, pipeline.Inbound, at)
		case p < 0.84:
			add(pipeline.ActivityMeeting, "", at)
		default:
			add(pipeline.ActivityNote, "", at)
		}
	}
	if d.Open() {
		switch quiet := !quietFrom.IsZero(); {
		case !quiet && g.rng.Float64() < 0.85:
			d.Activities = append(d.Activities, Activity{Kind: pick(g.rng, []pipeline.ActivityKind{pipeline.ActivityMeeting, pipeline.ActivityCall, pipeline.ActivityTask}),
				Direction: pipeline.Outbound, At: g.workTime(now.Add(g.days(1+g.rng.Float64()*8)), loc), Subject: "Next step", Done: false})
		case quiet && g.rng.Float64() < 0.3: // a next step nobody did
			d.Activities = append(d.Activities, Activity{Kind: pipeline.ActivityTask, Direction: pipeline.Outbound,
				At: g.workTime(now.Add(-g.days(3+g.rng.Float64()*7)), loc), Subject: "Follow up", Done: false})
		}
	}
	slices.SortStableFunc(d.Activities, func(a, b Activity) int { return a.At.Compare(b.At) })
}

func midnight(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func pick[T any](rng *rand.Rand, from []T) T { return from[rng.IntN(len(from))] }

func mustLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(fmt.Sprintf("sandbox: time zone %s: %v (install the tz database)", name, err))
	}
	return loc
}
