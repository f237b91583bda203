package hubspot_test

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/connectortest"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/pipeline"
)

// dealPages reads the deals stream from cursor to Done, page by page.
func dealPages(t *testing.T, e *env, cursor connectors.Cursor, syncStart time.Time) []connectors.Page {
	t.Helper()
	pages, err := connectortest.ReadAll(t.Context(), e.conn, connectors.ReadRequest{
		Stream: hubspot.StreamDeals, Mode: connectors.Incremental, Cursor: cursor, SyncStart: syncStart,
	})
	require.NoError(t, err)
	return pages
}

// requireEachOnce checks that the pages hold every id of want exactly once.
func requireEachOnce(t *testing.T, want []string, pages []connectors.Page) {
	t.Helper()
	seen := make(map[string]int, len(want))
	for _, p := range pages {
		for _, d := range p.Deals {
			seen[d.ExternalID]++
		}
	}
	var dups, missing []string
	for id, n := range seen {
		if n > 1 {
			dups = append(dups, id)
		}
	}
	for _, id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	require.Empty(t, dups, "deals read more than once")
	require.Empty(t, missing, "deals never read")
	require.Len(t, seen, len(want), "deals read that the portal does not have")
}

func TestDealsIncrementalWindow(t *testing.T) {
	t.Parallel()

	t.Run("TwelveThousandDealsWithSixHundredSharingAMillisecond", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		e.fake.GenerateOwners(8)
		e.fake.GenerateCompanies(40, hubspottest.GenerateOptions{})
		e.fake.GenerateDeals(12_000, hubspottest.GenerateOptions{SharedModified: 650})
		want := e.fake.IDs("deals", false)

		pages := dealPages(t, e, "", time.Now())
		requireEachOnce(t, want, pages)

		// The 650 share one millisecond and span page boundaries.
		counts := make(map[time.Time]int)
		for _, p := range pages {
			for _, d := range p.Deals {
				counts[d.UpdatedAt]++
			}
		}
		var shared time.Time
		for ts, n := range counts {
			if n > counts[shared] {
				shared = ts
			}
		}
		require.GreaterOrEqual(t, counts[shared], 650)
		pagesWithShared := 0
		for _, p := range pages {
			if slices.ContainsFunc(p.Deals, func(d pipeline.Deal) bool { return d.UpdatedAt.Equal(shared) }) {
				pagesWithShared++
			}
		}
		require.GreaterOrEqual(t, pagesWithShared, 4, "the shared millisecond should span several pages")

		st := e.fake.Stats()
		require.Zero(t, st.Statuses[400], "no search may page past the 10,000-result cap")
		minimum := int(math.Ceil(12_000.0 / 200))
		searches := st.SearchRequests
		t.Logf("%d searches and %d requests in all for 12,000 deals (minimum %d)", searches, st.Requests, minimum)
		require.LessOrEqual(t, float64(searches), 1.05*float64(minimum), "searches %d vs minimum %d", searches, minimum)
		require.Equal(t, int64(st.Requests), e.stats.Requests.Load(), "the chain counts what the portal served")
	})

	t.Run("MoreThanTenThousandInOneMillisecondAreDrainedById", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		e.fake.GenerateDeals(10_600, hubspottest.GenerateOptions{SharedModified: 10_400})
		want := e.fake.IDs("deals", false)

		pages := dealPages(t, e, "", time.Now())
		requireEachOnce(t, want, pages)
		require.Zero(t, e.fake.Stats().Statuses[400])
	})

	t.Run("OrderedByModifiedThenId", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true, config: hubspot.Config{PageSize: 50}})
		e.fake.GenerateDeals(700, hubspottest.GenerateOptions{SharedModified: 180})
		var all []pipeline.Deal
		for _, p := range dealPages(t, e, "", time.Now()) {
			all = append(all, p.Deals...)
		}
		require.True(t, slices.IsSortedFunc(all, func(a, b pipeline.Deal) int {
			if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
				return c
			}
			return connectortest.CompareIDs(a.ExternalID, b.ExternalID)
		}))
	})

	t.Run("HighWaterIsTheVendorsLargestStampRead", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		ids := e.fake.GenerateDeals(30, hubspottest.GenerateOptions{})
		var newest time.Time
		for _, id := range ids {
			o, _ := e.fake.Object("deals", id)
			if o.Modified.After(newest) {
				newest = o.Modified
			}
		}
		pages := dealPages(t, e, "", time.Now())
		var cur struct {
			Since int64 `json:"since"`
		}
		require.NoError(t, json.Unmarshal([]byte(pages[len(pages)-1].Next), &cur))
		require.Equal(t, newest.UnixMilli(), cur.Since)
	})

	t.Run("WindowStopsAtSyncStartAndVendorNowMinusLag", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true, config: hubspot.Config{Lag: 10 * time.Minute}})
		old := e.fake.GenerateDeals(20, hubspottest.GenerateOptions{Age: time.Hour})
		recent := e.fake.GenerateDeals(5, hubspottest.GenerateOptions{Age: time.Minute, Span: time.Minute})

		pages := dealPages(t, e, "", time.Now())
		requireEachOnce(t, old, pages) // the recent ones are inside the lag

		e.fake.Advance(15 * time.Minute)
		next := dealPages(t, e, pages[len(pages)-1].Next, time.Now().Add(15*time.Minute))
		requireEachOnce(t, recent, next)
	})

	t.Run("ASecondRunWithoutChangesReadsNothing", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		e.fake.GenerateDeals(500, hubspottest.GenerateOptions{})
		pages := dealPages(t, e, "", time.Now())

		before := e.fake.Stats().Requests
		again := dealPages(t, e, pages[len(pages)-1].Next, time.Now())
		require.Len(t, again, 1)
		require.Empty(t, again[0].Deals)
		require.True(t, again[0].Done)
		require.Equal(t, pages[len(pages)-1].Next, again[0].Next, "the high-water mark does not move")
		require.LessOrEqual(t, e.fake.Stats().Requests-before, 1)
	})
}

func TestDealsMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{fast: true})
	e.fake.GenerateOwners(3)
	e.fake.GenerateCompanies(5, hubspottest.GenerateOptions{})
	ids := e.fake.GenerateDeals(300, hubspottest.GenerateOptions{})
	b, skipped, _ := e.read(t, hubspot.StreamDeals, connectors.Incremental, "", time.Now())
	require.Empty(t, skipped)
	require.Len(t, b.Deals, len(ids))

	history := make(map[string][]pipeline.StageEntry)
	for _, h := range b.StageHistory {
		history[h.DealExternalID] = append(history[h.DealExternalID], h)
	}
	var sawClosedWon, sawOpen, sawNoAmount bool
	for _, d := range b.Deals {
		o, ok := e.fake.Object("deals", d.ExternalID)
		require.True(t, ok)
		p := o.Properties
		require.Equal(t, p["dealname"], d.Name)
		require.Equal(t, p["pipeline"], d.PipelineExternalID)
		require.Equal(t, p["dealstage"], d.StageExternalID)
		require.Equal(t, p["hubspot_owner_id"], d.OwnerExternalID)
		require.Equal(t, p["hs_primary_associated_company"], d.AccountExternalID)
		require.Equal(t, "USD", d.Currency)
		if p["amount"] == "" {
			require.False(t, d.Amount.Valid)
			sawNoAmount = true
		} else {
			want, err := decimal.NewFromString(p["amount"])
			require.NoError(t, err)
			require.True(t, want.Equal(d.Amount.Decimal), "deal %s amount %s, want %s", d.ExternalID, d.Amount.Decimal, want)
		}
		closeDate, err := time.Parse(time.RFC3339, p["closedate"])
		require.NoError(t, err)
		require.Equal(t, time.Date(closeDate.Year(), closeDate.Month(), closeDate.Day(), 0, 0, 0, 0, time.UTC), d.CloseDate)
		require.Equal(t, p["hs_is_closed"] == "true", d.IsClosed)
		require.Equal(t, p["hs_is_closed_won"] == "true", d.IsWon)
		require.Equal(t, o.Modified, d.UpdatedAt)
		entered, err := time.Parse(time.RFC3339, p["hs_date_entered_"+d.StageExternalID])
		require.NoError(t, err)
		require.Equal(t, entered, d.StageEnteredAt)
		require.NotEmpty(t, d.Raw)

		// Stage history: one entry per hs_date_entered_<stage>, the current one still open.
		var wantEntries int
		for name := range p {
			if len(name) > len("hs_date_entered_") && name[:len("hs_date_entered_")] == "hs_date_entered_" {
				wantEntries++
			}
		}
		require.Len(t, history[d.ExternalID], wantEntries, "deal %s", d.ExternalID)
		last := history[d.ExternalID][len(history[d.ExternalID])-1]
		require.Equal(t, d.StageExternalID, last.StageExternalID)
		require.True(t, last.ExitedAt.IsZero())
		for _, h := range history[d.ExternalID][:len(history[d.ExternalID])-1] {
			require.False(t, h.ExitedAt.IsZero())
		}
		if d.IsClosed {
			require.False(t, d.ClosedAt.IsZero())
			sawClosedWon = sawClosedWon || d.IsWon
		} else {
			sawOpen = true
		}
		if v := p["notes_last_updated"]; v != "" {
			want, _ := time.Parse(time.RFC3339, v)
			require.Equal(t, want, d.LastActivityAt)
		}
	}
	require.True(t, sawClosedWon && sawOpen && sawNoAmount, "the generated deals cover won, open and amount-less deals")

	t.Run("RecordURL", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "https://app.hubspot.com/contacts/4242/record/0-3/1234", hubspot.DealURL(4242, "1234"))
	})
}
