package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pipewatch/pipewatch/connectors/hubspot/hubspottest"
	"github.com/pipewatch/pipewatch/internal/credentials"
	"github.com/pipewatch/pipewatch/internal/dbtest"
	"github.com/pipewatch/pipewatch/internal/secrets"
)

// TestSyncCommandKilledMidRun kills a `pipewatch sync` process (SIGKILL: no cleanup runs)
// in the middle of a backfill and runs it again: the second run ends with an exact copy,
// nothing lost, nothing twice, and the killed run is recorded as interrupted.
func TestSyncCommandKilledMidRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := buildBinary(t)
	schema, pool := dbtest.TestSchema(ctx, t)

	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	box, err := secrets.New(key)
	require.NoError(t, err)

	fake := hubspottest.New(hubspottest.Options{})
	t.Cleanup(fake.Close)
	fake.GenerateOwners(4)
	want := fake.GenerateDeals(3000, hubspottest.GenerateOptions{SharedModified: 450})
	slices.Sort(want)

	// The sync reaches the fake through a proxy that kills the process at the sixth
	// search page, while the request is in flight.
	target, err := url.Parse(fake.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	// A fresh connection per request: a kept-alive one the fake dropped when the victim
	// died would fail the next run's POST, which the proxy cannot retry.
	proxy.Transport = &http.Transport{DisableKeepAlives: true}
	var (
		searches atomic.Int64
		victim   atomic.Pointer[exec.Cmd]
	)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/crm/v3/objects/deals/search" && searches.Add(1) == 6 {
			if cmd := victim.Load(); cmd != nil {
				_ = cmd.Process.Kill()
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	cfg, err := json.Marshal(map[string]any{"base_url": front.URL, "schedule": "15m"})
	require.NoError(t, err)
	var connID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO connections (name, kind, config) VALUES ('hubspot-main', 'hubspot', $1) RETURNING id`, cfg).Scan(&connID))
	require.NoError(t, (&credentials.Store{Box: box}).Save(ctx, pool, connID, credentials.Credentials{Token: fake.AddPrivateAppToken()}))

	env := append(os.Environ(), "DATABASE_URL="+dbtest.SchemaURL(ctx, t, schema), secrets.EnvKey+"="+hex.EncodeToString(key))
	syncDeals := func() *exec.Cmd {
		cmd := exec.Command(bin, "sync", "--connection", "hubspot-main", "--stream", "deals")
		cmd.Env = env
		return cmd
	}

	killed := syncDeals()
	victim.Store(killed)
	err = killed.Run()
	require.Error(t, err, "the first run dies")
	require.Equal(t, "signal: killed", err.Error())
	var stored int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM deals`).Scan(&stored))
	require.Less(t, stored, int64(len(want)), "the killed run stopped part way")

	out, err := syncDeals().CombinedOutput()
	require.NoError(t, err, "%s", out)

	rows, err := pool.Query(ctx, `SELECT external_id FROM deals WHERE deleted_at IS NULL ORDER BY external_id`)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, want, got, "every deal exactly once")

	var dupStays int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) - count(DISTINCT (deal_id, stage_external_id, entered_at)) FROM deal_stage_history`).Scan(&dupStays))
	require.Zero(t, dupStays)
	var statuses []string
	rows, err = pool.Query(ctx, `SELECT status FROM sync_runs WHERE stream = 'deals' ORDER BY id`)
	require.NoError(t, err)
	statuses, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Len(t, statuses, 2)
	require.NotEqual(t, "running", statuses[0], "the next run marks the killed one as interrupted")
	require.Equal(t, "succeeded", statuses[1])
}
