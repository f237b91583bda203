package hubspot

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

const (
	// searchMaxLimit is the search API's page size limit.
	searchMaxLimit = 200
	// listMaxLimit is the list endpoints' page size limit.
	listMaxLimit = 100
)

// objectSpec describes a CRM object stream.
type objectSpec struct {
	stream     string
	objectType string
	// watermark is the last-modified property searches filter and sort on.
	watermark string
	entities  []pipeline.Entity
	reconcile bool
	// properties lists the properties to request; complete is false when more may be
	// needed, depending on the records (deals of pipelines not loaded yet).
	properties func() (props []string, complete bool)
	// complete, when the properties were not complete, reads the properties records lack
	// (asked lists what was asked).
	complete func(ctx context.Context, records []*record, asked []string) error
	// associations are the object types whose associated ids mapRecord needs: asked inline
	// by lists, batch-read after searches for the records associate accepts (nil: all).
	associations []string
	associate    func(r *record) bool
	// link, when set, runs on every page's records after their associations are known and
	// before they are mapped (it may read more).
	link func(ctx context.Context, records []*record) error
	// mapRecord appends r's pipeline records to b; it records bad fields in r.err.
	mapRecord func(r *record, b *pipeline.Batch)
}

func (c *Connector) objectSpecs() []objectSpec {
	fixed := func(props ...string) func() ([]string, bool) {
		return func() ([]string, bool) { return props, true }
	}
	specs := []objectSpec{
		{
			stream: StreamCompanies, objectType: "companies", watermark: "hs_lastmodifieddate",
			entities: []pipeline.Entity{pipeline.EntityAccounts}, reconcile: true,
			properties: fixed(companyProperties...), mapRecord: mapCompany,
		},
		{
			stream: StreamContacts, objectType: "contacts", watermark: "lastmodifieddate",
			entities: []pipeline.Entity{pipeline.EntityContacts, pipeline.EntityLeads}, reconcile: true,
			properties:   fixed(contactProperties...),
			associations: []string{"deals"}, associate: isLead, link: c.linkConvertedDeals,
			mapRecord: mapContact,
		},
		{
			stream: StreamDeals, objectType: "deals", watermark: "hs_lastmodifieddate",
			entities: []pipeline.Entity{pipeline.EntityDeals}, reconcile: true,
			properties: c.dealProperties, complete: c.completeDealProperties, mapRecord: c.mapDeal,
		},
	}
	for _, e := range engagements {
		specs = append(specs, objectSpec{
			stream: e.stream, objectType: e.objectType, watermark: "hs_lastmodifieddate",
			entities:     []pipeline.Entity{pipeline.EntityActivities},
			properties:   fixed(e.properties()...),
			associations: []string{"deals", "contacts"},
			mapRecord:    e.mapRecord,
		})
	}
	return specs
}

// objectReader reads an object stream: searches for Incremental, the list endpoint for Full.
func (c *Connector) objectReader(spec objectSpec) streamReader {
	return func(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
		if req.Mode == connectors.Full {
			return c.readList(ctx, spec, req.Cursor)
		}
		return c.readIncremental(ctx, spec, req)
	}
}

// searchCursor is the state of an incremental stream. Between runs only Since is set:
// the largest last-modified value read (the vendor's value, never our clock). During a run
// the window's upper bound Hi is fixed and From is where the next search starts; in Drain
// mode the records modified exactly at From are read in id order after AfterID.
//
// Each search asks for the window [From, Hi] sorted by last-modified time and never pages
// with `after`, so the 10,000-result cap is never reached. A full page holds back the
// records of its last millisecond T (ties beyond the page may exist) and the next search
// starts at T; a page made only of T's records switches to draining T by id, which works
// however many records share one millisecond. Every record is emitted exactly once per
// window, and resuming from any cursor loses nothing.
type searchCursor struct {
	Since   int64 `json:"since,omitempty"`
	Hi      int64 `json:"hi,omitempty"`
	From    int64 `json:"from,omitempty"`
	Drain   bool  `json:"drain,omitempty"`
	AfterID int64 `json:"after_id,omitempty"`
}

func decodeSearchCursor(c connectors.Cursor) (searchCursor, error) {
	var cur searchCursor
	if c == "" {
		return cur, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(c)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cur); err != nil {
		return cur, connectors.Permanent(fmt.Errorf("hubspot: cursor %q is not an incremental cursor of this connector: %v", c, err))
	}
	return cur, nil
}

func (cur searchCursor) encode() connectors.Cursor {
	b, _ := json.Marshal(cur)
	return connectors.Cursor(b)
}

