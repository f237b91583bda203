package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/pipeline/store"
)

// ConnectorParams is what a connector constructor gets for one sync run.
type ConnectorParams struct {
	Connection store.Connection
	// Credentials are the connection's opened secrets (zero when none are stored).
	Credentials credentials.Credentials
	// CredentialStore and DB persist rotated OAuth tokens (credentials.OAuthTokenSource
	// locks the credentials row to serialize refreshes across processes).
	CredentialStore *credentials.Store
	DB              SyncDB
	// Stats counts the run's HTTP traffic (connectors.HTTPConfig.Stats).
	Stats *connectors.Stats
	// Limiters is the process-wide rate limiter registry (connectors.HTTPConfig.Limiters).
	Limiters *connectors.Limiters
	Logger   *slog.Logger
	NowFunc  func() time.Time
}

// NewConnectorFunc builds the connector of one connection kind.
type NewConnectorFunc func(ctx context.Context, p ConnectorParams) (connectors.Connector, error)

// ConnectorRegistry maps a connection kind (connections.kind) to its constructor.
type ConnectorRegistry map[string]NewConnectorFunc

// New builds the connector for p.Connection. Constructors do no I/O, so their errors
// (unknown kind, missing or malformed settings) are permanent: retrying can't fix them.
func (r ConnectorRegistry) New(ctx context.Context, p ConnectorParams) (connectors.Connector, error) {
	newFunc, ok := r[p.Connection.Kind]
	if !ok {
		kinds := make([]string, 0, len(r))
		for k := range r {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		return nil, connectors.Permanent(fmt.Errorf("this pipewatch build has no %s connector (it syncs: %s)",
			p.Connection.Kind, strings.Join(kinds, ", ")))
	}
	c, err := newFunc(ctx, p)
	if err != nil {
		return nil, connectors.Permanent(fmt.Errorf("creating the %s connector: %w", p.Connection.Kind, err))
	}
	return c, nil
}

// DefaultConnectors is the registry of every connector this build has, each sending its
// requests through the shared HTTP chain configured by chain (the zero value takes the
// defaults).
func DefaultConnectors(chain connectors.HTTPConfig) ConnectorRegistry {
	return ConnectorRegistry{
		"hubspot":   HubSpotConnector(chain),
		"pipedrive": PipedriveConnector(chain),
	}
}
