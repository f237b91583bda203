package hubspot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

// listCursor pages through list endpoints (Full reads, archived lists, owners) with the
// vendor's opaque `after` token.
type listCursor struct {
	Full  bool   `json:"full,omitempty"`
	After string `json:"after,omitempty"`
}

func decodeListCursor(c connectors.Cursor, full bool) (listCursor, error) {
	var cur listCursor
	if c == "" {
		cur.Full = full
		return cur, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(c)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cur); err != nil || cur.Full != full {
		mode := "an incremental"
		if full {
			mode = "a full"
		}
		return cur, connectors.Permanent(fmt.Errorf("hubspot: cursor %q is not %s list cursor of this connector", c, mode))
	}
	return cur, nil
}

func (cur listCursor) encode() connectors.Cursor {
	b, _ := json.Marshal(cur)
	return connectors.Cursor(b)
}

// readList reads a page of every live record of spec (Full mode: reconciliation), with
// associations inline. The last page has an empty Next.
func (c *Connector) readList(ctx context.Context, spec objectSpec, cursor connectors.Cursor) (connectors.Page, error) {
	cur, err := decodeListCursor(cursor, true)
	if err != nil {
		return connectors.Page{}, err
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(min(c.cfg.PageSize, listMaxLimit)))
	q.Set("archived", "false")
	if len(spec.associations) > 0 {
		q.Set("associations", strings.Join(spec.associations, ","))
	}
	if cur.After != "" {
		q.Set("after", cur.After)
	}
	var page connectors.Page
	pb, _, records, err := c.fetchObjects(ctx, spec, &page, func(props []string, out *pageBody) (response, error) {
		q.Set("properties", strings.Join(props, ","))
		return c.call(ctx, "GET", "/crm/v3/objects/"+spec.objectType, q, nil, out)
	})
	if err != nil {
		return connectors.Page{}, fmt.Errorf("listing %s after %q: %w", spec.objectType, cur.After, err)
	}
	for _, r := range records {
		if r.associations == nil {
			r.associations = map[string][]string{} // asked inline: none means none
		}
	}
	if err := c.mapRecords(ctx, spec, records, &page); err != nil {
		return connectors.Page{}, err
	}
	if after := pb.next(); after != "" {
		if after == cur.After {
			return connectors.Page{}, fmt.Errorf("listing %s after %q: the list made no progress", spec.objectType, cur.After)
		}
		page.Next = listCursor{Full: true, After: after}.encode()
		return page, nil
	}
	page.Done = true
	return page, nil
}

// archivedReader lists the archived records of objectType as deletions. The
// streams are re-read whole each run (HubSpot keeps archived records 90 days); a record
// restored since comes back through its normal stream, its last-modified stamp bumped.
func (c *Connector) archivedReader(objectType string) streamReader {
	return func(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
		cur, err := decodeListCursor(req.Cursor, false)
		if err != nil {
			return connectors.Page{}, err
		}
		q := url.Values{}
		q.Set("limit", strconv.Itoa(min(c.cfg.PageSize, listMaxLimit)))
		q.Set("archived", "true")
		q.Set("properties", "hs_object_id")
		if cur.After != "" {
			q.Set("after", cur.After)
		}
		var pb pageBody
		if _, err := c.call(ctx, "GET", "/crm/v3/objects/"+objectType, q, nil, &pb); err != nil {
			return connectors.Page{}, fmt.Errorf("listing archived %s after %q: %w", objectType, cur.After, err)
		}
		var page connectors.Page
		entity := entityOf(objectType)
		for i, raw := range pb.Results {
			r, skipped := decodeRecord(entity, i, raw, "")
			if skipped != nil {
				page.Skipped = append(page.Skipped, *skipped)
				continue
			}
			if !r.body.Archived {
				continue // the list answered live records: not a deletion
			}
			deletedAt := parseTimeOrZero(r.body.ArchivedAt)
			page.Deletions = append(page.Deletions, pipeline.Deletion{Entity: entity, ExternalID: r.id, DeletedAt: deletedAt})
			if entity == pipeline.EntityContacts {
				page.Deletions = append(page.Deletions, pipeline.Deletion{Entity: pipeline.EntityLeads, ExternalID: r.id, DeletedAt: deletedAt})
			}
		}
		switch after := pb.next(); {
		case after != "" && after == cur.After:
			return connectors.Page{}, fmt.Errorf("listing archived %s after %q: the list made no progress", objectType, cur.After)
		case after != "":
			page.Next = listCursor{After: after}.encode()
		default:
			page.Done = true
		}
		return page, nil
	}
}

func entityOf(objectType string) pipeline.Entity {
	switch objectType {
	case "companies":
		return pipeline.EntityAccounts
	case "contacts":
		return pipeline.EntityContacts
	case "deals":
		return pipeline.EntityDeals
	}
	return pipeline.EntityActivities
}

