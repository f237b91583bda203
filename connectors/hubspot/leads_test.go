package hubspot_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/connectortest"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/pipeline"
)

// TestLeadsConvertedDeal: a lead (a contact past MQL) links to the deal it converted into,
// the earliest-created of the deals associated with the contact, read from contact→deal
// associations on incremental and Full reads alike.
func TestLeadsConvertedDeal(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		env *env
		at  func(d time.Duration) string // a HubSpot timestamp d from the portal's now
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		e := newEnv(t, envOptions{fast: true})
		now := e.fake.Now()
		return &testBundle{env: e, at: func(d time.Duration) string { return now.Add(d).UTC().Format("2006-01-02T15:04:05.000Z") }}
	}
	create := func(t *testing.T, e *env, objectType string, props map[string]string, assoc map[string][]string) string {
		t.Helper()
		id, err := e.fake.Create(objectType, props, assoc)
		require.NoError(t, err)
		return id
	}
	// readContacts reads the contacts stream to its end once the portal's lag has passed.
	readContacts := func(t *testing.T, e *env, mode connectors.Mode, cursor connectors.Cursor) (map[string]pipeline.Lead, pipeline.Batch, connectors.Cursor) {
		t.Helper()
		e.fake.Advance(hubspot.DefaultLag + time.Second)
		b, skipped, next := e.read(t, hubspot.StreamContacts, mode, cursor, e.fake.Now())
		require.Empty(t, skipped)
		leads := map[string]pipeline.Lead{}
		for _, l := range b.Leads {
			leads[l.ExternalID] = l
		}
		return leads, b, next
	}
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}

	t.Run("EarliestCreatedDealOnIncrementalAndFullReads", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		e := b.env
		sql := map[string]string{"lifecyclestage": "salesqualifiedlead",
			"hs_lifecyclestage_marketingqualifiedlead_date": b.at(-30 * 24 * time.Hour),
			"hs_lifecyclestage_salesqualifiedlead_date":     b.at(-20 * 24 * time.Hour)}
		with := func(extra map[string]string) map[string]string {
			out := map[string]string{}
			for _, m := range []map[string]string{sql, extra} {
				for k, v := range m {
					out[k] = v
				}
			}
			return out
		}
		// Two deals: the one with the higher id was created first.
		twoDeals := create(t, e, "contacts", with(nil), nil)
		later := create(t, e, "deals", map[string]string{"dealname": "Later", "pipeline": "default", "dealstage": "qualifiedtobuy"},
			map[string][]string{"contacts": {twoDeals}})
		earlier := create(t, e, "deals", map[string]string{"dealname": "Earlier", "pipeline": "default", "dealstage": "closedwon"},
			map[string][]string{"contacts": {twoDeals}})
		require.NoError(t, e.fake.Update("deals", earlier, map[string]string{"createdate": b.at(-10 * 24 * time.Hour)}))
		require.Negative(t, connectortest.CompareIDs(later, earlier), "the deal created first has the higher id")
		// One deal and HubSpot's opportunity date: converted then.
		opportunity := create(t, e, "contacts", with(map[string]string{"lifecyclestage": "opportunity",
			"hs_lifecyclestage_opportunity_date": b.at(-5 * 24 * time.Hour)}), nil)
		opportunityDeal := create(t, e, "deals", map[string]string{"dealname": "Opp", "pipeline": "default"},
			map[string][]string{"contacts": {opportunity}})
		// One deal and no lifecycle conversion (lifecycle sync off): converted at the deal's creation.
		noLifecycle := create(t, e, "contacts", with(nil), nil)
		noLifecycleDeal := create(t, e, "deals", map[string]string{"dealname": "Quiet", "pipeline": "default"},
			map[string][]string{"contacts": {noLifecycle}})
		require.NoError(t, e.fake.Update("deals", noLifecycleDeal, map[string]string{"createdate": b.at(-3 * 24 * time.Hour)}))
		// Marked unqualified but a deal came of it: the deal wins, as the opportunity stage does.
		unqualified := create(t, e, "contacts", with(map[string]string{"hs_lead_status": "UNQUALIFIED"}), nil)
		unqualifiedDeal := create(t, e, "deals", map[string]string{"dealname": "Came back", "pipeline": "default"},
			map[string][]string{"contacts": {unqualified}})
		// The earlier of two deals was archived: the live one is the conversion.
		archivedFirst := create(t, e, "contacts", with(nil), nil)
		gone := create(t, e, "deals", map[string]string{"dealname": "Gone", "pipeline": "default"}, map[string][]string{"contacts": {archivedFirst}})
		kept := create(t, e, "deals", map[string]string{"dealname": "Kept", "pipeline": "default"}, map[string][]string{"contacts": {archivedFirst}})
		require.NoError(t, e.fake.Archive("deals", gone))
		// A lead without deals, and a contact with a deal that never was a lead.
		noDeal := create(t, e, "contacts", with(nil), nil)
		notLead := create(t, e, "contacts", map[string]string{"lifecyclestage": "lead"}, nil)
		create(t, e, "deals", map[string]string{"dealname": "Direct", "pipeline": "default"}, map[string][]string{"contacts": {notLead}})

		deal := func(id string) time.Time {
			o, ok := e.fake.Object("deals", id)
			require.True(t, ok)
			return ts(o.Properties["createdate"])
		}
		type link struct {
			Deal   string
			Status pipeline.LeadStatus
			At     time.Time
		}
		want := map[string]link{
			twoDeals:      {earlier, pipeline.LeadConverted, deal(earlier)},
			opportunity:   {opportunityDeal, pipeline.LeadConverted, ts(b.at(-5 * 24 * time.Hour))},
			noLifecycle:   {noLifecycleDeal, pipeline.LeadConverted, deal(noLifecycleDeal)},
			unqualified:   {unqualifiedDeal, pipeline.LeadConverted, deal(unqualifiedDeal)},
			archivedFirst: {kept, pipeline.LeadConverted, deal(kept)},
			noDeal:        {"", pipeline.LeadSQL, time.Time{}},
		}
		links := func(leads map[string]pipeline.Lead) map[string]link {
			out := map[string]link{}
			for id, l := range leads {
				out[id] = link{l.ConvertedDealExternalID, l.Status, l.ConvertedAt}
			}
			return out
		}

		e.fake.ResetStats()
		incremental, batch, cursor := readContacts(t, e, connectors.Incremental, "")
		require.Equal(t, want, links(incremental))
		require.Len(t, batch.Contacts, 7)
		// One search, one contact→deal association read for the page's leads, one deal
		// batch read for the leads whose link or conversion time needs creation times.
		require.Equal(t, 3, e.fake.Stats().Requests)

		e.fake.ResetStats()
		full, _, _ := readContacts(t, e, connectors.Full, "")
		require.Equal(t, want, links(full))
		require.Equal(t, 2, e.fake.Stats().Requests, "Full lists answer associations inline")
		for id, l := range full {
			require.JSONEq(t, string(incremental[id].Raw), string(l.Raw), "lead %s: Raw is the same whichever endpoint read it", id)
		}

		// Nothing changed: one request.
		e.fake.ResetStats()
		again, _, _ := readContacts(t, e, connectors.Incremental, cursor)
		require.Empty(t, again)
		require.Equal(t, 1, e.fake.Stats().Requests)
	})

	t.Run("ADealAssociatedLaterLinksWhenTheContactChanges", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		e := b.env
		lead := create(t, e, "contacts", map[string]string{"lifecyclestage": "salesqualifiedlead",
			"hs_lifecyclestage_salesqualifiedlead_date": b.at(-2 * 24 * time.Hour)}, nil)
		leads, _, cursor := readContacts(t, e, connectors.Incremental, "")
		require.Equal(t, pipeline.LeadSQL, leads[lead].Status)
		require.Empty(t, leads[lead].ConvertedDealExternalID)

		// A rep opens a deal for the lead; HubSpot's lifecycle sync moves it to opportunity.
		e.fake.Advance(time.Hour)
		deal := create(t, e, "deals", map[string]string{"dealname": "Opened", "pipeline": "default"}, nil)
		require.NoError(t, e.fake.Associate("deals", deal, "contacts", lead))
		converted := b.at(time.Hour)
		require.NoError(t, e.fake.Update("contacts", lead, map[string]string{"lifecyclestage": "opportunity",
			"hs_lifecyclestage_opportunity_date": converted}))

		leads, _, _ = readContacts(t, e, connectors.Incremental, cursor)
		require.Equal(t, pipeline.Lead{
			Record: leads[lead].Record, Status: pipeline.LeadConverted, SQLAt: ts(b.at(-2 * 24 * time.Hour)),
			ConvertedAt: ts(converted), ConvertedDealExternalID: deal,
		}, leads[lead])
	})

	t.Run("AFailedDealReadFailsThePageAndLosesNothing", func(t *testing.T) {
		t.Parallel()
		// The search and the association read succeed; the deals' batch read is refused once.
		refuse := &refuseOnce{path: "/crm/v3/objects/deals/batch/read"}
		e := newEnv(t, envOptions{fast: true, http: connectors.HTTPConfig{Transport: refuse}})
		at := e.fake.Now().Add(-time.Hour).Format("2006-01-02T15:04:05.000Z")
		lead := create(t, e, "contacts", map[string]string{"hs_lifecyclestage_marketingqualifiedlead_date": at}, nil)
		deal := create(t, e, "deals", map[string]string{"dealname": "D", "pipeline": "default"}, map[string][]string{"contacts": {lead}})
		e.fake.Advance(hubspot.DefaultLag + time.Second)

		req := connectors.ReadRequest{Stream: hubspot.StreamContacts, Mode: connectors.Incremental, SyncStart: e.fake.Now()}
		_, err := e.conn.Read(t.Context(), req)
		require.ErrorContains(t, err, "reading the creation time of 1 deals")
		require.ErrorContains(t, err, "searching contacts modified from")

		// The same request again reads the page whole.
		page, err := e.conn.Read(t.Context(), req)
		require.NoError(t, err)
		require.Len(t, page.Leads, 1)
		require.Equal(t, deal, page.Leads[0].ConvertedDealExternalID)
		require.Equal(t, pipeline.LeadConverted, page.Leads[0].Status)
	})
}

// refuseOnce answers the first POST to path with HubSpot's 400 body and sends the rest.
type refuseOnce struct {
	path    string
	refused atomic.Bool
}

func (r *refuseOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.URL.Path != r.path || !r.refused.CompareAndSwap(false, true) {
		return http.DefaultTransport.RoundTrip(req)
	}
	body := `{"status":"error","message":"Property values were not valid","correlationId":"0b6c1e8a","category":"VALIDATION_ERROR"}`
	return &http.Response{
		StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: req,
	}, nil
}
