package hubspot_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/pipeline"
)

func TestChangesBetweenSyncs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{fast: true})
	e.fake.GenerateOwners(3)
	ids := e.fake.GenerateDeals(400, hubspottest.GenerateOptions{})
	open := func(i int) string { // a deal of the default pipeline in an open stage
		for ; ; i++ {
			o, _ := e.fake.Object("deals", ids[i])
			if o.Properties["pipeline"] == "default" && o.Properties["hs_is_closed"] == "false" && o.Properties["dealstage"] != "contractsent" {
				return ids[i]
			}
		}
	}
	moved, pushed, archived, restored := open(0), open(100), ids[200], ids[300]
	require.NoError(t, e.fake.Archive("deals", restored))

	first, _, cursor := e.read(t, hubspot.StreamDeals, connectors.Incremental, "", time.Now())
	require.Len(t, first.Deals, 399)
	before, _ := e.fake.Object("deals", moved)

	// Between syncs: a stage move, a pushed close date, an archive, a restore, a new deal.
	require.NoError(t, e.fake.MoveDealStage(moved, "contractsent"))
	pushedTo := time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC)
	require.NoError(t, e.fake.SetDealCloseDate(pushed, pushedTo))
	require.NoError(t, e.fake.Archive("deals", archived))
	require.NoError(t, e.fake.Restore("deals", restored))
	created, err := e.fake.Create("deals", map[string]string{
		"dealname": "New logo", "amount": "12500.10", "pipeline": "default", "dealstage": "appointmentscheduled",
	}, nil)
	require.NoError(t, err)

	// The changes are newer than the lag; once it has passed they are read.
	e.fake.Advance(hubspot.DefaultLag + time.Second)
	second, _, _ := e.read(t, hubspot.StreamDeals, connectors.Incremental, cursor, time.Now().Add(hubspot.DefaultLag+time.Second))
	var got []string
	byID := make(map[string]pipeline.Deal)
	for _, d := range second.Deals {
		got = append(got, d.ExternalID)
		byID[d.ExternalID] = d
	}
	require.ElementsMatch(t, []string{moved, pushed, restored, created}, got, "only the changed deals; archiving does not bump the stamp")

	require.Equal(t, "contractsent", byID[moved].StageExternalID)
	var entered, exited bool
	for _, h := range second.StageHistory {
		if h.DealExternalID == moved && h.StageExternalID == "contractsent" {
			entered = h.ExitedAt.IsZero()
		}
		if h.DealExternalID == moved && h.StageExternalID == before.Properties["dealstage"] {
			exited = !h.ExitedAt.IsZero()
		}
	}
	require.True(t, entered && exited, "the move shows in the stage history")
	require.Equal(t, pushedTo, byID[pushed].CloseDate)
	require.Equal(t, "12500.1", byID[created].Amount.Decimal.String())

	gone, _, _ := e.read(t, hubspot.StreamArchivedDeals, connectors.Incremental, "", time.Now())
	var deleted []string
	for _, d := range gone.Deletions {
		deleted = append(deleted, d.ExternalID)
	}
	require.Equal(t, []string{archived}, deleted, "the restored deal is no longer listed as archived")
}

// readResilient reads a stream to Done the way the sync job does: a rate-limit error or a
// temporary failure ends the attempt, and the next attempt resumes from the last cursor.
func readResilient(t *testing.T, e *env, stream string, mode connectors.Mode) (pipeline.Batch, int) {
	t.Helper()
	var b pipeline.Batch
	var cursor connectors.Cursor
	syncStart := time.Now()
	resumed := 0
	for pages := 0; pages < 10_000; pages++ {
		page, err := e.conn.Read(t.Context(), connectors.ReadRequest{Stream: stream, Mode: mode, Cursor: cursor, SyncStart: syncStart})
		var rl *connectors.RateLimitError
		var he *connectors.HTTPError
		switch {
		case errors.As(err, &rl):
			resumed++
			time.Sleep(min(rl.RetryAfter, time.Second))
			continue
		case errors.As(err, &he) && he.Temporary():
			resumed++
			continue
		}
		require.NoError(t, err)
		require.Empty(t, page.Skipped)
		b.Append(page.Batch)
		if page.Done {
			return b, resumed
		}
		cursor = page.Next
	}
	t.Fatal("the stream never finished")
	return b, resumed
}

