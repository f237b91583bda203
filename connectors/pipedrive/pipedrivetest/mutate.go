package pipedrivetest

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// The mutation API changes the account between (or during) syncs the way the Pipedrive UI
// does: every edit bumps update_time to the vendor clock unless the edit sets it itself,
// moving a deal to another stage sets stage_change_time, closing it sets won/lost/close
// times, and a change to a deal's last or next activity bumps the deal.

// now is the vendor clock, to the second like Pipedrive's timestamps.
func (s *Server) now() time.Time { return s.opts.Now().UTC().Truncate(time.Second) }

func (s *Server) newID() int {
	s.nextID++
	return s.nextID
}

func notFound(kind string, id any) error {
	return fmt.Errorf("pipedrivetest: %s %v not found", kind, id)
}

// stamp fills zero add/update times with the vendor clock.
func (s *Server) stamp(add, update *Time) {
	if add.Std().IsZero() {
		*add = T(s.now())
	}
	if update.Std().IsZero() {
		*update = *add
	}
}

// touch sets update_time to now unless the edit changed it.
func (s *Server) touch(before Time, update *Time) {
	if update.Std().Equal(before.Std()) {
		*update = T(s.now())
	}
}

// AddUser adds a user (ID assigned when 0; Created/Modified default to now) and returns it.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == 0 {
		u.ID = s.newID()
	}
	if u.Created.IsZero() {
		u.Created = s.now()
	}
	if u.Modified.IsZero() {
		u.Modified = u.Created
	}
	s.users[u.ID] = &u
	return u
}

// UpdateUser edits user id (Modified is bumped).
func (s *Server) UpdateUser(id int, edit func(*User)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return notFound("user", id)
	}
	edit(u)
	u.Modified = s.now()
	return nil
}

// AddPipeline adds a pipeline and returns it.
func (s *Server) AddPipeline(p Pipeline) Pipeline {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == 0 {
		p.ID = s.newID()
	}
	s.stamp(&p.AddTime, &p.UpdateTime)
	s.pipelines.put(&p)
	return p
}

// AddStage adds a stage and returns it.
func (s *Server) AddStage(st Stage) Stage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.ID == 0 {
		st.ID = s.newID()
	}
	s.stamp(&st.AddTime, &st.UpdateTime)
	s.stages.put(&st)
	return st
}

// UpdateStage edits stage id.
func (s *Server) UpdateStage(id int, edit func(*Stage)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stages.rows[id]
	if !ok {
		return notFound("stage", id)
	}
	before := st.UpdateTime
	edit(st)
	s.touch(before, &st.UpdateTime)
	s.stages.changed()
	return nil
}

// DeleteStage deletes stage id (it is no longer listed).
func (s *Server) DeleteStage(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.stages.rows[id]; !ok {
		return notFound("stage", id)
	}
	s.stages.remove(id)
	return nil
}

// AddOrganization adds an organization and returns it.
func (s *Server) AddOrganization(o Organization) Organization {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.ID == 0 {
		o.ID = s.newID()
	}
	s.stamp(&o.AddTime, &o.UpdateTime)
	s.organizations.put(&o)
	return o
}

// UpdateOrganization edits organization id.
func (s *Server) UpdateOrganization(id int, edit func(*Organization)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.organizations.rows[id]
	if !ok {
		return notFound("organization", id)
	}
	before := o.UpdateTime
	edit(o)
	s.touch(before, &o.UpdateTime)
	s.organizations.changed()
	return nil
}

// DeleteOrganization deletes organization id (it is no longer listed).
func (s *Server) DeleteOrganization(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.organizations.rows[id]; !ok {
		return notFound("organization", id)
	}
	s.organizations.remove(id)
	return nil
}

// AddPerson adds a person and returns it.
func (s *Server) AddPerson(p Person) Person {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.ID == 0 {
		p.ID = s.newID()
	}
	s.stamp(&p.AddTime, &p.UpdateTime)
	s.persons.put(&p)
	return p
}

// UpdatePerson edits person id.
func (s *Server) UpdatePerson(id int, edit func(*Person)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.persons.rows[id]
	if !ok {
		return notFound("person", id)
	}
	before := p.UpdateTime
	edit(p)
	s.touch(before, &p.UpdateTime)
	s.persons.changed()
	return nil
}

// DeletePerson deletes person id (it is no longer listed).
func (s *Server) DeletePerson(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.persons.rows[id]; !ok {
		return notFound("person", id)
	}
	s.persons.remove(id)
	return nil
}

