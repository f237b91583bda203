package pipedrive_test

import (
	"testing"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/connectortest"
	"github.com/pipewatch/pipewatch/connectors/pipedrive"
	"github.com/pipewatch/pipewatch/connectors/pipedrive/pipedrivetest"
)

// BenchmarkReadDeals reads a 5,000-deal account (with the activity lookups) from the fake
// through the shared chain: the connector's and the fake's cost together.
func BenchmarkReadDeals(b *testing.B) {
	const deals = 5000
	fake := pipedrivetest.NewServer(pipedrivetest.Options{APIToken: testToken, BurstLimit: 1 << 30})
	defer fake.Close()
	fake.Generate(pipedrivetest.Account{Deals: deals, ActivitiesPerDeal: 1})
	hc := connectors.NewHTTPClient(connectors.HTTPConfig{RateLimits: connectors.RateLimits{}})
	conn, err := pipedrive.New(pipedrive.Config{BaseURL: fake.URL(), APIToken: testToken}, hc)
	if err != nil {
		b.Fatal(err)
	}
	read := 0
	for b.Loop() {
		pages, err := connectortest.ReadAll(b.Context(), conn, connectors.ReadRequest{Stream: pipedrive.StreamDeals, Mode: connectors.Full})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range pages {
			read += len(p.Deals)
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "deals/s")
}
