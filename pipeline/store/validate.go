package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/pipeline"
)

// validBatch returns the records of b the model can hold and the rejections of the others.
// When nothing is rejected it returns b itself. A deletion is dropped when the same batch
// holds a live version of the record updated after the deletion (deleted, then restored).
func validBatch(b *pipeline.Batch, stageMap pipeline.StageMap) (*pipeline.Batch, []Rejection) {
	var rej []Rejection
	out := *b
	out.Owners = keep(b.Owners, pipeline.EntityOwners, &rej, func(o *pipeline.Owner) string { return checkRecord(&o.Record) })
	out.Pipelines = keep(b.Pipelines, pipeline.EntityPipelines, &rej, func(p *pipeline.Pipeline) string { return checkRecord(&p.Record) })
	out.Stages = keep(b.Stages, pipeline.EntityStages, &rej, func(s *pipeline.Stage) string {
		if r := checkRecord(&s.Record); r != "" {
			return r
		}
		if r := checkProbability(s.Probability); r != "" {
			return r
		}
		if s.IsWon && !s.IsClosed {
			return "stage is won but not closed"
		}
		if s.RotDays < 0 {
			return fmt.Sprintf("rot days %d is negative", s.RotDays)
		}
		if c := stageMap.Resolve(*s); c != "" {
			if _, err := pipeline.ParseCanonicalStage(string(c)); err != nil {
				return fmt.Sprintf("stage map: %v", err)
			}
		}
		return ""
	})
	out.Accounts = keep(b.Accounts, pipeline.EntityAccounts, &rej, func(a *pipeline.Account) string { return checkRecord(&a.Record) })
	out.Contacts = keep(b.Contacts, pipeline.EntityContacts, &rej, func(c *pipeline.Contact) string { return checkRecord(&c.Record) })
	out.Leads = keep(b.Leads, pipeline.EntityLeads, &rej, func(l *pipeline.Lead) string {
		if r := checkRecord(&l.Record); r != "" {
			return r
		}
		switch l.Status {
		case "", pipeline.LeadNew, pipeline.LeadMQL, pipeline.LeadSQL, pipeline.LeadConverted, pipeline.LeadDisqualified:
			return ""
		}
		return fmt.Sprintf("unknown lead status %q", l.Status)
	})
	out.Deals = keep(b.Deals, pipeline.EntityDeals, &rej, func(d *pipeline.Deal) string {
		if r := checkRecord(&d.Record); r != "" {
			return r
		}
		if r := checkProbability(d.Probability); r != "" {
			return r
		}
		if d.IsWon && !d.IsClosed {
			return "deal is won but not closed"
		}
		return ""
	})
	out.StageHistory = keep(b.StageHistory, "deal_stage_history", &rej, func(e *pipeline.StageEntry) string {
		switch {
		case e.DealExternalID == "":
			return "stage entry without a deal id"
		case e.StageExternalID == "":
			return fmt.Sprintf("stage entry of deal %s without a stage id", e.DealExternalID)
		case e.EnteredAt.IsZero():
			return fmt.Sprintf("stage entry of deal %s in stage %s without an entry time", e.DealExternalID, e.StageExternalID)
		}
		return ""
	})
	out.Activities = keep(b.Activities, pipeline.EntityActivities, &rej, func(a *pipeline.Activity) string {
		if r := checkRecord(&a.Record); r != "" {
			return r
		}
		switch a.Kind {
		case pipeline.ActivityCall, pipeline.ActivityEmail, pipeline.ActivityMeeting, pipeline.ActivityNote, pipeline.ActivityTask:
		default:
			return fmt.Sprintf("unknown activity kind %q", a.Kind)
		}
		switch a.Direction {
		case "", pipeline.Inbound, pipeline.Outbound:
			return ""
		}
		return fmt.Sprintf("unknown activity direction %q", a.Direction)
	})
	out.Deletions = keep(b.Deletions, "deletions", &rej, func(d *pipeline.Deletion) string {
		if _, ok := specByEntity[d.Entity]; !ok {
			return fmt.Sprintf("deletion of unknown entity %q", d.Entity)
		}
		if d.ExternalID == "" {
			return fmt.Sprintf("deletion of %s without an id", d.Entity)
		}
		return ""
	})
	out.Deletions = dropRestored(&out)
	if len(rej) == 0 && len(out.Deletions) == len(b.Deletions) {
		return b, nil
	}
	return &out, rej
}

