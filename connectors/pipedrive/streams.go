package pipedrive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/pipeline"
)

// maxStagePages bounds the stages listing, which is read whole in one Read (the default
// canonical stages depend on each pipeline's full stage order): 10,000 stages.
const maxStagePages = 20

// owners reads GET /v1/users: every user, in one unpaged request.
func (r *read) owners(ctx context.Context) (connectors.Page, error) {
	env, err := r.c.get(ctx, apiV1, "/users", nil)
	if err != nil {
		return connectors.Page{}, err
	}
	var page connectors.Page
	for _, raw := range env.Data {
		var u v1User
		err := json.Unmarshal(raw, &u)
		var o pipeline.Owner
		if err == nil {
			o, err = mapUser(u, raw)
		}
		if err != nil {
			page.Skipped = append(page.Skipped, skip(pipeline.EntityOwners, raw, "", fmt.Errorf("mapping user: %w", err)))
			continue
		}
		page.Owners = append(page.Owners, o)
	}
	page.Done = true
	return page, nil
}

// listAll asks for the next page of a reference listing sorted by id.
func (r *read) listPage(ctx context.Context, path string, extra url.Values) (*envelope, error) {
	q := url.Values{"limit": {strconv.Itoa(r.c.cfg.PageSize)}, "sort_by": {"id"}, "sort_direction": {"asc"}}
	for k, v := range extra {
		q[k] = v
	}
	if r.st.Vendor != "" {
		q.Set("cursor", r.st.Vendor)
	}
	return r.c.get(ctx, apiV2, path, q)
}

// advance moves a reference listing to its next page; it reports whether the listing ended.
func (r *read) advance(env *envelope) (bool, error) {
	next := env.AdditionalData.NextCursor
	switch {
	case next == nil:
		r.st.Vendor = ""
		return true, nil
	case *next == "":
		return false, errors.New("the response has an empty next_cursor")
	}
	r.st.Vendor = *next
	return false, nil
}

// pipelines reads GET /api/v2/pipelines, whole on every run.
func (r *read) pipelines(ctx context.Context) (connectors.Page, error) {
	env, err := r.listPage(ctx, "/pipelines", nil)
	if err != nil {
		return connectors.Page{}, err
	}
	var page connectors.Page
	for _, raw := range env.Data {
		var p v2Pipeline
		err := json.Unmarshal(raw, &p)
		switch {
		case err == nil && p.IsDeleted && p.ID != 0:
			page.Deletions = append(page.Deletions, pipeline.Deletion{Entity: pipeline.EntityPipelines, ExternalID: strconv.Itoa(p.ID), DeletedAt: p.UpdateTime.Time})
			continue
		case err == nil:
			var mapped pipeline.Pipeline
			if mapped, err = mapPipeline(p, raw); err == nil {
				page.Pipelines = append(page.Pipelines, mapped)
				continue
			}
		}
		page.Skipped = append(page.Skipped, skip(pipeline.EntityPipelines, raw, "", fmt.Errorf("mapping pipeline: %w", err)))
	}
	if page.Done, err = r.advance(env); err != nil {
		return connectors.Page{}, err
	}
	page.Next = r.next(page.Done)
	return page, nil
}

// stages reads every page of GET /api/v2/stages and maps them together.
func (r *read) stages(ctx context.Context) (connectors.Page, error) {
	var (
		all     []stagePayload
		skipped []connectors.SkippedRecord
	)
	for range maxStagePages {
		env, err := r.listPage(ctx, "/stages", nil)
		if err != nil {
			return connectors.Page{}, err
		}
		for _, raw := range env.Data {
			var s v2Stage
			if err := json.Unmarshal(raw, &s); err != nil {
				skipped = append(skipped, skip(pipeline.EntityStages, raw, "", fmt.Errorf("decoding stage: %w", err)))
				continue
			}
			all = append(all, stagePayload{stage: s, raw: raw})
		}
		done, err := r.advance(env)
		if err != nil {
			return connectors.Page{}, err
		}
		if done {
			var page connectors.Page
			page.Stages, page.Deletions, page.Skipped = mapStages(all)
			page.Skipped = append(skipped, page.Skipped...)
			page.Done = true
			page.Next = r.next(true)
			return page, nil
		}
	}
	return connectors.Page{}, connectors.Permanent(fmt.Errorf("the account has more than %d stages", maxStagePages*r.c.cfg.PageSize))
}

// deletedDeals lists the deals deleted in the last 30 days (status=deleted), whole on
// every run: deleting may not bump update_time, and the set is bounded by the deletion
// rate. A restored deal leaves the list and comes back through the deals stream.
func (r *read) deletedDeals(ctx context.Context) (connectors.Page, error) {
	env, err := r.listPage(ctx, "/deals", url.Values{"status": {"deleted"}})
	if err != nil {
		return connectors.Page{}, err
	}
	var page connectors.Page
	for _, raw := range env.Data {
		var d struct {
			ID         int       `json:"id"`
			UpdateTime timestamp `json:"update_time"`
		}
		if err := json.Unmarshal(raw, &d); err != nil || d.ID == 0 {
			if err == nil {
				err = errNoID
			}
			page.Skipped = append(page.Skipped, skip(pipeline.EntityDeals, raw, "", fmt.Errorf("reading deleted deal: %w", err)))
			continue
		}
		page.Deletions = append(page.Deletions, pipeline.Deletion{Entity: pipeline.EntityDeals, ExternalID: strconv.Itoa(d.ID), DeletedAt: d.UpdateTime.Time})
	}
	if page.Done, err = r.advance(env); err != nil {
		return connectors.Page{}, err
	}
	page.Next = r.next(page.Done)
	return page, nil
}

