package hubspot

import (
	"cmp"
	"context"
	"html"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/pipeline"
)

var companyProperties = []string{"name", "domain", "hubspot_owner_id", "createdate", "hs_lastmodifieddate"}

func mapCompany(r *record, b *pipeline.Batch) {
	b.Accounts = append(b.Accounts, pipeline.Account{
		Record: r.base(), Name: r.str("name"), Domain: r.str("domain"), OwnerExternalID: r.str("hubspot_owner_id"),
	})
}

var contactProperties = []string{
	"email", "firstname", "lastname", "hubspot_owner_id", "associatedcompanyid", "lifecyclestage", "hs_lead_status",
	"hs_analytics_source", "createdate", "lastmodifieddate",
	"hs_lifecyclestage_marketingqualifiedlead_date", "hs_lifecyclestage_salesqualifiedlead_date",
	"hs_lifecyclestage_opportunity_date", "hs_lifecyclestage_customer_date",
}

// mapContact maps a contact, and a lead when the contact reached a marketing- or
// sales-qualified lifecycle stage (HubSpot keeps leads as contacts). A lead with an
// associated deal converted into its earliest-created one (see linkConvertedDeals): it is
// converted whatever its lifecycle stage or lead status says, like a contact HubSpot moved
// to the opportunity stage, and converted at its opportunity (or customer) date, else at the
// deal's creation.
func mapContact(r *record, b *pipeline.Batch) {
	base := r.base()
	name := strings.TrimSpace(r.str("firstname") + " " + r.str("lastname"))
	email, owner := r.str("email"), r.str("hubspot_owner_id")
	b.Contacts = append(b.Contacts, pipeline.Contact{
		Record: base, Email: email, Name: name, AccountExternalID: r.str("associatedcompanyid"), OwnerExternalID: owner,
	})
	if !isLead(r) {
		return
	}
	stage := strings.ToLower(r.str("lifecyclestage"))
	mqlAt := r.time("hs_lifecyclestage_marketingqualifiedlead_date")
	sqlAt := r.time("hs_lifecyclestage_salesqualifiedlead_date")
	status := pipeline.LeadNew
	switch {
	case stage == "opportunity" || stage == "customer" || stage == "evangelist" || r.convertedDeal.id != "":
		status = pipeline.LeadConverted
	case strings.EqualFold(r.str("hs_lead_status"), "UNQUALIFIED"):
		status = pipeline.LeadDisqualified
	case stage == "salesqualifiedlead" || !sqlAt.IsZero():
		status = pipeline.LeadSQL
	case stage == "marketingqualifiedlead" || !mqlAt.IsZero():
		status = pipeline.LeadMQL
	}
	var convertedAt time.Time
	if status == pipeline.LeadConverted {
		convertedAt = cmp.Or(lifecycleConversion(r), r.convertedDeal.created)
	}
	b.Leads = append(b.Leads, pipeline.Lead{
		Record: base, Email: email, Name: name, Source: strings.ToLower(r.str("hs_analytics_source")), Status: status,
		MQLAt: mqlAt, SQLAt: sqlAt, ConvertedAt: convertedAt, OwnerExternalID: owner,
		ConvertedDealExternalID: r.convertedDeal.id,
	})
}

// isLead reports whether a contact is a lead: it reached the marketing- or sales-qualified
// lifecycle stage.
func isLead(r *record) bool {
	stage := strings.ToLower(r.str("lifecyclestage"))
	return stage == "marketingqualifiedlead" || stage == "salesqualifiedlead" ||
		r.has("hs_lifecyclestage_marketingqualifiedlead_date") || r.has("hs_lifecyclestage_salesqualifiedlead_date")
}

// lifecycleConversion is when a contact became an opportunity (or a customer, when it
// skipped that stage); zero when it has neither date.
func lifecycleConversion(r *record) time.Time {
	return earliest(r.time("hs_lifecyclestage_opportunity_date"), r.time("hs_lifecyclestage_customer_date"))
}

// linkConvertedDeals sets the converted deal of the leads among records: the
// earliest-created of the deals associated with the contact (the lowest id among those
// created in the same millisecond). The deals' creation times are batch-read only when
// they decide something: a lead with several deals, or one without a lifecycle conversion
// date (its ConvertedAt is then the deal's creation). Associated deals the batch read does
// not return (archived meanwhile) are left out; a lone deal whose time decides nothing is
// linked as associated (a tombstoned deal never counts as won).
//
// The link is read with the contact, so it shows when the contact changes after the deal
// is associated (HubSpot's lifecycle sync moves it to the opportunity stage) or at the
// next Full read of contacts, which lists associations inline.
func (c *Connector) linkConvertedDeals(ctx context.Context, records []*record) error {
	var leads []*record
	var unread []string
	seen := map[string]bool{}
	for _, r := range records {
		deals := r.associations["deals"]
		if len(deals) == 0 || !isLead(r) {
			continue
		}
		if len(deals) == 1 && !lifecycleConversion(r).IsZero() {
			r.convertedDeal = dealLink{id: deals[0]}
			continue
		}
		leads = append(leads, r)
		for _, id := range deals {
			if !seen[id] {
				seen[id] = true
				unread = append(unread, id)
			}
		}
	}
	if len(unread) == 0 {
		return nil
	}
	created, err := c.readCreated(ctx, "deals", unread)
	if err != nil {
		return err
	}
	for _, r := range leads {
		for _, id := range r.associations["deals"] {
			at, ok := created[id]
			if !ok {
				continue
			}
			link := dealLink{id: id, created: at}
			if r.convertedDeal.id == "" || link.before(r.convertedDeal) {
				r.convertedDeal = link
			}
		}
	}
	return nil
}

