package pipedrive

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

// The wire types decode only the fields the mapping uses; every record keeps its whole
// payload in Raw.

type v2Deal struct {
	ID                int          `json:"id"`
	Title             string       `json:"title"`
	OwnerID           *int         `json:"owner_id"`
	OrgID             *int         `json:"org_id"`
	PipelineID        *int         `json:"pipeline_id"`
	StageID           *int         `json:"stage_id"`
	Value             *json.Number `json:"value"`
	Currency          string       `json:"currency"`
	AddTime           timestamp    `json:"add_time"`
	UpdateTime        timestamp    `json:"update_time"`
	StageChangeTime   timestamp    `json:"stage_change_time"`
	IsDeleted         bool         `json:"is_deleted"`
	Status            string       `json:"status"`
	Probability       *json.Number `json:"probability"`
	CloseTime         timestamp    `json:"close_time"`
	WonTime           timestamp    `json:"won_time"`
	LostTime          timestamp    `json:"lost_time"`
	ExpectedCloseDate date         `json:"expected_close_date"`
	LastActivityID    *int         `json:"last_activity_id"`
	NextActivityID    *int         `json:"next_activity_id"`
}

type v2Person struct {
	ID         int       `json:"id"`
	Name       string    `json:"name"`
	FirstName  string    `json:"first_name"`
	LastName   string    `json:"last_name"`
	OwnerID    *int      `json:"owner_id"`
	OrgID      *int      `json:"org_id"`
	AddTime    timestamp `json:"add_time"`
	UpdateTime timestamp `json:"update_time"`
	IsDeleted  bool      `json:"is_deleted"`
	Emails     []struct {
		Value   string `json:"value"`
		Primary bool   `json:"primary"`
	} `json:"emails"`
}

type v2Organization struct {
	ID         int       `json:"id"`
	Name       string    `json:"name"`
	OwnerID    *int      `json:"owner_id"`
	AddTime    timestamp `json:"add_time"`
	UpdateTime timestamp `json:"update_time"`
	IsDeleted  bool      `json:"is_deleted"`
}

type v2Activity struct {
	ID               int       `json:"id"`
	Subject          string    `json:"subject"`
	Type             string    `json:"type"`
	OwnerID          *int      `json:"owner_id"`
	IsDeleted        bool      `json:"is_deleted"`
	AddTime          timestamp `json:"add_time"`
	UpdateTime       timestamp `json:"update_time"`
	DealID           *int      `json:"deal_id"`
	LeadID           *string   `json:"lead_id"`
	PersonID         *int      `json:"person_id"`
	DueDate          date      `json:"due_date"`
	DueTime          *string   `json:"due_time"`
	Done             bool      `json:"done"`
	MarkedAsDoneTime timestamp `json:"marked_as_done_time"`
}

type v2Stage struct {
	ID               int       `json:"id"`
	OrderNr          int       `json:"order_nr"`
	Name             string    `json:"name"`
	IsDeleted        bool      `json:"is_deleted"`
	DealProbability  *int      `json:"deal_probability"`
	PipelineID       *int      `json:"pipeline_id"`
	IsDealRotEnabled bool      `json:"is_deal_rot_enabled"`
	DaysToRotten     *int      `json:"days_to_rotten"`
	AddTime          timestamp `json:"add_time"`
	UpdateTime       timestamp `json:"update_time"`
}

type v2Pipeline struct {
	ID         int       `json:"id"`
	Name       string    `json:"name"`
	OrderNr    int       `json:"order_nr"`
	IsDeleted  bool      `json:"is_deleted"`
	AddTime    timestamp `json:"add_time"`
	UpdateTime timestamp `json:"update_time"`
}

type v1User struct {
	ID           int       `json:"id"`
	Name         string    `json:"name"`
	Email        string    `json:"email"`
	ActiveFlag   bool      `json:"active_flag"`
	IsDeleted    bool      `json:"is_deleted"`
	TimezoneName string    `json:"timezone_name"`
	Created      timestamp `json:"created"`
	Modified     timestamp `json:"modified"`
}

type v1Lead struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	OwnerID    *int      `json:"owner_id"`
	SourceName string    `json:"source_name"`
	IsArchived bool      `json:"is_archived"`
	AddTime    timestamp `json:"add_time"`
	UpdateTime timestamp `json:"update_time"`
}

// idString is the external id of a Pipedrive integer id; "" for null.
func idString(id *int) string {
	if id == nil || *id == 0 {
		return ""
	}
	return strconv.Itoa(*id)
}

