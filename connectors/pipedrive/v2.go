package pipedrive

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

// keyed is a v2 record: its id, update_time and deleted flag.
type keyed interface {
	key() (id int, updated time.Time, deleted bool)
}

func (d v2Deal) key() (int, time.Time, bool)         { return d.ID, d.UpdateTime.Time, d.IsDeleted }
func (p v2Person) key() (int, time.Time, bool)       { return p.ID, p.UpdateTime.Time, p.IsDeleted }
func (o v2Organization) key() (int, time.Time, bool) { return o.ID, o.UpdateTime.Time, o.IsDeleted }
func (a v2Activity) key() (int, time.Time, bool)     { return a.ID, a.UpdateTime.Time, a.IsDeleted }

// decoded is a record with its raw payload.
type decoded[T any] struct {
	v   T
	raw json.RawMessage
}

// source is a v2 list endpoint read as a stream.
type source[T keyed] struct {
	entity pipeline.Entity
	// paths are the list endpoints: the first is read incrementally; a Full read lists
	// them all in turn.
	paths []string
	// query holds extra parameters.
	query url.Values
	// mapPage maps the records to emit into b.
	mapPage func(ctx context.Context, c *Connector, recs []decoded[T], b *pipeline.Batch) ([]connectors.SkippedRecord, error)
}

var dealsSource = source[v2Deal]{
	entity:  pipeline.EntityDeals,
	paths:   []string{"/deals", "/deals/archived"},
	query:   url.Values{"include_fields": {"last_activity_id,next_activity_id"}},
	mapPage: mapDealsPage,
}

var personsSource = source[v2Person]{
	entity: pipeline.EntityContacts,
	paths:  []string{"/persons"},
	mapPage: mapEach(func(b *pipeline.Batch, p v2Person, raw json.RawMessage) error {
		c, err := mapPerson(p, raw)
		b.Contacts = append(b.Contacts, c)
		return err
	}),
}

var organizationsSource = source[v2Organization]{
	entity: pipeline.EntityAccounts,
	paths:  []string{"/organizations"},
	mapPage: mapEach(func(b *pipeline.Batch, o v2Organization, raw json.RawMessage) error {
		a, err := mapOrganization(o, raw)
		b.Accounts = append(b.Accounts, a)
		return err
	}),
}

var activitiesSource = source[v2Activity]{
	entity: pipeline.EntityActivities,
	paths:  []string{"/activities"},
	mapPage: mapEach(func(b *pipeline.Batch, a v2Activity, raw json.RawMessage) error {
		act, err := mapActivity(a, raw)
		b.Activities = append(b.Activities, act)
		return err
	}),
}

// mapEach adapts a one-record mapping (which appends on success only) to mapPage.
func mapEach[T keyed](add func(*pipeline.Batch, T, json.RawMessage) error) func(context.Context, *Connector, []decoded[T], *pipeline.Batch) ([]connectors.SkippedRecord, error) {
	return func(_ context.Context, _ *Connector, recs []decoded[T], b *pipeline.Batch) ([]connectors.SkippedRecord, error) {
		var skipped []connectors.SkippedRecord
		for _, r := range recs {
			var scratch pipeline.Batch
			if err := add(&scratch, r.v, r.raw); err != nil {
				id, _, _ := r.v.key()
				// readV2 sets the entity.
				skipped = append(skipped, connectors.SkippedRecord{ExternalID: idOrEmpty(id), Reason: err.Error()})
				continue
			}
			b.Append(scratch)
		}
		return skipped, nil
	}
}

func idOrEmpty(id int) string {
	if id == 0 {
		return ""
	}
	return strconv.Itoa(id)
}

