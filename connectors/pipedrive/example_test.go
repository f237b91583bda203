package pipedrive_test

import (
	"context"
	"fmt"
	"time"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/connectortest"
	"github.com/pipewatch/pipewatch/connectors/pipedrive"
	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
)

// A sandbox Pipedrive account (as the demo runs it) read through the shared HTTP chain.
func Example() {
	fake := pipedrivetest.NewServer(pipedrivetest.Options{APIToken: "demo-token", Seed: 1})
	defer fake.Close()
	fake.Generate(pipedrivetest.Account{Deals: 120, ActivitiesPerDeal: 2, Leads: 30})

	hc := connectors.NewHTTPClient(connectors.HTTPConfig{Connection: "pipedrive/demo", RateLimits: pipedrive.RateLimits()})
	conn, err := pipedrive.New(pipedrive.Config{BaseURL: fake.URL(), APIToken: "demo-token", CompanyDomain: "demo"}, hc)
	if err != nil {
		panic(err)
	}
	pages, err := connectortest.ReadAll(context.Background(), conn,
		connectors.ReadRequest{Stream: pipedrive.StreamDeals, Mode: connectors.Incremental, SyncStart: time.Now()})
	if err != nil {
		panic(err)
	}
	deals := 0
	for _, p := range pages {
		deals += len(p.Deals)
	}
	fmt.Println(deals, "deals;", conn.DealURL("42"))
	// Output: 120 deals; https://demo.pipedrive.com/deal/42
}
