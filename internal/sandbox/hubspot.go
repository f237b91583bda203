package sandbox

import (
	"fmt"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/pipeline"
)

// hubspotStages are the ids of HubSpot's default sales pipeline per standard stage (the
// stages the connector maps by default).
var hubspotStages = map[pipeline.CanonicalStage]string{
	pipeline.StageQualification:   "appointmentscheduled",
	pipeline.StageNeedsAssessment: "qualifiedtobuy",
	pipeline.StageProposal:        "presentationscheduled",
	pipeline.StageNegotiation:     "decisionmakerboughtin",
	pipeline.StageClosing:         "contractsent",
	pipeline.StageClosedWon:       "closedwon",
	pipeline.StageClosedLost:      "closedlost",
}

// hubspotPortal writes the HubSpot teams' records into the fake portal and remembers
// their ids there.
type hubspotPortal struct {
	srv      *hubspottest.Server
	clock    *vendorClock
	owners   map[*Person]string
	accounts map[*Account]string
	contacts map[*Lead]string
	deals    map[*Deal]string
}

func newHubSpotPortal(srv *hubspottest.Server, clock *vendorClock) *hubspotPortal {
	return &hubspotPortal{srv: srv, clock: clock, owners: map[*Person]string{}, accounts: map[*Account]string{},
		contacts: map[*Lead]string{}, deals: map[*Deal]string{}}
}

// hsTime is HubSpot's datetime property format.
func hsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// at runs fn with the vendor clock standing at t.
func (p *hubspotPortal) at(t time.Time, fn func() error) error {
	p.clock.set(t)
	defer p.clock.set(time.Time{})
	return fn()
}

// seed writes the company's HubSpot teams: owners, companies, contacts with their lifecycle,
// deals played through their stages, and engagements.
func (p *hubspotPortal) seed(c *Company) error {
	start := c.Now.AddDate(-2, 0, 0) // the CRM users predate the history
	for _, t := range c.Teams {
		if t.CRM != HubSpot {
			continue
		}
		for _, person := range t.People() {
			_ = p.at(start, func() error {
				p.owners[person] = p.srv.AddOwner(person.Email, person.First, person.Last, t.Name)
				return nil
			})
		}
	}
	for _, a := range c.Accounts {
		if a.Team.CRM != HubSpot {
			continue
		}
		if err := p.addAccount(a); err != nil {
			return err
		}
	}
	for _, l := range c.Leads {
		if l.Team.CRM != HubSpot {
			continue
		}
		if err := p.addLead(l, c.Now); err != nil {
			return err
		}
	}
	for _, d := range c.Deals {
		if d.Team.CRM != HubSpot {
			continue
		}
		if err := p.addDeal(d, c.Now); err != nil {
			return err
		}
	}
	return nil
}

func (p *hubspotPortal) addAccount(a *Account) error {
	return p.at(a.Created, func() error {
		id, err := p.srv.Create("companies", map[string]string{
			"name": a.Name, "domain": a.Domain, "hubspot_owner_id": p.owners[a.Owner],
		}, nil)
		p.accounts[a] = id
		return err
	})
}

// addLead creates the contact, then records its lifecycle as of now.
func (p *hubspotPortal) addLead(l *Lead, now time.Time) error {
	err := p.at(l.Created, func() error {
		id, err := p.srv.Create("contacts", map[string]string{
			"email": l.Email, "firstname": l.First, "lastname": l.Last, "hubspot_owner_id": p.owners[l.Owner],
			"associatedcompanyid": p.accounts[l.Account], "hs_analytics_source": strings.ToUpper(l.Source),
			"lifecyclestage": "lead", "hs_lifecyclestage_lead_date": hsTime(l.Created),
		}, map[string][]string{"companies": {p.accounts[l.Account]}})
		p.contacts[l] = id
		return err
	})
	if err != nil {
		return err
	}
	return p.updateLead(l, now)
}

// updateLead writes the lead's lifecycle stage and dates as of now.
func (p *hubspotPortal) updateLead(l *Lead, now time.Time) error {
	props := map[string]string{}
	last := time.Time{}
	stage := func(name string, at time.Time) {
		if at.IsZero() || at.After(now) {
			return
		}
		props["lifecyclestage"] = name
		props["hs_lifecyclestage_"+name+"_date"] = hsTime(at)
		last = at
	}
	stage("marketingqualifiedlead", l.MQLAt)
	stage("salesqualifiedlead", l.SQLAt)
	stage("opportunity", l.ConvertedAt)
	if l.Disqualified {
		props["hs_lead_status"] = "UNQUALIFIED"
		last = l.Created.Add(3 * 24 * time.Hour)
	}
	if len(props) == 0 || last.After(now) {
		return nil
	}
	return p.at(last, func() error { return p.srv.Update("contacts", p.contacts[l], props) })
}