func TestUnreliableVendor(t *testing.T) {
	t.Parallel()
	// HubSpot's real limits on both sides: the fake enforces 100 requests per 10 s and 4
	// searches per second, the client paces itself with hubspot.RateLimits().
	e := newEnv(t, envOptions{http: connectors.HTTPConfig{RetryWaitMin: 100 * time.Millisecond, RetryWaitMax: 2 * time.Second}})
	e.fake.GenerateOwners(4)
	want := e.fake.GenerateDeals(2_400, hubspottest.GenerateOptions{SharedModified: 320})
	e.fake.SetFaults(hubspottest.Faults{RateLimited: 0.20, RetryAfterShare: 0.5, RetryAfter: time.Second, ServerErrors: 0.05})

	incremental, resumedIncremental := readResilient(t, e, hubspot.StreamDeals, connectors.Incremental)
	full, resumedFull := readResilient(t, e, hubspot.StreamDeals, connectors.Full)
	for _, b := range []pipeline.Batch{incremental, full} {
		var got []string
		for _, d := range b.Deals {
			got = append(got, d.ExternalID)
		}
		require.ElementsMatch(t, want, got, "every deal exactly once")
	}

	st := e.fake.Stats()
	t.Logf("requests %d (searches %d), injected 429s %d and 5xx %d, resumed %d+%d, chain retries %d",
		st.Requests, st.SearchRequests, st.InjectedRateLimits, st.InjectedServerErrors, resumedIncremental, resumedFull, e.stats.Retries.Load())
	require.Zero(t, st.BurstViolations, "never over 100 requests per 10 s")
	require.Zero(t, st.SearchViolations, "never over 4 searches per second")
	require.Positive(t, st.InjectedRateLimits)
	require.Positive(t, st.InjectedServerErrors)
	require.Positive(t, e.stats.Retries.Load())
}

