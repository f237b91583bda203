package sandbox

import (
	"fmt"
	"slices"
	"time"

	"github.com/pipewatch/pipewatch/pipeline"
)

// Change is one thing the sales floor did in a Tick.
type Change struct {
	At   time.Time
	Team string
	Rep  string
	Deal string
	// What happened, e.g. "moved it to proposal" or "pushed the close date from 2026-12-10 to 2027-01-21".
	What string
}

func (c Change) String() string {
	return fmt.Sprintf("%s (%s) %s: %s", c.Rep, c.Team, c.What, c.Deal)
}

// Tick makes a minute's worth of changes at now, in both CRMs: in every team a rep logs a
// touch or two, moves a deal on (or closes it), pushes a close date out of the quarter, and
// now and then opens a new deal. The planted story deals are left alone. Ticks are
// deterministic for a seed and a sequence of times.
func (s *Sandbox) Tick(now time.Time) ([]Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now = now.UTC().Truncate(time.Second)
	g := s.gen
	var changes []Change
	for ti, t := range s.Company.Teams {
		spec := teamSpecs[ti]
		open := s.openDeals(t)
		if len(open) == 0 {
			continue
		}
		for range 1 + g.rng.IntN(2) {
			d := pick(g.rng, open)
			ch, err := s.touch(d, now)
			if err != nil {
				return changes, err
			}
			changes = append(changes, ch)
		}
		ch, err := s.advance(pick(g.rng, open), now)
		if err != nil {
			return changes, err
		}
		changes = append(changes, ch)
		if ch, ok, err := s.push(s.openDeals(t), now); err != nil {
			return changes, err
		} else if ok {
			changes = append(changes, ch)
		}
		if g.rng.Float64() < 0.3 {
			ch, err := s.newDeal(pick(g.rng, t.Reps), now, spec)
			if err != nil {
				return changes, err
			}
			changes = append(changes, ch)
		}
	}
	return changes, nil
}

// openDeals are the team's open deals without a story, oldest first.
func (s *Sandbox) openDeals(t *Team) []*Deal {
	var out []*Deal
	for _, d := range s.Company.Deals {
		if d.Team == t && d.Open() && d.Story == "" {
			out = append(out, d)
		}
	}
	return out
}

func change(d *Deal, now time.Time, what string) Change {
	return Change{At: now, Team: d.Team.Name, Rep: d.Owner.Name(), Deal: d.Name, What: what}
}

// touch logs a done activity on d and, usually, schedules its next step; next steps that
// fell due are done with it.
func (s *Sandbox) touch(d *Deal, now time.Time) (Change, error) {
	g := s.gen
	kind, dir := pipeline.ActivityCall, pipeline.Outbound
	switch p := g.rng.Float64(); {
	case p < 0.45:
		kind = pipeline.ActivityEmail
	case p < 0.6:
		kind, dir = pipeline.ActivityEmail, pipeline.Inbound
	case p < 0.75:
		kind, dir = pipeline.ActivityMeeting, ""
	}
	var added []Activity
	for i, a := range d.Activities {
		if !a.Done && !a.At.After(now) {
			d.Activities[i].Done = true
		}
	}
	a := Activity{Kind: kind, Direction: dir, At: now, Subject: pick(g.rng, subjects[kind]), Done: true}
	added = append(added, a)
	what := "logged " + describe(a)
	if d.NextStep().IsZero() && g.rng.Float64() < 0.7 {
		next := Activity{Kind: pipeline.ActivityMeeting, Direction: pipeline.Outbound, Subject: "Next step", Done: false,
			At: g.workTime(now.Add(g.days(1+g.rng.Float64()*6)), d.Owner.location())}
		added = append(added, next)
		what += " and booked the next step"
	}
	d.Activities = append(d.Activities, added...)
	if err := s.write(d, now, added); err != nil {
		return Change{}, err
	}
	return change(d, now, what), nil
}

