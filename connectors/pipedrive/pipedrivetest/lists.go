package pipedrivetest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// purgeAfter is how long Pipedrive keeps deleted deals before purging them for good.
const purgeAfter = 30 * 24 * time.Hour

// maxLimit is the largest page size the list endpoints accept.
const maxLimit = 500

// listParams are the common v2 list parameters.
type listParams struct {
	limit        int
	field        string
	desc         bool
	from         *position
	since, until *int64
	ids          map[int]bool
}

// v2Cursor is the decoded form of a v2 next_cursor: the first record of the next page.
type v2Cursor struct {
	Field         string          `json:"field"`
	FieldValue    json.RawMessage `json:"fieldValue"`
	SortDirection string          `json:"sortDirection"`
	ID            int             `json:"id"`
}

var timeFields = map[string]bool{"update_time": true, "add_time": true, "due_date": true}

func encodeCursor(field string, desc bool, p position) string {
	c := v2Cursor{Field: field, SortDirection: "asc", ID: p.id}
	if desc {
		c.SortDirection = "desc"
	}
	if timeFields[field] {
		c.FieldValue, _ = json.Marshal(time.Unix(p.value, 0).UTC().Format(time.RFC3339))
	} else {
		c.FieldValue, _ = json.Marshal(p.value)
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, field string, desc bool) (*position, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("invalid cursor")
	}
	var c v2Cursor
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("invalid cursor")
	}
	dir := "asc"
	if desc {
		dir = "desc"
	}
	if c.Field != field || c.SortDirection != dir {
		return nil, fmt.Errorf("cursor was issued for sort_by=%s sort_direction=%s", c.Field, c.SortDirection)
	}
	p := &position{id: c.ID}
	if timeFields[field] {
		var v string
		if err := json.Unmarshal(c.FieldValue, &v); err != nil {
			return nil, fmt.Errorf("invalid cursor")
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, fmt.Errorf("invalid cursor")
		}
		p.value = t.Unix()
	} else if err := json.Unmarshal(c.FieldValue, &p.value); err != nil {
		return nil, fmt.Errorf("invalid cursor")
	}
	return p, nil
}

// parseList reads the common parameters; sortFields are the endpoint's sort_by values.
func parseList(q url.Values, sortFields ...string) (listParams, error) {
	p := listParams{limit: 100, field: "id"}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, fmt.Errorf("Validation failed: limit: Expected a positive integer, received %q", v)
		}
		if n > maxLimit {
			return p, fmt.Errorf("Validation failed: limit: Number must be less than or equal to %d", maxLimit)
		}
		p.limit = n
	}
	if v := q.Get("sort_by"); v != "" {
		if !slices.Contains(sortFields, v) {
			return p, fmt.Errorf("Validation failed: sort_by: Invalid enum value. Expected %s, received '%s'",
				strings.Join(sortFields, " | "), v)
		}
		p.field = v
	}
	switch v := q.Get("sort_direction"); v {
	case "", "asc":
	case "desc":
		p.desc = true
	default:
		return p, fmt.Errorf("Validation failed: sort_direction: Invalid enum value. Expected 'asc' | 'desc', received '%s'", v)
	}
	for _, name := range []string{"updated_since", "updated_until"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return p, fmt.Errorf("Validation failed: %s: Invalid RFC3339 date-time %q", name, v)
		}
		// Record times have one-second precision, so a fractional bound rounds up for both
		// update_time >= since and update_time < until.
		sec := t.Unix()
		if t.Nanosecond() > 0 {
			sec++
		}
		if name == "updated_since" {
			p.since = &sec
		} else {
			p.until = &sec
		}
	}
	if v := q.Get("ids"); v != "" {
		parts := strings.Split(v, ",")
		if len(parts) > 100 {
			return p, fmt.Errorf("Validation failed: ids: Array must contain at most 100 element(s)")
		}
		p.ids = make(map[int]bool, len(parts))
		for _, part := range parts {
			id, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil {
				return p, fmt.Errorf("Validation failed: ids: Expected number, received %q", part)
			}
			p.ids[id] = true
		}
	}
	if v := q.Get("cursor"); v != "" {
		from, err := decodeCursor(v, p.field, p.desc)
		if err != nil {
			return p, err
		}
		p.from = from
	}
	return p, nil
}

