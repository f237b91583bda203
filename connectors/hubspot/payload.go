package hubspot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

// pageBody is a list or search answer; results are decoded one by one so that one bad
// record does not sink the page.
type pageBody struct {
	Total   *int              `json:"total"`
	Results []json.RawMessage `json:"results"`
	Paging  *struct {
		Next *struct {
			After string `json:"after"`
		} `json:"next"`
	} `json:"paging"`
}

func (p pageBody) next() string {
	if p.Paging == nil || p.Paging.Next == nil {
		return ""
	}
	return p.Paging.Next.After
}

// objectBody is a SimplePublicObject (with associations on list calls).
type objectBody struct {
	ID           json.RawMessage            `json:"id"`
	Properties   map[string]json.RawMessage `json:"properties"`
	CreatedAt    string                     `json:"createdAt"`
	UpdatedAt    string                     `json:"updatedAt"`
	Archived     bool                       `json:"archived"`
	ArchivedAt   string                     `json:"archivedAt"`
	Associations map[string]struct {
		Results []struct {
			ID json.RawMessage `json:"id"`
		} `json:"results"`
	} `json:"associations"`
}

// record is one decoded object with typed property access. The first property that
// cannot be read is kept in err, so the record is skipped with that reason.
type record struct {
	id           string
	numID        int64
	raw          json.RawMessage
	props        map[string]json.RawMessage
	body         objectBody
	modified     time.Time
	associations map[string][]string
	// convertedDeal is the deal a lead contact converted into (contacts only).
	convertedDeal dealLink
	err           error
}

// decodeRecord decodes one result. Records whose id is missing or not numeric, or whose
// shape is wrong, come back as a SkippedRecord naming what is wrong.
func decodeRecord(entity pipeline.Entity, index int, raw json.RawMessage, watermark string) (*record, *connectors.SkippedRecord) {
	var b objectBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, &connectors.SkippedRecord{Entity: entity, ExternalID: bestEffortID(raw),
			Reason: fmt.Sprintf("result #%d is not a HubSpot object: %v", index, err)}
	}
	id, ok := jsonString(b.ID)
	if !ok || id == "" {
		return nil, &connectors.SkippedRecord{Entity: entity, Reason: fmt.Sprintf("result #%d has no id (payload starts %q)", index, start(raw, 120))}
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil, &connectors.SkippedRecord{Entity: entity, ExternalID: id, Reason: fmt.Sprintf("id %q is not numeric", id)}
	}
	r := &record{id: id, numID: n, raw: raw, props: b.Properties, body: b}
	// Search answers carry every requested property, unset ones as null; list answers leave
	// unset ones out. Dropping the nulls keeps Raw the same for both, so a full re-read of
	// unchanged records writes nothing.
	if dropNulls(b.Properties) {
		r.raw = withProperties(raw, b.Properties)
	}
	if bytes.Contains(raw, []byte(`"associations"`)) {
		// Lists answer associations inline, searches never: Raw is the object without them
		// either way.
		r.raw = withoutField(r.raw, "associations")
	}
	if len(b.Associations) > 0 {
		r.associations = make(map[string][]string, len(b.Associations))
		for typ, a := range b.Associations {
			for _, res := range a.Results {
				if to, ok := jsonString(res.ID); ok && to != "" {
					r.associations[typ] = append(r.associations[typ], to)
				}
			}
		}
	}
	if watermark != "" {
		r.modified = r.time(watermark)
		if r.modified.IsZero() && r.err == nil {
			r.modified = parseTimeOrZero(b.UpdatedAt)
		}
		if r.err != nil {
			return nil, r.skipped(entity)
		}
		if r.modified.IsZero() {
			return nil, &connectors.SkippedRecord{Entity: entity, ExternalID: id, Reason: fmt.Sprintf("%s %s has no %s", entity, id, watermark)}
		}
	}
	return r, nil
}

func bestEffortID(raw json.RawMessage) string {
	var b struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(raw, &b) != nil {
		return ""
	}
	id, _ := jsonString(b.ID)
	return id
}

