package pipedrive_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/connectortest"
	"github.com/pipewatch/pipewatch/connectors/pipedrive"
	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
	"github.com/pipewatch/pipewatch/pipeline"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		cfg  pipedrive.Config
		err  string
	}{
		{"Defaults", pipedrive.Config{}, ""},
		{"APIDomain", pipedrive.Config{BaseURL: "https://acme.pipedrive.com", CompanyDomain: "acme", PageSize: 500}, ""},
		{"NotAURL", pipedrive.Config{BaseURL: "api.pipedrive.com"}, `pipedrive base_url "api.pipedrive.com" is not an http(s) URL`},
		{"TokenInURL", pipedrive.Config{BaseURL: "https://api.pipedrive.com?api_token=secret"}, `pipedrive base_url "https://api.pipedrive.com?api_token=secret" must not carry a query or credentials`},
		{"CompanyDomain", pipedrive.Config{CompanyDomain: "acme.pipedrive.com"}, `pipedrive company domain "acme.pipedrive.com" is not a subdomain name (e.g. "acme" for acme.pipedrive.com)`},
		{"PageSize", pipedrive.Config{PageSize: 501}, "pipedrive page size 501 is outside 1–500"},
		{"Negative", pipedrive.Config{Lag: -time.Second}, "pipedrive lookback and lag must not be negative"},
	} {
		err := tt.cfg.Validate()
		if tt.err == "" {
			require.NoError(t, err, tt.name)
		} else {
			require.EqualError(t, err, tt.err, tt.name)
		}
	}
}

func TestDealURL(t *testing.T) {
	t.Parallel()

	c, err := pipedrive.New(pipedrive.Config{BaseURL: "https://acme.pipedrive.com"}, http.DefaultClient)
	require.NoError(t, err)
	require.Equal(t, "https://acme.pipedrive.com/deal/42", c.DealURL("42"))

	c, err = pipedrive.New(pipedrive.Config{CompanyDomain: "globex"}, http.DefaultClient)
	require.NoError(t, err)
	require.Equal(t, "https://globex.pipedrive.com/deal/7", c.DealURL("7"))

	c, err = pipedrive.New(pipedrive.Config{}, http.DefaultClient)
	require.NoError(t, err)
	require.Empty(t, c.DealURL("7"), "api.pipedrive.com does not name the company")
}