func TestMalformedPayloads(t *testing.T) {
	t.Parallel()

	t.Run("BadRecordsAreSkippedByNameAndTheRestSyncs", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		ids := e.fake.GenerateDeals(300, hubspottest.GenerateOptions{})
		wrongType, unparseable, noID, badProbability := ids[10], ids[20], ids[30], ids[40]
		require.NoError(t, e.fake.SetRawProperty("deals", wrongType, "amount", json.RawMessage(`1234.5`)))
		require.NoError(t, e.fake.Update("deals", unparseable, map[string]string{"closedate": "next tuesday"}))
		o, _ := e.fake.Object("deals", noID)
		require.NoError(t, e.fake.SetRawRecord("deals", noID, json.RawMessage(
			`{"properties":{"dealname":"orphan","hs_lastmodifieddate":"`+o.Properties["hs_lastmodifieddate"]+`"}}`)))
		require.NoError(t, e.fake.Update("deals", badProbability, map[string]string{"hs_deal_stage_probability": "40"}))
		e.fake.Advance(hubspot.DefaultLag + time.Second) // past the lag behind the updates

		for _, mode := range []connectors.Mode{connectors.Incremental, connectors.Full} {
			b, skipped, _ := e.read(t, hubspot.StreamDeals, mode, "", time.Now().Add(hubspot.DefaultLag+time.Second))
			require.Len(t, b.Deals, 296, mode)
			reasons := make(map[string]string)
			for _, s := range skipped {
				require.Equal(t, pipeline.EntityDeals, s.Entity)
				reasons[s.ExternalID] = s.Reason
			}
			require.Len(t, reasons, 4, "%v", reasons)
			require.Contains(t, reasons[wrongType], "deals "+wrongType+": property amount: want a string, got 1234.5")
			require.Contains(t, reasons[unparseable], `property closedate: "next tuesday" is not a date`)
			require.Contains(t, reasons[badProbability], "probability 40 is outside 0..1")
			require.Contains(t, reasons[""], "has no id")
			for _, d := range b.Deals {
				require.NotContains(t, []string{wrongType, unparseable, noID, badProbability}, d.ExternalID)
			}
		}
	})

	t.Run("APageThatIsNotJSONFailsNamingTheRequestAndLosesNothing", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true, config: hubspot.Config{PageSize: 50}})
		want := e.fake.GenerateDeals(120, hubspottest.GenerateOptions{})
		syncStart := time.Now()
		page, err := e.conn.Read(t.Context(), connectors.ReadRequest{Stream: hubspot.StreamDeals, Mode: connectors.Incremental, SyncStart: syncStart})
		require.NoError(t, err)
		got := len(page.Deals)

		for _, body := range []string{
			`{"total":120,"results":[{"id":"1","properties":{"dealname":"tru`, // truncated
			`<html><body>Service temporarily unavailable</body></html>`,
			`{"total":120,"results":{"id":"1"}}`, // results is not a list
		} {
			e.fake.FailNext(1, hubspottest.Failure{Status: 200, Body: body})
			_, err = e.conn.Read(t.Context(), connectors.ReadRequest{Stream: hubspot.StreamDeals, Mode: connectors.Incremental, Cursor: page.Next, SyncStart: syncStart})
			require.Error(t, err)
			require.Contains(t, err.Error(), "searching deals modified from ")
			require.Contains(t, err.Error(), "decoding the response to POST /crm/v3/objects/deals/search")
		}

		// The same cursor, read again once the vendor answers properly, continues exactly.
		pages := dealPages(t, e, page.Next, syncStart)
		for _, p := range pages {
			got += len(p.Deals)
		}
		require.Equal(t, len(want), got)
	})

	t.Run("AForeignCursorIsAPermanentError", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{fast: true})
		_, err := e.conn.Read(t.Context(), connectors.ReadRequest{Stream: hubspot.StreamDeals, Mode: connectors.Incremental, Cursor: "2026-11-01T00:00:00Z"})
		var perm *connectors.PermanentError
		require.ErrorAs(t, err, &perm)
		require.Contains(t, err.Error(), `cursor "2026-11-01T00:00:00Z" is not an incremental cursor`)

		_, err = e.conn.Read(t.Context(), connectors.ReadRequest{Stream: hubspot.StreamDeals, Mode: connectors.Full, Cursor: `{"since":5}`})
		require.ErrorAs(t, err, &perm, "an incremental cursor is not a full-read cursor")
	})
}

func TestDailyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{fast: true})
	e.fake.GenerateOwners(2)
	e.fake.SetDailyRemaining(0)

	_, err := e.conn.Read(t.Context(), connectors.ReadRequest{Stream: hubspot.StreamOwners, Mode: connectors.Incremental})
	var rl *connectors.RateLimitError
	require.ErrorAs(t, err, &rl)
	require.True(t, rl.Daily)
	require.Positive(t, rl.RetryAfter)
	require.Equal(t, "You have reached your daily limit.", rl.Message)
	served := e.fake.Stats().Requests

	// Until the reset, reads fail fast without asking the vendor.
	_, err = e.conn.Read(t.Context(), connectors.ReadRequest{Stream: hubspot.StreamDeals, Mode: connectors.Incremental, SyncStart: time.Now()})
	require.ErrorAs(t, err, &rl)
	require.True(t, rl.Daily)
	require.Equal(t, served, e.fake.Stats().Requests)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, hubspot.Config{}.Validate())
	err := hubspot.Config{BaseURL: "api.hubapi.com", PageSize: 500, Lookback: -time.Minute}.Validate()
	require.Error(t, err)
	for _, want := range []string{
		`base_url "api.hubapi.com" must be an absolute http(s) URL`,
		"page size must be between 1 and 200, got 500",
		"lookback must not be negative",
	} {
		require.Contains(t, err.Error(), want)
	}
	_, err = hubspot.New(hubspot.Config{PageSize: 201}, nil)
	require.Error(t, err)
}
