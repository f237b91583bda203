package sandbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
	"github.com/pipewatch/pipewatch/pipeline"
)

// pipedriveStages are the stages of the Pipedrive team's pipeline, in order. Pipedrive has
// no won or lost stages: a closed deal keeps its last stage and its status says how it ended.
var pipedriveStages = []struct {
	name        string
	canonical   pipeline.CanonicalStage
	probability int
	rotDays     int // Pipedrive's "rotting" days (0: off)
}{
	{"Qualified", pipeline.StageQualification, 10, 0},
	{"Needs defined", pipeline.StageNeedsAssessment, 25, 0},
	{"Proposal made", pipeline.StageProposal, 50, 14},
	{"Negotiations started", pipeline.StageNegotiation, 75, 21},
	{"Contract sent", pipeline.StageClosing, 90, 10},
}

// pipedriveAccount writes the Pipedrive team's records into the fake account and remembers
// their ids there.
type pipedriveAccount struct {
	srv      *pipedrivetest.Server
	clock    *vendorClock
	pipeline int
	stages   map[pipeline.CanonicalStage]int
	users    map[*Person]int
	orgs     map[*Account]int
	persons  map[*Lead]int
	deals    map[*Deal]int
	// scheduled are the deals' activities not done yet.
	scheduled map[*Deal][]scheduledActivity
}

type scheduledActivity struct {
	id int
	at time.Time
}

func newPipedriveAccount(srv *pipedrivetest.Server, clock *vendorClock) *pipedriveAccount {
	return &pipedriveAccount{srv: srv, clock: clock, stages: map[pipeline.CanonicalStage]int{}, users: map[*Person]int{},
		orgs: map[*Account]int{}, persons: map[*Lead]int{}, deals: map[*Deal]int{}, scheduled: map[*Deal][]scheduledActivity{}}
}

func pdTime(t time.Time) pipedrivetest.Time { return pipedrivetest.T(t) }

func pdTimePtr(t time.Time) *pipedrivetest.Time { return pipedrivetest.TimePtr(t) }

func ptr[T any](v T) *T { return &v }

// seed writes the company's Pipedrive team: users (with their own time zones), the
// pipeline, organizations, persons, leads, deals and their activities.
func (p *pipedriveAccount) seed(c *Company) error {
	start := c.Now.AddDate(-2, 0, 0)
	pl := p.srv.AddPipeline(pipedrivetest.Pipeline{Name: "APAC sales", OrderNr: 1, IsSelected: true,
		IsDealProbabilityEnabled: true, AddTime: pdTime(start), UpdateTime: pdTime(start)})
	p.pipeline = pl.ID
	for i, s := range pipedriveStages {
		st := pipedrivetest.Stage{Name: s.name, OrderNr: i + 1, PipelineID: pl.ID, DealProbability: s.probability,
			AddTime: pdTime(start), UpdateTime: pdTime(start)}
		if s.rotDays > 0 {
			st.IsDealRotEnabled, st.DaysToRotten = true, ptr(s.rotDays)
		}
		p.stages[s.canonical] = p.srv.AddStage(st).ID
	}
	for _, t := range c.Teams {
		if t.CRM != Pipedrive {
			continue
		}
		for _, person := range t.People() {
			u := p.srv.AddUser(pipedrivetest.User{Name: person.Name(), Email: person.Email, TimezoneName: person.Timezone,
				Active: true, Created: start, Modified: start})
			p.users[person] = u.ID
		}
	}
	for _, a := range c.Accounts {
		if a.Team.CRM != Pipedrive {
			continue
		}
		o := p.srv.AddOrganization(pipedrivetest.Organization{Name: a.Name, OwnerID: p.users[a.Owner], VisibleTo: 3,
			LabelIDs: []int{}, CustomFields: map[string]any{}, AddTime: pdTime(a.Created), UpdateTime: pdTime(a.Created)})
		p.orgs[a] = o.ID
	}
	for _, l := range c.Leads {
		if l.Team.CRM != Pipedrive {
			continue
		}
		p.addLead(l)
	}
	for _, d := range c.Deals {
		if d.Team.CRM != Pipedrive {
			continue
		}
		if err := p.addDeal(d, c.Now); err != nil {
			return err
		}
	}
	return nil
}