// intFilter returns a predicate for an optional integer query parameter.
func intFilter(q url.Values, name string) (func(*int) bool, error) {
	v := q.Get(name)
	if v == "" {
		return func(*int) bool { return true }, nil
	}
	want, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("Validation failed: %s: Expected number, received %q", name, v)
	}
	return func(got *int) bool { return got != nil && *got == want }, nil
}

func ptr[T any](v T) *T { return &v }

// v2Page is the v2 list envelope.
type v2Page struct {
	Success        bool `json:"success"`
	Data           any  `json:"data"`
	AdditionalData struct {
		NextCursor *string `json:"next_cursor"`
	} `json:"additional_data"`
}

func serveV2[R row](w http.ResponseWriter, t *table[R], p listParams, match func(R) bool, render func([]R) any) {
	q := listQuery[R]{field: p.field, desc: p.desc, limit: p.limit, from: p.from, since: p.since, until: p.until, match: match}
	if p.ids != nil {
		q.match = func(r R) bool { return p.ids[r.rowID()] && (match == nil || match(r)) }
	}
	rows, next := t.list(q)
	page := v2Page{Success: true}
	if rows == nil {
		page.Data = []any{}
	} else {
		page.Data = render(rows)
	}
	if next != nil {
		page.AdditionalData.NextCursor = ptr(encodeCursor(p.field, p.desc, *next))
	}
	writeJSON(w, http.StatusOK, page)
}

func identity[R any](rows []R) any { return rows }

func badRequest(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, err.Error(), "Please check developers.pipedrive.com")
}

// dealsLister serves GET /api/v2/deals (archived=false) and /api/v2/deals/archived.
func dealsLister(archived bool) func(*Server, http.ResponseWriter, url.Values) {
	return func(s *Server, w http.ResponseWriter, q url.Values) {
		p, err := parseList(q, "id", "update_time", "add_time")
		if err != nil {
			badRequest(w, err)
			return
		}
		var filters []func(*Deal) bool
		for _, f := range []struct {
			name string
			get  func(*Deal) *int
		}{
			{"owner_id", func(d *Deal) *int { return &d.OwnerID }},
			{"person_id", func(d *Deal) *int { return d.PersonID }},
			{"org_id", func(d *Deal) *int { return d.OrgID }},
			{"pipeline_id", func(d *Deal) *int { return &d.PipelineID }},
			{"stage_id", func(d *Deal) *int { return &d.StageID }},
		} {
			pred, err := intFilter(q, f.name)
			if err != nil {
				badRequest(w, err)
				return
			}
			get := f.get
			filters = append(filters, func(d *Deal) bool { return pred(get(d)) })
		}
		statuses := map[string]bool{}
		if v := q.Get("status"); v != "" {
			for _, st := range strings.Split(v, ",") {
				switch st {
				case "open", "won", "lost", "deleted":
					statuses[st] = true
				default:
					badRequest(w, fmt.Errorf("Validation failed: status: Invalid enum value. Expected 'open' | 'won' | 'lost' | 'deleted', received '%s'", st))
					return
				}
			}
		}
		withActivities := false
		if v := q.Get("include_fields"); v != "" {
			for _, f := range strings.Split(v, ",") {
				if f == "last_activity_id" || f == "next_activity_id" {
					withActivities = true
				}
			}
		}

		s.mu.RLock()
		defer s.mu.RUnlock()
		purgeBefore := s.opts.Now().Add(-purgeAfter)
		match := func(d *Deal) bool {
			if d.IsDeleted {
				if !statuses["deleted"] || d.deletedAt.Before(purgeBefore) {
					return false
				}
			} else {
				if d.IsArchived != archived {
					return false
				}
				if len(statuses) > 0 && !statuses[d.Status] {
					return false
				}
			}
			for _, f := range filters {
				if !f(d) {
					return false
				}
			}
			return true
		}
		render := identity[*Deal]
		if withActivities {
			render = func(deals []*Deal) any {
				out := make([]dealWithActivities, len(deals))
				for i, d := range deals {
					last, next := s.dealActivityIDs(d.ID)
					out[i] = dealWithActivities{Deal: d, LastActivityID: last, NextActivityID: next}
				}
				return out
			}
		}
		serveV2(w, s.deals, p, match, render)
	}
}

