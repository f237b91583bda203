package secrets_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/internal/secrets"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return key
}

func TestBox(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		box *secrets.Box
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		box, err := secrets.New(newKey(t))
		require.NoError(t, err)
		return &testBundle{box: box}
	}

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sealed, err := b.box.Seal([]byte("pat-na1-secret"), []byte("connection_credentials:7"))
		require.NoError(t, err)
		require.NotContains(t, string(sealed), "pat-na1-secret")
		plain, err := b.box.Open(sealed, []byte("connection_credentials:7"))
		require.NoError(t, err)
		require.Equal(t, "pat-na1-secret", string(plain))

		again, err := b.box.Seal([]byte("pat-na1-secret"), []byte("connection_credentials:7"))
		require.NoError(t, err)
		require.NotEqual(t, sealed, again, "a fresh nonce every time")
	})

	t.Run("WrongKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sealed, err := b.box.Seal([]byte("pat-na1-secret"), nil)
		require.NoError(t, err)
		other := setup(t)
		_, err = other.box.Open(sealed, nil)
		require.ErrorIs(t, err, secrets.ErrWrongKey)
		require.NotContains(t, err.Error(), "pat-na1-secret")
	})

	t.Run("BoundToItsRow", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sealed, err := b.box.Seal([]byte("pat-na1-secret"), []byte("connection_credentials:7"))
		require.NoError(t, err)
		_, err = b.box.Open(sealed, []byte("connection_credentials:8"))
		require.ErrorIs(t, err, secrets.ErrWrongKey, "a sealed value moved to another row doesn't open")
	})

	t.Run("TamperedOrTruncated", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sealed, err := b.box.Seal([]byte("pat-na1-secret"), nil)
		require.NoError(t, err)
		sealed[len(sealed)-1] ^= 1
		_, err = b.box.Open(sealed, nil)
		require.ErrorIs(t, err, secrets.ErrWrongKey)
		_, err = b.box.Open(sealed[:5], nil)
		require.ErrorIs(t, err, secrets.ErrWrongKey)
	})
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := newKey(t)

	t.Run("HexAndBase64", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)),
			base64.StdEncoding.EncodeToString(key), " " + hex.EncodeToString(key) + "\n"} {
			got, err := secrets.ParseKey(s)
			require.NoError(t, err, s)
			require.Equal(t, key, got)
		}
	})

	t.Run("MalformedIsRefusedClearly", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{
			"hunter2",
			hex.EncodeToString(key[:16]),                       // 16 bytes of hex
			hex.EncodeToString(key)[:63] + "z",                 // not hex, not base64
			base64.StdEncoding.EncodeToString(key[:24]),        // base64 of the wrong length
			base64.URLEncoding.EncodeToString(key)[:42] + "-_", // URL alphabet
		} {
			_, err := secrets.ParseKey(s)
			require.Error(t, err, s)
			require.Contains(t, err.Error(), "PIPEWATCH_SECRET_KEY must be 32 random bytes written as 64 hex characters or standard base64", s)
			require.Contains(t, err.Error(), "openssl rand -hex 32")
			require.NotContains(t, err.Error(), s, "the key itself is never echoed")
		}
	})
}

func TestFromEnv(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Run("Unset", func(t *testing.T) {
		t.Setenv(secrets.EnvKey, "")
		_, err := secrets.FromEnv()
		require.ErrorIs(t, err, secrets.ErrNoKey)
	})
	t.Run("Malformed", func(t *testing.T) {
		t.Setenv(secrets.EnvKey, "not-a-key")
		_, err := secrets.FromEnv()
		require.EqualError(t, err, "PIPEWATCH_SECRET_KEY must be 32 random bytes written as 64 hex characters or standard base64 "+
			"(got 9 characters); generate one with `openssl rand -hex 32`")
	})
	t.Run("Valid", func(t *testing.T) {
		key := newKey(t)
		t.Setenv(secrets.EnvKey, hex.EncodeToString(key))
		box, err := secrets.FromEnv()
		require.NoError(t, err)
		sealed, err := box.Seal([]byte("x"), nil)
		require.NoError(t, err)
		same, err := secrets.New(key)
		require.NoError(t, err)
		plain, err := same.Open(sealed, nil)
		require.NoError(t, err)
		require.Equal(t, "x", string(plain))
	})
}
