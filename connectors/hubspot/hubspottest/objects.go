package hubspottest

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// objectType is a CRM object type the fake serves.
type objectType struct {
	name      string // path name: "deals"
	id        string // type id: "0-3"
	singular  string // association label stem: "deal"
	watermark string // last-modified property
	defaults  []string
}

var objectTypes = []objectType{
	{"contacts", "0-1", "contact", "lastmodifieddate", []string{"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"}},
	{"companies", "0-2", "company", "hs_lastmodifieddate", []string{"createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"}},
	{"deals", "0-3", "deal", "hs_lastmodifieddate", []string{"amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate", "hs_object_id", "pipeline"}},
	{"tasks", "0-27", "task", "hs_lastmodifieddate", []string{"createdate", "hs_lastmodifieddate", "hs_object_id"}},
	{"notes", "0-46", "note", "hs_lastmodifieddate", []string{"createdate", "hs_lastmodifieddate", "hs_object_id"}},
	{"meetings", "0-47", "meeting", "hs_lastmodifieddate", []string{"createdate", "hs_lastmodifieddate", "hs_object_id"}},
	{"calls", "0-48", "call", "hs_lastmodifieddate", []string{"createdate", "hs_lastmodifieddate", "hs_object_id"}},
	{"emails", "0-49", "email", "hs_lastmodifieddate", []string{"createdate", "hs_lastmodifieddate", "hs_object_id"}},
}

// object is one CRM record. Published objects are never modified: mutations replace them
// with a changed copy, so handlers can encode them after releasing the lock.
type object struct {
	id         int64
	props      map[string]string
	raw        map[string]json.RawMessage // property values served verbatim (malformed payloads)
	record     json.RawMessage            // the whole record served verbatim (malformed payloads)
	created    time.Time
	modified   int64 // ms; the watermark property
	archived   bool
	archivedAt time.Time
	assoc      map[string][]int64 // object type name → ids; kept on both records
}

func (o *object) clone() *object {
	c := *o
	c.props = make(map[string]string, len(o.props))
	for k, v := range o.props {
		c.props[k] = v
	}
	c.assoc = make(map[string][]int64, len(o.assoc))
	for k, ids := range o.assoc {
		c.assoc[k] = slices.Clone(ids)
	}
	return &c
}

// objectStore holds one object type with its indexes, rebuilt after mutations.
type objectStore struct {
	typ      objectType
	byID     map[int64]*object
	dirty    bool
	live     []*object // by (modified, id)
	liveByID []*object // by id
	archived []*object // by id
}

func newObjectStore(t objectType) *objectStore {
	return &objectStore{typ: t, byID: make(map[int64]*object)}
}

func (st *objectStore) put(o *object) {
	st.byID[o.id] = o
	st.dirty = true
}

func (st *objectStore) index() {
	if !st.dirty {
		return
	}
	st.live, st.liveByID, st.archived = st.live[:0], st.liveByID[:0], st.archived[:0]
	for _, o := range st.byID {
		if o.archived {
			st.archived = append(st.archived, o)
		} else {
			st.liveByID = append(st.liveByID, o)
		}
	}
	byID := func(a, b *object) int { return cmp.Compare(a.id, b.id) }
	slices.SortFunc(st.liveByID, byID)
	slices.SortFunc(st.archived, byID)
	st.live = append(st.live, st.liveByID...)
	slices.SortStableFunc(st.live, func(a, b *object) int { return cmp.Compare(a.modified, b.modified) })
	st.dirty = false
}

func (s *Server) store(name string) (*objectStore, bool) {
	if st, ok := s.objects[name]; ok {
		return st, true
	}
	for _, t := range objectTypes {
		if t.id == name {
			return s.objects[t.name], true
		}
	}
	return nil, false
}

// searchRequest is the body of POST /crm/v3/objects/{type}/search.
type searchRequest struct {
	FilterGroups []struct {
		Filters []searchFilter `json:"filters"`
	} `json:"filterGroups"`
	Sorts      []json.RawMessage `json:"sorts"`
	Properties []string          `json:"properties"`
	Limit      *int              `json:"limit"`
	After      json.RawMessage   `json:"after"`
	Query      string            `json:"query"`
}

