package credentials_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/secrets"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func newBox(t *testing.T) *secrets.Box {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	box, err := secrets.New(key)
	require.NoError(t, err)
	return box
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type testBundle struct {
		tx     pgx.Tx
		store  *credentials.Store
		connID int64
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		tx := dbtest.TestTx(ctx, t)
		var id int64
		require.NoError(t, tx.QueryRow(ctx, `INSERT INTO connections (name, kind) VALUES ('hs', 'hubspot') RETURNING id`).Scan(&id))
		return &testBundle{tx: tx, store: &credentials.Store{Box: newBox(t)}, connID: id}
	}

	t.Run("RoundTripIsSealed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		want := credentials.Credentials{OAuth: &credentials.OAuth{
			ClientID: "cid", ClientSecret: "csecret", RefreshToken: "refresh-1",
			AccessToken: "access-1", Expiry: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC),
		}}
		require.NoError(t, b.store.Save(ctx, b.tx, b.connID, want))

		var sealed []byte
		require.NoError(t, b.tx.QueryRow(ctx, `SELECT ciphertext FROM connection_credentials WHERE connection_id = $1`, b.connID).Scan(&sealed))
		require.NotContains(t, string(sealed), "csecret")
		require.NotContains(t, string(sealed), "refresh-1")

		got, err := b.store.Load(ctx, b.tx, b.connID)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, "credentials{oauth}", got.String())
	})

	t.Run("WrongKeyFails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.store.Save(ctx, b.tx, b.connID, credentials.Credentials{Token: "pat-na1-secret"}))
		other := &credentials.Store{Box: newBox(t)}
		_, err := other.Load(ctx, b.tx, b.connID)
		require.ErrorIs(t, err, secrets.ErrWrongKey)
		require.NotContains(t, err.Error(), "pat-na1-secret")
	})

	t.Run("MissingIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.store.Load(ctx, b.tx, b.connID)
		require.ErrorIs(t, err, credentials.ErrNotFound)
	})

	t.Run("NoKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		err := (&credentials.Store{}).Save(ctx, b.tx, b.connID, credentials.Credentials{Token: "x"})
		require.ErrorIs(t, err, secrets.ErrNoKey)
	})
}
