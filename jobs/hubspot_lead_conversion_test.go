package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/pipeline/analytics"
)

// TestHubSpotLeadToWon: after a sync of a small portal, the report's lead → won conversion
// counts the leads whose deal (the contact's associated deal) is won: the link flows from
// the contact→deal associations through the connector and the store (contacts are synced
// before deals, so the store resolves it when the deal arrives) to analytics.BuildReport.
// A deal opened for a lead between syncs joins the count after the next sync.
func TestHubSpotLeadToWon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newHubSpotBundle(ctx, t, dbtest.TestTx(ctx, t))
	f := b.fake
	owner := f.AddOwner("ana@example.com", "Ana", "Silva", "East")
	stamp := func(at time.Time) string { return at.UTC().Format("2006-01-02T15:04:05.000Z") }
	newLead := func(stage string) string {
		props := map[string]string{"hubspot_owner_id": owner, "lifecyclestage": stage,
			"hs_lifecyclestage_marketingqualifiedlead_date": stamp(f.Now().Add(-2 * time.Hour))}
		if stage != "marketingqualifiedlead" {
			props["hs_lifecyclestage_salesqualifiedlead_date"] = stamp(f.Now().Add(-time.Hour))
		}
		id, err := f.Create("contacts", props, nil)
		require.NoError(t, err)
		return id
	}
	// openDeal opens a deal for the lead and moves it to stage; HubSpot's lifecycle sync
	// makes the contact an opportunity.
	openDeal := func(lead, stage string) string {
		id, err := f.Create("deals", map[string]string{"dealname": "Deal of " + lead, "amount": "1000", "deal_currency_code": "USD",
			"pipeline": "default", "dealstage": "appointmentscheduled", "hubspot_owner_id": owner}, map[string][]string{"contacts": {lead}})
		require.NoError(t, err)
		require.NoError(t, f.Update("contacts", lead, map[string]string{"lifecyclestage": "opportunity",
			"hs_lifecyclestage_opportunity_date": stamp(f.Now())}))
		if stage != "appointmentscheduled" {
			require.NoError(t, f.MoveDealStage(id, stage))
		}
		return id
	}
	won := newLead("salesqualifiedlead")
	openDeal(won, "closedwon")
	openDeal(newLead("salesqualifiedlead"), "closedlost")
	openDeal(newLead("salesqualifiedlead"), "contractsent")
	newLead("marketingqualifiedlead")
	late := newLead("salesqualifiedlead")

	period, err := analytics.ParsePeriod(f.Now().AddDate(0, 0, -1).Format(time.DateOnly) + ".." + f.Now().AddDate(0, 0, 1).Format(time.DateOnly))
	require.NoError(t, err)
	funnel := func() analytics.LeadFunnel {
		t.Helper()
		r, err := analytics.BuildReport(ctx, b.db, analytics.Request{Period: period, Now: f.Now()})
		require.NoError(t, err)
		require.NotNil(t, r.LeadFunnel)
		return *r.LeadFunnel
	}
	ratio := func(s string) decimal.NullDecimal { return decimal.NewNullDecimal(decimal.RequireFromString(s)) }
	requireFunnel := func(want analytics.LeadFunnel, got analytics.LeadFunnel) {
		t.Helper()
		for _, r := range []*decimal.NullDecimal{&want.LeadToMQL, &want.MQLToSQL, &want.SQLToWon, &want.LeadToWon,
			&got.LeadToMQL, &got.MQLToSQL, &got.SQLToWon, &got.LeadToWon} {
			r.Decimal = r.Decimal.Round(4)
		}
		require.Equal(t, want, got)
	}

	f.Advance(5 * time.Minute)
	b.syncAll(ctx, t)
	require.EqualValues(t, 3, countRows(ctx, t, b.db, `SELECT count(*) FROM leads l JOIN deals d ON d.id = l.converted_deal_id
		WHERE l.connection_id = $1 AND l.status = 'converted' AND l.converted_at IS NOT NULL
		  AND d.external_id = l.converted_deal_external_id`, b.connID), "the three leads with deals link to them")
	requireFunnel(analytics.LeadFunnel{Leads: 5, MQL: 5, SQL: 4, Won: 1,
		LeadToMQL: ratio("1"), MQLToSQL: ratio("0.8"), SQLToWon: ratio("0.25"), LeadToWon: ratio("0.2")}, funnel())

	// Between syncs the last lead converts and its deal is won.
	openDeal(late, "closedwon")
	f.Advance(5 * time.Minute)
	b.syncAll(ctx, t)
	requireFunnel(analytics.LeadFunnel{Leads: 5, MQL: 5, SQL: 4, Won: 2,
		LeadToMQL: ratio("1"), MQLToSQL: ratio("0.8"), SQLToWon: ratio("0.5"), LeadToWon: ratio("0.4")}, funnel())

	// Nothing changed since: one request per stream, nothing written.
	f.Advance(5 * time.Minute)
	for stream, r := range b.syncAll(ctx, t) {
		require.LessOrEqual(t, r.Requests, int64(1), "stream %s: requests of a no-change sync", stream)
		require.Zero(t, r.Inserted+r.Updated+r.Deleted, "stream %s wrote rows", stream)
	}
}