// dealLink is the deal a lead converted into.
type dealLink struct {
	id      string
	created time.Time // zero when it was not read
}

// before orders deals by creation, then numeric id.
func (l dealLink) before(o dealLink) bool {
	if c := l.created.Compare(o.created); c != 0 {
		return c < 0
	}
	return compareIDs(l.id, o.id) < 0
}

func earliest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}

var dealBaseProperties = []string{
	"dealname", "amount", "deal_currency_code", "pipeline", "dealstage", "hubspot_owner_id",
	"hs_primary_associated_company", "closedate", "createdate", "hs_lastmodifieddate", "hs_is_closed",
	"hs_is_closed_won", "hs_deal_stage_probability", "hs_forecast_probability", "hs_manual_forecast_category",
	"hs_v2_date_entered_current_stage", "notes_last_updated", "notes_next_activity_date",
}

// dealProperties are the deal properties plus hs_date_entered_/hs_date_exited_ of every
// known stage (the stage history). Before the pipelines are loaded it names the default
// pipeline's stages and says it may be incomplete.
func (c *Connector) dealProperties() ([]string, bool) {
	props := slices.Clone(dealBaseProperties)
	if _, history, ok := c.stages.get(); ok {
		return append(props, history...), true
	}
	for _, id := range defaultStageIDs {
		props = append(props, "hs_date_entered_"+id, "hs_date_exited_"+id)
	}
	return props, false
}