// searchRequest is the body of POST /crm/v3/objects/{type}/search.
type searchRequest struct {
	FilterGroups []filterGroup `json:"filterGroups"`
	Sorts        []searchSort  `json:"sorts"`
	Properties   []string      `json:"properties"`
	Limit        int           `json:"limit"`
}

type filterGroup struct {
	Filters []filter `json:"filters"`
}

type filter struct {
	PropertyName string `json:"propertyName"`
	Operator     string `json:"operator"`
	Value        string `json:"value"`
}

type searchSort struct {
	PropertyName string `json:"propertyName"`
	Direction    string `json:"direction"`
}

func (c *Connector) readIncremental(ctx context.Context, spec objectSpec, req connectors.ReadRequest) (connectors.Page, error) {
	cur, err := decodeSearchCursor(req.Cursor)
	if err != nil {
		return connectors.Page{}, err
	}
	starting := cur.Hi == 0
	if starting {
		cur.From = 0
		if cur.Since > 0 {
			cur.From = cur.Since + 1
			if c.cfg.Lookback > 0 {
				cur.From = cur.Since - c.cfg.Lookback.Milliseconds()
			}
		}
		// The window ends at the sync start; the vendor's clock (its Date header) minus
		// the lag bounds it further once the first answer arrives.
		cur.Hi = math.MaxInt64
		if !req.SyncStart.IsZero() {
			cur.Hi = req.SyncStart.UnixMilli()
		}
		if cur.From > cur.Hi {
			return connectors.Page{Next: searchCursor{Since: cur.Since}.encode(), Done: true}, nil
		}
	}
	body := searchRequest{Limit: c.cfg.PageSize}
	what := fmt.Sprintf("searching %s modified from %s to %s", spec.objectType, formatMillis(cur.From), formatMillis(cur.Hi))
	if cur.Drain {
		body.FilterGroups = []filterGroup{{Filters: []filter{
			{PropertyName: spec.watermark, Operator: "EQ", Value: strconv.FormatInt(cur.From, 10)},
			{PropertyName: "hs_object_id", Operator: "GT", Value: strconv.FormatInt(cur.AfterID, 10)},
		}}}
		body.Sorts = []searchSort{{PropertyName: "hs_object_id", Direction: "ASCENDING"}}
		what = fmt.Sprintf("searching %s modified at %s with id after %d", spec.objectType, formatMillis(cur.From), cur.AfterID)
	} else {
		body.FilterGroups = []filterGroup{{Filters: []filter{
			{PropertyName: spec.watermark, Operator: "GTE", Value: strconv.FormatInt(cur.From, 10)},
			{PropertyName: spec.watermark, Operator: "LTE", Value: strconv.FormatInt(cur.Hi, 10)},
		}}}
		body.Sorts = []searchSort{{PropertyName: spec.watermark, Direction: "ASCENDING"}}
	}
	var page connectors.Page
	pb, resp, records, err := c.fetchObjects(ctx, spec, &page, func(props []string, out *pageBody) (response, error) {
		body.Properties = props
		return c.call(ctx, "POST", "/crm/v3/objects/"+spec.objectType+"/search", nil, body, out)
	})
	if err != nil {
		return connectors.Page{}, fmt.Errorf("%s: %w", what, err)
	}
	if starting {
		vendorNow := resp.vendorNow
		if vendorNow.IsZero() {
			vendorNow = c.cfg.NowFunc() // no Date header: our clock is all there is
		}
		cur.Hi = min(cur.Hi, vendorNow.Add(-c.cfg.Lag).UnixMilli())
		c.cfg.Logger.DebugContext(ctx, "hubspot: incremental window", "stream", spec.stream,
			"from", formatMillis(cur.From), "to", formatMillis(cur.Hi), "vendor_now", resp.vendorNow)
	}
	more := pb.next() != ""

	var emit []*record
	next := cur
	if cur.Drain {
		var lastID int64
		for _, r := range records {
			lastID = max(lastID, r.numID)
			if r.modified.UnixMilli() == cur.From && r.numID > cur.AfterID {
				emit = append(emit, r)
			}
		}
		if len(emit) > 0 {
			next.Since = max(next.Since, cur.From)
		}
		switch {
		case more && lastID <= cur.AfterID:
			return connectors.Page{}, fmt.Errorf("%s: the search made no progress (ids not after %d)", what, cur.AfterID)
		case more:
			next.AfterID = lastID
		default:
			next.Drain, next.AfterID = false, 0
			next.From = cur.From + 1
		}
	} else {
		beyond := false // a record past Hi: everything after it is too (ascending order)
		var inWindow []*record
		for _, r := range records {
			switch ms := r.modified.UnixMilli(); {
			case ms > cur.Hi:
				beyond = true
			case ms >= cur.From:
				inWindow = append(inWindow, r)
			}
			// Records before From are late arrivals of an earlier window (search results are
			// eventually consistent); they were read there or are read next run.
		}
		if !more || beyond {
			emit = inWindow
			for _, r := range emit {
				next.Since = max(next.Since, r.modified.UnixMilli())
			}
			next.From = cur.Hi + 1
		} else {
			if len(inWindow) == 0 {
				return connectors.Page{}, fmt.Errorf("%s: a full page had no usable record in the window", what)
			}
			var last int64
			for _, r := range inWindow {
				last = max(last, r.modified.UnixMilli())
			}
			for _, r := range inWindow {
				if ms := r.modified.UnixMilli(); ms < last {
					emit = append(emit, r)
					next.Since = max(next.Since, ms)
				}
			}
			next.From = last
			// A page made of one millisecond, or ending in a long run of it (a bulk update,
			// likely to fill the next page too), continues by reading that millisecond by id.
			next.Drain = len(emit) == 0 || len(inWindow)-len(emit) >= max(1, c.cfg.PageSize/4)
			if next.Drain {
				c.cfg.Logger.InfoContext(ctx, "hubspot: reading records that share one modification time by id",
					"stream", spec.stream, "modified", formatMillis(last), "in_page", len(inWindow)-len(emit))
			}
		}
	}

	slices.SortFunc(emit, func(a, b *record) int {
		return cmp.Or(a.modified.Compare(b.modified), cmp.Compare(a.numID, b.numID))
	})
	if err := c.mapRecords(ctx, spec, emit, &page); err != nil {
		return connectors.Page{}, fmt.Errorf("%s: %w", what, err)
	}
	if next.From > next.Hi {
		page.Done = true
		next = searchCursor{Since: next.Since}
	}
	page.Next = next.encode()
	return page, nil
}