// addDeal creates the deal at its creation, moves it through its stages at their times,
// records its engagements at theirs, and sets its close date and activity dates as of its
// last change.
func (p *hubspotPortal) addDeal(d *Deal, now time.Time) error {
	first := hubspotStages[d.Stages[0].Stage]
	err := p.at(d.Created, func() error {
		id, err := p.srv.Create("deals", map[string]string{
			"dealname": d.Name, "amount": d.Amount.String(), "deal_currency_code": d.Currency, "pipeline": "default",
			"dealstage": first, "hubspot_owner_id": p.owners[d.Owner], "hs_primary_associated_company": p.accounts[d.Account],
			"closedate": hsTime(d.CloseDate), "hs_date_entered_" + first: hsTime(d.Created),
			"hs_is_closed": "false", "hs_is_closed_won": "false", "hs_is_closed_lost": "false", "hs_deal_stage_probability": "0.2",
		}, map[string][]string{"companies": {p.accounts[d.Account]}, "contacts": {p.contacts[d.Contact]}})
		p.deals[d] = id
		return err
	})
	if err != nil {
		return err
	}
	for _, v := range d.Stages[1:] {
		if err := p.moveStage(d, v); err != nil {
			return err
		}
	}
	for _, a := range d.Activities {
		if err := p.addActivity(d, a, now); err != nil {
			return err
		}
	}
	return p.at(d.Updated(now), func() error { return p.srv.Update("deals", p.deals[d], p.dealState(d, now)) })
}

func (p *hubspotPortal) moveStage(d *Deal, v StageVisit) error {
	return p.at(v.Entered, func() error { return p.srv.MoveDealStage(p.deals[d], hubspotStages[v.Stage]) })
}

// dealState is the deal's close date and last/next activity dates (HubSpot's
// notes_last_updated and notes_next_activity_date) as of now.
func (p *hubspotPortal) dealState(d *Deal, now time.Time) map[string]string {
	props := map[string]string{"closedate": hsTime(d.CloseDate), "amount": d.Amount.String()}
	var last, next time.Time
	for _, a := range d.Activities {
		switch {
		case a.Done && !a.At.After(now) && a.At.After(last):
			last = a.At
		case !a.Done && (next.IsZero() || a.At.Before(next)):
			next = a.At
		}
	}
	if !last.IsZero() {
		props["notes_last_updated"] = hsTime(last)
	}
	props["notes_next_activity_date"] = ""
	if !next.IsZero() && d.Open() {
		props["notes_next_activity_date"] = hsTime(next)
	}
	return props
}

// addActivity records an engagement. A scheduled one is created when the rep scheduled it
// (their last touch before it), with its due time as hs_timestamp.
func (p *hubspotPortal) addActivity(d *Deal, a Activity, now time.Time) error {
	created := a.At
	if !a.Done || created.After(now) {
		created = d.Updated(now)
	}
	objectType, props := hubspotEngagement(a)
	props["hubspot_owner_id"] = p.owners[d.Owner]
	props["hs_timestamp"] = hsTime(a.At)
	return p.at(created, func() error {
		_, err := p.srv.Create(objectType, props, map[string][]string{
			"deals": {p.deals[d]}, "contacts": {p.contacts[d.Contact]},
		})
		if err != nil {
			return fmt.Errorf("creating a %s of deal %s: %w", objectType, d.Name, err)
		}
		return nil
	})
}

// hubspotEngagement is the object type and properties of an activity.
func hubspotEngagement(a Activity) (string, map[string]string) {
	switch a.Kind {
	case pipeline.ActivityCall:
		status, dir := "COMPLETED", "OUTBOUND"
		if !a.Done {
			status = "QUEUED"
		}
		if a.Direction == pipeline.Inbound {
			dir = "INBOUND"
		}
		return "calls", map[string]string{"hs_call_title": a.Subject, "hs_call_direction": dir, "hs_call_status": status}
	case pipeline.ActivityEmail:
		dir := "EMAIL"
		if a.Direction == pipeline.Inbound {
			dir = "INCOMING_EMAIL"
		}
		return "emails", map[string]string{"hs_email_subject": a.Subject, "hs_email_direction": dir}
	case pipeline.ActivityMeeting:
		outcome := "COMPLETED"
		if !a.Done {
			outcome = "SCHEDULED"
		}
		return "meetings", map[string]string{"hs_meeting_title": a.Subject, "hs_meeting_outcome": outcome}
	case pipeline.ActivityNote:
		return "notes", map[string]string{"hs_note_body": "<p>" + a.Subject + "</p>"}
	default:
		status := "COMPLETED"
		if !a.Done {
			status = "NOT_STARTED"
		}
		return "tasks", map[string]string{"hs_task_subject": a.Subject, "hs_task_status": status}
	}
}

// update makes the portal hold d as it is now: the activities just added, its stage and
// its close date and activity dates.
func (p *hubspotPortal) update(d *Deal, now time.Time, added []Activity) error {
	for _, a := range added {
		if err := p.addActivity(d, a, now); err != nil {
			return err
		}
	}
	id := p.deals[d]
	held, ok := p.srv.Object("deals", id)
	if !ok {
		return fmt.Errorf("deal %s is not in the sandbox portal", d.Name)
	}
	if stage := hubspotStages[d.Stage()]; held.Properties["dealstage"] != stage {
		if err := p.at(now, func() error { return p.srv.MoveDealStage(id, stage) }); err != nil {
			return err
		}
	}
	return p.at(now, func() error { return p.srv.Update("deals", id, p.dealState(d, now)) })
}