// percent converts a 0–100 percentage to a 0..1 probability.
func percent(n json.Number) (*decimal.Decimal, error) {
	d, err := decimal.NewFromString(string(n))
	if err != nil {
		return nil, fmt.Errorf("probability %q is not a number", n)
	}
	if d.IsNegative() || d.GreaterThan(decimal.NewFromInt(100)) {
		return nil, fmt.Errorf("probability %s is outside 0–100", d)
	}
	p := d.Div(decimal.NewFromInt(100))
	return &p, nil
}

func record(id string, added, updated timestamp, raw json.RawMessage) pipeline.Record {
	return pipeline.Record{ExternalID: id, CreatedAt: added.Time, UpdatedAt: updated.Time, Raw: raw}
}

var errNoID = errors.New("the record has no id")

// mapDeal maps a v2 deal. Pipedrive has no won/lost stages: a closed deal keeps its last
// stage, and is_closed/is_won come from its status. The deal's last and next activity times
// come from acts, the activities its last_activity_id/next_activity_id point to.
func mapDeal(d v2Deal, raw json.RawMessage, acts map[int]activityTimes) (pipeline.Deal, error) {
	if d.ID == 0 {
		return pipeline.Deal{}, errNoID
	}
	if d.UpdateTime.IsZero() {
		return pipeline.Deal{}, errors.New("update_time is missing")
	}
	out := pipeline.Deal{
		Record:             record(strconv.Itoa(d.ID), d.AddTime, d.UpdateTime, raw),
		Name:               d.Title,
		Currency:           d.Currency,
		PipelineExternalID: idString(d.PipelineID),
		StageExternalID:    idString(d.StageID),
		OwnerExternalID:    idString(d.OwnerID),
		AccountExternalID:  idString(d.OrgID),
		StageEnteredAt:     d.StageChangeTime.Time,
	}
	if out.StageEnteredAt.IsZero() {
		// stage_change_time is null until the deal first moves: it has been in its stage
		// since it was created.
		out.StageEnteredAt = d.AddTime.Time
	}
	if d.Value != nil {
		v, err := decimal.NewFromString(string(*d.Value))
		if err != nil {
			return pipeline.Deal{}, fmt.Errorf("value %q is not a number", *d.Value)
		}
		out.Amount = decimal.NullDecimal{Decimal: v, Valid: true}
	}
	if d.Probability != nil {
		p, err := percent(*d.Probability)
		if err != nil {
			return pipeline.Deal{}, err
		}
		out.Probability = p
	}
	switch d.Status {
	case "open":
		out.CloseDate = d.ExpectedCloseDate.Time
	case "won":
		out.IsClosed, out.IsWon = true, true
		out.ClosedAt = firstNonZero(d.WonTime, d.CloseTime)
	case "lost":
		out.IsClosed = true
		out.ClosedAt = firstNonZero(d.LostTime, d.CloseTime)
	default:
		return pipeline.Deal{}, fmt.Errorf("status %q is not open, won or lost", d.Status)
	}
	if out.IsClosed {
		out.CloseDate = d.ExpectedCloseDate.Time
		if !out.ClosedAt.IsZero() {
			y, m, day := out.ClosedAt.UTC().Date()
			out.CloseDate = time.Date(y, m, day, 0, 0, 0, 0, time.UTC)
		}
	}
	if d.LastActivityID != nil {
		out.LastActivityAt = acts[*d.LastActivityID].at
	}
	if d.NextActivityID != nil {
		out.NextActivityAt = acts[*d.NextActivityID].at
	}
	return out, nil
}

func firstNonZero(ts ...timestamp) (t time.Time) {
	for _, x := range ts {
		if !x.IsZero() {
			return x.Time
		}
	}
	return t
}

func mapPerson(p v2Person, raw json.RawMessage) (pipeline.Contact, error) {
	if p.ID == 0 {
		return pipeline.Contact{}, errNoID
	}
	if p.UpdateTime.IsZero() {
		return pipeline.Contact{}, errors.New("update_time is missing")
	}
	name := p.Name
	if name == "" {
		name = strings.TrimSpace(p.FirstName + " " + p.LastName)
	}
	var email string
	for _, e := range p.Emails {
		if e.Value != "" && (email == "" || e.Primary) {
			email = e.Value
			if e.Primary {
				break
			}
		}
	}
	return pipeline.Contact{
		Record:            record(strconv.Itoa(p.ID), p.AddTime, p.UpdateTime, raw),
		Email:             email,
		Name:              name,
		AccountExternalID: idString(p.OrgID),
		OwnerExternalID:   idString(p.OwnerID),
	}, nil
}

