package jobs_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/jobs"
	"github.com/pipewatch/pipewatch/pipeline"
)

// fakeVendor is an in-memory CRM behind a fake connector with the contract's semantics:
// incremental streams are read in (updated_at, id) keyset order from an opaque cursor,
// Full reads return every live record, archived records leave the live streams and show
// up in the archived stream. A hook injects failures (429, 401, cancellation …) per call.
type fakeVendor struct {
	mu       sync.Mutex
	pageSize int
	owners   []pipeline.Owner
	stages   []pipeline.Stage
	deals    map[string]*fakeDeal
	calls    int
	// hook runs before each read is served; an error is returned instead of the page.
	hook func(ctx context.Context, call int, req connectors.ReadRequest) error
}

type fakeDeal struct {
	pipeline.Deal
	archivedAt time.Time // zero = live
}

var vendorT0 = time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)

// newFakeVendor returns a portal of n deals whose update times come in runs of tie deals
// sharing one timestamp, so pages of pageSize cut through ties.
func newFakeVendor(n, tie, pageSize int) *fakeVendor {
	v := &fakeVendor{pageSize: pageSize, deals: map[string]*fakeDeal{}}
	for i := 1; i <= 3; i++ {
		v.owners = append(v.owners, pipeline.Owner{Record: rawRecord(fmt.Sprintf("o%d", i), vendorT0),
			Email: fmt.Sprintf("rep%d@example.com", i), Name: fmt.Sprintf("Rep %d", i), Active: true})
	}
	for i, name := range []string{"Qualified", "Proposal", "Closed won"} {
		s := pipeline.Stage{Record: rawRecord(fmt.Sprintf("s%d", i+1), vendorT0), PipelineExternalID: "p1", Name: name, Position: i}
		s.IsClosed, s.IsWon = i == 2, i == 2
		v.stages = append(v.stages, s)
	}
	for i := range n {
		id := fmt.Sprintf("d%05d", i)
		at := vendorT0.Add(time.Duration(i/tie) * time.Second)
		cents := int64(i)*7919%10_000_000 + 1
		d := pipeline.Deal{
			Record: rawRecord(id, at), Name: "Deal " + id, Amount: decimal.NewNullDecimal(decimal.New(cents, -2)),
			Currency: "USD", PipelineExternalID: "p1", StageExternalID: fmt.Sprintf("s%d", i%2+1),
			OwnerExternalID: fmt.Sprintf("o%d", i%3+1), CloseDate: time.Date(2026, 12, 1+i%28, 0, 0, 0, 0, time.UTC),
			StageEnteredAt: at.Add(-time.Hour),
		}
		v.deals[id] = &fakeDeal{Deal: d}
	}
	return v
}

func rawRecord(id string, at time.Time) pipeline.Record {
	return pipeline.Record{ExternalID: id, CreatedAt: vendorT0.Add(-24 * time.Hour), UpdatedAt: at,
		Raw: json.RawMessage(fmt.Sprintf(`{"id":%q,"updatedAt":%q}`, id, at.Format(time.RFC3339Nano)))}
}

// edit changes a deal at the vendor at time at.
func (v *fakeVendor) edit(id string, at time.Time, change func(d *pipeline.Deal)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	d := v.deals[id]
	change(&d.Deal)
	d.Record = rawRecord(id, at)
	d.Raw = json.RawMessage(fmt.Sprintf(`{"id":%q,"updatedAt":%q,"stage":%q,"amount":%q}`, id, at.Format(time.RFC3339Nano),
		d.StageExternalID, d.Amount.Decimal.String()))
}

func (v *fakeVendor) archive(id string, at time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.deals[id].archivedAt = at
}

// restore brings an archived deal back; restoring bumps its update time.
func (v *fakeVendor) restore(id string, at time.Time) {
	v.edit(id, at, func(*pipeline.Deal) {})
	v.mu.Lock()
	defer v.mu.Unlock()
	v.deals[id].archivedAt = time.Time{}
}

// purge deletes a deal for good, leaving no archived trace (Pipedrive after 30 days).
func (v *fakeVendor) purge(id string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.deals, id)
}

func (v *fakeVendor) setHook(h func(ctx context.Context, call int, req connectors.ReadRequest) error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.hook, v.calls = h, 0
}

// liveDeals returns the deals a correct sync stores as live, by id.
func (v *fakeVendor) liveDeals() map[string]pipeline.Deal {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]pipeline.Deal{}
	for id, d := range v.deals {
		if d.archivedAt.IsZero() {
			out[id] = d.Deal
		}
	}
	return out
}

func (v *fakeVendor) registry() jobs.ConnectorRegistry {
	return jobs.ConnectorRegistry{"hubspot": func(_ context.Context, p jobs.ConnectorParams) (connectors.Connector, error) {
		return &fakeConnector{v: v, stats: p.Stats}, nil
	}}
}

type fakeConnector struct {
	v     *fakeVendor
	stats *connectors.Stats
}