func TestConnector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ReadsA3000DealAccountExactly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.Generate(pipedrivetest.Account{Users: 8, Pipelines: 2, Deals: 3000, ActivitiesPerDeal: 2, Leads: 700})

		emitted := b.sync(ctx, t)
		requireMirrorsAccount(t, b)
		require.Len(t, emitted[pipedrive.StreamDeals].Deals, 3000, "each deal exactly once")

		// 3,000 deals at 500 per page is 6 pages (and the deal activity lookups, 100 ids each).
		var dealPages, lookups int
		for _, r := range b.fake.Requests() {
			switch {
			case r.Path == "/api/v2/deals" && r.Query.Get("status") == "":
				dealPages++
				require.Equal(t, "500", r.Query.Get("limit"))
				require.Equal(t, "update_time", r.Query.Get("sort_by"))
				require.NotEmpty(t, r.Query.Get("updated_until"))
			case r.Path == "/api/v2/activities" && r.Query.Has("ids"):
				lookups++
			}
		}
		require.Equal(t, 6, dealPages)
		require.LessOrEqual(t, lookups, 60)

		// Last and next activity times come from the deals' activities.
		snap := b.fake.Snapshot()
		deals := live[pipeline.Deal](b.mirror, pipeline.EntityDeals)
		withLast := 0
		for _, a := range snap.Activities {
			if a.Done {
				withLast++
			}
		}
		require.Positive(t, withLast)
		for _, d := range deals {
			if !d.LastActivityAt.IsZero() {
				require.True(t, d.LastActivityAt.Before(b.clock.Now()), "deal %s: last activity in the future", d.ExternalID)
			}
			if !d.NextActivityAt.IsZero() {
				require.True(t, d.NextActivityAt.After(d.LastActivityAt) || d.LastActivityAt.IsZero())
			}
		}
	})

	t.Run("ChangesBetweenSyncsAppear", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.Generate(pipedrivetest.Account{Deals: 300, ActivitiesPerDeal: 1, Leads: 50})
		b.sync(ctx, t)
		requireMirrorsAccount(t, b)

		snap := b.fake.Snapshot()
		b.clock.Advance(10 * time.Minute)
		moved, won := snap.Deals[0], snap.Deals[1]
		var otherStage int
		for _, s := range snap.Stages {
			if s.ID != moved.StageID && s.PipelineID == moved.PipelineID {
				otherStage = s.ID
			}
		}
		require.NoError(t, b.fake.UpdateDeal(moved.ID, func(d *pipedrivetest.Deal) { d.StageID, d.Value = otherStage, "99999.99" }))
		require.NoError(t, b.fake.UpdateDeal(won.ID, func(d *pipedrivetest.Deal) { d.Status = "won" }))
		added := b.fake.AddDeal(pipedrivetest.Deal{Title: "New", OwnerID: snap.Users[0].ID, PipelineID: moved.PipelineID, StageID: moved.StageID, Value: "10", Currency: "USD"})
		require.NoError(t, b.fake.UpdatePerson(snap.Persons[0].ID, func(p *pipedrivetest.Person) { p.Emails[0].Value = "changed@customer.example" }))
		lead := b.fake.AddLead(pipedrivetest.Lead{Title: "Fresh lead", OwnerID: snap.Users[0].ID, SourceName: "Web forms"})
		require.NoError(t, b.fake.UpdateLead(snap.Leads[3].ID, func(l *pipedrivetest.Lead) { l.IsArchived = true }))
		b.clock.Advance(2 * time.Minute) // past the lag

		b.fake.ResetRequests()
		emitted := b.sync(ctx, t)
		requireMirrorsAccount(t, b)
		var dealIDs []string
		for _, d := range emitted[pipedrive.StreamDeals].Deals {
			dealIDs = append(dealIDs, d.ExternalID)
		}
		require.ElementsMatch(t, []string{itoa(moved.ID), itoa(won.ID), itoa(added.ID)}, dealIDs, "only the changed deals are read again")
		got := live[pipeline.Deal](b.mirror, pipeline.EntityDeals)[itoa(moved.ID)]
		require.Equal(t, itoa(otherStage), got.StageExternalID)
		require.Equal(t, b.clock.Now().Add(-2*time.Minute), got.StageEnteredAt, "stage_change_time")
		require.Equal(t, "99999.99", got.Amount.Decimal.String())
		require.True(t, live[pipeline.Deal](b.mirror, pipeline.EntityDeals)[itoa(won.ID)].IsWon)
		require.Len(t, emitted[pipedrive.StreamContacts].Contacts, 1)
		var leadIDs []string
		for _, l := range emitted[pipedrive.StreamLeads].Leads {
			leadIDs = append(leadIDs, l.ExternalID)
		}
		require.ElementsMatch(t, []string{lead.ID, snap.Leads[3].ID}, leadIDs)
	})

	t.Run("NoChangeReadMakesOneRequestPerStream", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.Generate(pipedrivetest.Account{Deals: 1200, ActivitiesPerDeal: 1, Leads: 120})
		b.sync(ctx, t)
		b.clock.Advance(15 * time.Minute)

		b.fake.ResetRequests()
		emitted := b.sync(ctx, t)
		for _, s := range b.conn.Streams() {
			batch := emitted[s.Name]
			if s.Incremental {
				require.Zero(t, batch.Len(), "stream %s re-emitted unchanged records", s.Name)
			}
		}
		perStream := map[string]int{}
		for _, r := range b.fake.Requests() {
			key := r.Path
			if r.Query.Get("status") == "deleted" {
				key += "?status=deleted"
			}
			perStream[key]++
		}
		require.Equal(t, map[string]int{
			"/api/v1/users": 1, "/api/v2/pipelines": 1, "/api/v2/stages": 1, "/api/v2/organizations": 1,
			"/api/v2/persons": 1, "/api/v1/leads": 1, "/api/v2/deals": 1, "/api/v2/deals?status=deleted": 1,
			"/api/v2/activities": 1,
		}, perStream)
		requireMirrorsAccount(t, b)
	})

	t.Run("DeletedDealsAreTombstonedAndRestoresComeBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.Generate(pipedrivetest.Account{Deals: 40})
		b.sync(ctx, t)
		snap := b.fake.Snapshot()
		b.clock.Advance(time.Minute)
		for _, d := range snap.Deals[:5] {
			require.NoError(t, b.fake.DeleteDeal(d.ID))
		}
		b.clock.Advance(2 * time.Minute)
		emitted := b.sync(ctx, t)
		var deleted []string
		for _, d := range emitted[pipedrive.StreamDeletedDeals].Deletions {
			require.Equal(t, pipeline.EntityDeals, d.Entity)
			require.False(t, d.DeletedAt.IsZero())
			deleted = append(deleted, d.ExternalID)
		}
		require.ElementsMatch(t, []string{itoa(snap.Deals[0].ID), itoa(snap.Deals[1].ID), itoa(snap.Deals[2].ID), itoa(snap.Deals[3].ID), itoa(snap.Deals[4].ID)}, deleted)
		requireMirrorsAccount(t, b)

		b.clock.Advance(time.Minute)
		require.NoError(t, b.fake.RestoreDeal(snap.Deals[0].ID))
		b.clock.Advance(2 * time.Minute)
		emitted = b.sync(ctx, t)
		require.Len(t, emitted[pipedrive.StreamDeletedDeals].Deletions, 4)
		require.Len(t, emitted[pipedrive.StreamDeals].Deals, 1, "the restored deal is read again")
		requireMirrorsAccount(t, b)

		// Pipedrive purges deleted deals after 30 days: they leave the deleted list.
		b.clock.Advance(31 * 24 * time.Hour)
		emitted = b.sync(ctx, t)
		require.Empty(t, emitted[pipedrive.StreamDeletedDeals].Deletions)
	})

	t.Run("TiesAtPageBoundariesAreNeverLost", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: pipedrive.Config{PageSize: 100}})
		b.fake.Generate(pipedrivetest.Account{Deals: 450})
		b.sync(ctx, t)

		// A bulk edit: 450 deals share one update_time, read 100 per page.
		b.clock.Advance(time.Hour)
		for _, d := range b.fake.Snapshot().Deals {
			require.NoError(t, b.fake.UpdateDeal(d.ID, func(d *pipedrivetest.Deal) { d.Currency = "EUR" }))
		}
		b.clock.Advance(2 * time.Minute)
		emitted := b.sync(ctx, t)
		require.Len(t, emitted[pipedrive.StreamDeals].Deals, 450)
		seen := map[string]bool{}
		for _, d := range emitted[pipedrive.StreamDeals].Deals {
			require.False(t, seen[d.ExternalID], "deal %s read twice", d.ExternalID)
			seen[d.ExternalID] = true
			require.Equal(t, "EUR", d.Currency)
		}
		requireMirrorsAccount(t, b)
	})

	t.Run("WindowStopsAtTheLagAndTheCursorAtWhatWasRead", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: pipedrive.Config{Lag: time.Minute, Lookback: 5 * time.Minute}})
		b.fake.Generate(pipedrivetest.Account{Deals: 10})
		b.sync(ctx, t)
		before := b.cursors[pipedrive.StreamDeals]

		b.clock.Advance(time.Hour)
		d := b.fake.Snapshot().Deals[0]
		require.NoError(t, b.fake.UpdateDeal(d.ID, func(d *pipedrivetest.Deal) { d.Title = "Renamed" }))
		b.clock.Advance(30 * time.Second) // inside the lag: not read yet
		emitted := b.sync(ctx, t)
		require.Empty(t, emitted[pipedrive.StreamDeals].Deals)
		require.Equal(t, before, b.cursors[pipedrive.StreamDeals], "nothing read: the high-water mark stays (never our clock)")

		b.clock.Advance(time.Minute)
		emitted = b.sync(ctx, t)
		require.Len(t, emitted[pipedrive.StreamDeals].Deals, 1)
		require.Contains(t, string(b.cursors[pipedrive.StreamDeals]), b.clock.Now().Add(-time.Minute-30*time.Second).Format(time.RFC3339),
			"the high-water mark is the update_time read")
	})

	t.Run("LateCommitsInsideTheLookbackAreRead", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: pipedrive.Config{Lag: time.Second, Lookback: 10 * time.Minute}})
		b.fake.Generate(pipedrivetest.Account{Deals: 10})
		b.clock.Advance(time.Hour)
		snap := b.fake.Snapshot()
		require.NoError(t, b.fake.UpdateDeal(snap.Deals[0].ID, func(d *pipedrivetest.Deal) { d.Title = "First" }))
		b.clock.Advance(time.Minute)
		b.sync(ctx, t)

		// A write that committed late: its update_time is before what was already read.
		late := pipedrivetest.T(b.clock.Now().Add(-3 * time.Minute))
		require.NoError(t, b.fake.UpdateDeal(snap.Deals[1].ID, func(d *pipedrivetest.Deal) { d.Title, d.UpdateTime = "Late", late }))
		emitted := b.sync(ctx, t)
		require.Len(t, emitted[pipedrive.StreamDeals].Deals, 1)
		require.Equal(t, "Late", emitted[pipedrive.StreamDeals].Deals[0].Name)
		requireMirrorsAccount(t, b)
	})

	t.Run("FullReadListsEveryLiveDealIncludingArchived", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: pipedrive.Config{PageSize: 50}})
		b.fake.Generate(pipedrivetest.Account{Deals: 120, Leads: 130})
		snap := b.fake.Snapshot()
		require.NoError(t, b.fake.ArchiveDeal(snap.Deals[0].ID))
		require.NoError(t, b.fake.DeleteDeal(snap.Deals[1].ID))

		batch, skipped, _ := b.readStream(ctx, t, pipedrive.StreamDeals, connectors.Full, "")
		require.Empty(t, skipped)
		var ids []string
		for _, d := range batch.Deals {
			ids = append(ids, d.ExternalID)
		}
		require.Len(t, ids, 119)
		require.Contains(t, ids, itoa(snap.Deals[0].ID), "archived deals are live")
		require.NotContains(t, ids, itoa(snap.Deals[1].ID))
		slices.Sort(ids)
		require.Len(t, slices.Compact(ids), 119)

		leads, _, _ := b.readStream(ctx, t, pipedrive.StreamLeads, connectors.Full, "")
		require.Len(t, leads.Leads, 130)
	})

	t.Run("CursorOfAnotherModeIsRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.Generate(pipedrivetest.Account{Deals: 3})
		_, _, next := b.readStream(ctx, t, pipedrive.StreamDeals, connectors.Incremental, "")
		_, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, Mode: connectors.Full, Cursor: next})
		var perm *connectors.PermanentError
		require.ErrorAs(t, err, &perm)
		require.ErrorContains(t, err, "the cursor belongs to a read in incremental mode, not full")

		_, err = b.conn.Read(ctx, connectors.ReadRequest{Stream: "tickets"})
		require.EqualError(t, err, `pipedrive has no stream "tickets"`)
	})

	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := b.conn.Read(cctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, SyncStart: b.clock.Now()})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestMalformedPayloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	serve := func(t *testing.T, body string) *pipedrive.Connector {
		t.Helper()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		hc := connectors.NewHTTPClient(connectors.HTTPConfig{RateLimits: pipedrive.RateLimits()})
		conn, err := pipedrive.New(pipedrive.Config{BaseURL: srv.URL, APIToken: testToken}, hc)
		require.NoError(t, err)
		return conn
	}

	t.Run("BadRecordsAreSkippedByNameAndTheRestKept", func(t *testing.T) {
		t.Parallel()
		conn := serve(t, `{"success": true, "data": [
			{"id": 1, "title": "Good", "status": "open", "value": 10, "currency": "USD", "update_time": "2026-01-01T00:00:00Z"},
			{"id": 2, "title": "Bad value", "status": "open", "value": "ten", "currency": "USD", "update_time": "2026-01-01T00:00:01Z"},
			{"id": 3, "title": "Bad time", "status": "open", "update_time": "01/02/2026"},
			{"id": 4, "title": "Bad status", "status": "pending", "update_time": "2026-01-01T00:00:02Z"},
			{"title": "No id", "status": "open", "update_time": "2026-01-01T00:00:03Z"}
		], "additional_data": {"next_cursor": null}}`)
		page, err := conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, SyncStart: time.Now()})
		require.NoError(t, err)
		require.True(t, page.Done)
		require.Len(t, page.Deals, 1)
		require.Equal(t, "1", page.Deals[0].ExternalID)
		reasons := map[string]string{}
		for _, s := range page.Skipped {
			require.Equal(t, pipeline.EntityDeals, s.Entity)
			reasons[s.ExternalID] = s.Reason
		}
		require.Len(t, reasons, 4)
		require.Contains(t, reasons["2"], "decoding deals")
		require.Contains(t, reasons["3"], `unrecognized timestamp "01/02/2026"`)
		require.Equal(t, `status "pending" is not open, won or lost`, reasons["4"])
		require.Equal(t, "the record has no id", reasons[""])
	})

	t.Run("AnUndecodableBodyIsAClearError", func(t *testing.T) {
		t.Parallel()
		conn := serve(t, `<html>Service temporarily unavailable</html>`)
		_, err := conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamContacts, SyncStart: time.Now()})
		require.ErrorContains(t, err, "reading pipedrive contacts: decoding the response of GET /persons")
	})

	t.Run("SuccessFalseIsAnError", func(t *testing.T) {
		t.Parallel()
		conn := serve(t, `{"success": false, "error": "Scope and URL mismatch", "errorCode": 403}`)
		_, err := conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamOwners})
		require.EqualError(t, err, "reading pipedrive owners: GET /users answered success=false: Scope and URL mismatch")
	})
}

func TestLeadsScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// Deleting leads already read shifts the offsets of the rest: the scan notices and
	// backs up instead of skipping them.
	for _, mode := range []connectors.Mode{connectors.Incremental, connectors.Full} {
		t.Run(strings.ToUpper(string(mode[:1]))+string(mode[1:])+"SurvivesDeletionsMidScan", func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{config: pipedrive.Config{PageSize: 20}})
			b.fake.Generate(pipedrivetest.Account{Leads: 100})
			want := map[string]bool{}
			for _, l := range b.fake.Snapshot().Leads {
				want[l.ID] = true
			}

			got := map[string]bool{}
			var cursor connectors.Cursor
			start := b.clock.Now()
			for page := 0; ; page++ {
				p, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamLeads, Mode: mode, Cursor: cursor, SyncStart: start})
				require.NoError(t, err)
				for _, l := range p.Leads {
					require.False(t, got[l.ExternalID], "lead %s read twice", l.ExternalID)
					got[l.ExternalID] = true
				}
				if p.Done {
					break
				}
				cursor = p.Next
				if page == 1 {
					// Delete 30 of the leads read so far.
					n := 0
					for id := range got {
						if n == 30 {
							break
						}
						require.NoError(t, b.fake.DeleteLead(id))
						n++
					}
				}
			}
			require.Equal(t, want, got)
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("TokenGoesInTheHeaderNeverTheQuery", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.fake.Generate(pipedrivetest.Account{Deals: 5, Leads: 5})
		b.sync(ctx, t)
		reqs := b.fake.Requests()
		require.NotEmpty(t, reqs)
		for _, r := range reqs {
			require.Equal(t, "token", r.Auth, "%s", r.Path)
			require.False(t, r.Query.Has("api_token"), "%s", r.Path)
		}
	})

	t.Run("OAuthBearerWithTheAPIDomainAsBase", func(t *testing.T) {
		t.Parallel()
		fake := pipedrivetest.NewServer(pipedrivetest.Options{ClientID: "client", ClientSecret: "secret", RefreshToken: "rt-1"})
		t.Cleanup(fake.Close)
		fake.Generate(pipedrivetest.Account{Deals: 30, Leads: 10})
		conf := &oauth2.Config{ClientID: "client", ClientSecret: "secret", Endpoint: oauth2.Endpoint{
			TokenURL: fake.URL() + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader, // Basic client auth
		}}
		ts := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: "rt-1"})
		hc := connectors.NewHTTPClient(connectors.HTTPConfig{Auth: ts, RateLimits: pipedrive.RateLimits()})
		// No base URL: the connector asks for the api_domain of the token response.
		conn, err := pipedrive.New(pipedrive.Config{BaseURLFunc: func(context.Context) (string, error) {
			tok, err := ts.Token()
			return pipedrive.APIDomain(tok), err
		}}, hc)
		require.NoError(t, err)
		require.Empty(t, fake.Requests(), "constructing does no I/O")
		for _, stream := range []string{pipedrive.StreamOwners, pipedrive.StreamDeals, pipedrive.StreamLeads} {
			pages, err := connectortest.ReadAll(ctx, conn, connectors.ReadRequest{Stream: stream, SyncStart: time.Now()})
			require.NoError(t, err, stream)
			require.NotEmpty(t, pages)
		}
		require.NotEqual(t, "rt-1", fake.RefreshToken(), "Pipedrive rotates the refresh token")
		for _, r := range fake.Requests() {
			require.Equal(t, "bearer", r.Auth, r.Path)
			require.True(t, strings.HasPrefix(r.Path, "/api/v1/") || strings.HasPrefix(r.Path, "/api/v2/"), "api_domain paths: %s", r.Path)
		}
	})

	t.Run("WrongTokenIsUnauthorized", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: pipedrive.Config{APIToken: "wrong-token"}})
		_, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, SyncStart: b.clock.Now()})
		require.ErrorIs(t, err, connectors.ErrUnauthorized)
		require.ErrorContains(t, err, "unauthorized access")
		require.NotContains(t, err.Error(), "wrong-token")
	})
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("StormsOf429And5xxEndExact", func(t *testing.T) {
		t.Parallel()
		// Each 429 reports the burst window spent (remaining 0, reset 1 s), so the chain pauses
		// a second for it: a storm of a few, among fast-retried 5xx.
		b := setup(t, setupOpts{fake: pipedrivetest.Options{OmitRetryAfter: true, Seed: 7},
			config: pipedrive.Config{PageSize: 200}, http: connectors.HTTPConfig{RetryMax: 8}})
		b.fake.Generate(pipedrivetest.Account{Deals: 600, ActivitiesPerDeal: 1, Leads: 150})
		b.fake.SetFaults(pipedrivetest.Faults{Rate429: 0.15, Rate5xx: 0.25})
		b.sync(ctx, t)
		requireMirrorsAccount(t, b)
		require.Positive(t, b.stats.Retries.Load())
		var throttled, failed int
		for _, r := range b.fake.Requests() {
			switch {
			case r.Status == http.StatusTooManyRequests:
				throttled++
			case r.Status >= 500:
				failed++
			}
		}
		require.Positive(t, throttled)
		require.Positive(t, failed)
	})

	t.Run("ExhaustedRetriesSnoozeAndResumeFromTheCursor", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{config: pipedrive.Config{PageSize: 100}, http: connectors.HTTPConfig{RetryMax: 2}})
		b.fake.Generate(pipedrivetest.Account{Deals: 350})
		start := b.clock.Now()
		p1, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, SyncStart: start})
		require.NoError(t, err)
		require.False(t, p1.Done)

		b.fake.FailNext(429, 429, 429) // Retry-After: 1 on each; three attempts fail
		_, err = b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, Cursor: p1.Next, SyncStart: start})
		var rl *connectors.RateLimitError
		require.ErrorAs(t, err, &rl)
		require.False(t, rl.Daily)
		require.Equal(t, time.Second, rl.RetryAfter)
		require.Equal(t, "Request over limit", rl.Message)

		got := map[string]bool{}
		for _, d := range p1.Deals {
			got[d.ExternalID] = true
		}
		cursor := p1.Next
		for {
			p, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, Cursor: cursor, SyncStart: start})
			require.NoError(t, err)
			for _, d := range p.Deals {
				got[d.ExternalID] = true
			}
			if p.Done {
				break
			}
			cursor = p.Next
		}
		require.Len(t, got, 350)
	})

	t.Run("BurstWindowHeadersPaceRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{fake: pipedrivetest.Options{BurstLimit: 10}, config: pipedrive.Config{PageSize: 10}})
		b.fake.Generate(pipedrivetest.Account{Deals: 120})
		began := time.Now()
		batch, _, _ := b.readStream(ctx, t, pipedrive.StreamDeals, connectors.Full, "")
		require.Len(t, batch.Deals, 120)
		// 12 pages at 10 requests per 2 s: the limiter spreads them instead of hitting 429s.
		require.Greater(t, time.Since(began), time.Second)
		for _, r := range b.fake.Requests() {
			require.NotEqual(t, http.StatusTooManyRequests, r.Status, "the proactive limiter let a request through over the burst limit")
		}
	})

	t.Run("DailyBudgetSnoozesToTheReset", func(t *testing.T) {
		t.Parallel()
		// 10 tokens per v2 list: room for 3 deal pages.
		b := setup(t, setupOpts{fake: pipedrivetest.Options{DailyBudget: 30}, config: pipedrive.Config{PageSize: 50}})
		b.fake.Generate(pipedrivetest.Account{Deals: 200})
		start := b.clock.Now()
		var (
			cursor connectors.Cursor
			got    = map[string]bool{}
			rl     *connectors.RateLimitError
		)
		for {
			p, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, Mode: connectors.Full, Cursor: cursor, SyncStart: start})
			if errors.As(err, &rl) {
				break
			}
			require.NoError(t, err)
			for _, d := range p.Deals {
				got[d.ExternalID] = true
			}
			cursor = p.Next
		}
		require.True(t, rl.Daily)
		now := b.clock.Now()
		midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
		require.Equal(t, midnight.Sub(now), rl.RetryAfter, "snooze until the budget resets")
		require.Equal(t, "Daily API token budget exceeded", rl.Message)
		require.Len(t, got, 150)

		// Until the reset the chain refuses without asking the vendor again.
		before := len(b.fake.Requests())
		_, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, Mode: connectors.Full, Cursor: cursor, SyncStart: start})
		require.ErrorAs(t, err, &rl)
		require.Len(t, b.fake.Requests(), before)

		b.clock.Advance(rl.RetryAfter)
		for {
			p, err := b.conn.Read(ctx, connectors.ReadRequest{Stream: pipedrive.StreamDeals, Mode: connectors.Full, Cursor: cursor, SyncStart: start})
			require.NoError(t, err)
			for _, d := range p.Deals {
				got[d.ExternalID] = true
			}
			if p.Done {
				break
			}
			cursor = p.Next
		}
		require.Len(t, got, 200)
	})
}