type searchFilter struct {
	PropertyName string            `json:"propertyName"`
	Operator     string            `json:"operator"`
	Value        json.RawMessage   `json:"value"`
	HighValue    json.RawMessage   `json:"highValue"`
	Values       []json.RawMessage `json:"values"`
}

type searchSort struct {
	PropertyName string `json:"propertyName"`
	Direction    string `json:"direction"`
}

const (
	searchMaxLimit   = 200
	searchMaxResults = 10_000
	listMaxLimit     = 100
)

func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request, typeName string) {
	var req searchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON: "+err.Error())
		return
	}
	limit := 10
	if req.Limit != nil {
		limit = *req.Limit
	}
	if limit < 1 || limit > searchMaxLimit {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("limit must be between 1 and %d, got %d", searchMaxLimit, limit))
		return
	}
	after := 0
	if s := rawString(req.After); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("after must be a non-negative integer, got %q", s))
			return
		}
		after = n
	}
	if after >= searchMaxResults {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR",
			fmt.Sprintf("There was a problem with the request: paging is limited to %d results (after=%d)", searchMaxResults, after))
		return
	}
	if msg := checkFilterLimits(req); msg != "" {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", msg)
		return
	}
	sorts := make([]searchSort, 0, len(req.Sorts))
	for _, raw := range req.Sorts {
		var ss searchSort
		if err := json.Unmarshal(raw, &ss); err != nil {
			// The spec types sorts as strings; the API takes objects. Accept "prop" as ASC.
			var name string
			if json.Unmarshal(raw, &name) != nil {
				writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "sorts must be objects {propertyName, direction}")
				return
			}
			ss = searchSort{PropertyName: name, Direction: "ASCENDING"}
		}
		sorts = append(sorts, ss)
	}

	s.mu.Lock()
	st, ok := s.store(typeName)
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Unable to infer object type from: "+typeName)
		return
	}
	st.index()
	matches, err := st.search(req, sorts)
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", err.Error())
		return
	}

	end := min(after+limit, len(matches))
	page := matches[min(after, len(matches)):end]
	var buf bytes.Buffer
	buf.Grow(256 + len(page)*1024)
	buf.WriteString(`{"total":`)
	buf.WriteString(strconv.Itoa(len(matches)))
	buf.WriteString(`,"results":[`)
	props := requestedProperties(st.typ, req.Properties)
	for i, o := range page {
		if i > 0 {
			buf.WriteByte(',')
		}
		appendObject(&buf, st.typ, o, props, nil)
	}
	buf.WriteByte(']')
	if end < len(matches) {
		fmt.Fprintf(&buf, `,"paging":{"next":{"after":"%d","link":"?after=%d"}}`, end, end)
	}
	buf.WriteByte('}')
	writeRaw(w, http.StatusOK, buf.Bytes())
}

func checkFilterLimits(req searchRequest) string {
	if len(req.FilterGroups) > 5 {
		return fmt.Sprintf("at most 5 filterGroups are allowed, got %d", len(req.FilterGroups))
	}
	total := 0
	for _, g := range req.FilterGroups {
		if len(g.Filters) > 10 {
			return fmt.Sprintf("at most 10 filters per group are allowed, got %d", len(g.Filters))
		}
		total += len(g.Filters)
	}
	if total > 25 {
		return fmt.Sprintf("at most 25 filters in total are allowed, got %d", total)
	}
	return ""
}

