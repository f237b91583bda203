package pipedrive_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/pipedrive"
	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
	"github.com/pipewatch/pipewatch/pipeline"
)

const testToken = "pd-test-token-1234"

type testBundle struct {
	clock *pipedrivetest.Clock
	fake  *pipedrivetest.Server
	conn  *pipedrive.Connector
	stats *connectors.Stats
	// cursors are the incremental cursors after the last sync, per stream.
	cursors map[string]connectors.Cursor
	mirror  *mirror
}

type setupOpts struct {
	fake   pipedrivetest.Options
	config pipedrive.Config
	http   connectors.HTTPConfig
}

func setup(t *testing.T, o setupOpts) *testBundle {
	t.Helper()
	clock := pipedrivetest.NewClock(time.Now().UTC().Truncate(time.Second))
	o.fake.Now = clock.Now
	if o.fake.APIToken == "" {
		o.fake.APIToken = testToken
	}
	if o.fake.BurstLimit == 0 {
		o.fake.BurstLimit = 2000
	}
	fake := pipedrivetest.NewServer(o.fake)
	t.Cleanup(fake.Close)

	stats := &connectors.Stats{}
	o.http.RateLimits = pipedrive.RateLimits()
	o.http.Stats = stats
	o.http.NowFunc = clock.Now
	if o.http.RetryWaitMin == 0 {
		o.http.RetryWaitMin, o.http.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	}
	hc := connectors.NewHTTPClient(o.http)

	o.config.BaseURL = fake.URL()
	if o.config.APIToken == "" && o.http.Auth == nil {
		o.config.APIToken = testToken
	}
	o.config.NowFunc = clock.Now
	conn, err := pipedrive.New(o.config, hc)
	require.NoError(t, err)
	return &testBundle{clock: clock, fake: fake, conn: conn, stats: stats, cursors: map[string]connectors.Cursor{}, mirror: newMirror()}
}

// readStream reads stream from cursor until Done and returns the merged pages.
func (b *testBundle) readStream(ctx context.Context, t *testing.T, stream string, mode connectors.Mode, cursor connectors.Cursor) (pipeline.Batch, []connectors.SkippedRecord, connectors.Cursor) {
	t.Helper()
	var (
		all     pipeline.Batch
		skipped []connectors.SkippedRecord
	)
	start := b.clock.Now()
	for range 10_000 {
		page, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: stream, Mode: mode, Cursor: cursor, SyncStart: start})
		require.NoError(t, err, "reading %s after %q", stream, cursor)
		all.Append(page.Batch)
		skipped = append(skipped, page.Skipped...)
		if page.Done {
			return all, skipped, page.Next
		}
		require.NotEqual(t, cursor, page.Next, "a page that is not Done must move the cursor")
		cursor = page.Next
	}
	t.Fatalf("reading %s did not finish", stream)
	return all, skipped, cursor
}

// sync reads every stream incrementally from the stored cursors, applies the pages to the
// mirror and returns what each stream emitted.
func (b *testBundle) sync(ctx context.Context, t *testing.T) map[string]pipeline.Batch {
	t.Helper()
	out := map[string]pipeline.Batch{}
	for _, s := range b.conn.Streams() {
		batch, skipped, next := b.readStream(ctx, t, s.Name, connectors.Incremental, b.cursors[s.Name])
		require.Empty(t, skipped, "stream %s skipped records", s.Name)
		if s.Incremental {
			b.cursors[s.Name] = next
		}
		b.mirror.apply(batch)
		out[s.Name] = batch
	}
	return out
}

// mirror applies batches the way the store does: newest update wins, deletions tombstone.
type mirror struct {
	rows map[pipeline.Entity]map[string]*mirrored
}

type mirrored struct {
	updated time.Time
	v       any
	deleted bool
}

func newMirror() *mirror {
	m := &mirror{rows: map[pipeline.Entity]map[string]*mirrored{}}
	for _, e := range pipeline.Entities {
		m.rows[e] = map[string]*mirrored{}
	}
	return m
}

func put[T any](m *mirror, e pipeline.Entity, recs []T, rec func(T) pipeline.Record) {
	for _, r := range recs {
		id := rec(r).ExternalID
		cur := m.rows[e][id]
		if cur == nil || !rec(r).UpdatedAt.Before(cur.updated) {
			m.rows[e][id] = &mirrored{updated: rec(r).UpdatedAt, v: r}
		}
	}
}