type dealWithActivities struct {
	*Deal
	LastActivityID *int `json:"last_activity_id"`
	NextActivityID *int `json:"next_activity_id"`
}

// dealActivityIDs returns the deal's last done and next undone activity, as Pipedrive keeps
// them on the deal. Callers hold the read lock.
func (s *Server) dealActivityIDs(dealID int) (last, next *int) {
	var lastA, nextA *Activity
	for _, a := range s.dealActivity[dealID] {
		if a.Done {
			if lastA == nil || a.due().After(lastA.due()) || (a.due().Equal(lastA.due()) && a.ID > lastA.ID) {
				lastA = a
			}
		} else if nextA == nil || a.due().Before(nextA.due()) || (a.due().Equal(nextA.due()) && a.ID < nextA.ID) {
			nextA = a
		}
	}
	if lastA != nil {
		last = ptr(lastA.ID)
	}
	if nextA != nil {
		next = ptr(nextA.ID)
	}
	return last, next
}

func (s *Server) listPersons(w http.ResponseWriter, q url.Values) {
	p, err := parseList(q, "id", "update_time", "add_time")
	if err != nil {
		badRequest(w, err)
		return
	}
	owner, err1 := intFilter(q, "owner_id")
	org, err2 := intFilter(q, "org_id")
	if err := firstErr(err1, err2); err != nil {
		badRequest(w, err)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	serveV2(w, s.persons, p, func(r *Person) bool { return owner(&r.OwnerID) && org(r.OrgID) }, identity[*Person])
}

func (s *Server) listOrganizations(w http.ResponseWriter, q url.Values) {
	p, err := parseList(q, "id", "update_time", "add_time")
	if err != nil {
		badRequest(w, err)
		return
	}
	owner, err := intFilter(q, "owner_id")
	if err != nil {
		badRequest(w, err)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	serveV2(w, s.organizations, p, func(r *Organization) bool { return owner(&r.OwnerID) }, identity[*Organization])
}

func (s *Server) listActivities(w http.ResponseWriter, q url.Values) {
	p, err := parseList(q, "id", "update_time", "add_time", "due_date")
	if err != nil {
		badRequest(w, err)
		return
	}
	owner, err1 := intFilter(q, "owner_id")
	deal, err2 := intFilter(q, "deal_id")
	person, err3 := intFilter(q, "person_id")
	org, err4 := intFilter(q, "org_id")
	if err := firstErr(err1, err2, err3, err4); err != nil {
		badRequest(w, err)
		return
	}
	lead := q.Get("lead_id")
	done := q.Get("done")
	if done != "" && done != "true" && done != "false" && done != "1" && done != "0" {
		badRequest(w, fmt.Errorf("Validation failed: done: Expected boolean, received %q", done))
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	serveV2(w, s.activities, p, func(a *Activity) bool {
		if lead != "" && (a.LeadID == nil || *a.LeadID != lead) {
			return false
		}
		if done != "" && a.Done != (done == "true" || done == "1") {
			return false
		}
		return owner(&a.OwnerID) && deal(a.DealID) && person(a.PersonID) && org(a.OrgID)
	}, identity[*Activity])
}

func (s *Server) listStages(w http.ResponseWriter, q url.Values) {
	if q.Has("updated_since") || q.Has("updated_until") {
		badRequest(w, fmt.Errorf("Validation failed: unknown query parameter updated_since/updated_until"))
		return
	}
	p, err := parseList(q, "id", "update_time", "add_time", "order_nr")
	if err != nil {
		badRequest(w, err)
		return
	}
	pipeline, err := intFilter(q, "pipeline_id")
	if err != nil {
		badRequest(w, err)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	serveV2(w, s.stages, p, func(st *Stage) bool { return pipeline(&st.PipelineID) }, identity[*Stage])
}

func (s *Server) listPipelines(w http.ResponseWriter, q url.Values) {
	if q.Has("updated_since") || q.Has("updated_until") {
		badRequest(w, fmt.Errorf("Validation failed: unknown query parameter updated_since/updated_until"))
		return
	}
	p, err := parseList(q, "id", "update_time", "add_time")
	if err != nil {
		badRequest(w, err)
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	serveV2(w, s.pipelines, p, nil, identity[*Pipeline])
}

// listUsers is GET /v1/users: every user, not paged.
func (s *Server) listUsers(w http.ResponseWriter, _ url.Values) {
	s.mu.RLock()
	ids := make([]int, 0, len(s.users))
	for id := range s.users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	data := make([]map[string]any, len(ids))
	for i, id := range ids {
		data[i] = s.users[id].wire()
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "data": data})
}

// leadViews caches sorted lead lists per sort expression.
type leadViews struct {
	version uint64
	sorted  map[string][]*Lead
}

// listLeads is GET /v1/leads with offset paging.
func (s *Server) listLeads(w http.ResponseWriter, q url.Values) {
	start, limit := 0, 100
	if v := q.Get("start"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			badRequest(w, fmt.Errorf("Validation failed: start: Expected a non-negative integer, received %q", v))
			return
		}
		start = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			badRequest(w, fmt.Errorf("Validation failed: limit: Expected a positive integer, received %q", v))
			return
		}
		limit = min(n, maxLimit)
	}
	archived := q.Get("archived_status")
	switch archived {
	case "", "all", "archived", "not_archived":
	default:
		badRequest(w, fmt.Errorf("Validation failed: archived_status: Invalid enum value, received '%s'", archived))
		return
	}
	less, err := parseLeadSort(q.Get("sort"))
	if err != nil {
		badRequest(w, err)
		return
	}
	owner, err := intFilter(q, "owner_id")
	if err != nil {
		badRequest(w, err)
		return
	}

	s.mu.Lock() // the sorted view cache is rebuilt under the write lock
	sorted := s.sortedLeads(q.Get("sort"), less)
	var data []map[string]any
	more, seen := false, 0
	for _, l := range sorted {
		if (archived == "archived" && !l.IsArchived) || (archived == "not_archived" && l.IsArchived) || !owner(&l.OwnerID) {
			continue
		}
		if seen >= start {
			if len(data) == limit {
				more = true
				break
			}
			data = append(data, l.wire())
		}
		seen++
	}
	s.mu.Unlock()

	pagination := map[string]any{"start": start, "limit": limit, "more_items_in_collection": more}
	if more {
		pagination["next_start"] = start + limit
	}
	body := map[string]any{"success": true, "data": data, "additional_data": map[string]any{"pagination": pagination}}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) sortedLeads(expr string, less func(a, b *Lead) int) []*Lead {
	if s.leadViews.version != s.leadsVersion || s.leadViews.sorted == nil {
		s.leadViews = leadViews{version: s.leadsVersion, sorted: make(map[string][]*Lead)}
	}
	if v, ok := s.leadViews.sorted[expr]; ok {
		return v
	}
	v := make([]*Lead, 0, len(s.leads))
	for _, l := range s.leads {
		v = append(v, l)
	}
	slices.SortFunc(v, less)
	s.leadViews.sorted[expr] = v
	return v
}

// parseLeadSort parses "field DIR, field DIR" (default: id ascending); the id breaks ties.
func parseLeadSort(expr string) (func(a, b *Lead) int, error) {
	type key struct {
		cmp  func(a, b *Lead) int
		desc bool
	}
	fields := map[string]func(a, b *Lead) int{
		"id":          func(a, b *Lead) int { return strings.Compare(a.ID, b.ID) },
		"title":       func(a, b *Lead) int { return strings.Compare(a.Title, b.Title) },
		"owner_id":    func(a, b *Lead) int { return a.OwnerID - b.OwnerID },
		"add_time":    func(a, b *Lead) int { return a.AddTime.Compare(b.AddTime) },
		"update_time": func(a, b *Lead) int { return a.UpdateTime.Compare(b.UpdateTime) },
	}
	var keys []key
	for part := range strings.SplitSeq(expr, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, dir, _ := strings.Cut(part, " ")
		cmp, ok := fields[name]
		if !ok {
			return nil, fmt.Errorf("Validation failed: sort: unsupported field %q", name)
		}
		switch strings.ToUpper(strings.TrimSpace(dir)) {
		case "", "ASC":
			keys = append(keys, key{cmp: cmp})
		case "DESC":
			keys = append(keys, key{cmp: cmp, desc: true})
		default:
			return nil, fmt.Errorf("Validation failed: sort: unsupported direction %q", dir)
		}
	}
	keys = append(keys, key{cmp: fields["id"]})
	return func(a, b *Lead) int {
		for _, k := range keys {
			c := k.cmp(a, b)
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	}, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
