package credentials_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/pipewatch/pipewatch/connectors/hubspot"
	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
)

func TestOAuthTokenSource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		tx     pgx.Tx
		store  *credentials.Store
		fake   *hubspottest.Server
		grant  hubspottest.Grant
		connID int64
	}
	setup := func(t *testing.T, opts hubspottest.Options, expiry time.Time) *testBundle {
		t.Helper()
		b := &testBundle{tx: dbtest.TestTx(ctx, t), store: &credentials.Store{Box: newBox(t)}, fake: hubspottest.New(opts)}
		t.Cleanup(b.fake.Close)
		b.grant = b.fake.AddOAuthGrant()
		require.NoError(t, b.tx.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ('hs', 'hubspot') RETURNING id`).Scan(&b.connID))
		require.NoError(t, b.store.Save(ctx, b.tx, b.connID, credentials.Credentials{OAuth: &credentials.OAuth{
			ClientID: b.grant.ClientID, ClientSecret: b.grant.ClientSecret, RefreshToken: b.grant.RefreshToken,
			AccessToken: b.grant.AccessToken, Expiry: expiry,
		}}))
		return b
	}
	source := func(t *testing.T, b *testBundle) *credentials.OAuthTokenSource {
		t.Helper()
		src, err := credentials.NewOAuthTokenSource(credentials.OAuthSourceConfig{
			DB: b.tx, Store: b.store, ConnectionID: b.connID, Endpoint: hubspot.OAuthEndpoint(b.fake.URL),
		})
		require.NoError(t, err)
		return src
	}

	t.Run("AFreshStoredTokenIsUsedAsIs", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{}, time.Now().Add(time.Hour))
		tok, err := source(t, b).Token()
		require.NoError(t, err)
		require.Equal(t, b.grant.AccessToken, tok.AccessToken)
		require.Zero(t, b.fake.Stats().TokenRequests)
	})

	t.Run("ATokenAboutToExpireIsRefreshedAndTheRotationSaved", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{RotateRefreshTokens: true}, time.Now().Add(30*time.Second))
		src := source(t, b)
		tok, err := src.Token()
		require.NoError(t, err)
		require.NotEqual(t, b.grant.AccessToken, tok.AccessToken)
		again, err := src.Token()
		require.NoError(t, err)
		require.Equal(t, tok.AccessToken, again.AccessToken)
		require.Equal(t, 1, b.fake.Stats().TokenRefreshes)

		stored, err := b.store.Load(ctx, b.tx, b.connID)
		require.NoError(t, err)
		require.Equal(t, tok.AccessToken, stored.OAuth.AccessToken)
		require.Equal(t, tok.RefreshToken, stored.OAuth.RefreshToken)
		require.NotEqual(t, b.grant.RefreshToken, stored.OAuth.RefreshToken)
		require.WithinDuration(t, tok.Expiry, stored.OAuth.Expiry, time.Millisecond)
	})

	t.Run("ARejectedTokenAnotherCallerReplacedIsNotRefreshedAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{RotateRefreshTokens: true}, time.Now().Add(time.Hour))
		first, second := source(t, b), source(t, b)
		old, err := second.Token()
		require.NoError(t, err)

		fresh, err := first.RefreshRejected(old)
		require.NoError(t, err)
		require.NotEqual(t, old.AccessToken, fresh.AccessToken)

		// The second process learns of the rejection later: it picks up the saved token.
		got, err := second.RefreshRejected(old)
		require.NoError(t, err)
		require.Equal(t, fresh.AccessToken, got.AccessToken)
		require.Equal(t, 1, b.fake.Stats().TokenRefreshes)
	})

	t.Run("ARevokedGrantIsTheTokenEndpointsRefusal", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{}, time.Now().Add(-time.Minute))
		b.fake.RevokeRefreshToken(b.grant.RefreshToken)
		_, err := source(t, b).Token()
		var re *oauth2.RetrieveError
		require.True(t, errors.As(err, &re))
		require.Equal(t, "invalid_grant", re.ErrorCode)
		require.Equal(t, 1, b.fake.Stats().TokenRequests)
		stored, err := b.store.Load(ctx, b.tx, b.connID)
		require.NoError(t, err)
		require.Equal(t, b.grant.AccessToken, stored.OAuth.AccessToken, "nothing is saved")
	})

	t.Run("TheGrantsOwnTokenURLWins", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{}, time.Now().Add(-time.Minute))
		creds, err := b.store.Load(ctx, b.tx, b.connID)
		require.NoError(t, err)
		creds.OAuth.TokenURL = b.fake.URL + "/oauth/v1/token"
		require.NoError(t, b.store.Save(ctx, b.tx, b.connID, creds))
		src, err := credentials.NewOAuthTokenSource(credentials.OAuthSourceConfig{
			DB: b.tx, Store: b.store, ConnectionID: b.connID,
			Endpoint: oauth2.Endpoint{TokenURL: "http://127.0.0.1:1/unused", AuthStyle: oauth2.AuthStyleInParams},
		})
		require.NoError(t, err)
		_, err = src.Token()
		require.NoError(t, err)
		require.Equal(t, 1, b.fake.Stats().TokenRefreshes)
	})

	t.Run("AStaticTokenConnectionHasNoGrant", func(t *testing.T) {
		t.Parallel()
		b := setup(t, hubspottest.Options{}, time.Now())
		require.NoError(t, b.store.Save(ctx, b.tx, b.connID, credentials.Credentials{Token: "pat-na1-x"}))
		_, err := source(t, b).Token()
		require.ErrorContains(t, err, "has a static token, not an OAuth grant")
		require.NotContains(t, err.Error(), "pat-na1-x")
	})
}
