package hubspot_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/connectortest"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/pipeline"
)

// env is a fake portal and a connector reading it through the shared HTTP chain.
type env struct {
	fake  *hubspottest.Server
	conn  *hubspot.Connector
	stats *connectors.Stats
	hc    *http.Client
}

type envOptions struct {
	fake   hubspottest.Options
	http   connectors.HTTPConfig
	config hubspot.Config
	// fast raises the client's and the fake's rate limits, for tests about something else.
	fast bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.fast {
		o.fake.BurstLimit, o.fake.SearchPerSecond = 100_000, 10_000
	}
	fake := hubspottest.New(o.fake)
	t.Cleanup(fake.Close)

	stats := &connectors.Stats{}
	cfg := o.http
	if cfg.Auth == nil {
		cfg.Auth = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: fake.AddPrivateAppToken()})
	}
	if cfg.RateLimits.Budgets == nil {
		cfg.RateLimits = hubspot.RateLimits()
		if o.fast {
			cfg.RateLimits.Budgets[hubspot.BudgetGeneral] = connectors.Budget{Limit: 100_000, Interval: 10 * time.Second}
			cfg.RateLimits.Budgets[hubspot.BudgetSearch] = connectors.Budget{Limit: 10_000, Interval: time.Second}
		}
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin, cfg.RetryWaitMax = 5*time.Millisecond, 50*time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Stats = stats
	hc := connectors.NewHTTPClient(cfg)

	hcfg := o.config
	hcfg.BaseURL = fake.URL
	hcfg.PortalID = fake.PortalID
	conn, err := hubspot.New(hcfg, hc)
	require.NoError(t, err)
	return &env{fake: fake, conn: conn, stats: stats, hc: hc}
}

// read reads stream from cursor to Done and merges the pages.
func (e *env) read(t *testing.T, stream string, mode connectors.Mode, cursor connectors.Cursor, syncStart time.Time) (pipeline.Batch, []connectors.SkippedRecord, connectors.Cursor) {
	t.Helper()
	pages, err := connectortest.ReadAll(t.Context(), e.conn, connectors.ReadRequest{Stream: stream, Mode: mode, Cursor: cursor, SyncStart: syncStart})
	require.NoError(t, err)
	var b pipeline.Batch
	var skipped []connectors.SkippedRecord
	for _, p := range pages {
		b.Append(p.Batch)
		skipped = append(skipped, p.Skipped...)
	}
	return b, skipped, pages[len(pages)-1].Next
}

// conformanceFake drives hubspottest for connectortest.
type conformanceFake struct{ fake *hubspottest.Server }

func (f conformanceFake) Seed(t *testing.T, stream string, n, shared int) []string {
	t.Helper()
	opts := hubspottest.GenerateOptions{SharedModified: shared}
	switch stream {
	case hubspot.StreamDeals:
		return f.fake.GenerateDeals(n, opts)
	case hubspot.StreamContacts:
		return f.fake.GenerateContacts(n, opts)
	case hubspot.StreamCompanies:
		return f.fake.GenerateCompanies(n, opts)
	}
	ids, err := f.fake.GenerateEngagements(stream, n, opts)
	require.NoError(t, err)
	return ids
}

func (f conformanceFake) FailNext(t *testing.T, n, status int, retryAfter time.Duration) {
	f.fake.FailNext(n, hubspottest.Failure{Status: status, RetryAfter: retryAfter})
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, stream := range []string{hubspot.StreamDeals, hubspot.StreamContacts, hubspot.StreamCompanies, hubspot.StreamCalls} {
		t.Run(stream, func(t *testing.T) {
			t.Parallel()
			connectortest.Exercise(t, connectortest.Harness{
				Stream: stream,
				New: func(t *testing.T) (connectors.Connector, connectortest.Fake) {
					e := newEnv(t, envOptions{fast: true, config: hubspot.Config{PageSize: 25}})
					e.fake.GenerateOwners(3)
					return e.conn, conformanceFake{e.fake}
				},
			})
		})
	}
}