// next encodes the cursor of a reference listing: empty when done (the next run starts over).
func (r *read) next(done bool) connectors.Cursor {
	if done {
		return ""
	}
	return r.st.encode()
}

// leadsOrder is the order of the incremental leads scan: newest update first, ids breaking
// ties; the window ends where update_time drops below its start.
const (
	leadsIncrementalSort = "update_time DESC,id DESC"
	leadsFullSort        = "add_time ASC,id ASC"
)

// leads reads GET /v1/leads (all archive states), which has no time filter and only offset
// paging. An incremental read scans newest first and stops below the window; a Full read
// scans by add_time, which never changes.
func (r *read) leads(ctx context.Context) (connectors.Page, error) {
	var (
		sc   *scan
		sort string
		key  func(v1Lead) scanKey
		desc bool
	)
	if r.mode == connectors.Full {
		if r.st.Scan == nil {
			r.st.Scan = &scan{}
		}
		sc, sort = r.st.Scan, leadsFullSort
		key = func(l v1Lead) scanKey { return scanKey{T: l.AddTime.Time, ID: l.ID} }
	} else {
		if r.st.Win == nil {
			lo, hi := r.windowStart(), r.windowEnd()
			if !lo.IsZero() && !lo.Before(hi) {
				return connectors.Page{Next: r.st.encode(), Done: true}, nil
			}
			r.st.Win = &window{Lo: lo, Hi: hi, Scan: &scan{}}
		}
		sc, sort, desc = r.st.Win.Scan, leadsIncrementalSort, true
		key = func(l v1Lead) scanKey { return scanKey{T: l.UpdateTime.Time, ID: l.ID} }
	}

	items, more, err := r.scanLeads(ctx, sc, sort, key, desc)
	if err != nil {
		return connectors.Page{}, err
	}
	var page connectors.Page
	page.Skipped = items.skipped
	done := !more
	w := r.st.Win
	for _, it := range items.leads {
		if w != nil {
			u := it.lead.UpdateTime.Time
			if !u.Before(w.Hi) {
				continue // changed after the window's end: the next window reads it
			}
			if !w.Lo.IsZero() && u.Before(w.Lo) {
				done = true // everything further is older than the window
				break
			}
			dup := r.st.seenAt(it.lead.ID, u) || w.Seen[it.lead.ID] == u.UnixMilli()
			w.note(it.lead.ID, u)
			if dup {
				continue
			}
		}
		l, err := mapLead(it.lead, it.raw)
		if err != nil {
			page.Skipped = append(page.Skipped, skip(pipeline.EntityLeads, it.raw, it.lead.ID, err))
			continue
		}
		page.Leads = append(page.Leads, l)
	}
	switch {
	case !done:
	case r.mode == connectors.Full:
		r.st = state{V: cursorVersion, Mode: string(connectors.Full)}
	default:
		r.st = r.st.finish(r.c.cfg.Lookback)
	}
	page.Done = done
	page.Next = r.st.encode()
	return page, nil
}

type scannedLead struct {
	lead v1Lead
	raw  json.RawMessage
}

type scannedLeads struct {
	leads   []scannedLead // not read before, in scan order
	skipped []connectors.SkippedRecord
}

// after reports whether k comes after the scan's last record in the scan order.
func (sc *scan) after(k scanKey, desc bool) bool {
	if sc.Last == nil {
		return true
	}
	l := *sc.Last
	if k.T.Equal(l.T) {
		if desc {
			return k.ID < l.ID
		}
		return k.ID > l.ID
	}
	if desc {
		return k.T.Before(l.T)
	}
	return k.T.After(l.T)
}

// scanLeads fetches the next page of a leads scan. It asks again for the scan's last record
// to check the offset: when the first record returned was not read before (or nothing comes
// back), records were deleted or moved behind the offset and unread ones may have slid before
// it, so it backs up a page at a time until it overlaps what was read. It returns the
// records not read before, in order, and whether the listing has more.
func (r *read) scanLeads(ctx context.Context, sc *scan, sort string, key func(v1Lead) scanKey, desc bool) (scannedLeads, bool, error) {
	limit := r.c.cfg.PageSize
	start := sc.Offset
	if sc.Last != nil && start > 0 {
		start--
	}
	for {
		q := url.Values{
			"start": {strconv.Itoa(start)}, "limit": {strconv.Itoa(limit)},
			"sort": {sort}, "archived_status": {"all"},
		}
		env, err := r.c.get(ctx, apiV1, "/leads", q)
		if err != nil {
			return scannedLeads{}, false, err
		}
		var (
			out        scannedLeads
			last       = sc.Last
			overlapped = sc.Last == nil || start == 0
			checked    = overlapped
		)
		for _, raw := range env.Data {
			var l v1Lead
			err := json.Unmarshal(raw, &l)
			if err == nil && (l.ID == "" || key(l).T.IsZero()) {
				err = errors.New("its id or sort time is missing")
			}
			if err != nil {
				out.skipped = append(out.skipped, skip(pipeline.EntityLeads, raw, "", fmt.Errorf("decoding lead: %w", err)))
				continue
			}
			k := key(l)
			unread := sc.after(k, desc)
			if !checked {
				checked, overlapped = true, !unread
			}
			if !overlapped {
				break
			}
			if unread {
				out.leads = append(out.leads, scannedLead{lead: l, raw: raw})
				last = &k
			}
		}
		if !overlapped {
			start = max(0, start-limit)
			continue
		}
		sc.Offset = start + len(env.Data)
		sc.Last = last
		return out, env.v1Pagination().MoreItemsInCollection, nil
	}
}