// search returns the live objects matching req in the requested order.
func (st *objectStore) search(req searchRequest, sorts []searchSort) ([]*object, error) {
	var matches []*object
	ordered := false // matches are in (modified, id) order
	switch len(req.FilterGroups) {
	case 0:
		matches, ordered = st.live, true
	case 1:
		cands, rest, err := st.narrow(req.FilterGroups[0].Filters)
		if err != nil {
			return nil, err
		}
		ordered = true
		if len(rest) == 0 {
			matches = cands
			break
		}
		for _, o := range cands {
			ok, err := st.matchAll(o, rest)
			if err != nil {
				return nil, err
			}
			if ok {
				matches = append(matches, o)
			}
		}
	default:
		for _, o := range st.live {
			for _, g := range req.FilterGroups {
				ok, err := st.matchAll(o, g.Filters)
				if err != nil {
					return nil, err
				}
				if ok {
					matches = append(matches, o)
					break
				}
			}
		}
		ordered = true
	}
	if len(sorts) == 0 {
		sorts = []searchSort{{PropertyName: "hs_object_id", Direction: "ASCENDING"}}
	}
	srt := sorts[0] // only the first sort is honoured
	desc := strings.EqualFold(srt.Direction, "DESCENDING")
	var order func(a, b *object) int
	switch srt.PropertyName {
	case st.typ.watermark:
		if ordered && !desc {
			return matches, nil
		}
		order = func(a, b *object) int { return cmp.Or(cmp.Compare(a.modified, b.modified), cmp.Compare(a.id, b.id)) }
	case "hs_object_id":
		order = func(a, b *object) int { return cmp.Compare(a.id, b.id) }
	default:
		order = func(a, b *object) int {
			return cmp.Or(cmp.Compare(a.props[srt.PropertyName], b.props[srt.PropertyName]), cmp.Compare(a.id, b.id))
		}
	}
	if desc {
		asc := order
		order = func(a, b *object) int { return asc(b, a) }
	}
	if slices.IsSortedFunc(matches, order) {
		return matches, nil
	}
	sorted := slices.Clone(matches)
	slices.SortFunc(sorted, order)
	return sorted, nil
}

// narrow applies the group's range filters on the watermark through the (modified, id)
// index and returns the candidates and the filters left to check one by one.
func (st *objectStore) narrow(filters []searchFilter) ([]*object, []searchFilter, error) {
	lo, hi := int64(-1<<63), int64(1<<63-1)
	var rest []searchFilter
	for _, f := range filters {
		if f.PropertyName != st.typ.watermark {
			rest = append(rest, f)
			continue
		}
		v, err := filterMillis(f.Value)
		switch f.Operator {
		case "GTE", "GT", "LTE", "LT", "EQ":
			if err != nil {
				return nil, nil, fmt.Errorf("filter on %s: %w", f.PropertyName, err)
			}
		}
		switch f.Operator {
		case "GTE":
			lo = max(lo, v)
		case "GT":
			lo = max(lo, v+1)
		case "LTE":
			hi = min(hi, v)
		case "LT":
			hi = min(hi, v-1)
		case "EQ":
			lo, hi = max(lo, v), min(hi, v)
		case "BETWEEN":
			if err != nil {
				return nil, nil, fmt.Errorf("filter on %s: %w", f.PropertyName, err)
			}
			high, err := filterMillis(f.HighValue)
			if err != nil {
				return nil, nil, fmt.Errorf("filter on %s: highValue: %w", f.PropertyName, err)
			}
			lo, hi = max(lo, v), min(hi, high)
		default:
			rest = append(rest, f)
		}
	}
	if lo > hi {
		return nil, rest, nil
	}
	from := sort.Search(len(st.live), func(i int) bool { return st.live[i].modified >= lo })
	to := sort.Search(len(st.live), func(i int) bool { return st.live[i].modified > hi })
	return st.live[from:to], rest, nil
}

