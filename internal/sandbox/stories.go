package sandbox

import (
	"math"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Stories of the planted deals: every team has one of each, so each deal rule has
// something to find however the random history turned out.
const (
	StoryGoneQuiet     = "gone quiet after the proposal: no touch for 11 days and no next step"
	StoryStuck         = "stuck in negotiation for 45 days although the rep keeps calling"
	StoryPastCloseDate = "close date passed 9 days ago and nobody moved it"
	StoryNoNextStep    = "in needs assessment with nothing scheduled"
	StoryGoingQuiet    = "goes quiet during the demo: its 7-day idle threshold passes minutes after the start"
	StoryFreshProposal = "proposal sent yesterday: follow-up reminders are scheduled"
)

// plantStories adds the story deals of every team.
func (g *generator) plantStories() {
	now := g.opts.Now
	ago := func(days float64) time.Time { return now.Add(-g.days(days)) }
	for ti, t := range g.c.Teams {
		spec := teamSpecs[ti]
		rep := func(i int) *Person { return t.Reps[i%len(t.Reps)] }
		g.story(rep(0), spec, StoryGoneQuiet, 2.5, []stay{
			{pipeline.StageQualification, 40}, {pipeline.StageNeedsAssessment, 30}, {pipeline.StageProposal, 16},
		}, ago(11), time.Time{}, 0)
		g.story(rep(1), spec, StoryStuck, 3, []stay{
			{pipeline.StageQualification, 75}, {pipeline.StageNeedsAssessment, 65}, {pipeline.StageProposal, 55},
			{pipeline.StageNegotiation, 45},
		}, ago(1), now.Add(3*24*time.Hour), 0)
		g.story(rep(2), spec, StoryPastCloseDate, 1.8, []stay{
			{pipeline.StageQualification, 50}, {pipeline.StageNeedsAssessment, 40}, {pipeline.StageProposal, 30},
			{pipeline.StageNegotiation, 20}, {pipeline.StageClosing, 12},
		}, ago(2), now.Add(2*24*time.Hour), -9)
		g.story(rep(3), spec, StoryNoNextStep, 1.2, []stay{
			{pipeline.StageQualification, 14}, {pipeline.StageNeedsAssessment, 6},
		}, ago(2), time.Time{}, 0)
		// Idle since 7 days minus a few minutes: it crosses the qualification threshold
		// (7 days) 4, 8 or 12 minutes into the demo.
		g.story(rep(0), spec, StoryGoingQuiet, 1, []stay{{pipeline.StageQualification, 12}},
			now.Add(-7*24*time.Hour+time.Duration(4*(ti+1))*time.Minute), time.Time{}, 0)
		g.story(rep(1), spec, StoryFreshProposal, 1.5, []stay{
			{pipeline.StageQualification, 20}, {pipeline.StageNeedsAssessment, 12}, {pipeline.StageProposal, 1},
		}, ago(1), now.Add(5*24*time.Hour), 0)
	}
}

// stay is a stage entered days ago.
type stay struct {
	stage pipeline.CanonicalStage
	ago   float64
}

// story adds an open deal that went through stays, last touched at touched, with a
// next step at next (zero: none) and a close date closeIn days from now (0: in three
// weeks). size scales the team's median amount.
func (g *generator) story(rep *Person, spec teamSpec, story string, size float64, stays []stay, touched,
	next time.Time, closeIn int) {
	now := g.opts.Now
	loc := mustLocation(rep.Timezone)
	created := now.Add(-g.days(stays[0].ago))
	acct := g.account(rep.Team, rep, created)
	median := spec.median
	if rep.Currency != spec.currency {
		median *= rate(spec.currency, rep.Currency)
	}
	amount := decimal.NewFromFloat(math.Round(median*size/1000) * 1000)
	d := &Deal{
		Team: rep.Team, Owner: rep, Account: acct, Currency: rep.Currency, Created: created, Amount: amount,
		Name: g.dealName(acct, "Enterprise plan"), Story: story,
	}
	d.Contact = g.contactFor(d)
	for _, s := range stays {
		d.Stages = append(d.Stages, StageVisit{Stage: s.stage, Entered: now.Add(-g.days(s.ago))})
	}
	if closeIn == 0 {
		closeIn = 21
	}
	d.CloseDate = midnight(now.AddDate(0, 0, closeIn))
	// Touches every few days from creation until the last one.
	last := touched
	for at := created.Add(2 * time.Hour); at.Before(last.Add(-24 * time.Hour)); at = at.Add(g.days(2 + g.rng.Float64()*2)) {
		d.Activities = append(d.Activities, Activity{Kind: pipeline.ActivityEmail, Direction: pipeline.Outbound, At: at,
			Subject: pick(g.rng, subjects[pipeline.ActivityEmail]), Done: true})
	}
	d.Activities = append(d.Activities, Activity{Kind: pipeline.ActivityCall, Direction: pipeline.Outbound, At: last,
		Subject: pick(g.rng, subjects[pipeline.ActivityCall]), Done: true})
	if !next.IsZero() {
		d.Activities = append(d.Activities, Activity{Kind: pipeline.ActivityMeeting, Direction: pipeline.Outbound,
			At: g.workTime(next, loc), Subject: "Next step", Done: false})
	}
	g.c.Deals = append(g.c.Deals, d)
}

// targets sets this quarter's quotas: each rep's is what they won so far plus their open
// pipeline for the quarter divided by the coverage their team is tuned to, rounded up. The
// HubSpot teams (whose CRM knows the team) also get a team target, the sum of their reps'.
// With the defaults the Americas and APAC are covered and EMEA falls short.
func (g *generator) targets() {
	loc := mustLocation(g.c.Timezone)
	period, start, end := Quarter(g.c.Now, loc)
	for _, t := range g.c.Teams {
		teamSum := decimal.Zero
		for i, rep := range t.Reps {
			won, open := decimal.Zero, decimal.Zero
			for _, d := range g.c.Deals {
				if d.Owner != rep || d.Currency != rep.Currency {
					continue
				}
				switch {
				case d.Won() && !d.ClosedAt.Before(start) && d.ClosedAt.Before(end.AddDate(0, 0, 1)):
					won = won.Add(d.Amount)
				case d.Open() && !d.CloseDate.Before(start) && !d.CloseDate.After(end):
					open = open.Add(d.Amount)
				}
			}
			coverage := t.coverage
			if t.CRM == Pipedrive && i == 1 {
				coverage = 1.2 // one APAC rep is short although the team is fine
			}
			step := decimal.NewFromInt(5000)
			if rep.Currency == "JPY" {
				step = decimal.NewFromInt(1_000_000)
			}
			amount := won.Add(open.Div(decimal.NewFromFloat(coverage))).Div(step).Ceil().Mul(step)
			if amount.IsZero() {
				amount = step.Mul(decimal.NewFromInt(10))
			}
			g.c.Targets = append(g.c.Targets, Target{OwnerEmail: rep.Email, Period: period, Amount: amount, Currency: rep.Currency})
			if rep.Currency == t.Currency {
				teamSum = teamSum.Add(amount)
			}
		}
		if t.CRM == HubSpot {
			g.c.Targets = append(g.c.Targets, Target{Team: t.Name, Period: period, Amount: teamSum, Currency: t.Currency})
		}
	}
}
