package hubspot_test

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
)

// Wiring a HubSpot connection to a fake portal, the way the sync job, the demo and the
// benchmarks do. Against the real API, leave BaseURL empty and authenticate with the
// connection's private-app token or its OAuth grant (credentials.NewOAuthTokenSource with
// hubspot.OAuthEndpoint("")).
func ExampleNew() {
	fake := hubspottest.New(hubspottest.Options{})
	defer fake.Close()
	if err := fake.Populate(hubspottest.Population{Owners: 3, Companies: 20, Contacts: 50, Deals: 450, SharedModified: 60}); err != nil {
		panic(err)
	}

	limiters := connectors.NewLimiters() // one per process: runs of a connection share its budgets
	stats := &connectors.Stats{}         // one per run: requests and retries for sync_runs
	hc := connectors.NewHTTPClient(connectors.HTTPConfig{
		Connection: "hubspot/1",
		Limiters:   limiters,
		RateLimits: hubspot.RateLimits(),
		Auth:       oauth2.StaticTokenSource(&oauth2.Token{AccessToken: fake.AddPrivateAppToken()}),
		Stats:      stats,
	})
	conn, err := hubspot.New(hubspot.Config{BaseURL: fake.URL, PortalID: fake.PortalID}, hc)
	if err != nil {
		panic(err)
	}

	req := connectors.ReadRequest{Stream: hubspot.StreamDeals, Mode: connectors.Incremental, SyncStart: time.Now()}
	deals, pages := 0, 0
	for {
		page, err := conn.Read(context.Background(), req)
		if err != nil {
			panic(err)
		}
		deals, pages = deals+len(page.Deals), pages+1
		if page.Done {
			break // page.Next is the cursor the next run starts from
		}
		req.Cursor = page.Next
	}
	fmt.Printf("%d deals in %d pages, %d requests\n", deals, pages, stats.Requests.Load())
	fmt.Println(hubspot.DealURL(fake.PortalID, "1234"))
	// Output:
	// 450 deals in 3 pages, 5 requests
	// https://app.hubspot.com/contacts/4242/record/0-3/1234
}