func (st *objectStore) matchAll(o *object, filters []searchFilter) (bool, error) {
	for _, f := range filters {
		ok, err := st.match(o, f)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (st *objectStore) match(o *object, f searchFilter) (bool, error) {
	var have string
	var present bool
	switch f.PropertyName {
	case "hs_object_id":
		have, present = strconv.FormatInt(o.id, 10), true
	case st.typ.watermark:
		have, present = strconv.FormatInt(o.modified, 10), true
	default:
		have, present = o.props[f.PropertyName]
		present = present && have != ""
	}
	switch f.Operator {
	case "HAS_PROPERTY":
		return present, nil
	case "NOT_HAS_PROPERTY":
		return !present, nil
	case "IN", "NOT_IN":
		in := false
		for _, v := range f.Values {
			if present && compareValues(have, rawString(v)) == 0 {
				in = true
			}
		}
		return in == (f.Operator == "IN"), nil
	}
	if !present {
		return f.Operator == "NEQ", nil
	}
	c := compareValues(have, rawString(f.Value))
	switch f.Operator {
	case "EQ":
		return c == 0, nil
	case "NEQ":
		return c != 0, nil
	case "LT":
		return c < 0, nil
	case "LTE":
		return c <= 0, nil
	case "GT":
		return c > 0, nil
	case "GTE":
		return c >= 0, nil
	case "BETWEEN":
		return c >= 0 && compareValues(have, rawString(f.HighValue)) <= 0, nil
	}
	return false, fmt.Errorf("operator %q is not supported by hubspottest", f.Operator)
}

// compareValues compares a property value with a filter value: as numbers when both are
// numeric, as instants when the property is a date and the filter epoch milliseconds or a
// date, else as strings.
func compareValues(have, want string) int {
	if a, err := strconv.ParseFloat(have, 64); err == nil {
		if b, err := strconv.ParseFloat(want, 64); err == nil {
			return cmp.Compare(a, b)
		}
	}
	if t, ok := parseTime(have); ok {
		if ms, err := filterMillis(json.RawMessage(strconv.Quote(want))); err == nil {
			return cmp.Compare(t.UnixMilli(), ms)
		}
	}
	return cmp.Compare(have, want)
}

// filterMillis reads a date filter value: epoch milliseconds (string or number) or ISO 8601.
func filterMillis(raw json.RawMessage) (int64, error) {
	s := rawString(raw)
	if s == "" {
		return 0, fmt.Errorf("missing value")
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	if t, ok := parseTime(s); ok {
		return t.UnixMilli(), nil
	}
	return 0, fmt.Errorf("value %q is neither epoch milliseconds nor an ISO 8601 date", s)
}

func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// rawString returns a JSON string's content or a JSON number's text.
func rawString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func requestedProperties(t objectType, requested []string) []string {
	if len(requested) == 0 {
		return t.defaults
	}
	props := make([]string, 0, len(requested)+3)
	props = append(props, requested...)
	for _, p := range []string{"hs_object_id", "createdate", t.watermark} {
		if !slices.Contains(props, p) {
			props = append(props, p)
		}
	}
	return props
}

// serveList is GET /crm/v3/objects/{type}: live (or archived=true) objects by id, `after` paging.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, typeName string) {
	q := r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > listMaxLimit {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("limit must be between 1 and %d, got %q", listMaxLimit, v))
			return
		}
		limit = n
	}
	var afterID int64
	if v := q.Get("after"); v != "" {
		id, err := decodeAfter(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("invalid after %q", v))
			return
		}
		afterID = id
	}
	archived := q.Get("archived") == "true"
	var props, assocTypes []string
	for _, p := range q["properties"] {
		props = append(props, splitCSV(p)...)
	}
	for _, a := range q["associations"] {
		assocTypes = append(assocTypes, splitCSV(a)...)
	}

	s.mu.Lock()
	st, ok := s.store(typeName)
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Unable to infer object type from: "+typeName)
		return
	}
	st.index()
	objs := st.liveByID
	if archived {
		objs = st.archived
	}
	from := sort.Search(len(objs), func(i int) bool { return objs[i].id >= afterID })
	end := min(from+limit, len(objs))
	page := objs[from:end]
	var next int64
	if end < len(objs) {
		next = objs[end].id
	}
	s.mu.Unlock()

	var buf bytes.Buffer
	buf.WriteString(`{"results":[`)
	fields := requestedProperties(st.typ, props)
	if len(props) == 0 {
		fields = st.typ.defaults
	}
	for i, o := range page {
		if i > 0 {
			buf.WriteByte(',')
		}
		appendObject(&buf, st.typ, o, fields, assocTypes)
	}
	buf.WriteByte(']')
	if next != 0 {
		after := encodeAfter(next)
		fmt.Fprintf(&buf, `,"paging":{"next":{"after":%q,"link":%q}}`, after, "?after="+after)
	}
	buf.WriteByte('}')
	writeRaw(w, http.StatusOK, buf.Bytes())
}