// addLead adds the person, and a Leads Inbox entry for a lead that never became a deal.
func (p *pipedriveAccount) addLead(l *Lead) {
	org := p.orgs[l.Account]
	person := p.srv.AddPerson(pipedrivetest.Person{
		Name: l.Name(), FirstName: l.First, LastName: l.Last, OwnerID: p.users[l.Owner], OrgID: &org, VisibleTo: 3,
		Emails:   []pipedrivetest.ContactDetail{{Value: l.Email, Primary: true, Label: "work"}},
		LabelIDs: []int{}, CustomFields: map[string]any{}, AddTime: pdTime(l.Created), UpdateTime: pdTime(l.Created),
	})
	p.persons[l] = person.ID
	if !l.ConvertedAt.IsZero() {
		return
	}
	updated := l.Created
	for _, t := range []time.Time{l.MQLAt, l.SQLAt} {
		if t.After(updated) {
			updated = t
		}
	}
	p.srv.AddLead(pipedrivetest.Lead{
		Title: l.Account.Name + " lead", OwnerID: p.users[l.Owner], CreatorID: p.users[l.Owner], PersonID: &person.ID,
		OrganizationID: &org, SourceName: l.Source, Origin: "API", IsArchived: l.Disqualified, WasSeen: !l.MQLAt.IsZero(),
		AddTime: l.Created.UTC().Truncate(time.Millisecond), UpdateTime: updated.UTC().Truncate(time.Millisecond),
	})
}

// addDeal adds the deal as it stands now, then its activities at their times (Pipedrive
// bumps a deal when its last or next activity changes), then sets its last change.
func (p *pipedriveAccount) addDeal(d *Deal, now time.Time) error {
	stage := d.Stages[len(d.Stages)-1]
	if !d.Open() && len(d.Stages) > 1 {
		stage = d.Stages[len(d.Stages)-2] // a closed deal keeps its last stage
	}
	org, person := p.orgs[d.Account], p.persons[d.Contact]
	pd := pipedrivetest.Deal{
		Title: d.Name, CreatorUserID: p.users[d.Owner], OwnerID: p.users[d.Owner], PersonID: &person, OrgID: &org,
		PipelineID: p.pipeline, StageID: p.stages[stage.Stage], Value: json.Number(d.Amount.String()), Currency: d.Currency,
		AddTime: pdTime(d.Created), UpdateTime: pdTime(d.Created), VisibleTo: 3, Origin: "ManuallyCreated",
		LabelIDs: []int{}, CustomFields: map[string]any{},
		ExpectedCloseDate: ptr(d.CloseDate.Format(time.DateOnly)),
	}
	if len(d.Stages) > 1 {
		pd.StageChangeTime = pdTimePtr(stage.Entered)
	}
	switch {
	case d.Won():
		pd.Status, pd.WonTime, pd.CloseTime = "won", pdTimePtr(d.ClosedAt), pdTimePtr(d.ClosedAt)
	case !d.Open():
		pd.Status, pd.LostTime, pd.CloseTime = "lost", pdTimePtr(d.ClosedAt), pdTimePtr(d.ClosedAt)
		pd.LostReason = ptr("No budget")
	default:
		pd.Status = "open"
	}
	p.deals[d] = p.srv.AddDeal(pd).ID
	for _, a := range d.Activities {
		p.addActivity(d, a, now)
	}
	return p.setUpdated(d, d.Updated(now))
}

