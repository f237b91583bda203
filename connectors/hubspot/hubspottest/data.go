package hubspottest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Object is a copy of a record as the portal holds it.
type Object struct {
	ID         string
	Properties map[string]string
	Archived   bool
	Created    time.Time
	// Modified is the watermark (hs_lastmodifieddate; lastmodifieddate for contacts).
	Modified     time.Time
	Associations map[string][]string
}

// Object returns a copy of the record objectType/id.
func (s *Server) Object(objectType, id string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st, err := s.lookup(objectType, id)
	if err != nil {
		return Object{}, false
	}
	out := Object{
		ID: id, Properties: maps.Clone(o.props), Archived: o.archived, Created: o.created,
		Modified: time.UnixMilli(o.modified).UTC(), Associations: make(map[string][]string),
	}
	out.Properties["hs_object_id"] = id
	out.Properties[st.typ.watermark] = formatTime(time.UnixMilli(o.modified))
	for k, ids := range o.assoc {
		for _, a := range ids {
			out.Associations[k] = append(out.Associations[k], strconv.FormatInt(a, 10))
		}
	}
	return out, true
}

// IDs returns the ids of the live (or archived) records of objectType in id order.
func (s *Server) IDs(objectType string, archived bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.store(objectType)
	if !ok {
		return nil
	}
	st.index()
	objs := st.liveByID
	if archived {
		objs = st.archived
	}
	ids := make([]string, len(objs))
	for i, o := range objs {
		ids[i] = strconv.FormatInt(o.id, 10)
	}
	return ids
}

func (s *Server) lookup(objectType, id string) (*object, *objectStore, error) {
	st, ok := s.store(objectType)
	if !ok {
		return nil, nil, fmt.Errorf("hubspottest: unknown object type %q", objectType)
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil, nil, fmt.Errorf("hubspottest: bad id %q", id)
	}
	o, ok := st.byID[n]
	if !ok {
		return nil, nil, fmt.Errorf("hubspottest: no %s %s", objectType, id)
	}
	return o, st, nil
}

// Create adds a live record with props (strings, as HubSpot stores them) and associations
// (object type → ids of existing records), stamped now. It returns the new id.
// Associations are two-way, as in HubSpot: the associated records list the new one, their
// last-modified stamps unchanged.
func (s *Server) Create(objectType string, props map[string]string, assoc map[string][]string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.store(objectType)
	if !ok {
		return "", fmt.Errorf("hubspottest: unknown object type %q", objectType)
	}
	type target struct {
		typ string
		id  int64
	}
	var targets []target
	for k, ids := range assoc {
		for _, id := range ids {
			o, to, err := s.lookup(k, id)
			if err != nil {
				return "", fmt.Errorf("hubspottest: associating a new %s: %w", st.typ.singular, err)
			}
			targets = append(targets, target{to.typ.name, o.id})
		}
	}
	now := s.now()
	s.nextID++
	o := &object{id: s.nextID, props: maps.Clone(props), created: now, modified: now.UnixMilli(), assoc: make(map[string][]int64)}
	if o.props == nil {
		o.props = make(map[string]string)
	}
	o.props["createdate"] = formatTime(now)
	o.props[st.typ.watermark] = formatTime(now)
	for _, t := range targets {
		s.linkLocked(st.typ.name, o, t.typ, t.id)
	}
	st.put(o)
	return strconv.FormatInt(o.id, 10), nil
}

// Associate associates two existing records (both ways, as HubSpot does), as a user
// linking a deal to a contact. As in HubSpot's association API, neither record's
// properties nor last-modified stamp change: an integration sees the association when it
// reads associations, or when something else changes the record (HubSpot's lifecycle sync
// moving the contact to the opportunity stage, say: Update it).
func (s *Server) Associate(fromType, fromID, toType, toID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	from, fromStore, err := s.lookup(fromType, fromID)
	if err != nil {
		return err
	}
	to, toStore, err := s.lookup(toType, toID)
	if err != nil {
		return err
	}
	c := from.clone()
	s.linkLocked(fromStore.typ.name, c, toStore.typ.name, to.id)
	fromStore.put(c)
	return nil
}