// AddDeal adds a deal (status defaults to open) and returns it.
func (s *Server) AddDeal(d Deal) Deal {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.ID == 0 {
		d.ID = s.newID()
	}
	if d.Status == "" {
		d.Status = "open"
	}
	if d.Value == "" {
		d.Value = "0"
	}
	s.stamp(&d.AddTime, &d.UpdateTime)
	s.deals.put(&d)
	return d
}

// UpdateDeal edits deal id like the UI does: update_time is bumped, a stage move sets
// stage_change_time, winning or losing sets won_time/lost_time and close_time, reopening
// clears them.
func (s *Server) UpdateDeal(id int, edit func(*Deal)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deals.rows[id]
	if !ok || d.IsDeleted {
		return notFound("deal", id)
	}
	before := *d
	edit(d)
	now := T(s.now())
	s.touch(before.UpdateTime, &d.UpdateTime)
	if d.StageID != before.StageID && d.StageChangeTime == before.StageChangeTime {
		d.StageChangeTime = &now
	}
	if d.Status != before.Status {
		switch d.Status {
		case "won":
			d.WonTime, d.CloseTime, d.LostTime = &now, &now, nil
		case "lost":
			d.LostTime, d.CloseTime, d.WonTime = &now, &now, nil
		case "open":
			d.WonTime, d.LostTime, d.CloseTime = nil, nil, nil
		}
	}
	s.deals.changed()
	return nil
}

// DeleteDeal deletes deal id: it leaves the default list and is listed with status=deleted
// until Pipedrive purges it 30 days later.
func (s *Server) DeleteDeal(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deals.rows[id]
	if !ok || d.IsDeleted {
		return notFound("deal", id)
	}
	d.IsDeleted = true
	d.deletedAt = s.now()
	d.UpdateTime = T(d.deletedAt)
	s.deals.changed()
	return nil
}

// RestoreDeal undoes the deletion of deal id (possible until it is purged).
func (s *Server) RestoreDeal(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deals.rows[id]
	if !ok || !d.IsDeleted || d.deletedAt.Before(s.opts.Now().Add(-purgeAfter)) {
		return notFound("deleted deal", id)
	}
	d.IsDeleted = false
	d.deletedAt = time.Time{}
	d.UpdateTime = T(s.now())
	s.deals.changed()
	return nil
}

// ArchiveDeal archives deal id: it moves from /deals to /deals/archived.
func (s *Server) ArchiveDeal(id int) error {
	return s.UpdateDeal(id, func(d *Deal) {
		d.IsArchived = true
		d.ArchiveTime = TimePtr(s.now())
	})
}

// AddActivity adds an activity and returns it.
func (s *Server) AddActivity(a Activity) Activity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.ID == 0 {
		a.ID = s.newID()
	}
	if a.Type == "" {
		a.Type = "task"
	}
	if a.DueDate == "" {
		a.DueDate = s.now().Format(time.DateOnly)
	}
	s.stamp(&a.AddTime, &a.UpdateTime)
	stored := &a
	s.withDealBump(nil, stored, func() {
		s.activities.put(stored)
		s.link(stored)
	})
	return a
}

// UpdateActivity edits activity id; marking it done sets marked_as_done_time.
func (s *Server) UpdateActivity(id int, edit func(*Activity)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.activities.rows[id]
	if !ok {
		return notFound("activity", id)
	}
	before := *a
	s.withDealBump(&before, a, func() {
		s.unlink(a)
		edit(a)
		s.touch(before.UpdateTime, &a.UpdateTime)
		if a.Done && !before.Done && a.MarkedAsDoneTime == nil {
			a.MarkedAsDoneTime = TimePtr(s.now())
		}
		if !a.Done {
			a.MarkedAsDoneTime = nil
		}
		s.link(a)
		s.activities.changed()
	})
	return nil
}

// DeleteActivity deletes activity id (it is no longer listed).
func (s *Server) DeleteActivity(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.activities.rows[id]
	if !ok {
		return notFound("activity", id)
	}
	s.withDealBump(a, nil, func() {
		s.unlink(a)
		s.activities.remove(id)
	})
	return nil
}

func (s *Server) link(a *Activity) {
	if a.DealID == nil {
		return
	}
	m := s.dealActivity[*a.DealID]
	if m == nil {
		m = make(map[int]*Activity)
		s.dealActivity[*a.DealID] = m
	}
	m[a.ID] = a
}