// setUpdated sets the deal's update_time to at.
func (p *pipedriveAccount) setUpdated(d *Deal, at time.Time) error {
	p.clock.set(at)
	defer p.clock.set(time.Time{})
	if err := p.srv.UpdateDeal(p.deals[d], func(pd *pipedrivetest.Deal) { pd.UpdateTime = pdTime(at) }); err != nil {
		return fmt.Errorf("dating deal %s in the sandbox Pipedrive: %w", d.Name, err)
	}
	return nil
}

// pipedriveTypes are Pipedrive's activity types per kind.
var pipedriveTypes = map[pipeline.ActivityKind]string{
	pipeline.ActivityCall: "call", pipeline.ActivityEmail: "email", pipeline.ActivityMeeting: "meeting",
	pipeline.ActivityNote: "task", pipeline.ActivityTask: "task",
}

// addActivity adds an activity at its time (a scheduled one when the rep last touched the deal).
func (p *pipedriveAccount) addActivity(d *Deal, a Activity, now time.Time) {
	added := a.At
	if !a.Done || added.After(now) {
		added = d.Updated(now)
	}
	p.clock.set(added)
	defer p.clock.set(time.Time{})
	deal, person, org := p.deals[d], p.persons[d.Contact], p.orgs[d.Account]
	due := a.At.UTC()
	act := pipedrivetest.Activity{
		Subject: a.Subject, Type: pipedriveTypes[a.Kind], OwnerID: p.users[d.Owner], CreatorUserID: p.users[d.Owner],
		DealID: &deal, PersonID: &person, OrgID: &org, DueDate: due.Format(time.DateOnly), DueTime: due.Format(time.TimeOnly),
		Duration: "00:30:00", Done: a.Done, AddTime: pdTime(added), UpdateTime: pdTime(added),
	}
	if a.Done {
		act.MarkedAsDoneTime = pdTimePtr(a.At)
	}
	stored := p.srv.AddActivity(act)
	if !a.Done {
		p.scheduled[d] = append(p.scheduled[d], scheduledActivity{id: stored.ID, at: a.At})
	}
}

// addNew adds a deal opened now, with its contact and, when new, its organization.
func (p *pipedriveAccount) addNew(d *Deal, now time.Time) error {
	p.clock.set(now)
	if _, ok := p.orgs[d.Account]; !ok {
		o := p.srv.AddOrganization(pipedrivetest.Organization{Name: d.Account.Name, OwnerID: p.users[d.Owner], VisibleTo: 3,
			LabelIDs: []int{}, CustomFields: map[string]any{}, AddTime: pdTime(now), UpdateTime: pdTime(now)})
		p.orgs[d.Account] = o.ID
	}
	p.clock.set(time.Time{})
	p.addLead(d.Contact)
	return p.addDeal(d, now)
}

// update makes the account hold d as it is now: the activities just added (next steps
// that fell due are marked done), its stage or status, and its expected close date.
func (p *pipedriveAccount) update(d *Deal, now time.Time, added []Activity) error {
	p.clock.set(now)
	var due []int
	for _, s := range p.scheduled[d] {
		if !s.at.After(now) {
			due = append(due, s.id)
		}
	}
	for _, id := range due {
		if err := p.srv.UpdateActivity(id, func(a *pipedrivetest.Activity) { a.Done = true }); err != nil {
			p.clock.set(time.Time{})
			return err
		}
	}
	p.scheduled[d] = slices.DeleteFunc(p.scheduled[d], func(s scheduledActivity) bool { return !s.at.After(now) })
	p.clock.set(time.Time{})
	for _, a := range added {
		p.addActivity(d, a, now)
	}
	p.clock.set(now)
	defer p.clock.set(time.Time{})
	return p.srv.UpdateDeal(p.deals[d], func(pd *pipedrivetest.Deal) {
		switch {
		case d.Won():
			pd.Status = "won"
		case !d.Open():
			pd.Status, pd.LostReason = "lost", ptr("Went with a competitor")
		default:
			pd.StageID = p.stages[d.Stage()]
		}
		pd.ExpectedCloseDate = ptr(d.CloseDate.Format(time.DateOnly))
	})
}