// linkLocked associates o (of type oType, not yet published or a copy being changed) with
// the stored record toType/to: o lists it, and the stored record is replaced by a copy
// listing o. Stamps are left alone.
func (s *Server) linkLocked(oType string, o *object, toType string, to int64) {
	if !slices.Contains(o.assoc[toType], to) {
		o.assoc[toType] = append(o.assoc[toType], to)
	}
	st := s.objects[toType]
	target := st.byID[to]
	if target == nil || slices.Contains(target.assoc[oType], o.id) {
		return
	}
	c := target.clone()
	c.assoc[oType] = append(c.assoc[oType], o.id)
	st.put(c)
}

// Update sets properties of a record and bumps its last-modified stamp to now. An empty
// value clears the property.
func (s *Server) Update(objectType, id string, props map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateLocked(objectType, id, func(o *object) error {
		for k, v := range props {
			if v == "" {
				delete(o.props, k)
			} else {
				o.props[k] = v
			}
		}
		return nil
	})
}

func (s *Server) updateLocked(objectType, id string, change func(*object) error) error {
	o, st, err := s.lookup(objectType, id)
	if err != nil {
		return err
	}
	c := o.clone()
	if err := change(c); err != nil {
		return err
	}
	now := s.now()
	c.modified = max(now.UnixMilli(), o.modified+1)
	c.props[st.typ.watermark] = formatTime(time.UnixMilli(c.modified))
	st.put(c)
	return nil
}

// MoveDealStage moves a deal to stage (of its pipeline), stamping hs_date_exited_<old> and
// hs_date_entered_<new> and the closed/won flags, and bumps hs_lastmodifieddate.
func (s *Server) MoveDealStage(id, stage string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateLocked("deals", id, func(o *object) error {
		st, ok := s.stageOf(o.props["pipeline"], stage)
		if !ok {
			return fmt.Errorf("hubspottest: stage %q is not in pipeline %q", stage, o.props["pipeline"])
		}
		now := formatTime(s.now())
		if old := o.props["dealstage"]; old != "" && old != stage {
			o.props["hs_date_exited_"+old] = now
		}
		o.props["dealstage"] = stage
		o.props["hs_date_entered_"+stage] = now
		delete(o.props, "hs_date_exited_"+stage)
		setStageFlags(o.props, st)
		return nil
	})
}

// SetDealCloseDate pushes (or pulls) a deal's close date and bumps hs_lastmodifieddate.
func (s *Server) SetDealCloseDate(id string, date time.Time) error {
	return s.Update("deals", id, map[string]string{"closedate": formatTime(midnight(date))})
}

// Archive soft-deletes a record: it leaves search and the default list and appears with
// archived=true. As in HubSpot, archiving does not bump the last-modified stamp.
func (s *Server) Archive(objectType, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st, err := s.lookup(objectType, id)
	if err != nil {
		return err
	}
	c := o.clone()
	c.archived, c.archivedAt = true, s.now()
	st.put(c)
	return nil
}

// Restore brings an archived record back to life and bumps its last-modified stamp, so
// incremental reads see it again.
func (s *Server) Restore(objectType, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updateLocked(objectType, id, func(o *object) error {
		if !o.archived {
			return fmt.Errorf("hubspottest: %s %s is not archived", objectType, id)
		}
		o.archived, o.archivedAt = false, time.Time{}
		return nil
	})
}

// SetRawProperty makes the record serve name with the raw JSON value (a number instead of
// a string, an object …), to test malformed payloads. Filtering and sorting still use the
// record's real stamp.
func (s *Server) SetRawProperty(objectType, id, name string, raw json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st, err := s.lookup(objectType, id)
	if err != nil {
		return err
	}
	c := o.clone()
	c.raw = maps.Clone(o.raw)
	if c.raw == nil {
		c.raw = make(map[string]json.RawMessage)
	}
	c.raw[name] = raw
	st.put(c)
	return nil
}

// SetRawRecord makes the record serve raw verbatim in lists and searches (no id, wrong
// shapes …); it is still found by its real id and stamp.
func (s *Server) SetRawRecord(objectType, id string, raw json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, st, err := s.lookup(objectType, id)
	if err != nil {
		return err
	}
	c := o.clone()
	c.record = raw
	st.put(c)
	return nil
}

// GenerateOptions shape generated records.
type GenerateOptions struct {
	// SharedModified records (consecutive ids) share one last-modified millisecond.
	SharedModified int
	// Span and Age place the last-modified stamps uniformly in [now−Age−Span, now−Age]
	// (defaults 30 days and 1 hour).
	Span, Age time.Duration
}

func (o GenerateOptions) withDefaults() GenerateOptions {
	if o.Span <= 0 {
		o.Span = 30 * 24 * time.Hour
	}
	if o.Age <= 0 {
		o.Age = time.Hour
	}
	return o
}