func mapOrganization(o v2Organization, raw json.RawMessage) (pipeline.Account, error) {
	if o.ID == 0 {
		return pipeline.Account{}, errNoID
	}
	if o.UpdateTime.IsZero() {
		return pipeline.Account{}, errors.New("update_time is missing")
	}
	return pipeline.Account{
		Record:          record(strconv.Itoa(o.ID), o.AddTime, o.UpdateTime, raw),
		Name:            o.Name,
		OwnerExternalID: idString(o.OwnerID),
	}, nil
}

// activityKinds maps Pipedrive's built-in activity types; custom types are tasks.
var activityKinds = map[string]pipeline.ActivityKind{
	"call":     pipeline.ActivityCall,
	"meeting":  pipeline.ActivityMeeting,
	"lunch":    pipeline.ActivityMeeting,
	"email":    pipeline.ActivityEmail,
	"task":     pipeline.ActivityTask,
	"deadline": pipeline.ActivityTask,
}

// activityTimes is when an activity happened (or is due).
type activityTimes struct{ at time.Time }

// occurredAt is when the activity is due, in UTC (Pipedrive keeps due_date and due_time in
// UTC); an activity without a due date happened when it was marked done, else when added.
func (a v2Activity) occurredAt() (time.Time, error) {
	if a.DueDate.IsZero() {
		return firstNonZero(a.MarkedAsDoneTime, a.AddTime), nil
	}
	t := a.DueDate.Time
	if a.DueTime != nil && *a.DueTime != "" {
		clock := *a.DueTime
		if len(clock) == len("15:04") {
			clock += ":00"
		}
		tod, err := time.Parse(time.TimeOnly, clock)
		if err != nil {
			return t, fmt.Errorf("due_time %q is not HH:MM[:SS]", *a.DueTime)
		}
		t = t.Add(time.Duration(tod.Hour())*time.Hour + time.Duration(tod.Minute())*time.Minute + time.Duration(tod.Second())*time.Second)
	}
	return t, nil
}

func mapActivity(a v2Activity, raw json.RawMessage) (pipeline.Activity, error) {
	if a.ID == 0 {
		return pipeline.Activity{}, errNoID
	}
	if a.UpdateTime.IsZero() {
		return pipeline.Activity{}, errors.New("update_time is missing")
	}
	at, err := a.occurredAt()
	if err != nil {
		return pipeline.Activity{}, err
	}
	kind, ok := activityKinds[a.Type]
	if !ok {
		kind = pipeline.ActivityTask
	}
	out := pipeline.Activity{
		Record:            record(strconv.Itoa(a.ID), a.AddTime, a.UpdateTime, raw),
		Kind:              kind,
		Subject:           a.Subject,
		OccurredAt:        at,
		Done:              a.Done,
		DealExternalID:    idString(a.DealID),
		ContactExternalID: idString(a.PersonID),
		OwnerExternalID:   idString(a.OwnerID),
	}
	if a.LeadID != nil {
		out.LeadExternalID = *a.LeadID
	}
	return out, nil
}

func mapPipeline(p v2Pipeline, raw json.RawMessage) (pipeline.Pipeline, error) {
	if p.ID == 0 {
		return pipeline.Pipeline{}, errNoID
	}
	return pipeline.Pipeline{
		Record:   record(strconv.Itoa(p.ID), p.AddTime, p.UpdateTime, raw),
		Name:     p.Name,
		Position: p.OrderNr,
	}, nil
}

// funnel is the open part of the standard stages, in order, for mapping stages by position.
var funnel = []pipeline.CanonicalStage{
	pipeline.StageLeadGeneration, pipeline.StageQualification, pipeline.StageNeedsAssessment,
	pipeline.StageProposal, pipeline.StageNegotiation, pipeline.StageClosing,
}

// stagePayload is a decoded stage with its raw payload.
type stagePayload struct {
	stage v2Stage
	raw   json.RawMessage
}

