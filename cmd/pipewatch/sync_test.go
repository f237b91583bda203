package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"crypto/rand"

	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/secrets"
)

// TestSyncCommand runs `pipewatch sync` against a fake HubSpot portal. It sets
// PIPEWATCH_SECRET_KEY, so it does not run in parallel.
func TestSyncCommand(t *testing.T) {
	ctx := context.Background()
	_, pool := dbtest.TestSchema(ctx, t)

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	t.Setenv(secrets.EnvKey, hex.EncodeToString(key))
	box, err := secrets.New(key)
	require.NoError(t, err)
	creds := &credentials.Store{Box: box}

	fake := hubspottest.New(hubspottest.Options{})
	t.Cleanup(fake.Close)
	require.NoError(t, fake.Populate(hubspottest.Population{Owners: 3, Companies: 10, Contacts: 20, Deals: 40, EngagementsPerType: 5, ArchivedDeals: 2}))
	cfg, err := json.Marshal(map[string]any{"base_url": fake.URL, "schedule": "15m"})
	require.NoError(t, err)
	var connID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO connections (name, kind, config) VALUES ('hubspot-main', 'hubspot', $1) RETURNING id`, cfg).Scan(&connID))
	require.NoError(t, creds.Save(ctx, pool, connID, credentials.Credentials{Token: fake.AddPrivateAppToken()}))

	sync := func(args ...string) (string, string, error) {
		var stdout, stderr bytes.Buffer
		a := &app{stdout: &stdout, stderr: &stderr, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), pool: pool}
		err := runSync(ctx, a, args)
		return stdout.String(), stderr.String(), err
	}

	t.Run("EveryStreamOfEveryActiveConnection", func(t *testing.T) {
		out, _, err := sync()
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Regexp(t, `^\s*CONNECTION\s+STREAM\s+MODE\s+REQUESTS\s+RETRIES\s+READ\s+INSERTED\s+UPDATED\s+DELETED\s+SKIPPED\s+DURATION\s+STATUS$`, lines[0])
		require.Greater(t, len(lines), 10, "a line per HubSpot stream")
		require.Regexp(t, `hubspot-main\s+archived_deals\s`, out, "deletions included")
		for _, l := range lines[1:] {
			require.True(t, strings.HasSuffix(l, "succeeded"), l)
		}
		require.Regexp(t, `hubspot-main\s+deals\s+incremental\s+\d+\s+0\s+\d+\s+\d+\s+0\s+0\s+0\s+\S+\s+succeeded`, out)
		var deals int64
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM deals WHERE deleted_at IS NULL`).Scan(&deals))
		require.EqualValues(t, 38, deals)
	})

	t.Run("OneStreamInFull", func(t *testing.T) {
		require.NoError(t, fake.Archive("deals", fake.IDs("deals", false)[0]))
		out, _, err := sync("--connection", "hubspot-main", "--stream", "deals", "--full")
		require.NoError(t, err)
		require.Regexp(t, `hubspot-main\s+deals\s+reconcile\s+\d+\s+0\s+\d+\s+0\s+0\s+1\s+0\s+\S+\s+succeeded`, out,
			"the full read tombstones the deal archived since")
	})

	t.Run("RejectedCredentialsFailWithWhatToDo", func(t *testing.T) {
		require.NoError(t, creds.Save(ctx, pool, connID, credentials.Credentials{Token: "pat-na1-revoked"}))
		out, errOut, err := sync("--connection", "hubspot-main", "--stream", "deals")
		require.Error(t, err)
		require.Contains(t, err.Error(), "1 of 1 streams did not finish")
		require.Contains(t, err.Error(), "401")
		require.Regexp(t, `hubspot-main\s+deals\s+incremental.*failed`, out)
		require.Contains(t, errOut, "Connection hubspot-main is needs_reauth: hubspot rejected the stored credentials (HTTP 401)")
		require.NotContains(t, errOut+out+err.Error(), "pat-na1-revoked", "secrets never printed")

		// Scheduled (unnamed) runs skip it; naming it runs it, and working credentials make it active again.
		out, _, err = sync()
		require.NoError(t, err)
		require.Contains(t, out, "No active connections")
		require.NoError(t, creds.Save(ctx, pool, connID, credentials.Credentials{Token: fake.AddPrivateAppToken()}))
		_, _, err = sync("--connection", "hubspot-main", "--stream", "deals")
		require.NoError(t, err)
		var status string
		require.NoError(t, pool.QueryRow(ctx, `SELECT status FROM connections WHERE id = $1`, connID).Scan(&status))
		require.Equal(t, "active", status)
	})

	t.Run("UsageErrors", func(t *testing.T) {
		_, _, err := sync("--stream", "deals")
		require.ErrorIs(t, err, errUsage)
		_, _, err = sync("--connection", "nope")
		require.EqualError(t, err, fmt.Sprintf(`connection "nope": %s`, "no such connection (add it to the config file and run `pipewatch apply`)"))
	})
}