func (s *Server) unlink(a *Activity) {
	if a.DealID != nil {
		delete(s.dealActivity[*a.DealID], a.ID)
	}
}

// withDealBump runs change and bumps the update_time of every deal (before's and after's)
// whose last or next activity it changed, as Pipedrive updates those fields on the deal.
func (s *Server) withDealBump(before, after *Activity, change func()) {
	deals := map[int]bool{}
	for _, a := range []*Activity{before, after} {
		if a != nil && a.DealID != nil {
			deals[*a.DealID] = true
		}
	}
	type pair struct{ last, next *int }
	was := map[int]pair{}
	for id := range deals {
		l, n := s.dealActivityIDs(id)
		was[id] = pair{l, n}
	}
	change()
	for id := range deals {
		l, n := s.dealActivityIDs(id)
		if d, ok := s.deals.rows[id]; ok && (!eqPtr(l, was[id].last) || !eqPtr(n, was[id].next)) {
			d.UpdateTime = T(s.now())
			s.deals.changed()
		}
	}
}

func eqPtr(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// AddLead adds a lead (ID assigned when "") and returns it.
func (s *Server) AddLead(l Lead) Lead {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.ID == "" {
		l.ID = s.uuid()
	}
	if l.AddTime.IsZero() {
		l.AddTime = s.opts.Now().UTC().Truncate(time.Millisecond)
	}
	if l.UpdateTime.IsZero() {
		l.UpdateTime = l.AddTime
	}
	s.leads[l.ID] = &l
	s.leadsVersion++
	return l
}

// UpdateLead edits lead id (update_time is bumped unless the edit sets it).
func (s *Server) UpdateLead(id string, edit func(*Lead)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leads[id]
	if !ok {
		return notFound("lead", id)
	}
	before := l.UpdateTime
	edit(l)
	if l.UpdateTime.Equal(before) {
		l.UpdateTime = s.opts.Now().UTC().Truncate(time.Millisecond)
	}
	s.leadsVersion++
	return nil
}

// DeleteLead deletes lead id (as converting it to a deal does).
func (s *Server) DeleteLead(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.leads[id]; !ok {
		return notFound("lead", id)
	}
	delete(s.leads, id)
	s.leadsVersion++
	return nil
}

// uuid returns a random (seeded) version-4 UUID string.
func (s *Server) uuid() string {
	hi, lo := s.rng.Uint64(), s.rng.Uint64()
	hi = hi&^0xf000 | 0x4000
	lo = lo&^(0xc<<60) | 0x8<<60
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, (hi>>16)&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

// Deal returns a copy of deal id (deleted deals included until purged).
func (s *Server) Deal(id int) (Deal, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.deals.rows[id]
	if !ok {
		return Deal{}, false
	}
	return *d, true
}

// Snapshot is a copy of the account's live records (deleted deals excluded, archived deals
// included), each slice ascending by id.
type Snapshot struct {
	Users         []User
	Pipelines     []Pipeline
	Stages        []Stage
	Organizations []Organization
	Persons       []Person
	Deals         []Deal
	Activities    []Activity
	Leads         []Lead
	// DeletedDealIDs are the deals deleted and not yet purged.
	DeletedDealIDs []int
}

// Snapshot copies the live records, for comparing a sync's result with the account.
func (s *Server) Snapshot() Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var snap Snapshot
	for _, id := range slices.Sorted(maps.Keys(s.users)) {
		snap.Users = append(snap.Users, *s.users[id])
	}
	snap.Pipelines = copyRows(s.pipelines)
	snap.Stages = copyRows(s.stages)
	snap.Organizations = copyRows(s.organizations)
	snap.Persons = copyRows(s.persons)
	snap.Activities = copyRows(s.activities)
	purgeBefore := s.opts.Now().Add(-purgeAfter)
	for _, d := range s.deals.sorted("id") {
		switch {
		case !d.IsDeleted:
			snap.Deals = append(snap.Deals, *d)
		case !d.deletedAt.Before(purgeBefore):
			snap.DeletedDealIDs = append(snap.DeletedDealIDs, d.ID)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.leads)) {
		snap.Leads = append(snap.Leads, *s.leads[id])
	}
	return snap
}

func copyRows[R interface {
	*E
	row
}, E any](t *table[R]) []E {
	rows := t.sorted("id")
	out := make([]E, len(rows))
	for i, r := range rows {
		out[i] = *r
	}
	return out
}