// mapStages maps every stage of the account at once, because the default canonical stage
// of a stage whose name says nothing depends on its place among its pipeline's stages.
// deal_probability (0–100) becomes a 0..1 probability; rotting days apply only when rotting
// is enabled; no Pipedrive stage is closed (won and lost are deal statuses).
func mapStages(stages []stagePayload) ([]pipeline.Stage, []pipeline.Deletion, []connectors.SkippedRecord) {
	var (
		out       []pipeline.Stage
		deletions []pipeline.Deletion
		skipped   []connectors.SkippedRecord
	)
	byPipeline := map[int][]v2Stage{}
	for _, s := range stages {
		if s.stage.ID == 0 || s.stage.IsDeleted || s.stage.PipelineID == nil {
			continue
		}
		byPipeline[*s.stage.PipelineID] = append(byPipeline[*s.stage.PipelineID], s.stage)
	}
	rank := map[int]pipeline.CanonicalStage{}
	for _, list := range byPipeline {
		slices.SortFunc(list, func(a, b v2Stage) int { return cmp.Or(cmp.Compare(a.OrderNr, b.OrderNr), cmp.Compare(a.ID, b.ID)) })
		for i, s := range list {
			rank[s.ID] = funnel[i*len(funnel)/len(list)]
		}
	}
	for _, s := range stages {
		st := s.stage
		switch {
		case st.ID == 0:
			skipped = append(skipped, connectors.SkippedRecord{Entity: pipeline.EntityStages, Reason: errNoID.Error()})
			continue
		case st.IsDeleted:
			deletions = append(deletions, pipeline.Deletion{Entity: pipeline.EntityStages, ExternalID: strconv.Itoa(st.ID), DeletedAt: st.UpdateTime.Time})
			continue
		case st.PipelineID == nil:
			skipped = append(skipped, connectors.SkippedRecord{Entity: pipeline.EntityStages, ExternalID: strconv.Itoa(st.ID), Reason: "pipeline_id is missing"})
			continue
		}
		mapped := pipeline.Stage{
			Record:             record(strconv.Itoa(st.ID), st.AddTime, st.UpdateTime, s.raw),
			PipelineExternalID: strconv.Itoa(*st.PipelineID),
			Name:               st.Name,
			Position:           st.OrderNr,
		}
		if st.DealProbability != nil {
			p, err := percent(json.Number(strconv.Itoa(*st.DealProbability)))
			if err != nil {
				skipped = append(skipped, connectors.SkippedRecord{Entity: pipeline.EntityStages, ExternalID: mapped.ExternalID, Reason: "deal_" + err.Error()})
				continue
			}
			mapped.Probability = p
		}
		if st.IsDealRotEnabled && st.DaysToRotten != nil && *st.DaysToRotten > 0 {
			mapped.RotDays = *st.DaysToRotten
		}
		// Names first (probabilities say little: Pipedrive defaults every stage to 100%),
		// then the stage's place in its pipeline.
		mapped.Canonical = pipeline.GuessCanonical(st.Name, nil, false, false)
		if mapped.Canonical == "" {
			mapped.Canonical = rank[st.ID]
		}
		out = append(out, mapped)
	}
	return out, deletions, skipped
}

func mapUser(u v1User, raw json.RawMessage) (pipeline.Owner, error) {
	if u.ID == 0 {
		return pipeline.Owner{}, errNoID
	}
	return pipeline.Owner{
		Record:   record(strconv.Itoa(u.ID), u.Created, u.Modified, raw),
		Email:    u.Email,
		Name:     u.Name,
		Timezone: u.TimezoneName,
		Active:   u.ActiveFlag && !u.IsDeleted,
	}, nil
}

// mapLead maps a v1 lead. The Leads Inbox holds leads until they are archived (not a fit:
// disqualified) or converted to a deal (the lead leaves the inbox); Pipedrive has no MQL/SQL
// stages, so a lead in the inbox is new.
//
// Pipedrive leads carry no ConvertedDealExternalID: the public contract has no lead → deal
// link to read. A converted lead is deleted (it leaves GET /v1/leads); a deal names no lead
// (origin and origin_id say how and by which integration it was created); and only
// GET /api/v2/leads/{id}/convert/status/{conversion_id} returns the new deal_id, for the
// caller that started the conversion (it alone knows conversion_id), for a few days.
func mapLead(l v1Lead, raw json.RawMessage) (pipeline.Lead, error) {
	if l.ID == "" {
		return pipeline.Lead{}, errNoID
	}
	if l.UpdateTime.IsZero() {
		return pipeline.Lead{}, errors.New("update_time is missing")
	}
	status := pipeline.LeadNew
	if l.IsArchived {
		status = pipeline.LeadDisqualified
	}
	return pipeline.Lead{
		Record:          record(l.ID, l.AddTime, l.UpdateTime, raw),
		Name:            l.Title,
		Source:          l.SourceName,
		Status:          status,
		OwnerExternalID: idString(l.OwnerID),
	}, nil
}