// keep returns the elements of s that check accepts (s itself when it accepts all) and
// appends a rejection for each other one.
func keep[T any](s []T, entity pipeline.Entity, rej *[]Rejection, check func(*T) string) []T {
	var out []T
	for i := range s {
		reason := check(&s[i])
		if reason == "" {
			if out != nil {
				out = append(out, s[i])
			}
			continue
		}
		if out == nil {
			out = make([]T, i, len(s))
			copy(out, s[:i])
		}
		*rej = append(*rej, Rejection{Entity: entity, ExternalID: externalID(&s[i]), Reason: reason})
	}
	if out == nil {
		return s
	}
	return out
}

func externalID(v any) string {
	switch r := v.(type) {
	case *pipeline.Owner:
		return r.ExternalID
	case *pipeline.Pipeline:
		return r.ExternalID
	case *pipeline.Stage:
		return r.ExternalID
	case *pipeline.Account:
		return r.ExternalID
	case *pipeline.Contact:
		return r.ExternalID
	case *pipeline.Lead:
		return r.ExternalID
	case *pipeline.Deal:
		return r.ExternalID
	case *pipeline.Activity:
		return r.ExternalID
	case *pipeline.StageEntry:
		return r.DealExternalID
	case *pipeline.Deletion:
		return r.ExternalID
	}
	return ""
}

func checkRecord(r *pipeline.Record) string {
	if strings.TrimSpace(r.ExternalID) == "" {
		return "record without an id"
	}
	if len(r.Raw) > 0 && !json.Valid(r.Raw) {
		return "raw payload is not valid JSON"
	}
	return ""
}

func checkProbability(p *decimal.Decimal) string {
	if p != nil && (p.IsNegative() || p.GreaterThan(decimal.NewFromInt(1))) {
		return fmt.Sprintf("probability %s is outside 0..1", p)
	}
	return ""
}

// dropRestored removes deletions superseded by a live version of the same record in the
// batch that was updated after the deletion.
func dropRestored(b *pipeline.Batch) []pipeline.Deletion {
	if len(b.Deletions) == 0 {
		return b.Deletions
	}
	type key struct {
		entity pipeline.Entity
		id     string
	}
	live := map[key]time.Time{}
	note := func(e pipeline.Entity, r *pipeline.Record) {
		k := key{e, r.ExternalID}
		if t, ok := live[k]; !ok || r.UpdatedAt.After(t) {
			live[k] = r.UpdatedAt
		}
	}
	for i := range b.Owners {
		note(pipeline.EntityOwners, &b.Owners[i].Record)
	}
	for i := range b.Pipelines {
		note(pipeline.EntityPipelines, &b.Pipelines[i].Record)
	}
	for i := range b.Stages {
		note(pipeline.EntityStages, &b.Stages[i].Record)
	}
	for i := range b.Accounts {
		note(pipeline.EntityAccounts, &b.Accounts[i].Record)
	}
	for i := range b.Contacts {
		note(pipeline.EntityContacts, &b.Contacts[i].Record)
	}
	for i := range b.Leads {
		note(pipeline.EntityLeads, &b.Leads[i].Record)
	}
	for i := range b.Deals {
		note(pipeline.EntityDeals, &b.Deals[i].Record)
	}
	for i := range b.Activities {
		note(pipeline.EntityActivities, &b.Activities[i].Record)
	}
	if len(live) == 0 {
		return b.Deletions
	}
	var out []pipeline.Deletion
	for _, d := range b.Deletions {
		if t, ok := live[key{d.Entity, d.ExternalID}]; ok && !d.DeletedAt.IsZero() && t.After(d.DeletedAt) {
			continue
		}
		out = append(out, d)
	}
	return out
}
