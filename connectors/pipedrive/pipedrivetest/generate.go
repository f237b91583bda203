package pipedrivetest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Account sizes a generated account. Zero counts get small defaults, except Deals,
// ActivitiesPerDeal and Leads, which may be zero.
type Account struct {
	Users             int // default 5
	Pipelines         int // default 1
	StagesPerPipeline int // default 5 (Pipedrive's default pipeline)
	Organizations     int // default Deals/3 + 1
	Persons           int // default Deals/2 + 1
	Deals             int
	ActivitiesPerDeal int
	Leads             int
	// Span is how far back add times go (default 180 days). Every generated record was last
	// updated at least an hour before the vendor clock's now, so a first sync with any lag
	// under an hour reads all of it.
	Span time.Duration
}

var (
	firstNames = []string{"Ana", "Ben", "Chloe", "Dmitri", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kaia", "Liam", "Mia", "Noah", "Olga", "Priya"}
	lastNames  = []string{"Tamm", "Smith", "Garcia", "Kask", "Mueller", "Rossi", "Nguyen", "Okafor", "Silva", "Kowalski", "Sato", "Berg"}
	companies  = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Vandelay", "Wonka"}
	timezones  = []string{"Europe/Tallinn", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Singapore", "Europe/London"}
	stageNames = []string{"Lead In", "Contact Made", "Needs Defined", "Proposal Made", "Negotiations Started", "Contract Sent", "Verbal Commit"}
	actTypes   = []string{"call", "meeting", "email", "task", "deadline", "lunch"}
	sources    = []string{"Manually created", "Web forms", "Prospector", "Leadbooster", "Import", "API"}
	currencies = []string{"USD", "USD", "USD", "EUR", "GBP"}
)

// Generate fills the account with realistic records, reproducibly for Options.Seed. It adds
// to what is already there.
func (s *Server) Generate(a Account) {
	if a.Users == 0 {
		a.Users = 5
	}
	if a.Pipelines == 0 {
		a.Pipelines = 1
	}
	if a.StagesPerPipeline == 0 {
		a.StagesPerPipeline = 5
	}
	if a.Organizations == 0 {
		a.Organizations = a.Deals/3 + 1
	}
	if a.Persons == 0 {
		a.Persons = a.Deals/2 + 1
	}
	if a.Span == 0 {
		a.Span = 180 * 24 * time.Hour
	}
	end := s.now().Add(-time.Hour)
	begin := end.Add(-a.Span)
	rng := s.rng
	span := func(from, to time.Time) time.Time {
		if !to.After(from) {
			return from
		}
		return from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)/time.Second)+1)) * time.Second)
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }

	var users []int
	for i := range a.Users {
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames)+i)%len(lastNames)]
		created := span(begin.Add(-365*24*time.Hour), begin)
		u := s.AddUser(User{
			Name: first + " " + last, Email: fmt.Sprintf("%s.%s%d@example.com", strings.ToLower(first), strings.ToLower(last), i),
			TimezoneName: timezones[i%len(timezones)], Active: i == 0 || rng.IntN(10) > 0,
			Created: created, Modified: span(created, end),
		})
		users = append(users, u.ID)
	}
	owner := func() int { return users[rng.IntN(len(users))] }

	type stageRef struct{ id, pipeline int }
	var stages []stageRef
	for p := range a.Pipelines {
		added := span(begin.Add(-365*24*time.Hour), begin)
		name := "Sales"
		if p > 0 {
			name = fmt.Sprintf("Sales %d", p+1)
		}
		pl := s.AddPipeline(Pipeline{Name: name, OrderNr: p + 1, IsSelected: p == 0, IsDealProbabilityEnabled: true,
			AddTime: T(added), UpdateTime: T(added)})
		for i := range a.StagesPerPipeline {
			st := Stage{Name: stageNames[i%len(stageNames)], OrderNr: i + 1, PipelineID: pl.ID,
				DealProbability: min(100, 10+i*90/max(1, a.StagesPerPipeline-1)),
				AddTime:         T(added), UpdateTime: T(added)}
			if i%2 == 0 {
				st.IsDealRotEnabled, st.DaysToRotten = true, ptr(7+7*i)
			}
			stages = append(stages, stageRef{id: s.AddStage(st).ID, pipeline: pl.ID})
		}
	}

	var orgs []int
	for i := range a.Organizations {
		added := span(begin, end)
		o := s.AddOrganization(Organization{
			Name: fmt.Sprintf("%s %d", pick(companies), i+1), OwnerID: owner(), VisibleTo: 3,
			Address:  &Address{Value: fmt.Sprintf("%d Main St, Springfield", i+1), Country: "US"},
			LabelIDs: []int{}, CustomFields: map[string]any{},
			AddTime: T(added), UpdateTime: T(span(added, end)),
		})
		orgs = append(orgs, o.ID)
	}
	var persons []int
	for i := range a.Persons {
		added := span(begin, end)
		first, last := pick(firstNames), pick(lastNames)
		p := Person{
			Name: first + " " + last, FirstName: first, LastName: last, OwnerID: owner(), VisibleTo: 3,
			Emails:   []ContactDetail{{Value: fmt.Sprintf("%s.%s.%d@customer.example", strings.ToLower(first), strings.ToLower(last), i), Primary: true, Label: "work"}},
			Phones:   []ContactDetail{{Value: fmt.Sprintf("+1555%07d", i), Primary: true, Label: "work"}},
			LabelIDs: []int{}, CustomFields: map[string]any{},
			AddTime: T(added), UpdateTime: T(span(added, end)),
		}
		if len(orgs) > 0 {
			p.OrgID = ptr(orgs[rng.IntN(len(orgs))])
		}
		persons = append(persons, s.AddPerson(p).ID)
	}

	for i := range a.Deals {
		added := span(begin, end)
		updated := span(added, end)
		st := stages[rng.IntN(len(stages))]
		d := Deal{
			Title: fmt.Sprintf("%s deal %d", pick(companies), i+1), CreatorUserID: owner(), OwnerID: owner(),
			PipelineID: st.pipeline, StageID: st.id,
			Value:    json.Number(strconv.FormatFloat(float64(rng.IntN(5_000_000))/100, 'f', -1, 64)),
			Currency: pick(currencies), Status: "open", VisibleTo: 3, Origin: "ManuallyCreated",
			LabelIDs: []int{}, CustomFields: map[string]any{},
			AddTime: T(added), UpdateTime: T(updated),
		}
		if len(orgs) > 0 {
			d.OrgID = ptr(orgs[rng.IntN(len(orgs))])
		}
		if len(persons) > 0 {
			d.PersonID = ptr(persons[rng.IntN(len(persons))])
		}
		if rng.IntN(3) > 0 {
			d.StageChangeTime = TimePtr(span(added, updated))
		}
		switch x := rng.IntN(10); {
		case x < 2:
			d.Status, d.WonTime, d.CloseTime = "won", TimePtr(updated), TimePtr(updated)
		case x < 3:
			d.Status, d.LostTime, d.CloseTime, d.LostReason = "lost", TimePtr(updated), TimePtr(updated), ptr("Price")
		default:
			d.ExpectedCloseDate = ptr(span(end.Add(-30*24*time.Hour), end.Add(90*24*time.Hour)).Format(time.DateOnly))
		}
		if rng.IntN(4) == 0 {
			d.Probability = ptr(float64(rng.IntN(101)))
		}
		deal := s.AddDeal(d)
		for j := range a.ActivitiesPerDeal {
			due := span(added, end.Add(30*24*time.Hour))
			act := Activity{
				Subject: fmt.Sprintf("Follow-up %d", j+1), Type: pick(actTypes), OwnerID: deal.OwnerID, CreatorUserID: deal.OwnerID,
				DealID: ptr(deal.ID), PersonID: deal.PersonID, OrgID: deal.OrgID,
				DueDate: due.Format(time.DateOnly), DueTime: due.Format(time.TimeOnly), Duration: "00:30:00",
				Done: due.Before(end), AddTime: T(added), UpdateTime: T(updated),
			}
			if act.Done {
				act.MarkedAsDoneTime = TimePtr(due)
			}
			if act.Type == "deadline" {
				act.DueTime = ""
			}
			s.mu.Lock()
			act.ID = s.newID()
			stored := act
			s.activities.put(&stored)
			s.link(&stored)
			s.mu.Unlock()
		}
	}

	for i := range a.Leads {
		added := span(begin, end)
		l := Lead{
			Title: fmt.Sprintf("%s lead %d", pick(companies), i+1), OwnerID: owner(), CreatorID: owner(),
			SourceName: pick(sources), Origin: "ManuallyCreated", IsArchived: rng.IntN(7) == 0, WasSeen: rng.IntN(2) == 0,
			AddTime: added, UpdateTime: span(added, end),
		}
		if len(persons) > 0 {
			l.PersonID = ptr(persons[rng.IntN(len(persons))])
		}
		if rng.IntN(2) == 0 {
			l.Value = &LeadValue{Amount: json.Number(strconv.Itoa(1000 * (1 + rng.IntN(50)))), Currency: pick(currencies)}
		}
		s.AddLead(l)
	}
}