func (c *fakeConnector) Streams() []connectors.Stream {
	return []connectors.Stream{
		{Name: "owners", Entities: []pipeline.Entity{pipeline.EntityOwners}, Reconcile: true},
		{Name: "pipelines", Entities: []pipeline.Entity{pipeline.EntityPipelines, pipeline.EntityStages}, Reconcile: true},
		{Name: "deals", Entities: []pipeline.Entity{pipeline.EntityDeals}, Incremental: true, Reconcile: true},
		{Name: "archived_deals", Entities: []pipeline.Entity{pipeline.EntityDeals}, Incremental: true},
	}
}

func (c *fakeConnector) Read(ctx context.Context, req connectors.ReadRequest) (connectors.Page, error) {
	c.stats.Requests.Add(1)
	if err := ctx.Err(); err != nil {
		return connectors.Page{}, err
	}
	c.v.mu.Lock()
	c.v.calls++
	call, hook := c.v.calls, c.v.hook
	c.v.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, call, req); err != nil {
			return connectors.Page{}, err
		}
	}
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	switch req.Stream {
	case "owners":
		return connectors.Page{Batch: pipeline.Batch{Owners: slices.Clone(c.v.owners)}, Next: "all", Done: true}, nil
	case "pipelines":
		p := pipeline.Pipeline{Record: rawRecord("p1", vendorT0), Name: "Sales"}
		return connectors.Page{Batch: pipeline.Batch{Pipelines: []pipeline.Pipeline{p}, Stages: slices.Clone(c.v.stages)},
			Next: "all", Done: true}, nil
	case "deals":
		return c.readDeals(req)
	case "archived_deals":
		return c.readArchived(req)
	}
	return connectors.Page{}, fmt.Errorf("no stream %q", req.Stream)
}

type key struct {
	at time.Time
	id string
}

func (k key) String() string { return strconv.FormatInt(k.at.UnixNano(), 10) + "|" + k.id }

func parseKey(c connectors.Cursor) key {
	ts, id, ok := strings.Cut(string(c), "|")
	if !ok {
		return key{}
	}
	n, _ := strconv.ParseInt(ts, 10, 64)
	return key{time.Unix(0, n).UTC(), id}
}

func (k key) less(o key) bool { return k.at.Before(o.at) || k.at.Equal(o.at) && k.id < o.id }

// page keyset-pages items sorted by their key after the cursor.
func page[T any](items []T, keyOf func(T) key, after connectors.Cursor, size int) ([]T, connectors.Cursor, bool) {
	slices.SortFunc(items, func(a, b T) int {
		ka, kb := keyOf(a), keyOf(b)
		if c := ka.at.Compare(kb.at); c != 0 {
			return c
		}
		return cmp.Compare(ka.id, kb.id)
	})
	from := parseKey(after)
	var rest []T
	for _, it := range items {
		if after == "" || from.less(keyOf(it)) {
			rest = append(rest, it)
		}
	}
	if len(rest) <= size {
		next := after
		if len(rest) > 0 {
			next = connectors.Cursor(keyOf(rest[len(rest)-1]).String())
		}
		return rest, next, true
	}
	rest = rest[:size]
	return rest, connectors.Cursor(keyOf(rest[size-1]).String()), false
}

func (c *fakeConnector) readDeals(req connectors.ReadRequest) (connectors.Page, error) {
	var live []*fakeDeal
	for _, d := range c.v.deals {
		if d.archivedAt.IsZero() {
			live = append(live, d)
		}
	}
	keyOf := func(d *fakeDeal) key { return key{d.UpdatedAt, d.ExternalID} }
	if req.Mode == connectors.Full { // by id only
		keyOf = func(d *fakeDeal) key { return key{vendorT0, d.ExternalID} }
	}
	items, next, done := page(live, keyOf, req.Cursor, c.v.pageSize)
	var p connectors.Page
	for _, d := range items {
		p.Deals = append(p.Deals, d.Deal)
		p.StageHistory = append(p.StageHistory, pipeline.StageEntry{DealExternalID: d.ExternalID,
			StageExternalID: d.StageExternalID, EnteredAt: d.StageEnteredAt})
	}
	p.Next, p.Done = next, done
	return p, nil
}

func (c *fakeConnector) readArchived(req connectors.ReadRequest) (connectors.Page, error) {
	var archived []*fakeDeal
	for _, d := range c.v.deals {
		if !d.archivedAt.IsZero() {
			archived = append(archived, d)
		}
	}
	items, next, done := page(archived, func(d *fakeDeal) key { return key{d.archivedAt, d.ExternalID} }, req.Cursor, c.v.pageSize)
	var p connectors.Page
	for _, d := range items {
		p.Deletions = append(p.Deletions, pipeline.Deletion{Entity: pipeline.EntityDeals, ExternalID: d.ExternalID, DeletedAt: d.archivedAt})
	}
	p.Next, p.Done = next, done
	return p, nil
}
