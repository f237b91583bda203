package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/internal/credentials"
)

// HubSpotConnector returns the constructor of hubspot connections. chain holds HTTP client
// settings applied to every connection (timeouts, retry waits; the zero value takes the
// defaults); the constructor fills in HubSpot's documented rate limits (unless chain has
// budgets of its own), the connection's credentials, the limiter registry, stats, logger
// and clock.
//
// Connection settings: base_url (default https://api.hubapi.com); options portal_id (for
// deal links), lookback, lag (Go durations), page_size (1..200) and currency (for deals
// without deal_currency_code). Credentials: a private-app token, or an OAuth grant
// refreshed at <base_url>/oauth/v1/token unless the grant names its own token URL.
func HubSpotConnector(chain connectors.HTTPConfig) NewConnectorFunc {
	return func(_ context.Context, p ConnectorParams) (connectors.Connector, error) {
		cfg, err := hubspotConfig(p)
		if err != nil {
			return nil, err
		}
		hc := chain
		hc.Connection = "hubspot/" + strconv.FormatInt(p.Connection.ID, 10)
		hc.Limiters = p.Limiters
		if hc.RateLimits.Budgets == nil {
			hc.RateLimits = hubspot.RateLimits()
		}
		hc.Logger = p.Logger
		hc.Stats = p.Stats
		hc.NowFunc = p.NowFunc
		switch {
		case p.Credentials.OAuth != nil:
			if p.DB == nil || p.CredentialStore == nil {
				return nil, errors.New("an OAuth connection needs the credential store and the database")
			}
			ts, err := credentials.NewOAuthTokenSource(credentials.OAuthSourceConfig{
				DB: p.DB, Store: p.CredentialStore, ConnectionID: p.Connection.ID, Logger: p.Logger, NowFunc: p.NowFunc,
				Endpoint: hubspot.OAuthEndpoint(cfg.BaseURL),
			})
			if err != nil {
				return nil, err
			}
			hc.Auth = ts
		case p.Credentials.Token != "":
			hc.Auth = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: p.Credentials.Token, TokenType: "Bearer"})
		default:
			return nil, errors.New("no credentials are stored for this connection: set auth.token_env (a private-app token) or auth.oauth and run `pipewatch apply`")
		}
		return hubspot.New(cfg, connectors.NewHTTPClient(hc))
	}
}

func hubspotConfig(p ConnectorParams) (hubspot.Config, error) {
	opts := p.Connection.Config.Options
	cfg := hubspot.Config{
		BaseURL: p.Connection.Config.BaseURL, Currency: opts["currency"], Logger: p.Logger, NowFunc: p.NowFunc,
	}
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{{"lookback", &cfg.Lookback}, {"lag", &cfg.Lag}} {
		if v := opts[d.key]; v != "" {
			parsed, err := time.ParseDuration(v)
			if err != nil {
				return hubspot.Config{}, fmt.Errorf("options.%s %q is not a duration (like 5m)", d.key, v)
			}
			*d.to = parsed
		}
	}
	for _, n := range []struct {
		key string
		to  func(int64)
	}{{"page_size", func(v int64) { cfg.PageSize = int(v) }}, {"portal_id", func(v int64) { cfg.PortalID = v }}} {
		if v := opts[n.key]; v != "" {
			parsed, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return hubspot.Config{}, fmt.Errorf("options.%s %q is not a number", n.key, v)
			}
			n.to(parsed)
		}
	}
	return cfg, cfg.Validate()
}