func encodeAfter(id int64) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(id, 10) + "\n"))
}

func decodeAfter(s string) (int64, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func splitCSV(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// serveBatchRead is POST /crm/v3/objects/{type}/batch/read: objects by id with the
// requested properties; unknown ids are reported in errors with HTTP 207.
func (s *Server) serveBatchRead(w http.ResponseWriter, r *http.Request, typeName string) {
	var req struct {
		Inputs []struct {
			ID json.RawMessage `json:"id"`
		} `json:"inputs"`
		Properties []string `json:"properties"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON: "+err.Error())
		return
	}
	if len(req.Inputs) > listMaxLimit {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("at most %d inputs are allowed, got %d", listMaxLimit, len(req.Inputs)))
		return
	}
	archived := r.URL.Query().Get("archived") == "true"
	s.mu.Lock()
	st, ok := s.store(typeName)
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Unable to infer object type from: "+typeName)
		return
	}
	var found []*object
	var missing []string
	for _, in := range req.Inputs {
		id, err := strconv.ParseInt(rawString(in.ID), 10, 64)
		o, ok := st.byID[id]
		if err != nil || !ok || o.archived != archived {
			missing = append(missing, rawString(in.ID))
			continue
		}
		found = append(found, o)
	}
	s.mu.Unlock()

	var buf bytes.Buffer
	now := formatTime(s.Now())
	buf.WriteString(`{"status":"COMPLETE","results":[`)
	props := requestedProperties(st.typ, req.Properties)
	for i, o := range found {
		if i > 0 {
			buf.WriteByte(',')
		}
		appendObject(&buf, st.typ, o, props, nil)
	}
	fmt.Fprintf(&buf, `],"startedAt":%q,"completedAt":%q`, now, now)
	status := http.StatusOK
	if len(missing) > 0 {
		status = http.StatusMultiStatus
		ctx, _ := json.Marshal(map[string][]string{"ids": missing})
		fmt.Fprintf(&buf, `,"numErrors":1,"errors":[{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some %s objects, they may be deleted or not exist.","context":%s}]`,
			st.typ.name, ctx)
	}
	buf.WriteByte('}')
	writeRaw(w, status, buf.Bytes())
}

// serveAssociations is POST /crm/v4/associations/{from}/{to}/batch/read. Inputs without
// associations are reported in errors with HTTP 207, as HubSpot does.
func (s *Server) serveAssociations(w http.ResponseWriter, r *http.Request, fromType, toType string) {
	var req struct {
		Inputs []struct {
			ID json.RawMessage `json:"id"`
		} `json:"inputs"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Invalid input JSON: "+err.Error())
		return
	}
	if len(req.Inputs) > 1000 {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("at most 1000 inputs are allowed, got %d", len(req.Inputs)))
		return
	}
	s.mu.Lock()
	from, okFrom := s.store(fromType)
	to, okTo := s.store(toType)
	if !okFrom || !okTo {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", fmt.Sprintf("Unable to infer object types from: %s, %s", fromType, toType))
		return
	}
	type assocType struct {
		Category string  `json:"category"`
		TypeID   int     `json:"typeId"`
		Label    *string `json:"label"`
	}
	type target struct {
		ToObjectID       int64       `json:"toObjectId"`
		AssociationTypes []assocType `json:"associationTypes"`
	}
	type result struct {
		From struct {
			ID string `json:"id"`
		} `json:"from"`
		To []target `json:"to"`
	}
	type failure struct {
		Status      string            `json:"status"`
		Category    string            `json:"category"`
		SubCategory string            `json:"subCategory"`
		Message     string            `json:"message"`
		Context     map[string]any    `json:"context"`
		Links       map[string]string `json:"links,omitempty"`
	}
	results := []result{}
	var failures []failure
	for _, in := range req.Inputs {
		id, err := strconv.ParseInt(rawString(in.ID), 10, 64)
		o, ok := from.byID[id]
		var targets []int64
		if err == nil && ok && !o.archived {
			targets = o.assoc[to.typ.name]
		}
		if len(targets) == 0 {
			failures = append(failures, failure{
				Status: "error", Category: "OBJECT_NOT_FOUND", SubCategory: "crm.associations.NO_ASSOCIATIONS_FOUND",
				Message: fmt.Sprintf("No %s is associated with %s %s.", to.typ.singular, from.typ.singular, rawString(in.ID)),
				Context: map[string]any{"fromObjectId": []string{rawString(in.ID)}},
			})
			continue
		}
		var res result
		res.From.ID = strconv.FormatInt(id, 10)
		for _, t := range targets {
			res.To = append(res.To, target{ToObjectID: t, AssociationTypes: []assocType{{Category: "HUBSPOT_DEFINED", TypeID: 1}}})
		}
		results = append(results, res)
	}
	s.mu.Unlock()
	now := s.Now().Format(time.RFC3339Nano)
	body := map[string]any{"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
	status := http.StatusOK
	if len(failures) > 0 {
		body["errors"], body["numErrors"] = failures, len(failures)
		status = http.StatusMultiStatus
	}
	writeJSON(w, status, body)
}

// appendObject encodes o as a SimplePublicObject with the given properties (all values
// strings or null) and, for list calls, the requested associations.
func appendObject(buf *bytes.Buffer, t objectType, o *object, props, assocTypes []string) {
	if o.record != nil {
		buf.Write(o.record)
		return
	}
	buf.WriteString(`{"id":"`)
	buf.WriteString(strconv.FormatInt(o.id, 10))
	buf.WriteString(`","properties":{`)
	for i, p := range props {
		if i > 0 {
			buf.WriteByte(',')
		}
		appendJSONString(buf, p)
		buf.WriteByte(':')
		if raw, ok := o.raw[p]; ok {
			buf.Write(raw)
			continue
		}
		switch v, ok := o.props[p]; {
		case p == "hs_object_id":
			appendJSONString(buf, strconv.FormatInt(o.id, 10))
		case !ok:
			buf.WriteString("null")
		default:
			appendJSONString(buf, v)
		}
	}
	buf.WriteString(`},"createdAt":"`)
	buf.WriteString(formatTime(o.created))
	buf.WriteString(`","updatedAt":"`)
	buf.WriteString(formatTime(time.UnixMilli(o.modified)))
	buf.WriteString(`","archived":`)
	buf.WriteString(strconv.FormatBool(o.archived))
	if o.archived {
		buf.WriteString(`,"archivedAt":"`)
		buf.WriteString(formatTime(o.archivedAt))
		buf.WriteByte('"')
	}
	if len(assocTypes) > 0 {
		buf.WriteString(`,"associations":{`)
		first := true
		for _, a := range assocTypes {
			ids := o.assoc[a]
			if len(ids) == 0 {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			appendJSONString(buf, a)
			buf.WriteString(`:{"results":[`)
			for i, id := range ids {
				if i > 0 {
					buf.WriteByte(',')
				}
				fmt.Fprintf(buf, `{"id":"%d","type":"%s_to_%s"}`, id, t.singular, singular(a))
			}
			buf.WriteString(`]}`)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte('}')
}

// singular names an object type in association type labels ("deals" → "deal").
func singular(name string) string {
	for _, t := range objectTypes {
		if t.name == name {
			return t.singular
		}
	}
	return name
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// appendJSONString writes s as a JSON string.
func appendJSONString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			default:
				fmt.Fprintf(buf, `\u%04x`, c)
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(s[start:i])
			buf.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		i += size
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}