// formatMillis renders a window bound for error messages.
func formatMillis(ms int64) string {
	if ms == math.MaxInt64 {
		return "now"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// fetchObjects sends a page request built by send with spec's properties and decodes the
// records (the undecodable ones go to page.Skipped). When the properties may be
// incomplete (deals before the pipelines are known), spec.complete fills in what the
// records need; an empty page never costs those extra requests.
func (c *Connector) fetchObjects(ctx context.Context, spec objectSpec, page *connectors.Page,
	send func(props []string, out *pageBody) (response, error),
) (pageBody, response, []*record, error) {
	props, complete := spec.properties()
	var pb pageBody
	resp, err := send(props, &pb)
	if err != nil {
		return pb, resp, nil, err
	}
	records := make([]*record, 0, len(pb.Results))
	for i, raw := range pb.Results {
		r, skipped := decodeRecord(spec.entities[0], i, raw, spec.watermark)
		if skipped != nil {
			page.Skipped = append(page.Skipped, *skipped)
			continue
		}
		records = append(records, r)
	}
	if !complete && spec.complete != nil && len(records) > 0 {
		if err := spec.complete(ctx, records, props); err != nil {
			return pb, resp, nil, err
		}
	}
	return pb, resp, records, nil
}

// mapRecords fetches the associations spec needs, runs spec.link and maps records into
// page. Associations cost one batch read per associated type for the page's records that
// need them and were not read inline, none when there are no such records.
func (c *Connector) mapRecords(ctx context.Context, spec objectSpec, records []*record, page *connectors.Page) error {
	if len(spec.associations) > 0 {
		var need []*record
		for _, r := range records {
			if r.associations == nil && (spec.associate == nil || spec.associate(r)) {
				need = append(need, r)
			}
		}
		if len(need) > 0 {
			ids := make([]string, len(need))
			for i, r := range need {
				ids[i] = r.id
			}
			found := make(map[string]map[string][]string, len(spec.associations))
			for _, to := range spec.associations {
				m, err := c.readAssociations(ctx, spec.objectType, to, ids)
				if err != nil {
					return err
				}
				found[to] = m
			}
			for _, r := range need {
				r.associations = make(map[string][]string, len(found))
				for to, m := range found {
					r.associations[to] = m[r.id]
				}
			}
		}
	}
	if spec.link != nil && len(records) > 0 {
		if err := spec.link(ctx, records); err != nil {
			return err
		}
	}
	for _, r := range records {
		var b pipeline.Batch
		spec.mapRecord(r, &b)
		if r.err != nil {
			page.Skipped = append(page.Skipped, *r.skipped(spec.entities[0]))
			continue
		}
		page.Append(b)
	}
	return nil
}