// readV2 reads one page of a v2 source: an incremental window or a Full listing.
func readV2[T keyed](ctx context.Context, r *read, s source[T]) (connectors.Page, error) {
	q := url.Values{"limit": {strconv.Itoa(r.c.cfg.PageSize)}}
	for k, v := range s.query {
		q[k] = v
	}
	path := s.paths[0]
	if r.mode == connectors.Full {
		if r.st.Phase >= len(s.paths) {
			return connectors.Page{}, connectors.Permanent(fmt.Errorf("cursor phase %d is past the %d endpoints", r.st.Phase, len(s.paths)))
		}
		path = s.paths[r.st.Phase]
		q.Set("sort_by", "id")
		q.Set("sort_direction", "asc")
		if r.st.Vendor != "" {
			q.Set("cursor", r.st.Vendor)
		}
	} else {
		if r.st.Win == nil {
			lo, hi := r.windowStart(), r.windowEnd()
			if !lo.IsZero() && !lo.Before(hi) {
				// Caught up to within the lag: nothing can be read yet.
				return connectors.Page{Next: r.st.encode(), Done: true}, nil
			}
			r.st.Win = &window{Lo: lo, Hi: hi}
		}
		w := r.st.Win
		q.Set("sort_by", "update_time")
		q.Set("sort_direction", "asc")
		q.Set("updated_until", rfc3339(w.Hi))
		if !w.Lo.IsZero() {
			q.Set("updated_since", rfc3339(w.Lo))
		}
		if w.Vendor != "" {
			q.Set("cursor", w.Vendor)
		}
	}

	env, err := r.c.get(ctx, apiV2, path, q)
	if err != nil {
		return connectors.Page{}, err
	}

	var (
		page   connectors.Page
		emit   []decoded[T]
		entity = s.entity
	)
	for _, raw := range env.Data {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			page.Skipped = append(page.Skipped, skip(entity, raw, "", fmt.Errorf("decoding %s: %w", entity, err)))
			continue
		}
		id, updated, deleted := v.key()
		if id == 0 {
			page.Skipped = append(page.Skipped, skip(entity, raw, "", errNoID))
			continue
		}
		ext := strconv.Itoa(id)
		if w := r.st.Win; w != nil {
			if updated.IsZero() {
				page.Skipped = append(page.Skipped, skip(entity, raw, ext, fmt.Errorf("update_time is missing")))
				continue
			}
			if !updated.Before(w.Hi) {
				continue // changed after the window's end: the next window reads it
			}
			dup := r.st.seenAt(ext, updated) || w.Seen[ext] == updated.UnixMilli()
			w.note(ext, updated)
			if dup {
				continue
			}
		}
		if deleted {
			page.Deletions = append(page.Deletions, pipeline.Deletion{Entity: entity, ExternalID: ext, DeletedAt: updated})
			continue
		}
		emit = append(emit, decoded[T]{v: v, raw: raw})
	}
	skipped, err := s.mapPage(ctx, r.c, emit, &page.Batch)
	if err != nil {
		return connectors.Page{}, err
	}
	for _, sk := range skipped {
		sk.Entity = entity
		page.Skipped = append(page.Skipped, sk)
	}

	next := env.AdditionalData.NextCursor
	if next != nil && *next == "" {
		return connectors.Page{}, fmt.Errorf("GET %s returned an empty next_cursor", path)
	}
	switch {
	case r.mode == connectors.Full && next != nil:
		r.st.Vendor = *next
	case r.mode == connectors.Full && r.st.Phase+1 < len(s.paths):
		r.st.Phase, r.st.Vendor = r.st.Phase+1, ""
	case r.mode == connectors.Full:
		r.st = state{V: cursorVersion, Mode: string(connectors.Full)}
		page.Done = true
	case next != nil:
		r.st.Win.Vendor = *next
	default:
		r.st = r.st.finish(r.c.cfg.Lookback)
		page.Done = true
	}
	page.Next = r.st.encode()
	return page, nil
}

// mapDealsPage maps deals, resolving their last and next activity ids to times, with the
// stage entry stage_change_time reports for each.
func mapDealsPage(ctx context.Context, c *Connector, recs []decoded[v2Deal], b *pipeline.Batch) ([]connectors.SkippedRecord, error) {
	var ids []int
	for _, r := range recs {
		for _, id := range []*int{r.v.LastActivityID, r.v.NextActivityID} {
			if id != nil && *id != 0 {
				ids = append(ids, *id)
			}
		}
	}
	acts, err := c.activityTimes(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("resolving the deals' last and next activities: %w", err)
	}
	var skipped []connectors.SkippedRecord
	for _, r := range recs {
		d, err := mapDeal(r.v, r.raw, acts)
		if err != nil {
			skipped = append(skipped, skip(pipeline.EntityDeals, r.raw, idOrEmpty(r.v.ID), err))
			continue
		}
		b.Deals = append(b.Deals, d)
		if d.StageExternalID != "" && !d.StageEnteredAt.IsZero() {
			// The vendor's word on the current stay; the store merges it with the stays it
			// observes between syncs.
			b.StageHistory = append(b.StageHistory, pipeline.StageEntry{
				DealExternalID: d.ExternalID, StageExternalID: d.StageExternalID, EnteredAt: d.StageEnteredAt,
			})
		}
	}
	return skipped, nil
}

// activityTimes fetches the activities ids (100 per request) and returns when each happened
// or is due. Activities that no longer exist are absent.
func (c *Connector) activityTimes(ctx context.Context, ids []int) (map[int]activityTimes, error) {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make(map[int]activityTimes, len(ids))
	for chunk := range slices.Chunk(ids, 100) {
		list := make([]string, len(chunk))
		for i, id := range chunk {
			list[i] = strconv.Itoa(id)
		}
		q := url.Values{"ids": {strings.Join(list, ",")}, "limit": {strconv.Itoa(len(chunk))}}
		env, err := c.get(ctx, apiV2, "/activities", q)
		if err != nil {
			return nil, err
		}
		for _, raw := range env.Data {
			// A malformed activity only leaves its deals' times unknown; the activities
			// stream reports it.
			var a v2Activity
			if json.Unmarshal(raw, &a) != nil {
				continue
			}
			if at, err := a.occurredAt(); err == nil {
				out[a.ID] = activityTimes{at: at}
			}
		}
	}
	return out, nil
}