// jsonString reads a JSON string or number as text.
func jsonString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	}
	if raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') {
		return string(raw), true
	}
	return "", false
}

func (r *record) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *record) skipped(entity pipeline.Entity) *connectors.SkippedRecord {
	return &connectors.SkippedRecord{Entity: entity, ExternalID: r.id, Reason: fmt.Sprintf("%s %s: %v", entity, r.id, r.err)}
}

// has reports whether property name is set (present and not null or empty).
func (r *record) has(name string) bool {
	v, ok := r.props[name]
	if !ok {
		return false
	}
	v = bytes.TrimSpace(v)
	return len(v) > 0 && string(v) != "null" && string(v) != `""`
}

// str returns a string property ("" when unset). HubSpot sends every value as a string;
// anything else is recorded as an error.
func (r *record) str(name string) string {
	v, ok := r.props[name]
	if !ok {
		return ""
	}
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	if v[0] != '"' {
		r.fail("property %s: want a string, got %s", name, start(v, 40))
		return ""
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1])
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		r.fail("property %s: %v", name, err)
	}
	return s
}

// time parses a date property: ISO 8601 (any precision), a date, or epoch milliseconds.
func (r *record) time(name string) time.Time {
	s := r.str(name)
	if s == "" {
		return time.Time{}
	}
	t, err := parseTime(s)
	if err != nil {
		r.fail("property %s: %v", name, err)
	}
	return t
}

func parseTime(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (want ISO 8601 or epoch milliseconds)", s)
}

func parseTimeOrZero(s string) time.Time {
	t, _ := parseTime(s)
	return t
}

// decimal parses an exact decimal property (amounts to the cent and beyond).
func (r *record) decimal(name string) decimal.NullDecimal {
	s := strings.TrimSpace(r.str(name))
	if s == "" {
		return decimal.NullDecimal{}
	}
	d, err := decimal.NewFromString(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		r.fail("property %s: %q is not a number", name, s)
		return decimal.NullDecimal{}
	}
	return decimal.NullDecimal{Decimal: d, Valid: true}
}

// probability parses a 0..1 probability property (nil when unset).
func (r *record) probability(name string) *decimal.Decimal {
	d := r.decimal(name)
	if !d.Valid {
		return nil
	}
	if d.Decimal.IsNegative() || d.Decimal.GreaterThan(decimal.NewFromInt(1)) {
		r.fail("property %s: probability %s is outside 0..1", name, d.Decimal)
		return nil
	}
	return &d.Decimal
}

// bool parses "true"/"false" ("" is false).
func (r *record) bool(name string) bool {
	switch s := r.str(name); strings.ToLower(s) {
	case "", "false":
		return false
	case "true":
		return true
	default:
		r.fail("property %s: %q is not true or false", name, s)
		return false
	}
}

// base fills the common record fields: id, vendor timestamps and the raw payload.
func (r *record) base() pipeline.Record {
	created := r.time("createdate")
	if created.IsZero() {
		created = parseTimeOrZero(r.body.CreatedAt)
	}
	updated := r.modified
	if updated.IsZero() {
		updated = parseTimeOrZero(r.body.UpdatedAt)
	}
	return pipeline.Record{ExternalID: r.id, CreatedAt: created, UpdatedAt: updated, Raw: r.raw}
}

func midnightUTC(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// dropNulls deletes the null values of props and reports whether there were any.
func dropNulls(props map[string]json.RawMessage) bool {
	dropped := false
	for k, v := range props {
		if string(v) == "null" {
			delete(props, k)
			dropped = true
		}
	}
	return dropped
}

// withoutField returns the object payload raw without its field name.
func withoutField(raw json.RawMessage, name string) json.RawMessage {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return raw
	}
	if _, ok := fields[name]; !ok {
		return raw
	}
	delete(fields, name)
	out, err := json.Marshal(fields)
	if err != nil {
		return raw
	}
	return out
}