// completeDealProperties reads the stage-history properties the first request of a cold
// connector could not name: for deals outside HubSpot's default pipeline it loads the
// pipelines and batch-reads the missing properties of those deals.
func (c *Connector) completeDealProperties(ctx context.Context, records []*record, asked []string) error {
	var need []*record
	for _, r := range records {
		if _, ok := defaultCanonical[r.str("dealstage")]; !ok || r.str("pipeline") != "default" {
			need = append(need, r)
		}
	}
	if len(need) == 0 {
		return nil
	}
	_, history, err := c.stagesFor(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, p := range history {
		if !slices.Contains(asked, p) {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return c.readProperties(ctx, "deals", need, missing)
}

// mapDeal maps a deal and its stage history (hs_date_entered_<stage> / hs_date_exited_<stage>).
func (c *Connector) mapDeal(r *record, b *pipeline.Batch) {
	stages, _, _ := c.stages.get()
	d := pipeline.Deal{
		Record:             r.base(),
		Name:               r.str("dealname"),
		Amount:             r.decimal("amount"),
		Currency:           r.str("deal_currency_code"),
		PipelineExternalID: r.str("pipeline"),
		StageExternalID:    r.str("dealstage"),
		OwnerExternalID:    r.str("hubspot_owner_id"),
		AccountExternalID:  r.str("hs_primary_associated_company"),
		ForecastCategory:   strings.ToLower(r.str("hs_manual_forecast_category")),
		LastActivityAt:     r.time("notes_last_updated"),
		NextActivityAt:     r.time("notes_next_activity_date"),
	}
	if d.Currency == "" {
		d.Currency = c.cfg.Currency
	}
	closeDate := r.time("closedate")
	d.CloseDate = midnightUTC(closeDate)
	stage, known := stages[d.StageExternalID]
	if r.has("hs_is_closed") {
		d.IsClosed = r.bool("hs_is_closed")
		d.IsWon = d.IsClosed && r.bool("hs_is_closed_won")
	} else if known {
		d.IsClosed, d.IsWon = stage.IsClosed, stage.IsWon
	}
	d.Probability = r.probability("hs_forecast_probability")
	if d.Probability == nil {
		d.Probability = r.probability("hs_deal_stage_probability")
	}
	if d.StageExternalID != "" {
		d.StageEnteredAt = r.time("hs_date_entered_" + d.StageExternalID)
	}
	if d.StageEnteredAt.IsZero() {
		d.StageEnteredAt = r.time("hs_v2_date_entered_current_stage")
	}
	if d.IsClosed {
		d.ClosedAt = closeDate
		if d.ClosedAt.IsZero() {
			d.ClosedAt = d.StageEnteredAt
		}
	}
	for name := range r.props {
		stageID, ok := strings.CutPrefix(name, "hs_date_entered_")
		if !ok {
			continue
		}
		entered := r.time(name)
		if entered.IsZero() {
			continue
		}
		b.StageHistory = append(b.StageHistory, pipeline.StageEntry{
			DealExternalID: r.id, StageExternalID: stageID, EnteredAt: entered, ExitedAt: r.time("hs_date_exited_" + stageID),
		})
	}
	slices.SortFunc(b.StageHistory, func(x, y pipeline.StageEntry) int {
		return cmp.Or(x.EnteredAt.Compare(y.EnteredAt), cmp.Compare(x.StageExternalID, y.StageExternalID))
	})
	b.Deals = append(b.Deals, d)
}

// engagement describes one engagement object type.
type engagement struct {
	stream     string
	objectType string
	kind       pipeline.ActivityKind
	subject    string // property holding the subject
	extra      []string
}

var engagements = []engagement{
	{StreamCalls, "calls", pipeline.ActivityCall, "hs_call_title", []string{"hs_call_direction", "hs_call_status"}},
	{StreamEmails, "emails", pipeline.ActivityEmail, "hs_email_subject", []string{"hs_email_direction"}},
	{StreamMeetings, "meetings", pipeline.ActivityMeeting, "hs_meeting_title", []string{"hs_meeting_outcome"}},
	{StreamNotes, "notes", pipeline.ActivityNote, "hs_note_body", nil},
	{StreamTasks, "tasks", pipeline.ActivityTask, "hs_task_subject", []string{"hs_task_status"}},
}

func (e engagement) properties() []string {
	props := []string{"hs_timestamp", "hubspot_owner_id", "createdate", "hs_lastmodifieddate", e.subject}
	return append(props, e.extra...)
}

// mapRecord maps an engagement to an activity linked to its first (lowest id) deal and contact.
func (e engagement) mapRecord(r *record, b *pipeline.Batch) {
	a := pipeline.Activity{
		Record: r.base(), Kind: e.kind, OccurredAt: r.time("hs_timestamp"), Done: true,
		OwnerExternalID:   r.str("hubspot_owner_id"),
		DealExternalID:    lowestID(r.associations["deals"]),
		ContactExternalID: lowestID(r.associations["contacts"]),
	}
	subject := r.str(e.subject)
	switch e.kind {
	case pipeline.ActivityCall:
		a.Direction = callDirection(r.str("hs_call_direction"))
		switch strings.ToUpper(r.str("hs_call_status")) {
		case "QUEUED", "CALLING_CRM_USER", "CONNECTING", "RINGING", "IN_PROGRESS", "CANCELED":
			a.Done = false
		}
	case pipeline.ActivityEmail:
		a.Direction = emailDirection(r.str("hs_email_direction"))
	case pipeline.ActivityMeeting:
		switch strings.ToUpper(r.str("hs_meeting_outcome")) {
		case "SCHEDULED", "RESCHEDULED", "CANCELED", "NO_SHOW":
			a.Done = false
		}
	case pipeline.ActivityNote:
		subject = noteSubject(subject)
	case pipeline.ActivityTask:
		a.Done = strings.EqualFold(r.str("hs_task_status"), "COMPLETED")
	}
	a.Subject = subject
	b.Activities = append(b.Activities, a)
}

func callDirection(v string) pipeline.Direction {
	switch strings.ToUpper(v) {
	case "INBOUND":
		return pipeline.Inbound
	case "OUTBOUND":
		return pipeline.Outbound
	}
	return ""
}

func emailDirection(v string) pipeline.Direction {
	switch strings.ToUpper(v) {
	case "INCOMING_EMAIL":
		return pipeline.Inbound
	case "EMAIL", "FORWARDED_EMAIL":
		return pipeline.Outbound
	}
	return ""
}

var htmlTag = regexp.MustCompile(`<[^>]*>`)

// noteSubject is the first line of a note's (HTML) body, at most 200 characters.
func noteSubject(body string) string {
	body = strings.ReplaceAll(body, "</p>", "\n")
	text := html.UnescapeString(htmlTag.ReplaceAllString(body, ""))
	for line := range strings.SplitSeq(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			if r := []rune(line); len(r) > 200 {
				return string(r[:200]) + "…"
			}
			return line
		}
	}
	return ""
}

// compareIDs orders HubSpot ids numerically (as text when one is not a number).
func compareIDs(a, b string) int {
	x, errX := strconv.ParseInt(a, 10, 64)
	y, errY := strconv.ParseInt(b, 10, 64)
	if errX != nil || errY != nil {
		return strings.Compare(a, b)
	}
	return cmp.Compare(x, y)
}

// lowestID picks the smallest numeric id, so a record linked to several gets a stable one.
func lowestID(ids []string) string {
	best, bestN := "", int64(0)
	for _, id := range ids {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			continue
		}
		if best == "" || n < bestN {
			best, bestN = id, n
		}
	}
	return best
}