func describe(a Activity) string {
	switch {
	case a.Kind == pipeline.ActivityEmail && a.Direction == pipeline.Inbound:
		return "a reply from the customer"
	case a.Kind == pipeline.ActivityEmail:
		return "an email"
	case a.Kind == pipeline.ActivityMeeting:
		return "a meeting"
	}
	return "a call"
}

// advance moves d to its next stage, or closes it: won from the last open stage, lost
// now and then from any.
func (s *Sandbox) advance(d *Deal, now time.Time) (Change, error) {
	g := s.gen
	i := slices.IndexFunc(funnel, func(f funnelStage) bool { return f.stage == d.Stage() })
	next := pipeline.StageClosedLost
	switch {
	case g.rng.Float64() < funnel[i].loss/2:
	case i == len(funnel)-1:
		next = pipeline.StageClosedWon
	default:
		next = funnel[i+1].stage
	}
	d.Stages = append(d.Stages, StageVisit{Stage: next, Entered: now})
	what := "moved it to " + string(next)
	if !next.Open() {
		d.ClosedAt, d.CloseDate = now, midnight(now)
		what = "closed it as won"
		if next == pipeline.StageClosedLost {
			what = "closed it as lost"
		}
	}
	if err := s.write(d, now, nil); err != nil {
		return Change{}, err
	}
	return change(d, now, what), nil
}

// push moves the close date of the open deal closing soonest in this quarter into the
// next one, as reps do when a deal slips.
func (s *Sandbox) push(open []*Deal, now time.Time) (Change, bool, error) {
	_, _, end := Quarter(now, mustLocation(s.Company.Timezone))
	var d *Deal
	for _, o := range open {
		if !o.CloseDate.After(end) && !o.CloseDate.Before(midnight(now)) && (d == nil || o.CloseDate.Before(d.CloseDate)) {
			d = o
		}
	}
	if d == nil {
		return Change{}, false, nil
	}
	from := d.CloseDate
	d.CloseDate = midnight(end.AddDate(0, 0, 7+s.gen.rng.IntN(45)))
	if err := s.write(d, now, nil); err != nil {
		return Change{}, false, err
	}
	return change(d, now, fmt.Sprintf("pushed the close date from %s to %s", from.Format(time.DateOnly),
		d.CloseDate.Format(time.DateOnly))), true, nil
}

// newDeal opens a deal for rep at now, with its contact.
func (s *Sandbox) newDeal(rep *Person, now time.Time, spec teamSpec) (Change, error) {
	g := s.gen // g.c is s.Company: the new deal, its contact and account join it
	g.opts.Now = now
	g.deal(rep, now, spec)
	d := s.Company.Deals[len(s.Company.Deals)-1]
	d.Seq = len(s.Company.Deals)
	var err error
	switch d.Team.CRM {
	case HubSpot:
		if _, ok := s.hubspot.accounts[d.Account]; !ok {
			err = s.hubspot.addAccount(d.Account)
		}
		if err == nil {
			err = s.hubspot.addLead(d.Contact, now)
		}
		if err == nil {
			err = s.hubspot.addDeal(d, now)
		}
	case Pipedrive:
		err = s.pipe.addNew(d, now)
	}
	if err != nil {
		return Change{}, fmt.Errorf("opening deal %s in the sandbox: %w", d.Name, err)
	}
	return change(d, now, fmt.Sprintf("opened a new %s %s deal", d.Amount.StringFixed(0), d.Currency)), nil
}

// write makes the vendor hold d as it is now, with the activities just added.
func (s *Sandbox) write(d *Deal, now time.Time, added []Activity) error {
	switch d.Team.CRM {
	case HubSpot:
		return s.hubspot.update(d, now, added)
	case Pipedrive:
		return s.pipe.update(d, now, added)
	}
	return nil
}

func (p *Person) location() *time.Location { return mustLocation(p.Timezone) }