// readAssociations returns, for each id of fromType, the ids of toType associated with it
// (v4 batch read; ids without associations come back as 207 errors and are simply absent).
func (c *Connector) readAssociations(ctx context.Context, fromType, toType string, ids []string) (map[string][]string, error) {
	type input struct {
		ID string `json:"id"`
	}
	body := struct {
		Inputs []input `json:"inputs"`
	}{Inputs: make([]input, len(ids))}
	for i, id := range ids {
		body.Inputs[i].ID = id
	}
	var out struct {
		Results []struct {
			From struct {
				ID json.RawMessage `json:"id"`
			} `json:"from"`
			To []struct {
				ToObjectID json.RawMessage `json:"toObjectId"`
			} `json:"to"`
		} `json:"results"`
	}
	path := fmt.Sprintf("/crm/v4/associations/%s/%s/batch/read", fromType, toType)
	if _, err := c.call(ctx, "POST", path, nil, body, &out); err != nil {
		return nil, fmt.Errorf("reading %s→%s associations of %d records: %w", fromType, toType, len(ids), err)
	}
	found := make(map[string][]string, len(out.Results))
	for _, res := range out.Results {
		from, ok := jsonString(res.From.ID)
		if !ok || from == "" {
			continue
		}
		for _, to := range res.To {
			if id, ok := jsonString(to.ToObjectID); ok && id != "" {
				found[from] = append(found[from], id)
			}
		}
	}
	return found, nil
}

// batchReadMax is the batch read endpoints' input limit.
const batchReadMax = 100

// batchRead reads props of the objectType records ids (POST
// /crm/v3/objects/{type}/batch/read, batchReadMax per request) and passes each object
// returned to each. Ids the read does not return (archived or gone: a 207 answer names
// them) are not passed; what reads them says in what it returns on error.
func (c *Connector) batchRead(ctx context.Context, objectType string, ids, props []string, each func(raw json.RawMessage)) error {
	type input struct {
		ID string `json:"id"`
	}
	for chunk := range slices.Chunk(ids, batchReadMax) {
		body := struct {
			Inputs     []input  `json:"inputs"`
			Properties []string `json:"properties"`
		}{Properties: props}
		for _, id := range chunk {
			body.Inputs = append(body.Inputs, input{ID: id})
		}
		var out pageBody
		path := "/crm/v3/objects/" + objectType + "/batch/read"
		if _, err := c.call(ctx, "POST", path, url.Values{"archived": {"false"}}, body, &out); err != nil {
			return err
		}
		for _, raw := range out.Results {
			each(raw)
		}
	}
	return nil
}

// readProperties batch-reads props of records and adds them to the records.
func (c *Connector) readProperties(ctx context.Context, objectType string, records []*record, props []string) error {
	byID := make(map[string]*record, len(records))
	ids := make([]string, len(records))
	for i, r := range records {
		byID[r.id], ids[i] = r, r.id
	}
	err := c.batchRead(ctx, objectType, ids, props, func(raw json.RawMessage) {
		var b objectBody
		if json.Unmarshal(raw, &b) != nil {
			return
		}
		id, _ := jsonString(b.ID)
		r, ok := byID[id]
		if !ok {
			return
		}
		if r.props == nil {
			r.props = make(map[string]json.RawMessage, len(props))
		}
		for _, p := range props {
			if v, ok := b.Properties[p]; ok && string(v) != "null" { // unset: see dropNulls
				r.props[p] = v
			}
		}
		r.raw = withProperties(r.raw, r.props)
	})
	if err != nil {
		return fmt.Errorf("reading %d properties of %d %s: %w", len(props), len(records), objectType, err)
	}
	return nil
}

// readCreated batch-reads the creation time of the objectType records ids. Ids the read
// does not return (archived or gone) are absent from the map.
func (c *Connector) readCreated(ctx context.Context, objectType string, ids []string) (map[string]time.Time, error) {
	created := make(map[string]time.Time, len(ids))
	entity := entityOf(objectType)
	i := 0
	err := c.batchRead(ctx, objectType, ids, []string{"createdate"}, func(raw json.RawMessage) {
		r, skipped := decodeRecord(entity, i, raw, "")
		i++
		if skipped == nil && !r.base().CreatedAt.IsZero() {
			created[r.id] = r.base().CreatedAt
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading the creation time of %d %s: %w", len(ids), objectType, err)
	}
	return created, nil
}

// withProperties returns the object payload raw with its properties replaced by props, so
// Record.Raw holds every property read.
func withProperties(raw json.RawMessage, props map[string]json.RawMessage) json.RawMessage {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return raw
	}
	encoded, err := json.Marshal(props)
	if err != nil {
		return raw
	}
	fields["properties"] = encoded
	out, err := json.Marshal(fields)
	if err != nil {
		return raw
	}
	return out
}