// stamps returns n last-modified times: random in the span, SharedModified of them equal
// (the middle of the span).
func (s *Server) stamps(n int, o GenerateOptions) []int64 {
	o = o.withDefaults()
	hi := s.now().Add(-o.Age).UnixMilli()
	lo := hi - o.Span.Milliseconds()
	out := make([]int64, n)
	shared := min(o.SharedModified, n)
	start := (n - shared) / 2
	mid := lo + (hi-lo)/2
	for i := range out {
		if i >= start && i < start+shared {
			out[i] = mid
			continue
		}
		out[i] = lo + s.rng.Int64N(hi-lo+1)
	}
	return out
}

// newObject builds an unpublished record with the given stamp.
func (s *Server) newObject(t objectType, modified int64) *object {
	s.nextID++
	created := time.UnixMilli(modified - s.rng.Int64N(60*24*int64(time.Hour/time.Millisecond)))
	o := &object{id: s.nextID, props: make(map[string]string, 32), created: created, modified: modified, assoc: make(map[string][]int64)}
	o.props["createdate"] = formatTime(created)
	o.props[t.watermark] = formatTime(time.UnixMilli(modified))
	return o
}

// liveIDs returns the ids of the live records of objectType: what generated records pick
// their associations from (taken once, since linking changes the stored records).
func (s *Server) liveIDs(objectType string) []int64 {
	st := s.objects[objectType]
	st.index()
	ids := make([]int64, len(st.liveByID))
	for i, o := range st.liveByID {
		ids[i] = o.id
	}
	return ids
}

// pick returns a random id of ids.
func (s *Server) pick(ids []int64) (int64, bool) {
	if len(ids) == 0 {
		return 0, false
	}
	return ids[s.rng.IntN(len(ids))], true
}

func (s *Server) pickOwner() (string, bool) {
	var active []*owner
	for _, o := range s.owners {
		if !o.Archived {
			active = append(active, o)
		}
	}
	if len(active) == 0 {
		return "", false
	}
	return active[s.rng.IntN(len(active))].ID, true
}

var firstNames = []string{"Ana", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Goran", "Hana", "Ivo", "Jun"}
var lastNames = []string{"Silva", "Okafor", "Müller", "Ng", "Rossi", "Kowalski", "Haddad", "Sato", "Berg", "Diaz"}

// GenerateOwners adds n active owners spread over two teams and returns their ids.
func (s *Server) GenerateOwners(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, n)
	for i := range ids {
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]
		team := []string{"East", "West"}[i%2]
		ids[i] = s.addOwnerLocked(fmt.Sprintf("owner%d@example.com", len(s.owners)+1), first, last, team)
	}
	return ids
}

// GenerateCompanies adds n companies owned by existing owners.
func (s *Server) GenerateCompanies(n int, opts GenerateOptions) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.objects["companies"].typ
	objs := make([]*object, 0, n)
	for _, ts := range s.stamps(n, opts) {
		o := s.newObject(t, ts)
		o.props["name"] = fmt.Sprintf("Company %d", o.id)
		o.props["domain"] = fmt.Sprintf("company%d.example.com", o.id)
		if owner, ok := s.pickOwner(); ok {
			o.props["hubspot_owner_id"] = owner
		}
		objs = append(objs, o)
	}
	return s.publish("companies", objs)
}

var lifecycleStages = []string{"subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer"}

// GenerateContacts adds n contacts at existing companies, at lifecycle stages from
// subscriber to customer with the hs_lifecyclestage_<stage>_date of each stage reached.
func (s *Server) GenerateContacts(n int, opts GenerateOptions) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.objects["contacts"].typ
	companies := s.liveIDs("companies")
	objs := make([]*object, 0, n)
	for _, ts := range s.stamps(n, opts) {
		o := s.newObject(t, ts)
		first, last := firstNames[s.rng.IntN(len(firstNames))], lastNames[s.rng.IntN(len(lastNames))]
		o.props["firstname"], o.props["lastname"] = first, last
		o.props["email"] = fmt.Sprintf("contact%d@example.com", o.id)
		o.props["hs_analytics_source"] = []string{"ORGANIC_SEARCH", "PAID_SEARCH", "REFERRALS", "DIRECT_TRAFFIC"}[s.rng.IntN(4)]
		if owner, ok := s.pickOwner(); ok {
			o.props["hubspot_owner_id"] = owner
		}
		if company, ok := s.pick(companies); ok {
			o.props["associatedcompanyid"] = strconv.FormatInt(company, 10)
			s.linkLocked("contacts", o, "companies", company)
		}
		reached := s.rng.IntN(len(lifecycleStages))
		o.props["lifecyclestage"] = lifecycleStages[reached]
		step := (ts - o.created.UnixMilli()) / int64(len(lifecycleStages)+1)
		for i := 0; i <= reached; i++ {
			o.props["hs_lifecyclestage_"+lifecycleStages[i]+"_date"] = formatTime(time.UnixMilli(o.created.UnixMilli() + step*int64(i+1)))
		}
		objs = append(objs, o)
	}
	return s.publish("contacts", objs)
}

