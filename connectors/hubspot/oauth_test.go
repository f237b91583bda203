package hubspot_test

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors"
	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/secrets"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// database is a pool, or a test transaction whose Begin opens savepoints.
type database interface {
	credentials.Beginner
	credentials.DB
}

// oauthBundle is a fake portal with an OAuth installation whose grant is stored sealed
// for one connection in a real database.
type oauthBundle struct {
	fake   *hubspottest.Server
	grant  hubspottest.Grant
	pool   database
	store  *credentials.Store
	connID int64
}

// newOAuthBundle stores the grant in a rolled-back test transaction, or, for tests with
// several processes at once, in a schema of its own reached through a pool.
func newOAuthBundle(t *testing.T, opts hubspottest.Options, expiry time.Time, processes int) *oauthBundle {
	t.Helper()
	ctx := context.Background()
	var pool database = dbtest.TestTx(ctx, t)
	if processes > 1 {
		var p *pgxpool.Pool
		_, p = dbtest.TestSchema(ctx, t)
		pool = p
	}
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	box, err := secrets.New(key)
	require.NoError(t, err)
	b := &oauthBundle{fake: hubspottest.New(opts), pool: pool, store: &credentials.Store{Box: box}}
	t.Cleanup(b.fake.Close)
	b.fake.GenerateOwners(3)
	b.grant = b.fake.AddOAuthGrant()
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ('hs', 'hubspot') RETURNING id`).Scan(&b.connID))
	require.NoError(t, b.store.Save(ctx, pool, b.connID, credentials.Credentials{OAuth: &credentials.OAuth{
		ClientID: b.grant.ClientID, ClientSecret: b.grant.ClientSecret, RefreshToken: b.grant.RefreshToken,
		AccessToken: b.grant.AccessToken, Expiry: expiry,
	}}))
	return b
}

// connector builds what one worker process builds: a token source over the stored grant,
// the chain and the connector.
func (b *oauthBundle) connector(t *testing.T) (*hubspot.Connector, *connectors.Stats) {
	t.Helper()
	src, err := credentials.NewOAuthTokenSource(credentials.OAuthSourceConfig{
		DB: b.pool, Store: b.store, ConnectionID: b.connID, Endpoint: hubspot.OAuthEndpoint(b.fake.URL),
	})
	require.NoError(t, err)
	stats := &connectors.Stats{}
	hc := connectors.NewHTTPClient(connectors.HTTPConfig{
		Auth: src, RateLimits: hubspot.RateLimits(), Stats: stats,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond,
	})
	conn, err := hubspot.New(hubspot.Config{BaseURL: b.fake.URL, PortalID: b.fake.PortalID}, hc)
	require.NoError(t, err)
	return conn, stats
}

func (b *oauthBundle) stored(t *testing.T) *credentials.OAuth {
	t.Helper()
	c, err := b.store.Load(context.Background(), b.pool, b.connID)
	require.NoError(t, err)
	return c.OAuth
}

func readOwners(ctx context.Context, conn *hubspot.Connector) error {
	_, err := conn.Read(ctx, connectors.ReadRequest{Stream: hubspot.StreamOwners, Mode: connectors.Incremental})
	return err
}

func TestOAuth(t *testing.T) {
	t.Parallel()

	t.Run("AnExpiredAccessTokenIsRefreshedOnceAndPersistedSealed", func(t *testing.T) {
		t.Parallel()
		b := newOAuthBundle(t, hubspottest.Options{RotateRefreshTokens: true}, time.Now().Add(-time.Minute), 1)
		conn, _ := b.connector(t)
		for range 3 {
			require.NoError(t, readOwners(t.Context(), conn))
		}
		st := b.fake.Stats()
		require.Equal(t, 1, st.TokenRefreshes)
		require.Equal(t, 1, st.TokenRequests)
		require.Zero(t, st.Unauthorized)

		stored := b.stored(t)
		require.NotEqual(t, b.grant.AccessToken, stored.AccessToken)
		require.NotEqual(t, b.grant.RefreshToken, stored.RefreshToken, "the rotated refresh token is kept")
		require.True(t, stored.Expiry.After(time.Now().Add(20*time.Minute)))
		var sealed []byte
		require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT ciphertext FROM connection_credentials WHERE connection_id = $1`, b.connID).Scan(&sealed))
		require.NotContains(t, string(sealed), stored.AccessToken)
		require.NotContains(t, string(sealed), stored.RefreshToken)

		// Another process later uses the stored grant as is: no refresh.
		other, _ := b.connector(t)
		require.NoError(t, readOwners(t.Context(), other))
		require.Equal(t, 1, b.fake.Stats().TokenRefreshes)
	})

	t.Run("TwoProcessesNeverSpendOneRefreshTokenTwice", func(t *testing.T) {
		t.Parallel()
		// With rotation, a second refresh with the same refresh token would revoke the grant.
		b := newOAuthBundle(t, hubspottest.Options{RotateRefreshTokens: true}, time.Now().Add(-time.Minute), 4)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			conn, _ := b.connector(t)
			wg.Go(func() { errs[i] = readOwners(t.Context(), conn) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		require.Equal(t, 1, b.fake.Stats().TokenRefreshes)
	})

	t.Run("ATokenRejectedBeforeItsExpiryIsRefreshedOnce", func(t *testing.T) {
		t.Parallel()
		b := newOAuthBundle(t, hubspottest.Options{}, time.Now().Add(time.Hour), 1)
		conn, stats := b.connector(t)
		require.NoError(t, readOwners(t.Context(), conn))
		require.Zero(t, b.fake.Stats().TokenRefreshes)

		b.fake.ExpireAccessTokens() // the portal says expired; the client still thinks it fresh
		require.NoError(t, readOwners(t.Context(), conn))
		st := b.fake.Stats()
		require.Equal(t, 1, st.TokenRefreshes)
		require.Equal(t, 1, st.Unauthorized)
		require.EqualValues(t, 1, stats.Retries.Load())
	})

	t.Run("ARevokedGrantIsUnauthorizedWithoutARetryLoop", func(t *testing.T) {
		t.Parallel()
		b := newOAuthBundle(t, hubspottest.Options{}, time.Now().Add(-time.Minute), 1)
		b.fake.RevokeRefreshToken(b.grant.RefreshToken)
		conn, stats := b.connector(t)

		err := readOwners(t.Context(), conn)
		require.ErrorIs(t, err, connectors.ErrUnauthorized)
		require.Contains(t, err.Error(), "refreshing the OAuth token: the token endpoint answered 400 (invalid_grant)")
		require.NotContains(t, err.Error(), b.grant.RefreshToken)
		st := b.fake.Stats()
		require.Equal(t, 1, st.TokenRequests, "one refresh attempt, no retries")
		require.Zero(t, st.Requests, "nothing is sent without a token")
		require.Zero(t, stats.Retries.Load())
		require.Equal(t, b.grant.RefreshToken, b.stored(t).RefreshToken, "the stored grant is left for re-authorization")
	})

	t.Run("ARevokedGrantMidSyncIsUnauthorized", func(t *testing.T) {
		t.Parallel()
		b := newOAuthBundle(t, hubspottest.Options{}, time.Now().Add(time.Hour), 1)
		conn, _ := b.connector(t)
		require.NoError(t, readOwners(t.Context(), conn))
		b.fake.RevokeRefreshToken(b.grant.RefreshToken)

		err := readOwners(t.Context(), conn)
		require.ErrorIs(t, err, connectors.ErrUnauthorized)
		st := b.fake.Stats()
		require.Equal(t, 1, st.Unauthorized, "the API's 401, then one refresh refused")
		require.Equal(t, 1, st.TokenRequests)
	})
}
