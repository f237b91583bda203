package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/pipedrive"
	"github.com/pipewatch/pipewatch/internal/credentials"
)

// PipedriveTokenURL is Pipedrive's OAuth token endpoint (HTTP Basic client authentication).
const PipedriveTokenURL = "https://oauth.pipedrive.com/oauth/token"

// PipedriveConnector returns the constructor of pipedrive connections. chain holds HTTP
// client settings applied to every connection (timeouts, retry waits; the zero value takes
// the defaults); the constructor fills in the connection's credentials, limiter registry,
// stats, logger, clock and, unless chain sets them, Pipedrive's rate limits.
//
// Connection settings: base_url (default: https://api.pipedrive.com with an API token, the
// api_domain of the token response with OAuth); options company_domain (for deal links), lookback, lag
// (Go durations) and page_size. Credentials: a static API token (sent as x-api-token) or an
// OAuth grant refreshed through PipedriveTokenURL unless the grant names its own.
func PipedriveConnector(chain connectors.HTTPConfig) NewConnectorFunc {
	return func(_ context.Context, p ConnectorParams) (connectors.Connector, error) {
		cfg, err := pipedriveConfig(p)
		if err != nil {
			return nil, err
		}
		hc := chain
		hc.Connection = "pipedrive/" + strconv.FormatInt(p.Connection.ID, 10)
		hc.Limiters = p.Limiters
		if hc.RateLimits.Budgets == nil {
			hc.RateLimits = pipedrive.RateLimits()
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
				Endpoint: oauth2.Endpoint{TokenURL: PipedriveTokenURL, AuthStyle: oauth2.AuthStyleInHeader},
			})
			if err != nil {
				return nil, err
			}
			hc.Auth = ts
			if cfg.BaseURL == "" {
				// OAuth requests go to the account's api_domain, named by the token response
				// (and kept with the grant).
				cfg.BaseURLFunc = func(context.Context) (string, error) {
					tok, err := ts.Token()
					if err != nil {
						return "", err
					}
					if d := pipedrive.APIDomain(tok); d != "" {
						return d, nil
					}
					return "", connectors.Permanent(errors.New("the OAuth grant names no api_domain: set the connection's base_url to https://<company>.pipedrive.com"))
				}
			}
		case p.Credentials.Token != "":
			cfg.APIToken = p.Credentials.Token
		default:
			return nil, errors.New("no credentials are stored for this connection: set auth.token_env (an API token) or auth.oauth and run `pipewatch apply`")
		}
		return pipedrive.New(cfg, connectors.NewHTTPClient(hc))
	}
}

func pipedriveConfig(p ConnectorParams) (pipedrive.Config, error) {
	opts := p.Connection.Config.Options
	cfg := pipedrive.Config{
		BaseURL:       p.Connection.Config.BaseURL,
		CompanyDomain: opts["company_domain"],
		NowFunc:       p.NowFunc,
	}
	for _, d := range []struct {
		key string
		to  *time.Duration
	}{{"lookback", &cfg.Lookback}, {"lag", &cfg.Lag}} {
		if v := opts[d.key]; v != "" {
			parsed, err := time.ParseDuration(v)
			if err != nil {
				return pipedrive.Config{}, fmt.Errorf("options.%s %q is not a duration (like 5m)", d.key, v)
			}
			*d.to = parsed
		}
	}
	if v := opts["page_size"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return pipedrive.Config{}, fmt.Errorf("options.page_size %q is not a number", v)
		}
		cfg.PageSize = n
	}
	return cfg, cfg.Validate()
}