// GenerateDeals adds n deals in the default and the custom pipeline, at random stages with
// their stage history, amounts to the cent (some unset), close dates, owners, companies,
// last/next activity dates and, for half of them, an existing contact.
func (s *Server) GenerateDeals(n int, opts GenerateOptions) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.objects["deals"].typ
	companies, contacts := s.liveIDs("companies"), s.liveIDs("contacts")
	objs := make([]*object, 0, n)
	for _, ts := range s.stamps(n, opts) {
		o := s.newObject(t, ts)
		o.props["dealname"] = fmt.Sprintf("Deal %d", o.id)
		pipe := s.pipes[0]
		if s.rng.IntN(100) < 15 {
			pipe = s.pipes[1]
		}
		o.props["pipeline"] = pipe.ID
		switch r := s.rng.IntN(10); {
		case r < 7:
			o.props["amount"] = fmt.Sprintf("%d.%02d", 500+s.rng.IntN(200_000), s.rng.IntN(100))
		case r < 9:
			o.props["amount"] = strconv.Itoa(1000 * (1 + s.rng.IntN(100)))
		}
		o.props["deal_currency_code"] = "USD"
		if owner, ok := s.pickOwner(); ok {
			o.props["hubspot_owner_id"] = owner
		}
		if company, ok := s.pick(companies); ok {
			o.props["hs_primary_associated_company"] = strconv.FormatInt(company, 10)
			s.linkLocked("deals", o, "companies", company)
		}
		if len(contacts) > 0 && s.rng.IntN(2) == 0 {
			contact, _ := s.pick(contacts)
			s.linkLocked("deals", o, "contacts", contact)
		}
		o.props["closedate"] = formatTime(midnight(o.created.Add(time.Duration(10+s.rng.IntN(110)) * 24 * time.Hour)))
		s.placeInStage(o, pipe, ts)
		if s.rng.IntN(10) < 7 {
			o.props["notes_last_updated"] = formatTime(time.UnixMilli(ts - s.rng.Int64N(ts-o.created.UnixMilli()+1)))
		}
		if s.rng.IntN(10) < 4 {
			o.props["notes_next_activity_date"] = formatTime(time.UnixMilli(ts + s.rng.Int64N(20*24*3600*1000)))
		}
		objs = append(objs, o)
	}
	return s.publish("deals", objs)
}

// placeInStage puts a deal at a random stage of pipe, with hs_date_entered/exited stamps
// for the open stages it went through between creation and its last modification.
func (s *Server) placeInStage(o *object, pipe *pipelineDef, modified int64) {
	var open, closed []stageDef
	for _, st := range pipe.Stages {
		if st.Metadata.IsClosed == "true" {
			closed = append(closed, st)
		} else {
			open = append(open, st)
		}
	}
	var path []stageDef
	if s.rng.IntN(10) < 3 {
		path = append(path, open[:1+s.rng.IntN(len(open))]...)
		path = append(path, closed[s.rng.IntN(len(closed))])
	} else {
		path = open[:1+s.rng.IntN(len(open))]
	}
	created := o.created.UnixMilli()
	step := (modified - created) / int64(len(path)+1)
	for i, st := range path {
		entered := created + step*int64(i)
		o.props["hs_date_entered_"+st.ID] = formatTime(time.UnixMilli(entered))
		if i < len(path)-1 {
			o.props["hs_date_exited_"+st.ID] = formatTime(time.UnixMilli(created + step*int64(i+1)))
		}
	}
	last := path[len(path)-1]
	o.props["dealstage"] = last.ID
	setStageFlags(o.props, last)
	if last.Metadata.IsClosed == "true" {
		o.props["closedate"] = o.props["hs_date_entered_"+last.ID]
	}
}