func (m *mirror) apply(b pipeline.Batch) {
	put(m, pipeline.EntityOwners, b.Owners, func(r pipeline.Owner) pipeline.Record { return r.Record })
	put(m, pipeline.EntityPipelines, b.Pipelines, func(r pipeline.Pipeline) pipeline.Record { return r.Record })
	put(m, pipeline.EntityStages, b.Stages, func(r pipeline.Stage) pipeline.Record { return r.Record })
	put(m, pipeline.EntityAccounts, b.Accounts, func(r pipeline.Account) pipeline.Record { return r.Record })
	put(m, pipeline.EntityContacts, b.Contacts, func(r pipeline.Contact) pipeline.Record { return r.Record })
	put(m, pipeline.EntityLeads, b.Leads, func(r pipeline.Lead) pipeline.Record { return r.Record })
	put(m, pipeline.EntityDeals, b.Deals, func(r pipeline.Deal) pipeline.Record { return r.Record })
	put(m, pipeline.EntityActivities, b.Activities, func(r pipeline.Activity) pipeline.Record { return r.Record })
	for _, d := range b.Deletions {
		if cur := m.rows[d.Entity][d.ExternalID]; cur != nil && !d.DeletedAt.Before(cur.updated) {
			cur.deleted = true
		}
	}
}

// live returns the live records of entity e by id.
func live[T any](m *mirror, e pipeline.Entity) map[string]T {
	out := map[string]T{}
	for id, r := range m.rows[e] {
		if !r.deleted {
			out[id] = r.v.(T)
		}
	}
	return out
}

func itoa(id int) string { return strconv.Itoa(id) }

// requireMirrorsAccount checks that the mirror holds exactly the fake's live records.
func requireMirrorsAccount(t *testing.T, b *testBundle) {
	t.Helper()
	snap := b.fake.Snapshot()

	deals := live[pipeline.Deal](b.mirror, pipeline.EntityDeals)
	require.Len(t, deals, len(snap.Deals))
	for _, want := range snap.Deals {
		got, ok := deals[itoa(want.ID)]
		require.True(t, ok, "deal %d missing", want.ID)
		require.Equal(t, want.Title, got.Name)
		require.Equal(t, string(want.Value), got.Amount.Decimal.String(), "deal %d amount", want.ID)
		require.Equal(t, want.Currency, got.Currency)
		require.Equal(t, itoa(want.StageID), got.StageExternalID)
		require.Equal(t, itoa(want.OwnerID), got.OwnerExternalID)
		require.Equal(t, want.Status != "open", got.IsClosed, "deal %d", want.ID)
		require.Equal(t, want.Status == "won", got.IsWon, "deal %d", want.ID)
		require.Equal(t, want.UpdateTime.Std(), got.UpdatedAt, "deal %d", want.ID)
	}
	for _, id := range snap.DeletedDealIDs {
		_, ok := deals[itoa(id)]
		require.False(t, ok, "deleted deal %d is live", id)
	}

	persons := live[pipeline.Contact](b.mirror, pipeline.EntityContacts)
	require.Len(t, persons, len(snap.Persons))
	for _, want := range snap.Persons {
		got, ok := persons[itoa(want.ID)]
		require.True(t, ok, "person %d missing", want.ID)
		require.Equal(t, want.Emails[0].Value, got.Email)
		require.Equal(t, want.UpdateTime.Std(), got.UpdatedAt)
	}
	orgs := live[pipeline.Account](b.mirror, pipeline.EntityAccounts)
	require.Len(t, orgs, len(snap.Organizations))
	for _, want := range snap.Organizations {
		require.Equal(t, want.Name, orgs[itoa(want.ID)].Name)
	}
	acts := live[pipeline.Activity](b.mirror, pipeline.EntityActivities)
	require.Len(t, acts, len(snap.Activities))
	for _, want := range snap.Activities {
		got, ok := acts[itoa(want.ID)]
		require.True(t, ok, "activity %d missing", want.ID)
		require.Equal(t, want.Done, got.Done)
	}
	leads := live[pipeline.Lead](b.mirror, pipeline.EntityLeads)
	require.Len(t, leads, len(snap.Leads))
	for _, want := range snap.Leads {
		got, ok := leads[want.ID]
		require.True(t, ok, "lead %s missing", want.ID)
		require.Equal(t, want.IsArchived, got.Status == pipeline.LeadDisqualified)
		require.True(t, want.UpdateTime.Equal(got.UpdatedAt), "lead %s update time", want.ID)
	}
	owners := live[pipeline.Owner](b.mirror, pipeline.EntityOwners)
	require.Len(t, owners, len(snap.Users))
	for _, want := range snap.Users {
		got := owners[itoa(want.ID)]
		require.Equal(t, want.Email, got.Email)
		require.Equal(t, want.TimezoneName, got.Timezone)
		require.Equal(t, want.Active, got.Active)
	}
	stages := live[pipeline.Stage](b.mirror, pipeline.EntityStages)
	require.Len(t, stages, len(snap.Stages))
	for _, want := range snap.Stages {
		got := stages[itoa(want.ID)]
		wantRot := 0
		if want.IsDealRotEnabled && want.DaysToRotten != nil {
			wantRot = *want.DaysToRotten
		}
		require.Equal(t, wantRot, got.RotDays, "stage %d", want.ID)
		require.NotEmpty(t, got.Canonical, "stage %d", want.ID)
	}
	require.Len(t, live[pipeline.Pipeline](b.mirror, pipeline.EntityPipelines), len(snap.Pipelines))
}
