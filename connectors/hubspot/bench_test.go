package hubspot_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
)

// BenchmarkReadDeals reads a portal's deals from the fake through the shared chain and
// the connector, as one incremental run (a new connector, cold caches). Reported beside
// the throughput: the fake's own serving cost (its handlers' time) and the requests made
// against the minimum the page size allows, ceil(N/200).
//
//	go test ./connectors/hubspot -run '^$' -bench ReadDeals
func BenchmarkReadDeals(b *testing.B) {
	for _, n := range []int{2_000, 12_000} {
		b.Run(fmt.Sprintf("deals=%d", n), func(b *testing.B) {
			fake := hubspottest.New(hubspottest.Options{BurstLimit: 1 << 30, SearchPerSecond: 1 << 30})
			defer fake.Close()
			fake.GenerateOwners(20)
			fake.GenerateCompanies(200, hubspottest.GenerateOptions{})
			fake.GenerateDeals(n, hubspottest.GenerateOptions{SharedModified: n / 20})
			token := fake.AddPrivateAppToken()
			limits := hubspot.RateLimits()
			limits.Budgets = nil // measure the connector, not HubSpot's pacing

			var requests, searches int
			var serve time.Duration
			for b.Loop() {
				fake.ResetStats()
				hc := connectors.NewHTTPClient(connectors.HTTPConfig{
					Auth: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}), RateLimits: limits,
				})
				conn, err := hubspot.New(hubspot.Config{BaseURL: fake.URL}, hc)
				if err != nil {
					b.Fatal(err)
				}
				read := 0
				req := connectors.ReadRequest{Stream: hubspot.StreamDeals, Mode: connectors.Incremental, SyncStart: time.Now()}
				for {
					page, err := conn.Read(context.Background(), req)
					if err != nil {
						b.Fatal(err)
					}
					read += len(page.Deals)
					if page.Done {
						break
					}
					req.Cursor = page.Next
				}
				if read != n {
					b.Fatalf("read %d deals of %d", read, n)
				}
				st := fake.Stats()
				requests, searches, serve = requests+st.Requests, searches+st.SearchRequests, serve+st.ServeTime
			}
			runs := float64(b.N)
			minimum := math.Ceil(float64(n) / 200)
			b.ReportMetric(float64(n)*runs/b.Elapsed().Seconds(), "deals/s")
			b.ReportMetric(float64(serve.Milliseconds())/runs, "fake-ms/op")
			b.ReportMetric(float64(serve)/float64(b.Elapsed()), "fake-share")
			b.ReportMetric(float64(searches)/runs, "searches/op")
			b.ReportMetric(float64(requests)/runs, "requests/op")
			b.ReportMetric(float64(searches)/runs/minimum, "searches/min")
			b.ReportMetric(float64(requests)/runs/minimum, "requests/min")
		})
	}
}