func setStageFlags(props map[string]string, st stageDef) {
	closed := st.Metadata.IsClosed == "true"
	won := closed && st.Metadata.Probability == "1.0"
	props["hs_is_closed"] = strconv.FormatBool(closed)
	props["hs_is_closed_won"] = strconv.FormatBool(won)
	props["hs_is_closed_lost"] = strconv.FormatBool(closed && !won)
	props["hs_deal_stage_probability"] = st.Metadata.Probability
}

// EngagementTypes are the engagement object types: calls, emails, meetings, notes, tasks.
var EngagementTypes = []string{"calls", "emails", "meetings", "notes", "tasks"}

// GenerateEngagements adds n engagements of objectType (calls, emails, meetings, notes,
// tasks) associated with existing deals and contacts.
func (s *Server) GenerateEngagements(objectType string, n int, opts GenerateOptions) ([]string, error) {
	if !slices.Contains(EngagementTypes, objectType) {
		return nil, fmt.Errorf("hubspottest: %q is not an engagement type", objectType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.objects[objectType].typ
	deals, contacts := s.liveIDs("deals"), s.liveIDs("contacts")
	objs := make([]*object, 0, n)
	for _, ts := range s.stamps(n, opts) {
		o := s.newObject(t, ts)
		o.props["hs_timestamp"] = formatTime(time.UnixMilli(ts - s.rng.Int64N(3600*1000)))
		if owner, ok := s.pickOwner(); ok {
			o.props["hubspot_owner_id"] = owner
		}
		switch objectType {
		case "calls":
			o.props["hs_call_title"] = fmt.Sprintf("Call %d", o.id)
			o.props["hs_call_direction"] = []string{"INBOUND", "OUTBOUND"}[s.rng.IntN(2)]
			o.props["hs_call_status"] = "COMPLETED"
		case "emails":
			o.props["hs_email_subject"] = fmt.Sprintf("Re: proposal %d", o.id)
			o.props["hs_email_direction"] = []string{"EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"}[s.rng.IntN(3)]
		case "meetings":
			o.props["hs_meeting_title"] = fmt.Sprintf("Meeting %d", o.id)
			o.props["hs_meeting_outcome"] = []string{"COMPLETED", "SCHEDULED"}[s.rng.IntN(2)]
		case "notes":
			o.props["hs_note_body"] = fmt.Sprintf("<p>Note %d</p>\n<p>Follow up next week.</p>", o.id)
		case "tasks":
			o.props["hs_task_subject"] = fmt.Sprintf("Task %d", o.id)
			o.props["hs_task_status"] = []string{"COMPLETED", "NOT_STARTED"}[s.rng.IntN(2)]
		}
		if deal, ok := s.pick(deals); ok && s.rng.IntN(10) < 8 {
			s.linkLocked(objectType, o, "deals", deal)
		}
		if contact, ok := s.pick(contacts); ok && s.rng.IntN(10) < 7 {
			s.linkLocked(objectType, o, "contacts", contact)
		}
		objs = append(objs, o)
	}
	return s.publish(objectType, objs), nil
}

func (s *Server) publish(objectType string, objs []*object) []string {
	st := s.objects[objectType]
	ids := make([]string, len(objs))
	for i, o := range objs {
		st.put(o)
		ids[i] = strconv.FormatInt(o.id, 10)
	}
	return ids
}

// Population sizes a generated portal.
type Population struct {
	Owners, Companies, Contacts, Deals int
	// EngagementsPerType engagements of each of the five types.
	EngagementsPerType int
	// SharedModified deals share one last-modified millisecond.
	SharedModified int
	// ArchivedDeals of the deals are archived.
	ArchivedDeals int
}

// Populate generates a whole portal: owners, companies, contacts, deals (some archived) and
// engagements, referencing each other.
func (s *Server) Populate(p Population) error {
	s.GenerateOwners(p.Owners)
	s.GenerateCompanies(p.Companies, GenerateOptions{})
	s.GenerateContacts(p.Contacts, GenerateOptions{})
	deals := s.GenerateDeals(p.Deals, GenerateOptions{SharedModified: p.SharedModified})
	for i := 0; i < p.ArchivedDeals && i < len(deals); i++ {
		if err := s.Archive("deals", deals[len(deals)-1-i]); err != nil {
			return err
		}
	}
	for _, t := range EngagementTypes {
		if _, err := s.GenerateEngagements(t, p.EngagementsPerType, GenerateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

func midnight(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
